use super::duplicate::ADDRESS_TAKEN;
use super::*;

const ME: PeerKey = key(50);

pub(super) const fn key(n: u8) -> PeerKey {
    let mut bytes = [0u8; 32];
    bytes[0] = n;
    PeerKey::from_bytes(bytes)
}

pub(super) fn addr(port: u16) -> PeerAddr {
    PeerAddr::from_ip_port([10, 0, 0, 1].into(), port)
}

fn ours(n: u8) -> Connection {
    Connection {
        key: key(n),
        outbound: true,
    }
}

fn theirs(n: u8) -> Connection {
    Connection {
        key: key(n),
        outbound: false,
    }
}

pub(super) fn live(handle: u32, peer: PeerAddr, n: u8, outbound: bool) -> LiveSession<u32> {
    LiveSession {
        handle,
        peer,
        key: key(n),
        outbound,
        one_shot: false,
        acked_at_ms: 0,
    }
}

pub(super) fn table() -> PeerTable<u32> {
    PeerTable::new(ME, 9000, [0, 0, 0, 0].into())
}

fn admitted(admission: Admission<u32>) -> (bool, Option<SessionId>) {
    match admission {
        Admission::Admitted {
            was_connected,
            replaced,
        } => (was_connected, replaced.map(|(id, _, _)| id)),
        Admission::Refused(why) => panic!("refused: {why}"),
    }
}

#[test]
fn the_connection_opened_by_the_lower_key_survives() {
    // The peer (key 70) is higher: ours (opened by 50) wins, whichever came first.
    assert_eq!(
        settle_duplicate(ME, ours(70), theirs(70)),
        Verdict::KeepExisting("duplicate connection")
    );
    assert_eq!(
        settle_duplicate(ME, theirs(70), ours(70)),
        Verdict::Replace("duplicate connection")
    );
    // The peer (key 20) is lower: its connection wins.
    assert_eq!(
        settle_duplicate(ME, theirs(20), ours(20)),
        Verdict::KeepExisting("duplicate connection")
    );
    assert_eq!(
        settle_duplicate(ME, ours(20), theirs(20)),
        Verdict::Replace("duplicate connection")
    );
}

#[test]
fn both_ends_keep_the_same_connection() {
    // Seen from the peer (key 70), our outbound connection is its inbound one.
    for peer in [20, 70] {
        let here = settle_duplicate(ME, ours(peer), theirs(peer));
        let there = settle_duplicate(key(peer), theirs(50), ours(50));
        assert_eq!(here, there, "peer {peer}");
    }
}

#[test]
fn the_same_key_from_the_same_opener_replaces_the_old_connection() {
    for (old, new) in [(ours(70), ours(70)), (theirs(70), theirs(70))] {
        assert_eq!(
            settle_duplicate(ME, old, new),
            Verdict::Replace("replaced by a new connection")
        );
    }
}

#[test]
fn another_key_never_evicts_a_connected_peer() {
    for (old, new) in [(ours(70), theirs(71)), (theirs(70), theirs(10))] {
        assert_eq!(
            settle_duplicate(ME, old, new),
            Verdict::KeepExisting(ADDRESS_TAKEN)
        );
    }
}

#[test]
fn registering_connects_the_key_and_a_duplicate_is_refused() {
    let mut table = table();
    let peer = addr(9001);
    let (was_connected, replaced) = admitted(table.admit(1, live(1, peer, 70, true), "bob".into()));
    assert!(!was_connected && replaced.is_none());
    assert_eq!(table.session_for(&peer).map(|(id, _)| id), Some(1));
    assert_eq!(table.name_of(&key(70)), "bob");
    // Bob's own connection to us: ours (node 50 < 70) stays.
    assert!(matches!(
        table.admit(2, live(2, peer, 70, false), "bob".into()),
        Admission::Refused("duplicate connection")
    ));
    assert_eq!(table.session_of(&key(70)).map(|(id, _)| id), Some(1));
}

