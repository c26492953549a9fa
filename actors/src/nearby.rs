//! Peers found on the LAN by mDNS/DNS-SD, as plain data: what a node announces in its TXT
//! records, how another node's announcement is read (anything malformed is ignored), and the
//! set of nearby peers seen so far. No sockets: the Discovery actor feeds it what the
//! `mdns-sd` daemon reports; the Registry keeps the last list it was sent.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use crate::config::LocalIdentity;
use crate::key::PeerKey;
use crate::peer::PeerAddr;
use crate::wire::PROTOCOL_VERSION;

/// The DNS-SD service every node announces and browses for.
pub const SERVICE_TYPE: &str = "_peerchat._tcp.local.";

/// TXT key of the node's name.
pub const TXT_NAME: &str = "name";
/// TXT key of the node's identity (see [`announced_identity`]).
pub const TXT_ID: &str = "id";
/// TXT key of the protocol version the node speaks.
pub const TXT_PROTOCOL: &str = "proto";

/// Longest name accepted from an announcement, as for `--name`.
const MAX_NAME_CHARS: usize = 64;
/// Longest identity accepted: a fingerprint or a public key in hex fits.
const MAX_ID_CHARS: usize = 128;
/// The name's share of an instance label (DNS labels are at most 63 bytes).
const INSTANCE_NAME_BYTES: usize = 40;

/// What identifies this node in its announcement: its static public key in hex, which a
/// session with it must then prove (a TXT value holds up to 255 bytes; the key is 64).
pub fn announced_identity(me: &LocalIdentity) -> String {
    node_identity(&me.keys.public())
}

/// The identity a node with this key announces, to match a session's peer against.
pub fn node_identity(key: &PeerKey) -> String {
    key.to_hex()
}

/// What this node announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// Its name.
    pub name: String,
    /// Its identity, [`announced_identity`].
    pub id: String,
    /// The port it listens on.
    pub port: u16,
}

impl Announcement {
    /// The announcement of the node `me`.
    pub fn of(me: &LocalIdentity) -> Announcement {
        Announcement {
            name: me.name.clone(),
            id: announced_identity(me),
            port: me.listen_port,
        }
    }

    /// Its TXT records, key and value.
    pub fn txt(&self) -> Vec<(String, String)> {
        vec![
            (TXT_NAME.into(), self.name.clone()),
            (TXT_ID.into(), self.id.clone()),
            (TXT_PROTOCOL.into(), PROTOCOL_VERSION.to_string()),
        ]
    }

    /// The DNS-SD instance label: the name (shortened, dots and controls replaced) and the
    /// identity, unique on the LAN even when two people pick the same name.
    pub fn instance(&self) -> String {
        let mut short = String::new();
        for c in self.name.chars() {
            if short.len() + c.len_utf8() > INSTANCE_NAME_BYTES {
                break;
            }
            short.push(if c == '.' || c.is_control() { '-' } else { c });
        }
        let id: String = self.id.chars().take(16).collect();
        format!("{short}-{id}")
    }

    /// The host name announced with the service, one per node.
    pub fn host(&self) -> String {
        let id: String = self.id.chars().take(16).collect();
        format!("peerchat-{id}.local.")
    }
}

/// One announcement seen on the network, as the mDNS daemon resolved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    /// The service instance's full name (`alice-0123…._peerchat._tcp.local.`).
    pub instance: String,
    /// The port in its SRV record.
    pub port: u16,
    /// The addresses of its host.
    pub ips: Vec<IpAddr>,
    /// Its TXT records.
    pub txt: Vec<(String, String)>,
}

impl Sighting {
    fn txt(&self, key: &str) -> Option<&str> {
        self.txt
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// A peer found on the LAN, not (yet) vouched for by a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NearbyPeer {
    /// The service instance it was announced as.
    pub instance: String,
    /// The name it announced.
    pub name: String,
    /// The identity it announced.
    pub id: String,
    /// Where it says it listens: every usable address of its host, with its port.
    pub addrs: Vec<PeerAddr>,
}

/// Why an announcement was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ignored {
    /// This node's own announcement, come back.
    Own,
    /// A TXT record is missing or malformed.
    BadTxt(&'static str),
    /// Another protocol version: the two could not talk.
    OtherProtocol(String),
    /// No port, or no address a peer could be dialed at.
    Unreachable,
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ignored::Own => write!(f, "our own announcement"),
            Ignored::BadTxt(why) => write!(f, "bad TXT record: {why}"),
            Ignored::OtherProtocol(v) => write!(f, "protocol {v:?}, we speak {PROTOCOL_VERSION}"),
            Ignored::Unreachable => write!(f, "no usable address or port"),
        }
    }
}

