//! Naming a peer, the same way everywhere (menu 1, menu 5, `/msg`, `/talk`, `/forget`,
//! `/cancel`): [`resolve`] turns what the user typed into the peer meant, using [`Listed`],
//! the ONE numbered list every listing shows: the known peers, then the nearby ones (found
//! on the LAN, named by what they announced). Pure: a host name to look up comes back as
//! [`Named::Lookup`] for the Console to resolve off its thread.

use std::net::IpAddr;

use crate::key::PeerKey;
use crate::nearby::NearbyPeer;
use crate::peer::{PeerAddr, PeerInfo};
use crate::sanitize::visible;

/// One peer of the numbered list (menu 2, `/peers`, menu 5 all number the same way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its number in the list, from 1.
    pub number: usize,
    /// Where it listens.
    pub addr: PeerAddr,
    /// Its name, if heard.
    pub name: Option<String>,
    /// Its key's fingerprint (`4kq2-7vxe-…`); `None` for an address no handshake answered.
    pub fingerprint: Option<String>,
    /// Whether a session serves it now.
    pub connected: bool,
    /// For a nearby peer, the key it announced (a session with it must prove it); `None`
    /// for a known peer.
    pub announced: Option<PeerKey>,
}

/// The one numbered list, in the Registry's order.
pub fn numbered(peers: &[PeerInfo]) -> Vec<Listed> {
    peers
        .iter()
        .enumerate()
        .map(|(n, peer)| Listed {
            number: n + 1,
            addr: peer.addr,
            name: peer.name.clone(),
            fingerprint: peer.key.map(|key| key.fingerprint().to_string()),
            connected: peer.connected,
            announced: None,
        })
        .collect()
}

/// The one numbered list with the nearby peers after the known ones, numbered on: each
/// nearby peer that announced a key and is not at a known peer's address (there it is that
/// known peer). Two announcements of one address are both listed: which key answers there
/// shows when it is dialed.
pub fn with_nearby(mut listed: Vec<Listed>, nearby: &[NearbyPeer]) -> Vec<Listed> {
    let known_addrs: Vec<PeerAddr> = listed.iter().map(|peer| peer.addr).collect();
    for peer in nearby {
        let Some(key) = PeerKey::from_hex(&peer.id) else {
            continue;
        };
        let Some(addr) = peer.addrs.first().copied() else {
            continue;
        };
        if peer.addrs.iter().any(|at| known_addrs.contains(at)) {
            continue;
        }
        listed.push(Listed {
            number: listed.len() + 1,
            addr,
            name: Some(peer.name.clone()),
            fingerprint: Some(key.fingerprint().to_string()),
            connected: false,
            announced: Some(key),
        });
    }
    listed
}

/// The peer a name means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named {
    /// A peerchat peer at this address.
    Peer(PeerAddr),
    /// A nearby peer: at the address it announced, which must prove the key it announced.
    Announced {
        /// Where it listens.
        addr: PeerAddr,
        /// The key it announced.
        key: PeerKey,
        /// The name it announced.
        name: String,
    },
    /// A classic peer (`classic:IP:PORT`).
    Classic(PeerAddr),
    /// `host:port`: the host is to be looked up (DNS) before it is an address.
    Lookup {
        /// The host as typed.
        host: String,
        /// The port.
        port: u16,
    },
    /// Several peers answer to it: the user must choose.
    Ambiguous(Vec<Listed>),
}

/// Shortest fingerprint prefix taken as a fingerprint (shorter ones are too easily a name).
const FINGERPRINT_PREFIX_MIN: usize = 4;

/// What `text` names: a peer's name (exact, any case; else the start of one name), its
/// number in `listed`, a fingerprint prefix, `IP:PORT`, `classic:IP:PORT` or `HOST:PORT`.
/// Digits alone are a number and, from four digits on, may also be a fingerprint prefix
/// (fingerprints have digits): see [`by_digits`]. An unspecified address (`0.0.0.0:P`) is refused with the addresses that work, made of
/// `local_ips` (this machine's) with its port.
pub fn resolve(text: &str, listed: &[Listed], local_ips: &[IpAddr]) -> Result<Named, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("No peer given.".into());
    }
    if let Some(addr) = text.strip_prefix("classic:") {
        return match addr.parse::<PeerAddr>() {
            Ok(to) => reachable(to, local_ips).map(Named::Classic),
            Err(err) => Err(format!(
                "classic:{} is not classic:IP:PORT ({})",
                visible(addr),
                visible(&err.to_string())
            )),
        };
    }
    if let Ok(to) = text.parse::<PeerAddr>() {
        return reachable(to, local_ips).map(Named::Peer);
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return by_digits(text, listed);
    }
    let by_name = by_name(text, listed);
    if !by_name.is_empty() {
        return one_of(by_name);
    }
    let by_key = by_fingerprint(text, listed);
    if !by_key.is_empty() {
        return one_of(by_key);
    }
    if let Some((host, port)) = host_port(text) {
        return Ok(Named::Lookup {
            host: host.to_string(),
            port,
        });
    }
    Err(format!(
        "'{}' is not a known peer: give its name or number (see /peers), IP:PORT or \
         HOST:PORT.",
        visible(text)
    ))
}

