//! The nearby peers under menu 2 / `/peers`: peers announced on the LAN that this node has no
//! session with yet, each with its name, addresses and announced identity. Pure, like
//! render.rs (kept apart from it while render.rs is being reworked).

use super::look::Look;
use crate::nearby::NearbyPeer;
use crate::sanitize::visible;

/// The block printed under the peer list, or `None` when nobody is nearby.
pub fn listing(nearby: &[NearbyPeer], look: &Look) -> Option<String> {
    if nearby.is_empty() {
        return None;
    }
    let mut text = String::from("Nearby on the LAN (not connected):");
    for peer in nearby {
        let addrs: Vec<String> = peer.addrs.iter().map(|a| look.addr(a)).collect();
        text.push_str(&format!(
            "\n  {}  {}  {}",
            addrs.join(", "),
            look.name(&visible(&peer.name)),
            look.dim(format!("(id {})", peer.id)),
        ));
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nobody_nearby_prints_nothing() {
        assert_eq!(listing(&[], &Look::plain()), None);
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
        let text = listing(&[peer], &Look::plain()).unwrap();
        assert_eq!(
            text,
            "Nearby on the LAN (not connected):\n  10.0.0.2:9001, 10.1.0.2:9001  bo\\u{202e}b  (id 00000000000000b0)"
        );
    }
}