/// Reads an announcement; `own_id` is this node's identity.
pub fn read_sighting(sighting: &Sighting, own_id: &str) -> Result<NearbyPeer, Ignored> {
    let id = sighting.txt(TXT_ID).ok_or(Ignored::BadTxt("no id"))?;
    if id.is_empty()
        || id.chars().count() > MAX_ID_CHARS
        || !id.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(Ignored::BadTxt("id is not a short alphanumeric text"));
    }
    if id.eq_ignore_ascii_case(own_id) {
        return Err(Ignored::Own);
    }
    let protocol = sighting
        .txt(TXT_PROTOCOL)
        .ok_or(Ignored::BadTxt("no protocol version"))?;
    if protocol.parse::<u64>().ok() != Some(PROTOCOL_VERSION) {
        return Err(Ignored::OtherProtocol(protocol.chars().take(16).collect()));
    }
    let name = sighting
        .txt(TXT_NAME)
        .ok_or(Ignored::BadTxt("no name"))?
        .trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(Ignored::BadTxt("name empty or longer than 64 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(Ignored::BadTxt("name with control characters"));
    }
    if sighting.port == 0 {
        return Err(Ignored::Unreachable);
    }
    let mut addrs: Vec<PeerAddr> = sighting
        .ips
        .iter()
        .filter(|ip| dialable(ip))
        .map(|ip| PeerAddr::from_ip_port(*ip, sighting.port))
        .collect();
    addrs.sort();
    addrs.dedup();
    if addrs.is_empty() {
        return Err(Ignored::Unreachable);
    }
    Ok(NearbyPeer {
        instance: sighting.instance.clone(),
        name: name.to_string(),
        id: id.to_ascii_lowercase(),
        addrs,
    })
}