/// Which of the addresses a host name resolved to is meant: a known peer's first, then
/// IPv4 (a node on all interfaces listens on IPv4 only), then any.
pub fn pick_looked_up(found: &[PeerAddr], listed: &[Listed]) -> Option<PeerAddr> {
    found
        .iter()
        .find(|addr| listed.iter().any(|peer| peer.addr == **addr))
        .or_else(|| found.iter().find(|addr| addr.ip().is_ipv4()))
        .or_else(|| found.first())
        .copied()
}

/// An answer to "which one?": a number from the candidates' list numbers, or anything
/// [`resolve`] takes as long as it names one of them. Answers [`Named::Peer`] or, for a
/// nearby candidate, [`Named::Announced`].
pub fn choose(text: &str, candidates: &[Listed]) -> Result<Named, String> {
    let text = text.trim();
    if let Ok(number) = text.parse::<usize>() {
        if let Some(peer) = candidates.iter().find(|peer| peer.number == number) {
            return Ok(named(peer));
        }
    }
    match resolve(text, candidates, &[]) {
        Ok(Named::Peer(addr)) if candidates.iter().any(|peer| peer.addr == addr) => {
            Ok(Named::Peer(addr))
        }
        Ok(Named::Announced { addr, key, name })
            if candidates.iter().any(|peer| peer.addr == addr) =>
        {
            Ok(Named::Announced { addr, key, name })
        }
        _ => Err(format!(
            "'{}' is not one of {}.",
            visible(text),
            numbers(candidates)
        )),
    }
}

/// "1, 3 or 4": the numbers of `candidates`.
fn numbers(candidates: &[Listed]) -> String {
    let numbers: Vec<String> = candidates.iter().map(|p| p.number.to_string()).collect();
    match numbers.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => "the list".into(),
    }
}

/// An address a peer can be reached at; `0.0.0.0:P` and `[::]:P` are where a node listens,
/// not where it is reached.
fn reachable(to: PeerAddr, local_ips: &[IpAddr]) -> Result<PeerAddr, String> {
    if !to.ip().is_unspecified() {
        return Ok(to);
    }
    let port = to.port();
    let mut works: Vec<String> = local_ips
        .iter()
        .filter(|ip| !ip.is_unspecified())
        .map(|ip| PeerAddr::from_ip_port(*ip, port).to_string())
        .collect();
    if works.is_empty() {
        works.push(format!("127.0.0.1:{port}"));
    }
    Err(format!(
        "{to} is where a node listens, not an address to reach it at: on this machine use {} \
         (from another machine, the address its owner's start-up line shows).",
        works.join(" or ")
    ))
}

/// Digits: the peer with that number, unless they also begin the fingerprint of another
/// peer, which makes them ambiguous (the user is asked which, as for a shared name). Digits
/// that are no number in the list but begin a fingerprint name that fingerprint's peer.
fn by_digits(text: &str, listed: &[Listed]) -> Result<Named, String> {
    let by_key = by_fingerprint(text, listed);
    let numbered = text
        .parse::<usize>()
        .ok()
        .and_then(|n| listed.iter().find(|peer| peer.number == n));
    match numbered {
        Some(peer) if by_key.iter().all(|other| other.addr == peer.addr) => Ok(named(peer)),
        Some(peer) => {
            let mut found = by_key;
            if !found.iter().any(|other| other.number == peer.number) {
                found.push(peer.clone());
            }
            found.sort_by_key(|peer| peer.number);
            one_of(found)
        }
        None if !by_key.is_empty() => one_of(by_key),
        None => by_number(text, listed),
    }
}

