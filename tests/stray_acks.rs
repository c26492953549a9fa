//! A Session hands its peer's acks to the Registry without asking whether the Registry's
//! mailbox is full, so it must never hand over more acks than the chats it sent on that
//! connection: acks for anything else are dropped in the Session. Seen through the trace,
//! which shows every message a Session sends the Registry. (Its own test binary: the trace
//! switch is process-wide.)

mod common;

use std::net::Ipv4Addr;
use std::sync::mpsc;

use common::*;
use peerchat_actors::trace::{self, Role};
use peerchat_actors::wire::Frame;
use peerchat_actors::PeerAddr;

/// First stray id: far from any id the node gives.
const STRAY: u64 = 7_000_000;

#[actix_rt::test]
async fn acks_for_chats_not_sent_on_the_connection_never_reach_the_registry() {
    let (tx, rx) = mpsc::channel();
    trace::enable(&[Role::Session], Box::new(TraceLines(tx)));
    let (node, mut events) = start("n").await;
    let port = free_port();
    let mut raw = RawPeer::handshake(node.peer_addr(), port).await;
    let peer = PeerAddr::new((Ipv4Addr::LOCALHOST, port).into());
    connected(&mut events, peer).await;

    // More stray acks than one batch holds, before the node sent this peer anything.
    let strays: Vec<Frame> = (STRAY..STRAY + 300).map(|id| Frame::Ack { id }).collect();
    raw.send_all(&strays).await;
    // A ping answered means the Session has read everything before it: the strays cannot
    // be read after the real chat is sent (they would then take its place in the count).
    raw.send(&Frame::Ping { nonce: 1 }).await;
    loop {
        match raw.next().await {
            Some(Frame::Pong { nonce: 1 }) => break,
            Some(_) => {}
            None => panic!("the node closed the connection over stray acks"),
        }
    }

    // Then a real chat, acked: its ack goes through, and the node calls it delivered.
    let id = node.send_chat(peer, "real").await.expect("accepted");
    loop {
        match raw.next().await {
            Some(Frame::Chat { id: got, .. }) if got == id => break,
            Some(_) => {}
            None => panic!("the node closed the connection"),
        }
    }
    raw.send(&Frame::Ack { id }).await;
    delivered(&mut events, id).await;

    // The Session read the strays before the real ack, so every line it traced for them
    // came before the real one's (whose `ids: [..]` no other message traced here shows).
    let real = format!("ids: [{id}]");
    let mut all = String::new();
    collect_until(&rx, &mut all, &[&real]);
    trace::disable();
    let acks: Vec<&str> = all
        .lines()
        .filter(|line| line.contains("AcksReceived"))
        .collect();
    assert_eq!(
        acks.len(),
        1,
        "only the real ack reaches the Registry: {acks:#?}"
    );
    assert!(
        !all.contains(&STRAY.to_string()),
        "a stray ack reached the Registry:\n{all}"
    );
}