/// An address another host could be dialed at: not unspecified, multicast, broadcast or
/// loopback (another host's loopback is our own), and no IPv6 link-local (it needs a scope
/// that an address here cannot carry).
fn dialable(ip: &IpAddr) -> bool {
    if ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() {
        return false;
    }
    match ip {
        IpAddr::V4(v4) => !v4.is_broadcast(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
    }
}

/// Every nearby peer seen and not gone, by instance.
#[derive(Debug)]
pub struct NearbySet {
    own_id: String,
    peers: BTreeMap<String, NearbyPeer>,
}

impl NearbySet {
    /// An empty set for the node whose identity is `own_id`.
    pub fn new(own_id: &str) -> NearbySet {
        NearbySet {
            own_id: own_id.to_string(),
            peers: BTreeMap::new(),
        }
    }

    /// Takes an announcement in; true if the set changed.
    pub fn sighted(&mut self, sighting: &Sighting) -> Result<bool, Ignored> {
        let peer = read_sighting(sighting, &self.own_id)?;
        let changed = self.peers.get(&peer.instance) != Some(&peer);
        self.peers.insert(peer.instance.clone(), peer);
        Ok(changed)
    }

    /// The instance said goodbye (or its records expired); true if it was in the set.
    pub fn gone(&mut self, instance: &str) -> bool {
        self.peers.remove(instance).is_some()
    }

    /// The peers, ordered by instance.
    pub fn peers(&self) -> Vec<NearbyPeer> {
        self.peers.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> LocalIdentity {
        LocalIdentity {
            keys: crate::noise::StaticKeypair::from_private([7; 32]).unwrap(),
            name: "mia".into(),
            listen_port: 9000,
            bind: "0.0.0.0".parse().unwrap(),
        }
    }

    fn sighting(txt: &[(&str, &str)]) -> Sighting {
        Sighting {
            instance: "bob-00000000000000b0._peerchat._tcp.local.".into(),
            port: 9001,
            ips: vec!["10.0.0.2".parse().unwrap()],
            txt: txt
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn good() -> Sighting {
        let proto = PROTOCOL_VERSION.to_string();
        sighting(&[
            ("name", "bob"),
            ("id", "00000000000000b0"),
            ("proto", &proto),
        ])
    }

    #[test]
    fn an_announcement_reads_back_as_the_peer_it_announces() {
        let mine = Announcement::of(&me());
        let as_seen = Sighting {
            instance: format!("{}.{SERVICE_TYPE}", mine.instance()),
            port: mine.port,
            ips: vec!["10.0.0.1".parse().unwrap()],
            txt: mine.txt(),
        };
        let peer = read_sighting(&as_seen, "ffffffffffffffff").unwrap();
        // The node announces its whole public key, and its first 16 hex digits name it.
        let key = me().keys.public().to_hex();
        assert_eq!(key.len(), 64);
        assert_eq!(peer.name, "mia");
        assert_eq!(peer.id, key);
        assert_eq!(peer.addrs, vec!["10.0.0.1:9000".parse().unwrap()]);
        assert_eq!(mine.instance(), format!("mia-{}", &key[..16]));
        assert_eq!(mine.host(), format!("peerchat-{}.local.", &key[..16]));
    }

    #[test]
    fn own_announcement_is_ignored() {
        let mine = Announcement::of(&me());
        let echo = Sighting {
            instance: format!("{}.{SERVICE_TYPE}", mine.instance()),
            port: mine.port,
            ips: vec!["10.0.0.1".parse().unwrap()],
            txt: mine.txt(),
        };
        let mut set = NearbySet::new(&announced_identity(&me()));
        assert_eq!(set.sighted(&echo), Err(Ignored::Own));
        assert!(set.peers().is_empty());
    }

    #[test]
    fn bad_txt_records_are_ignored() {
        let proto = PROTOCOL_VERSION.to_string();
        let long = "x".repeat(65);
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![("name", "bob"), ("proto", &proto)], "no id"),
            (
                vec![("name", "bob"), ("id", ""), ("proto", &proto)],
                "empty id",
            ),
            (
                vec![("name", "bob"), ("id", "b0 b0"), ("proto", &proto)],
                "id with a space",
            ),
            (vec![("name", "bob"), ("id", "b0")], "no protocol"),
            (
                vec![("name", "bob"), ("id", "b0"), ("proto", "two")],
                "protocol not a number",
            ),
            (
                vec![("name", "bob"), ("id", "b0"), ("proto", "99")],
                "another protocol",
            ),
            (vec![("id", "b0"), ("proto", &proto)], "no name"),
            (
                vec![("name", "  "), ("id", "b0"), ("proto", &proto)],
                "blank name",
            ),
            (
                vec![("name", &long), ("id", "b0"), ("proto", &proto)],
                "name too long",
            ),
            (
                vec![("name", "bo\u{1b}[2Jb"), ("id", "b0"), ("proto", &proto)],
                "control characters",
            ),
        ];
        for (txt, what) in cases {
            let mut set = NearbySet::new("ffff");
            assert!(set.sighted(&sighting(&txt)).is_err(), "{what} was taken");
            assert!(set.peers().is_empty(), "{what}");
        }
    }

    #[test]
    fn unusable_addresses_are_dropped_and_none_left_is_ignored() {
        let mut s = good();
        s.ips = [
            "0.0.0.0",
            "127.0.0.1",
            "224.0.0.251",
            "255.255.255.255",
            "fe80::1",
            "::",
        ]
        .iter()
        .map(|ip| ip.parse().unwrap())
        .collect();
        assert_eq!(read_sighting(&s, "ffff"), Err(Ignored::Unreachable));
        s.ips.push("192.168.1.7".parse().unwrap());
        assert_eq!(
            read_sighting(&s, "ffff").unwrap().addrs,
            vec!["192.168.1.7:9001".parse().unwrap()]
        );
        s.port = 0;
        assert_eq!(read_sighting(&s, "ffff"), Err(Ignored::Unreachable));
    }

    #[test]
    fn the_set_follows_sightings_and_goodbyes() {
        let mut set = NearbySet::new("ffff");
        assert_eq!(set.sighted(&good()), Ok(true));
        assert_eq!(
            set.sighted(&good()),
            Ok(false),
            "the same again changes nothing"
        );
        let mut moved = good();
        moved.ips = vec!["10.0.0.9".parse().unwrap()];
        assert_eq!(set.sighted(&moved), Ok(true));
        assert_eq!(set.peers().len(), 1);
        assert_eq!(set.peers()[0].addrs, vec!["10.0.0.9:9001".parse().unwrap()]);
        assert!(set.gone(&good().instance));
        assert!(!set.gone(&good().instance));
        assert!(set.peers().is_empty());
    }

    #[test]
    fn instance_labels_are_short_and_have_no_dots() {
        let long = Announcement {
            name: "a.b".repeat(30),
            id: "0123456789abcdef0123".into(),
            port: 1,
        };
        let label = long.instance();
        assert!(label.len() <= 63, "{label}");
        assert!(!label.contains('.'), "{label}");
        assert!(label.ends_with("-0123456789abcdef"));
    }
}