#[test]
fn a_second_address_of_a_connected_key_routes_to_its_session_once_dialed() {
    let mut table = table();
    let (first, second) = (
        addr(9001),
        PeerAddr::from_ip_port([10, 1, 0, 1].into(), 9001),
    );
    table.admit(1, live(1, first, 70, true), "mia".into());
    table.know(second);
    // Not known to be mia's until a handshake there proves it.
    assert!(table.session_for(&second).is_none());
    assert_eq!(table.unkeyed().count(), 1);
    // Reached at the second address: the same key, the new connection serves it, and it
    // is no new peer.
    let (was_connected, replaced) =
        admitted(table.admit(2, live(2, second, 70, true), "mia".into()));
    assert!(was_connected, "mia was connected already");
    assert_eq!(replaced, Some(1));
    for at in [first, second] {
        assert_eq!(table.session_for(&at).map(|(id, _)| id), Some(2), "{at}");
    }
    assert_eq!(table.unkeyed().count(), 0);
    let listed = table.list(|_| 1);
    assert_eq!(listed.len(), 1, "one line per key");
    assert_eq!(listed[0].addr, second);
    assert_eq!(listed[0].also, vec![first]);
    assert_eq!(listed[0].waiting, 2, "chats to both addresses count");
    assert_eq!(listed[0].key, Some(key(70)));
}

#[test]
fn a_lingering_session_is_no_rival() {
    let mut table = table();
    let peer = addr(9001);
    table.admit(1, live(1, peer, 70, false), "bob".into());
    assert_eq!(table.disconnect(&key(70)), Some(1));
    assert!(table.is_live(1), "still reading acks after its bye");
    let (was_connected, replaced) = admitted(table.admit(2, live(2, peer, 70, true), "bob".into()));
    assert!(!was_connected && replaced.is_none());
    let (_, current) = table.closed(1).expect("was registered");
    assert!(!current);
    assert_eq!(table.connected(), vec![key(70)]);
}

#[test]
fn a_restart_keeps_the_peers_and_waits_for_the_sessions() {
    let mut table = table();
    let (bob, carol) = (addr(9001), addr(9002));
    table.admit(1, live(1, bob, 70, true), "bob".into());
    table.admit(2, live(2, carol, 71, true), "carol".into());
    table.restart();
    assert!(table.connected().is_empty());
    assert!(table.is_rejoining(&bob));
    assert_eq!(table.all_sessions().count(), 2);
    assert!(table.rejoined(1));
    table.admit(1, live(1, bob, 70, true), "bob".into());
    let (live, current) = table.closed(2).expect("was rejoining");
    assert_eq!((live.peer, current), (carol, true));
    assert_eq!(table.connected(), vec![key(70)]);
    assert_eq!(table.keys().count(), 2);
}

#[test]
fn own_addresses_are_never_peers() {
    let mut table = table();
    assert!(table.is_self(&PeerAddr::from_ip_port([127, 0, 0, 1].into(), 9000)));
    assert!(!table.is_self(&addr(9000)));
    table.note_local_ip([10, 0, 0, 1].into());
    assert!(table.is_self(&addr(9000)));
    table.know(addr(7000));
    table.mark_self(addr(7000));
    assert!(table.is_self(&addr(7000)));
    assert_eq!(table.unkeyed().count(), 0);
}

#[test]
fn a_peers_frame_lists_connected_peers_first_and_not_the_recipient() {
    let mut table = table();
    for port in 1..=300u16 {
        let mut bytes = [0u8; 32];
        bytes[..2].copy_from_slice(&port.to_be_bytes());
        let mut session = live(u32::from(port), addr(port), 0, true);
        session.key = PeerKey::from_bytes(bytes);
        let peer_key = session.key;
        table.admit(u64::from(port), session, format!("p{port}"));
        if port < 300 {
            table.disconnect(&peer_key);
        }
    }
    let mut first = [0u8; 32];
    first[..2].copy_from_slice(&1u16.to_be_bytes());
    let entries = table.known_peers_for(&PeerKey::from_bytes(first), &addr(1));
    assert_eq!(entries.len(), PEERS_PER_FRAME);
    assert_eq!(entries[0].addr, addr(300).to_string());
    assert!(entries
        .iter()
        .all(|entry| entry.addr != addr(1).to_string()));
    assert_eq!(entries[0].key.as_bytes()[..2], 300u16.to_be_bytes());
}