fn by_number(text: &str, listed: &[Listed]) -> Result<Named, String> {
    match text.parse::<usize>() {
        Ok(n) => match listed.iter().find(|peer| peer.number == n) {
            Some(peer) => Ok(named(peer)),
            None if listed.is_empty() => {
                Err(format!("There is no peer {n}: no peer is known yet."))
            }
            None => Err(format!(
                "There is no peer {n}: the peers are numbered 1 to {} (see /peers).",
                listed.len()
            )),
        },
        Err(_) => Err(format!("'{}' is not a peer number.", visible(text))),
    }
}

/// Peers named `text` (any case); if none, peers whose name starts with it.
fn by_name(text: &str, listed: &[Listed]) -> Vec<Listed> {
    let wanted = text.to_lowercase();
    let name_of = |peer: &Listed| peer.name.as_deref().map(str::to_lowercase);
    let exact: Vec<Listed> = listed
        .iter()
        .filter(|peer| name_of(peer).as_deref() == Some(wanted.as_str()))
        .cloned()
        .collect();
    if !exact.is_empty() {
        return exact;
    }
    listed
        .iter()
        .filter(|peer| name_of(peer).is_some_and(|name| name.starts_with(&wanted)))
        .cloned()
        .collect()
}

/// Peers whose fingerprint starts with `text` (dashes and case aside).
fn by_fingerprint(text: &str, listed: &[Listed]) -> Vec<Listed> {
    let plain = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '-')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let wanted = plain(text);
    if wanted.len() < FINGERPRINT_PREFIX_MIN || !wanted.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Vec::new();
    }
    listed
        .iter()
        .filter(|peer| {
            peer.fingerprint
                .as_deref()
                .is_some_and(|key| plain(key).starts_with(&wanted))
        })
        .cloned()
        .collect()
}

fn one_of(found: Vec<Listed>) -> Result<Named, String> {
    match found.as_slice() {
        [one] => Ok(named(one)),
        _ => Ok(Named::Ambiguous(found)),
    }
}

/// The peer one entry of the list names: a nearby one with the key it announced.
fn named(peer: &Listed) -> Named {
    match peer.announced {
        Some(key) => Named::Announced {
            addr: peer.addr,
            key,
            name: peer.name.clone().unwrap_or_default(),
        },
        None => Named::Peer(peer.addr),
    }
}

