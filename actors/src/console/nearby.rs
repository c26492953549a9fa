//! The nearby peers under menu 2 / `/peers`: peers announced on the LAN that this node has no
//! session with yet, each with its number in the one list (names.rs: `/talk N` and the
//! name it announced reach it), its name, addresses and announced identity. Pure, like
//! render.rs (kept apart from it while render.rs is being reworked).

use super::identity::short;
use super::look::Look;
use super::names;
use crate::key::PeerKey;
use crate::nearby::NearbyPeer;
use crate::peer::PeerInfo;
use crate::sanitize::visible;

/// The block printed under the peer list of `known`, or `None` when nobody is nearby.
pub fn listing(known: &[PeerInfo], nearby: &[NearbyPeer], look: &Look) -> Option<String> {
    if nearby.is_empty() {
        return None;
    }
    let listed = names::with_nearby(names::numbered(known), nearby);
    let mut text = String::from("Nearby on the LAN (not connected):");
    for peer in nearby {
        let addrs: Vec<String> = peer.addrs.iter().map(|a| look.addr(a)).collect();
        // Unnumbered: it is a known peer's address, or it announced no key to check.
        let number = listed
            .iter()
            .find(|entry| entry.announced.is_some() && peer.addrs.first() == Some(&entry.addr))
            .map(|entry| format!("{}. ", entry.number))
            .unwrap_or_default();
        text.push_str(&format!(
            "\n  {number}{}  {}  {}",
            addrs.join(", "),
            look.name(&visible(&peer.name)),
            look.dim(announced(&peer.id)),
        ));
    }
    Some(text)
}

/// What a peer announced itself as: its key's short fingerprint (a session with it must
/// prove that key), or, for an identity that is no key, the identity escaped.
fn announced(id: &str) -> String {
    match PeerKey::from_hex(id) {
        Some(key) => format!("(key {})", short(&key.fingerprint())),
        None => format!("(id {})", visible(id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nobody_nearby_prints_nothing() {
        assert_eq!(listing(&[], &[], &Look::plain()), None);
    }

    #[test]
    fn each_nearby_peer_is_a_line_with_its_addresses_and_name_escaped() {
        let peer = NearbyPeer {
            instance: "bob-b0._peerchat._tcp.local.".into(),
            name: "bo\u{202e}b".into(),
            id: "00000000000000b0".into(),
            addrs: vec![
                "10.0.0.2:9001".parse().unwrap(),
                "10.1.0.2:9001".parse().unwrap(),
            ],
        };
        let text = listing(&[], &[peer], &Look::plain()).unwrap();
        assert_eq!(
            text,
            "Nearby on the LAN (not connected):\n  10.0.0.2:9001, 10.1.0.2:9001  bo\\u{202e}b  (id 00000000000000b0)"
        );
    }

    #[test]
    fn an_announced_key_shows_as_its_short_fingerprint_and_a_bad_id_escaped() {
        let key = PeerKey::from_bytes([0; 32]);
        assert_eq!(announced(&key.to_hex()), "(key csm7-nbfr)");
        assert_eq!(announced("\u{1b}]0;x"), "(id \\u{1b}]0;x)");
    }

    #[test]
    fn a_nearby_peer_with_a_key_is_numbered_after_the_known_peers() {
        let key = PeerKey::from_bytes([0; 32]);
        let known = PeerInfo {
            addr: "10.0.0.1:9000".parse().unwrap(),
            name: Some("ann".into()),
            connected: true,
            last_seen: None,
            waiting: 0,
            key: Some(PeerKey::from_bytes([1; 32])),
            also: Vec::new(),
        };
        let bob = NearbyPeer {
            instance: "bob._peerchat._tcp.local.".into(),
            name: "bob".into(),
            id: key.to_hex(),
            addrs: vec!["10.0.0.2:9001".parse().unwrap()],
        };
        let text = listing(&[known], &[bob], &Look::plain()).unwrap();
        assert_eq!(
            text,
            "Nearby on the LAN (not connected):\n  2. 10.0.0.2:9001  bob  (key csm7-nbfr)"
        );
    }
}