#[test]
fn only_dialed_addresses_are_passed_on_never_claims_introductions_or_one_shots() {
    let mut table = table();
    table.know(addr(1));
    let mut sender = live(2, addr(2), 71, false);
    sender.one_shot = true;
    table.admit(2, sender, "script".into());
    table.admit(3, live(3, addr(3), 72, true), "carol".into());
    // Connected to us, but only claims where it listens.
    table.admit(4, live(4, addr(4), 73, false), "dave".into());
    table.learn(addr(5), Some("erin".into()), key(74), "carol");
    let entries = table.known_peers_for(&key(99), &addr(9));
    let addrs: Vec<&str> = entries.iter().map(|e| e.addr.as_str()).collect();
    assert_eq!(addrs, vec![addr(3).to_string()]);
    assert_eq!(entries[0].key, key(72));
    // Not to the peer itself.
    assert!(table.known_peers_for(&key(72), &addr(3)).is_empty());
}

#[test]
fn loopback_addresses_go_only_to_loopback_peers() {
    let mut table = table();
    let local = PeerAddr::from_ip_port([127, 0, 0, 1].into(), 9001);
    table.admit(1, live(1, local, 70, true), "bob".into());
    assert!(table.known_peers_for(&key(99), &addr(9)).is_empty());
    let other_local = PeerAddr::from_ip_port([127, 0, 0, 1].into(), 9002);
    assert_eq!(table.known_peers_for(&key(99), &other_local).len(), 1);
}

#[test]
fn introductions_never_take_an_address_from_a_key_that_proved_it() {
    let mut table = table();
    table.admit(1, live(1, addr(1), 70, true), "bob".into());
    // Mallory says bob's address is hers, and that bob is at her address.
    assert!(!table.learn(addr(1), Some("mallory".into()), key(66), "mallory"));
    assert_eq!(table.key_at(&addr(1)), Some(key(70)));
    table.learn(addr(6), Some("bob".into()), key(70), "mallory");
    // The introduced address is only an expectation: chats to it do not go to bob.
    assert_eq!(table.route(&addr(6)), None);
    assert_eq!(
        table.introduced_at(&addr(6)),
        Some((key(70), "mallory".to_string()))
    );
    // Dialing it met another key: the introduction is dropped, bob's real address stays.
    table.drop_introduction(&addr(6), &key(70));
    assert_eq!(table.key_at(&addr(6)), None);
    assert_eq!(table.routes_of(&key(70)), vec![addr(1)]);
    // Unusable addresses are never stored.
    assert!(!table.learn("0.0.0.0:9001".parse().unwrap(), None, key(71), "x"));
    assert!(!table.learn("224.0.0.1:9001".parse().unwrap(), None, key(71), "x"));
    table.know("0.0.0.0:9001".parse().unwrap());
    assert_eq!(table.unkeyed().count(), 0);
    // Dialed as 0.0.0.0:P: the session serves the key, the address is not kept.
    let unspecified: PeerAddr = "0.0.0.0:9002".parse().unwrap();
    table.admit(2, live(2, unspecified, 75, true), "zed".into());
    assert!(table.session_of(&key(75)).is_some());
    assert!(table.routes_of(&key(75)).is_empty());
    assert_eq!(table.key_at(&unspecified), None);
}

#[test]
fn a_new_key_at_a_known_address_takes_it_over_and_the_old_one_is_not_redialed_there() {
    let mut table = table();
    table.admit(1, live(1, addr(1), 70, true), "bob".into());
    table.closed(1);
    assert!(table.keeps_up(&key(70)));
    // Bob came back with a new key (no pins in this table).
    table.admit(2, live(2, addr(1), 71, true), "bob".into());
    assert_eq!(table.route(&addr(1)), Some(key(71)));
    assert_eq!(table.address_of(&key(70)), None);
}

