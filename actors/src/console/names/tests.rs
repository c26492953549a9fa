//! Tests of the naming rules in names.rs: names, numbers, fingerprint prefixes, addresses and nearby peers.

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
