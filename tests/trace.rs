//! Trace mode: every message between actors becomes one readable line. (Its own test binary:
//! the trace switch is process-wide.)

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::*;
use peerchat_actors::trace::{self, Role};

#[actix_rt::test]
async fn the_trace_shows_each_message_between_actors_and_can_be_filtered() {
    let (tx, rx) = mpsc::channel();
    trace::enable(&Role::ALL, Box::new(TraceLines(tx)));
    let (a, mut a_ev) = start("a").await;
    let (b, mut b_ev) = start("b").await;
    let id = a.send_chat(b.peer_addr(), "traced").await.unwrap();
    delivered(&mut a_ev, id).await;
    received(&mut b_ev).await;
    let mut all = String::new();
    collect_until(
        &rx,
        &mut all,
        &[
            "Node       → Registry    SendChat { to: ",
            "Registry   → Session     Deliver { chats: [Chat { id: ",
            "Session    → Registry    Register { session: ",
            "Session    → Registry    IncomingChats { from: ",
            "text: \"traced\"",
            "Registry   → Session     AckChats { ids: [",
            "Session    → Registry    AcksReceived { from: ",
        ],
    );
    // One line per message, with a timestamp first.
    for line in all.lines() {
        assert!(line.contains(" → "), "{line}");
        assert_eq!(line.as_bytes()[2], b':', "{line}");
    }

    // Filtered to the Listener and the Supervisor only: no Registry/Session chatter.
    trace::enable(
        &[Role::Listener, Role::Supervisor],
        Box::new(std::io::sink()),
    );
    while rx.recv_timeout(Duration::from_millis(100)).is_ok() {}
    let id = a.send_chat(b.peer_addr(), "quiet").await.unwrap();
    delivered(&mut a_ev, id).await;
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "filtered messages were traced"
    );
    trace::disable();
}
