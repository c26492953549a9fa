//! The exercises of docs/exercises.md. Each test fails today and passes once the exercise is
//! solved; they are ignored so that CI stays green. Run one with
//! `cargo test --test exercises -- --ignored <name>`.

mod common;

use std::time::Duration;

use common::process::Peerchat;
use common::*;
use futures::StreamExt;
use peerchat_actors::child::ChildName;
use peerchat_actors::events::SupervisionStep;
use peerchat_actors::faults::{ActorFault, Fault};
use peerchat_actors::wire::{encode_frame, Frame};
use peerchat_actors::NodeEvent;
use tokio::io::AsyncWriteExt;

#[test]
#[ignore = "exercise 1: see docs/exercises.md"]
fn exercise_nick_renames_this_node_for_its_peers() {
    let (mut bob, bob_port) = Peerchat::start_named("bob", &[]);
    let bob_addr = format!("127.0.0.1:{bob_port}");
    let (mut alice, _) = Peerchat::start_named("alice", &[]);
    alice.type_lines(&[&format!("/msg {bob_addr} before")]);
    bob.expect("alice (");
    alice.type_lines(&["/nick alicia", &format!("/msg {bob_addr} after")]);
    alice.expect("delivered to");
    alice.expect("delivered to");
    bob.expect("alicia (");
    bob.expect("after");
}

#[actix_rt::test]
#[ignore = "exercise 2: see docs/exercises.md"]
async fn exercise_one_for_all_restarts_the_registry_when_the_listener_fails() {
    let (node, mut events) = start("n").await;
    node.inject(Fault::Actor(ChildName::Listener, ActorFault::Crash))
        .await
        .unwrap();
    events
        .wait_for(Duration::from_secs(2), |e| match e {
            NodeEvent::Supervision {
                actor: ChildName::Registry,
                step: SupervisionStep::Restarted,
            } => Some(()),
            _ => None,
        })
        .await
        .expect("one_for_all: the Registry restarts with the Listener");
}

#[actix_rt::test]
#[ignore = "exercise 3: see docs/exercises.md"]
async fn exercise_a_flooding_peer_gets_bye_rate_limit() {
    let (node, _events) = start("n").await;
    let flood = RawPeer::handshake(node.peer_addr(), 47000).await;
    let (mut from_node, mut to_node, mut sealer) = flood.into_parts();
    // The flood is written by a task of its own while this one reads: a node that says bye
    // and closes mid-flood makes the writes fail, which ends the flood, not the test.
    let writer = actix_rt::spawn(async move {
        for id in 0..2000u64 {
            let chat = Frame::Chat {
                id,
                text: "spam".into(),
                sent_at_ms: 0,
            };
            let mut sealed = bytes::BytesMut::new();
            let framed = encode_frame(&chat).unwrap();
            sealer.seal_frames(&framed, &mut sealed).unwrap();
            if to_node.write_all(&sealed).await.is_err() {
                break;
            }
        }
        to_node
    });
    let mut acks = 0;
    let reason = loop {
        match tokio::time::timeout(WAIT, from_node.next()).await {
            Ok(Some(Ok(Frame::Bye { reason }))) => break reason,
            Ok(Some(Ok(Frame::Ack { .. }))) => acks += 1,
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(err))) => panic!("connection failed after {acks} acks, no bye: {err}"),
            Ok(None) => panic!("closed without a bye after {acks} acks"),
            Err(_) => panic!("no bye within {WAIT:?}, {acks} acks"),
        }
        assert!(acks < 2000, "all 2000 chats were acked: no rate limit");
    };
    assert!(
        reason.contains("rate limit"),
        "bye {reason:?} after {acks} acks"
    );
    drop(writer);
}
