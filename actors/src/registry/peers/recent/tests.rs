//! When peers were last seen and what they are called, as `Recent` and the Sessions' entries
//! keep it beside the `peers` tree (recent.rs); the table's other tests are in ../tests.rs,
//! whose helpers these use.

use std::time::SystemTime;

use super::super::tests::{addr, key, live, table};
use crate::registry::peers::PeerTable;

#[test]
fn touch_and_name_marks_the_peer_seen_and_names_it_in_one_lookup() {
    let mut table = table();
    let at = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000);
    let _ = table.admit(1, live(1, addr(9001), 70, true), "bob".into());
    assert_eq!(table.touch_and_name(&key(70), at), "bob");
    assert_eq!(seen_at(&table, 70), Some(at));
    // A key not in the table: no name, nothing added.
    assert_eq!(table.touch_and_name(&key(71), at), "");
    assert!(table.record(&key(71)).is_none());
}

/// When the table says `key(n)` was last seen, as it lists it.
fn seen_at(table: &PeerTable<u32>, n: u8) -> Option<std::time::SystemTime> {
    let listed = table.list(|_| 0).into_iter();
    listed
        .filter(|peer| peer.key == Some(key(n)))
        .find_map(|peer| peer.last_seen)
}

#[test]
fn the_peer_heard_from_last_is_seen_and_named_like_any_other() {
    let mut table = table();
    let at = |secs| std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    let _ = table.admit(1, live(1, addr(9001), 70, true), "bob".into());
    let _ = table.admit(2, live(2, addr(9002), 72, true), "carol".into());
    assert_eq!(table.touch_and_name(&key(70), at(1)), "bob");
    assert_eq!(table.touch_and_name(&key(70), at(2)), "bob");
    assert_eq!(seen_at(&table, 70), Some(at(2)));
    // Another peer heard: bob's moment is written to his record, and stays.
    assert_eq!(table.touch_and_name(&key(72), at(3)), "carol");
    assert_eq!(
        table.record(&key(70)).and_then(|r| r.last_seen),
        Some(at(2))
    );
    assert_eq!(seen_at(&table, 70), Some(at(2)));
    assert_eq!(seen_at(&table, 72), Some(at(3)));
    // An ack from bob while carol is the recent one.
    table.touch(&key(70), SystemTime::now());
    assert!(seen_at(&table, 70) > Some(at(3)));
    // Carol reconnects under a new name: her next chat carries it.
    let _ = table.admit(3, live(3, addr(9002), 72, true), "carol2".into());
    assert_eq!(table.touch_and_name(&key(72), at(4)), "carol2");
    // Forgotten while recent: she is gone, and an introduction of her starts afresh.
    assert!(table.forget(&addr(9002)));
    assert_eq!(table.touch_and_name(&key(72), at(5)), "");
    assert!(table.learn(addr(9003), None, key(72), "bob"));
    assert_eq!(seen_at(&table, 72), None);
    assert_eq!(table.record(&key(72)).and_then(|r| r.last_seen), None);
}

/// An ack noted on its Session (`touch_session`) is when the peer was last seen, listed as
/// such, and stays in its record once the Session has left the table, however it left.
#[test]
fn an_ack_noted_on_its_session_is_seen_and_kept_when_the_session_leaves() {
    // Whole seconds after now: registering notes the moment it happens, and a Session
    // holds its last ack to the millisecond.
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    let start = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(now.as_secs() + 1);
    let at = |secs| start + std::time::Duration::from_secs(secs);
    let mut table = table();
    let _ = table.admit(1, live(1, addr(9001), 70, true), "bob".into());
    assert_eq!(table.touch_and_name(&key(70), at(5)), "bob");
    table.touch_session(1, &key(70), at(9));
    assert_eq!(seen_at(&table, 70), Some(at(9)));
    // An earlier chat noted afterwards does not move it back.
    assert_eq!(table.touch_and_name(&key(70), at(7)), "bob");
    assert_eq!(seen_at(&table, 70), Some(at(9)));
    // Another Session id, or another key: noted as `touch` notes it.
    table.touch_session(2, &key(70), at(11));
    assert_eq!(seen_at(&table, 70), Some(at(11)));
    // The Session ends: the moment of its last ack stays.
    table.touch_session(1, &key(70), at(13));
    assert!(table.closed(1).is_some());
    assert_eq!(seen_at(&table, 70), Some(at(13)));
    // Replaced by a newer Session, or carried over a Registry restart: the same, and it is
    // in the record (registering writes the recent peer's moment there).
    let _ = table.admit(3, live(3, addr(9001), 70, true), "bob".into());
    table.touch_session(3, &key(70), at(15));
    let _ = table.admit(4, live(4, addr(9001), 70, true), "bob".into());
    assert_eq!(seen_at(&table, 70), Some(at(15)));
    assert_eq!(
        table.record(&key(70)).and_then(|r| r.last_seen),
        Some(at(15))
    );
    table.touch_session(4, &key(70), at(17));
    table.restart();
    assert_eq!(seen_at(&table, 70), Some(at(17)));
    assert_eq!(
        table.record(&key(70)).and_then(|r| r.last_seen),
        Some(at(17))
    );
}

#[test]
fn a_name_too_long_to_hold_beside_the_table_is_read_from_the_record() {
    let mut table = table();
    let at = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(7);
    let long = "n".repeat(crate::limits::MAX_NAME_BYTES + 1);
    let _ = table.admit(1, live(1, addr(9001), 70, true), long.clone());
    assert_eq!(table.touch_and_name(&key(70), at), long);
    assert_eq!(table.touch_and_name(&key(70), at), long);
    assert_eq!(table.record(&key(70)).and_then(|r| r.last_seen), Some(at));
}