#[test]
fn peers_are_kept_up_until_let_go_and_one_shot_senders_never() {
    let mut table = table();
    table.admit(1, live(1, addr(1), 70, false), "bob".into());
    let mut sender = live(2, addr(2), 71, false);
    sender.one_shot = true;
    table.admit(2, sender, "script".into());
    assert!(table.keeps_up(&key(70)));
    assert!(!table.keeps_up(&key(71)));
    table.let_go(&key(70));
    assert!(!table.keeps_up(&key(70)));
}

#[test]
fn a_one_shot_sender_is_dropped_once_its_session_ends_a_listening_peer_never() {
    let mut table = table();
    table.admit(1, live(1, addr(1), 70, false), "bob".into());
    let mut sender = live(2, addr(2), 71, false);
    sender.one_shot = true;
    table.admit(2, sender, "script".into());
    assert_eq!(table.list(|_| 0).len(), 2);
    for (id, key) in [(1, key(70)), (2, key(71))] {
        table.closed(id);
        table.drop_transient(&key);
    }
    let listed = table.list(|_| 0);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].key, Some(key(70)));
    assert!(table.record(&key(71)).is_none());
    assert_eq!(table.key_at(&addr(2)), None);
    assert_eq!(table.key_at(&addr(1)), Some(key(70)));
}

#[test]
fn the_list_shows_online_peers_first_then_the_rest_each_by_name_then_address() {
    let mut table = table();
    // Known in an order that is neither: keys 60.. and addresses 1.. rise together.
    table.learn(addr(1), Some("zoe".into()), key(60), "x");
    table.learn(addr(2), None, key(61), "x");
    table.know(addr(3));
    table.learn(addr(4), Some("Anna".into()), key(62), "x");
    table.admit(1, live(1, addr(5), 63, true), "yann".into());
    table.admit(2, live(2, addr(6), 64, true), "Bob".into());
    table.admit(3, live(3, addr(7), 65, true), "bob".into());
    let listed = table.list(|_| 0);
    let shown: Vec<(bool, Option<&str>, u16)> = listed
        .iter()
        .map(|peer| (peer.connected, peer.name.as_deref(), peer.addr.port()))
        .collect();
    assert_eq!(
        shown,
        [
            (true, Some("Bob"), 6),
            (true, Some("bob"), 7),
            (true, Some("yann"), 5),
            (false, Some("Anna"), 4),
            (false, Some("zoe"), 1),
            (false, None, 2),
            (false, None, 3),
        ]
    );
    // A peer going offline moves down, among the rest.
    table.closed(1);
    let listed = table.list(|_| 0);
    let names: Vec<Option<&str>> = listed.iter().map(|p| p.name.as_deref()).collect();
    assert_eq!(
        names,
        [
            Some("Bob"),
            Some("bob"),
            Some("Anna"),
            Some("yann"),
            Some("zoe"),
            None,
            None
        ]
    );
}

/// A key made of a number up to 65535, for tables of many peers.
fn many(n: u16) -> PeerKey {
    let mut bytes = [0u8; 32];
    bytes[0] = 1;
    bytes[1..3].copy_from_slice(&n.to_be_bytes());
    PeerKey::from_bytes(bytes)
}