/// `host:port` with a host name (letters, digits, dots, dashes) and a port 1-65535.
fn host_port(text: &str) -> Option<(&str, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    let port = port.parse::<u16>().ok().filter(|p| *p != 0)?;
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    host_ok.then_some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::PeerKey;

    fn addr(text: &str) -> PeerAddr {
        text.parse().unwrap()
    }

    fn peer(number: usize, at: &str, name: Option<&str>, key: Option<&str>) -> Listed {
        Listed {
            number,
            addr: addr(at),
            name: name.map(str::to_string),
            fingerprint: key.map(str::to_string),
            connected: true,
            announced: None,
        }
    }

    fn three() -> Vec<Listed> {
        vec![
            peer(
                1,
                "127.0.0.1:9001",
                Some("bob"),
                Some("4kq2-7vxe-m0d3-tg8a-zr5c"),
            ),
            peer(
                2,
                "127.0.0.1:9002",
                Some("Carol"),
                Some("ab3k-9xq2-h7mw-0ve4-ysc1"),
            ),
            peer(3, "10.0.0.7:9003", Some("carol"), None),
        ]
    }

    #[test]
    fn a_peer_is_named_by_name_number_or_address() {
        let listed = three();
        let bob = Named::Peer(addr("127.0.0.1:9001"));
        assert_eq!(resolve("bob", &listed, &[]), Ok(bob.clone()));
        assert_eq!(resolve(" BOB ", &listed, &[]), Ok(bob.clone()));
        assert_eq!(resolve("bo", &listed, &[]), Ok(bob.clone()));
        assert_eq!(resolve("1", &listed, &[]), Ok(bob.clone()));
        assert_eq!(resolve("127.0.0.1:9001", &listed, &[]), Ok(bob.clone()));
        assert_eq!(resolve("localhost:9001", &listed, &[]), Ok(bob));
        assert_eq!(
            resolve("3", &listed, &[]),
            Ok(Named::Peer(addr("10.0.0.7:9003")))
        );
        // An address nobody listed is still an address.
        assert_eq!(
            resolve("10.1.1.1:5", &listed, &[]),
            Ok(Named::Peer(addr("10.1.1.1:5")))
        );
        assert_eq!(
            resolve("classic:10.1.1.1:5", &listed, &[]),
            Ok(Named::Classic(addr("10.1.1.1:5")))
        );
    }

    #[test]
    fn a_fingerprint_prefix_names_its_peer() {
        let listed = three();
        assert_eq!(
            resolve("ab3k", &listed, &[]),
            Ok(Named::Peer(addr("127.0.0.1:9002")))
        );
        assert_eq!(
            resolve("4KQ2-7v", &listed, &[]),
            Ok(Named::Peer(addr("127.0.0.1:9001")))
        );
        // Too short to be taken as a key.
        assert!(resolve("4kq", &listed, &[]).is_err());
    }

    /// `count` peers without a key, at 10.0.x.y, numbered from 1.
    fn many(count: usize) -> Vec<Listed> {
        (1..=count)
            .map(|n| {
                let at = format!("10.0.{}.{}:9000", n / 256, n % 256);
                peer(n, &at, None, None)
            })
            .collect()
    }

    #[test]
    fn digits_that_are_no_peer_number_but_begin_a_fingerprint_name_its_peer() {
        let mut listed = three();
        listed[2].fingerprint = Some("0815-7vxe-m0d3-tg8a-zr5c".into());
        let third = Ok(Named::Peer(addr("10.0.0.7:9003")));
        // Three peers: 0815 and 08157 are no numbers of theirs.
        assert_eq!(resolve("0815", &listed, &[]), third);
        assert_eq!(resolve("08157", &listed, &[]), third);
        // Too short to be a fingerprint: a number, and there is no peer 815... nor 81.
        assert_eq!(
            resolve("081", &listed, &[]),
            Err("There is no peer 81: the peers are numbered 1 to 3 (see /peers).".into())
        );
        assert_eq!(
            resolve("0816", &listed, &[]),
            Err("There is no peer 816: the peers are numbered 1 to 3 (see /peers).".into())
        );
        // A number is still a number.
        assert_eq!(resolve("3", &listed, &[]), third);
    }

    #[test]
    fn digits_that_are_a_number_and_another_peers_fingerprint_prefix_ask_which() {
        let mut listed = many(1300);
        listed[4].fingerprint = Some("1234-7vxe-m0d3-tg8a-zr5c".into());
        let Ok(Named::Ambiguous(candidates)) = resolve("1234", &listed, &[]) else {
            panic!("1234 is peer 1234 and the start of peer 5's fingerprint");
        };
        let numbers: Vec<usize> = candidates.iter().map(|peer| peer.number).collect();
        assert_eq!(numbers, [5, 1234]);
        assert_eq!(choose("5", &candidates), Ok(Named::Peer(listed[4].addr)));
        assert_eq!(
            choose("1234", &candidates),
            Ok(Named::Peer(listed[1233].addr))
        );
        // Dashes make it a fingerprint only; more digits than the list has, too.
        assert_eq!(
            resolve("1234-7", &listed, &[]),
            Ok(Named::Peer(listed[4].addr))
        );
        assert_eq!(
            resolve("12347", &listed, &[]),
            Ok(Named::Peer(listed[4].addr))
        );
        // The numbered peer's own fingerprint: no one else is meant.
        listed[4].fingerprint = None;
        listed[1233].fingerprint = Some("1234-7vxe-m0d3-tg8a-zr5c".into());
        assert_eq!(
            resolve("1234", &listed, &[]),
            Ok(Named::Peer(listed[1233].addr))
        );
        // Neither: the number's error.
        assert_eq!(
            resolve("99999", &listed, &[]),
            Err("There is no peer 99999: the peers are numbered 1 to 1300 (see /peers).".into())
        );
    }

    fn known(at: &str, key: PeerKey) -> PeerInfo {
        PeerInfo {
            addr: addr(at),
            name: None,
            connected: false,
            last_seen: None,
            waiting: 0,
            key: Some(key),
            also: Vec::new(),
        }
    }

    /// Two keys whose fingerprints share their first group (a search: about a thousand
    /// keys in, two meet).
    fn keys_sharing_a_first_group() -> (PeerKey, PeerKey) {
        let mut seen = std::collections::HashMap::new();
        for n in 0..=u16::MAX {
            let mut bytes = [7u8; 32];
            bytes[..2].copy_from_slice(&n.to_be_bytes());
            let key = PeerKey::from_bytes(bytes);
            let fingerprint = key.fingerprint().to_string();
            if let Some(other) = seen.insert(fingerprint[..4].to_string(), key) {
                return (other, key);
            }
        }
        panic!("no two of 65536 fingerprints share a first group");
    }

    #[test]
    fn the_listed_fingerprint_prefix_names_a_peer_and_an_ambiguous_one_asks() {
        let (first, second) = keys_sharing_a_first_group();
        let third = PeerKey::from_bytes([9; 32]);
        let peers = [
            known("127.0.0.1:9001", first),
            known("127.0.0.1:9002", second),
            known("127.0.0.1:9003", third),
        ];
        let listed = numbered(&peers);
        let shown = |key: PeerKey| key.fingerprint().to_string();
        assert_eq!(listed[2].fingerprint, Some(shown(third)));
        // As menu 2 shows it: two groups, or one, in any case.
        for typed in [
            shown(first)[..9].to_string(),
            shown(first)[..9].to_uppercase(),
        ] {
            assert_eq!(
                resolve(&typed, &listed, &[]),
                Ok(Named::Peer(addr("127.0.0.1:9001"))),
                "{typed}"
            );
        }
        assert_eq!(
            resolve(&shown(third)[..4], &listed, &[]),
            Ok(Named::Peer(addr("127.0.0.1:9003")))
        );
        // The shared first group names two peers: the user is asked which.
        let Ok(Named::Ambiguous(candidates)) = resolve(&shown(first)[..4], &listed, &[]) else {
            panic!("{} names two peers", &shown(first)[..4]);
        };
        let numbers: Vec<usize> = candidates.iter().map(|peer| peer.number).collect();
        assert_eq!(numbers, [1, 2]);
        assert_eq!(
            choose("2", &candidates),
            Ok(Named::Peer(addr("127.0.0.1:9002")))
        );
        // An address no handshake answered has no fingerprint to match.
        let unkeyed = PeerInfo {
            key: None,
            ..known("127.0.0.1:9004", third)
        };
        assert_eq!(numbered(&[unkeyed])[0].fingerprint, None);
    }

    #[test]
    fn an_ambiguous_name_lists_the_candidates_and_a_number_chooses() {
        let listed = three();
        let Ok(Named::Ambiguous(candidates)) = resolve("carol", &listed, &[]) else {
            panic!("carol is two peers");
        };
        assert_eq!(
            candidates.iter().map(|p| p.number).collect::<Vec<_>>(),
            [2, 3]
        );
        assert_eq!(
            choose("3", &candidates),
            Ok(Named::Peer(addr("10.0.0.7:9003")))
        );
        assert_eq!(
            choose("127.0.0.1:9002", &candidates),
            Ok(Named::Peer(addr("127.0.0.1:9002")))
        );
        assert_eq!(
            choose("1", &candidates),
            Err("'1' is not one of 2 or 3.".into())
        );
    }

    #[test]
    fn host_names_are_looked_up_later() {
        let listed = three();
        for (text, host) in [
            ("LOCALHOST:9001", "LOCALHOST"),
            ("my-laptop:9001", "my-laptop"),
            ("pc.example.org:9001", "pc.example.org"),
        ] {
            assert_eq!(
                resolve(text, &listed, &[]),
                Ok(Named::Lookup {
                    host: host.into(),
                    port: 9001
                })
            );
        }
        let found = [addr("[::1]:9001"), addr("127.0.0.1:9001")];
        assert_eq!(pick_looked_up(&found, &[]), Some(addr("127.0.0.1:9001")));
        let v6 = [addr("[::1]:9001")];
        assert_eq!(pick_looked_up(&v6, &[]), Some(addr("[::1]:9001")));
        assert_eq!(pick_looked_up(&[], &[]), None);
    }

    #[test]
    fn wrong_names_say_what_works() {
        let listed = three();
        assert_eq!(
            resolve("7", &listed, &[]),
            Err("There is no peer 7: the peers are numbered 1 to 3 (see /peers).".into())
        );
        assert_eq!(
            resolve("1", &[], &[]),
            Err("There is no peer 1: no peer is known yet.".into())
        );
        assert_eq!(
            resolve("dave", &listed, &[]),
            Err(
                "'dave' is not a known peer: give its name or number (see /peers), \
                 IP:PORT or HOST:PORT."
                    .into()
            )
        );
        assert!(resolve("nowhere:0", &listed, &[]).is_err());
        assert!(resolve("\u{1b}[2J", &listed, &[])
            .unwrap_err()
            .contains("\\u{1b}[2J"));
        assert!(resolve("classic:bob", &listed, &[]).is_err());
        assert_eq!(resolve("  ", &listed, &[]), Err("No peer given.".into()));
    }

    #[test]
    fn an_unspecified_address_is_refused_with_the_ones_that_work() {
        let ips: [IpAddr; 2] = [
            "127.0.0.1".parse().unwrap(),
            "192.168.1.20".parse().unwrap(),
        ];
        let why = resolve("0.0.0.0:9101", &[], &ips).unwrap_err();
        assert!(
            why.starts_with("0.0.0.0:9101 is where a node listens, not an address to reach it at"),
            "{why}"
        );
        assert!(why.contains("127.0.0.1:9101 or 192.168.1.20:9101"), "{why}");
        let why = resolve("[::]:9101", &[], &[]).unwrap_err();
        assert!(why.contains("use 127.0.0.1:9101"), "{why}");
        assert!(resolve("classic:0.0.0.0:9101", &[], &[]).is_err());
    }

    fn nearby(name: &str, key: PeerKey, at: &[&str]) -> NearbyPeer {
        NearbyPeer {
            instance: format!("{name}._peerchat._tcp.local."),
            name: name.into(),
            id: key.to_hex(),
            addrs: at.iter().map(|a| addr(a)).collect(),
        }
    }

    #[test]
    fn a_nearby_peer_is_named_by_its_announced_name_with_its_key_expected() {
        let dan = PeerKey::from_bytes([4; 32]);
        let listed = with_nearby(three(), &[nearby("dan", dan, &["10.0.0.9:9009"])]);
        assert_eq!(listed.len(), 4);
        assert_eq!(listed[3].number, 4, "numbered after the known peers");
        let dan_named = Named::Announced {
            addr: addr("10.0.0.9:9009"),
            key: dan,
            name: "dan".into(),
        };
        assert_eq!(resolve("dan", &listed, &[]), Ok(dan_named.clone()));
        assert_eq!(resolve("DA", &listed, &[]), Ok(dan_named.clone()));
        assert_eq!(resolve("4", &listed, &[]), Ok(dan_named.clone()));
        let fingerprint = dan.fingerprint().to_string();
        assert_eq!(resolve(&fingerprint[..9], &listed, &[]), Ok(dan_named));
        // Its address typed is a plain address (the Registry still expects the key).
        assert_eq!(
            resolve("10.0.0.9:9009", &listed, &[]),
            Ok(Named::Peer(addr("10.0.0.9:9009")))
        );
    }

    #[test]
    fn a_name_both_known_and_nearby_asks_which_and_the_answer_keeps_the_key() {
        let other_bob = PeerKey::from_bytes([5; 32]);
        let listed = with_nearby(three(), &[nearby("bob", other_bob, &["10.0.0.5:9001"])]);
        let Ok(Named::Ambiguous(candidates)) = resolve("bob", &listed, &[]) else {
            panic!("bob is a known peer and a nearby one");
        };
        let numbers: Vec<usize> = candidates.iter().map(|peer| peer.number).collect();
        assert_eq!(numbers, [1, 4]);
        assert_eq!(
            choose("4", &candidates),
            Ok(Named::Announced {
                addr: addr("10.0.0.5:9001"),
                key: other_bob,
                name: "bob".into()
            })
        );
        assert_eq!(
            choose("1", &candidates),
            Ok(Named::Peer(addr("127.0.0.1:9001")))
        );
    }

    #[test]
    fn nearby_peers_at_known_addresses_or_without_a_key_are_not_listed_again() {
        let key = PeerKey::from_bytes([6; 32]);
        let at_known = nearby("bobby", key, &["10.0.0.3:1", "127.0.0.1:9001"]);
        let mut keyless = nearby("eve", key, &["10.0.0.8:9008"]);
        keyless.id = "00000000000000e0".into();
        let listed = with_nearby(three(), &[at_known, keyless]);
        assert_eq!(listed, three());
        assert!(resolve("eve", &listed, &[]).is_err());
        // Two announcements of one new address: both listed, each with its own key.
        let liar = nearby("mallory", PeerKey::from_bytes([8; 32]), &["10.0.0.9:9009"]);
        let dan = nearby("dan", key, &["10.0.0.9:9009"]);
        let listed = with_nearby(three(), &[dan, liar]);
        assert_eq!(listed.len(), 5);
        assert!(matches!(
            resolve("mallory", &listed, &[]),
            Ok(Named::Announced { key, .. }) if key == PeerKey::from_bytes([8; 32])
        ));
    }
}