#[test]
fn introductions_past_the_known_peer_limit_evict_strangers_never_peers_we_talked_to() {
    let mut table = table();
    // One peer we had a session with, the rest strangers introduced by someone.
    let friend = many(0);
    table.learn(addr(1), Some("friend".into()), friend, "x");
    let (id, live) = (1, live(1, addr(1), 0, true));
    let live = LiveSession {
        key: friend,
        ..live
    };
    admitted(table.admit(id, live, "friend".into()));
    for n in 1..MAX_KNOWN_PEERS as u16 {
        assert!(table.learn(addr(1000 + n), None, many(n), "x"), "{n}");
    }
    assert_eq!(table.keys().count(), MAX_KNOWN_PEERS);
    // One more: a stranger makes room, the count stays at the limit, the friend stays.
    assert!(table.learn(addr(5000), None, many(5000), "x"));
    assert_eq!(table.keys().count(), MAX_KNOWN_PEERS);
    assert!(table.record(&friend).is_some());
    assert!(table.record(&many(5000)).is_some());
    // Twice the limit in introductions: still bounded.
    for n in 6000..6000 + 2 * MAX_KNOWN_PEERS as u16 {
        table.learn(addr(n), None, many(n), "x");
    }
    assert_eq!(table.keys().count(), MAX_KNOWN_PEERS);
    assert!(table.record(&friend).is_some());
}

/// An entry per peer and per session, thousands of them (docs/performance.md, issue 17):
/// these sizes are what each costs in its map, so they must not grow back unnoticed.
#[test]
fn the_per_peer_entries_stay_small() {
    use crate::registry::addresses::KnownAddr;
    use crate::registry::SessionHandle;
    let live = std::mem::size_of::<LiveSession<SessionHandle>>();
    // 80 since the Session's address is held strong (registry/mod.rs, `SessionHandle`), 88
    // with the moment of its last ack (`touch_session`).
    assert!(live <= 88, "a LiveSession is {live} bytes");
    let record = std::mem::size_of::<PeerRecord>();
    assert!(record <= 80, "a PeerRecord is {record} bytes");
    let known = std::mem::size_of::<KnownAddr>();
    assert!(known <= 56, "a KnownAddr is {known} bytes");
    let owner = std::mem::size_of::<(PeerAddr, PeerKey)>();
    assert!(owner <= 52, "an address-owner entry is {owner} bytes");
}

/// A change to the table, in `the_remembered_session_follows_every_change`.
type Step<'a> = Box<dyn Fn(&mut PeerTable<u32>) + 'a>;

/// `session_to_send` remembers Sessions (`sending`): after every kind of change to the
/// table it answers what `session_for` finds afresh, for every address involved.
#[test]
fn the_remembered_session_follows_every_change() {
    let mut table = table();
    let (a, b, c) = (addr(9001), addr(9002), addr(9003));
    let other_ip = PeerAddr::from_ip_port([10, 1, 0, 1].into(), 9001);
    let addrs = [a, b, c, other_ip];
    let check = |table: &mut PeerTable<u32>, step: &str| {
        for at in addrs {
            let fresh = table.session_for(&at).map(|(id, _)| id);
            // Twice: once filling what is remembered, once answered from it.
            assert_eq!(table.session_to_send(&at), fresh, "{step}: {at}");
            assert_eq!(table.session_to_send(&at), fresh, "{step}: {at}, again");
        }
    };
    let steps: Vec<(&str, Step)> = vec![
        (
            "admit a",
            Box::new(|t| {
                let _ = t.admit(1, live(1, a, 70, true), "a".into());
            }),
        ),
        (
            "admit b",
            Box::new(|t| {
                let _ = t.admit(2, live(2, b, 71, true), "b".into());
            }),
        ),
        // The same key reached elsewhere: the new Session replaces Session 1.
        (
            "a's key again",
            Box::new(|t| {
                let _ = t.admit(3, live(3, other_ip, 70, true), "a".into());
            }),
        ),
        (
            "disconnect b",
            Box::new(|t| {
                let _ = t.disconnect(&key(71));
            }),
        ),
        (
            "b closed",
            Box::new(|t| {
                let _ = t.closed(2);
            }),
        ),
        (
            "b again",
            Box::new(|t| {
                let _ = t.admit(4, live(4, b, 71, true), "b".into());
            }),
        ),
        // A third peer introduced, then dialed (another key taking over an address is in
        // the random sequences below).
        (
            "c introduced at c",
            Box::new(|t| {
                let _ = t.learn(c, None, key(72), "x");
            }),
        ),
        (
            "c dialed",
            Box::new(|t| {
                let _ = t.admit(5, live(5, c, 72, true), "c".into());
            }),
        ),
        ("c's address is ourselves", Box::new(|t| t.mark_self(c))),
        (
            "forget a",
            Box::new(|t| {
                let _ = t.forget(&a);
            }),
        ),
        ("restart", Box::new(|t| t.restart())),
        (
            "b rejoined",
            Box::new(|t| {
                let _ = t.admit(4, live(4, b, 71, true), "b".into());
            }),
        ),
        (
            "b closed again",
            Box::new(|t| {
                let _ = t.closed(4);
            }),
        ),
    ];
    check(&mut table, "empty");
    for (step, apply) in steps {
        apply(&mut table);
        check(&mut table, step);
    }
}

/// Random sequences of every method that changes the table (400 rounds of 60 steps, a fixed
/// seed), the memory filled at random between them: after each step, for every address, the
/// remembered Session is the one a fresh lookup finds. Removing one of the `routes_changed`
/// calls makes it fail (checked for `disconnect`).
#[test]
fn the_remembered_session_matches_a_fresh_lookup_after_any_sequence() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let addrs: Vec<PeerAddr> = (0..6)
        .map(|i| PeerAddr::from_ip_port([10, 0, 0, 1 + (i % 2) as u8].into(), 9001 + i / 2))
        .collect();
    for round in 0..400 {
        let mut table = table();
        let mut next_id: SessionId = 1;
        let mut ids: Vec<SessionId> = Vec::new();
        for step in 0..60 {
            let a = addrs[next(addrs.len() as u64) as usize];
            let k = 70 + next(3) as u8;
            let op = next(14);
            let what = match op {
                0..=2 => {
                    let id = if next(4) == 0 && !ids.is_empty() {
                        ids[next(ids.len() as u64) as usize]
                    } else {
                        next_id += 1;
                        next_id
                    };
                    ids.push(id);
                    let mut l = live(id as u32, a, k, next(2) == 0);
                    l.one_shot = next(5) == 0;
                    let _ = table.admit(id, l, format!("n{k}"));
                    format!("admit {id} {a} key{k}")
                }
                3 => {
                    let _ = table.learn(a, None, key(k), "x");
                    format!("learn {a} key{k}")
                }
                4 => {
                    let _ = table.forget(&a);
                    format!("forget {a}")
                }
                5 => {
                    table.drop_transient(&key(k));
                    format!("drop_transient key{k}")
                }
                6 => {
                    table.drop_introduction(&a, &key(k));
                    format!("drop_introduction {a} key{k}")
                }
                7 => {
                    let _ = table.disconnect(&key(k));
                    format!("disconnect key{k}")
                }
                8 | 9 if !ids.is_empty() => {
                    let id = ids[next(ids.len() as u64) as usize];
                    let _ = table.closed(id);
                    format!("closed {id}")
                }
                10 => {
                    table.restart();
                    "restart".into()
                }
                11 => {
                    table.mark_self(a);
                    format!("mark_self {a}")
                }
                12 if !ids.is_empty() => {
                    let id = ids[next(ids.len() as u64) as usize];
                    let _ = table.rejoined(id);
                    format!("rejoined {id}")
                }
                _ => {
                    table.know(a);
                    let _ = table.touch_and_name(&key(k), SystemTime::now());
                    table.let_go(&key(k));
                    format!("know/touch/let_go {a}")
                }
            };
            // Fill the memory at random addresses in between.
            for _ in 0..next(4) {
                let at = addrs[next(addrs.len() as u64) as usize];
                let _ = table.session_to_send(&at);
            }
            for at in &addrs {
                let fresh = table.session_for(at).map(|(id, _)| id);
                assert_eq!(
                    table.session_to_send(at),
                    fresh,
                    "round {round} step {step} after {what}: {at}"
                );
            }
        }
    }
}
