//! Connection faults injected from outside the nodes by a TCP proxy (latency, reset, black
//! hole, truncated frame). Each fault must be noticed and
//! recovered from: once the link heals, every message is delivered, shown exactly once, in the
//! order sent, and acked exactly once.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::proxy::Proxy;
use common::*;
use peerchat_actors::{EventStream, MessageId, Node, NodeEvent, PeerAddr};

/// What became of a batch of messages, from both ends.
#[derive(Default, Debug)]
struct Outcome {
    delivered: HashSet<MessageId>,
    failed: HashSet<MessageId>,
    shown: HashMap<String, usize>,
    order: Vec<String>,
}

/// Waits until every id has an outcome at the sender; collects what the receiver showed.
async fn settle(
    ids: &[(MessageId, String)],
    sender: &mut EventStream,
    receiver: &mut EventStream,
) -> Outcome {
    let mut outcome = Outcome::default();
    let wanted: HashSet<MessageId> = ids.iter().map(|(id, _)| *id).collect();
    while outcome.delivered.len() + outcome.failed.len() < wanted.len() {
        match sender.next_within(WAIT).await {
            Some(NodeEvent::Delivered { id, .. }) if wanted.contains(&id) => {
                assert!(outcome.delivered.insert(id), "delivered twice: {id}");
            }
            Some(NodeEvent::DeliveryFailed { id, .. }) if wanted.contains(&id) => {
                assert!(outcome.failed.insert(id), "failed twice: {id}");
            }
            Some(_) => {}
            None => panic!(
                "messages without an outcome: {:?}",
                wanted
                    .iter()
                    .filter(|id| !outcome.delivered.contains(id) && !outcome.failed.contains(id))
                    .collect::<Vec<_>>()
            ),
        }
    }
    assert!(outcome.delivered.is_disjoint(&outcome.failed));
    while let Some(event) = receiver.next_within(Duration::from_millis(300)).await {
        if let NodeEvent::ChatReceived { text, .. } = event {
            *outcome.shown.entry(text.clone()).or_default() += 1;
            outcome.order.push(text);
        }
    }
    for (text, times) in &outcome.shown {
        assert_eq!(*times, 1, "'{text}' shown {times} times");
    }
    // Delivered means shown.
    for (id, text) in ids {
        if outcome.delivered.contains(id) {
            assert!(
                outcome.shown.contains_key(text),
                "'{text}' acked but never shown"
            );
        }
    }
    outcome
}

/// After the fault healed: everything delivered, shown once each, in the order sent.
async fn all_delivered_in_order(
    ids: &[(MessageId, String)],
    sender: &mut EventStream,
    receiver: &mut EventStream,
) -> Outcome {
    let outcome = settle(ids, sender, receiver).await;
    assert!(outcome.failed.is_empty(), "failed: {:?}", outcome.failed);
    let sent: Vec<String> = ids.iter().map(|(_, t)| t.clone()).collect();
    assert_eq!(outcome.order, sent, "every message once, in order");
    outcome
}

async fn send_batch(
    from: &Node,
    to: PeerAddr,
    prefix: &str,
    count: usize,
) -> Vec<(MessageId, String)> {
    let mut ids = Vec::new();
    for i in 0..count {
        let text = format!("{prefix}{i}");
        ids.push((from.send_chat(to, text.clone()).await.unwrap(), text));
    }
    ids
}

#[actix_rt::test]
async fn latency_slows_but_loses_and_repeats_nothing_and_keeps_order() {
    let (a, mut a_ev) = start("a").await;
    let (b, mut b_ev) = start("b").await;
    let proxy = Proxy::start(b.peer_addr()).await;
    proxy.set_latency(Duration::from_millis(30));
    let ids = send_batch(&a, proxy.addr(), "slow ", 50).await;
    let mut order = Vec::new();
    while order.len() < 50 {
        order.push(received(&mut b_ev).await.1);
    }
    let expected: Vec<String> = ids.iter().map(|(_, t)| t.clone()).collect();
    assert_eq!(order, expected, "shown in the order sent");
    for (id, _) in &ids {
        delivered(&mut a_ev, *id).await;
    }
}

#[actix_rt::test]
async fn a_reset_connection_is_noticed_and_every_message_is_accounted_for() {
    let (a, mut a_ev) = start_with(fast_config("a")).await;
    let (b, mut b_ev) = start_with(fast_config("b")).await;
    let proxy = Proxy::start(b.peer_addr()).await;
    let mut ids = send_batch(&a, proxy.addr(), "before ", 100).await;
    proxy.cut_all();
    ids.extend(send_batch(&a, proxy.addr(), "after ", 100).await);
    all_delivered_in_order(&ids, &mut a_ev, &mut b_ev).await;
    assert!(proxy.accepted() >= 2, "it reconnected through the proxy");
}

#[actix_rt::test]
async fn a_black_hole_is_noticed_by_the_heartbeat() {
    let (a, mut a_ev) = start_with(fast_config("a")).await;
    let (b, mut b_ev) = start_with(fast_config("b")).await;
    let proxy = Proxy::start(b.peer_addr()).await;
    a.connect(proxy.addr()).await.unwrap();
    proxy.set_black_hole(true);
    let started = std::time::Instant::now();
    let ids = send_batch(&a, proxy.addr(), "void ", 5).await;
    let reason = disconnected(&mut a_ev, proxy.addr()).await;
    // Whichever heartbeat runs out first: A's own, or B's, whose close the proxy passes on.
    assert!(
        reason.starts_with("timeout") || reason == "connection closed by peer",
        "{reason}"
    );
    assert!(started.elapsed() < Duration::from_secs(3), "noticed late");
    proxy.heal();
    all_delivered_in_order(&ids, &mut a_ev, &mut b_ev).await;
}

#[actix_rt::test]
async fn a_truncated_frame_is_noticed_on_both_sides() {
    let (a, mut a_ev) = start_with(fast_config("a")).await;
    let (b, mut b_ev) = start_with(fast_config("b")).await;
    let proxy = Proxy::start(b.peer_addr()).await;
    a.connect(proxy.addr()).await.unwrap();
    connected(&mut b_ev, a.peer_addr()).await;
    // The next chat frame is cut in the middle.
    proxy.truncate_after(20);
    let ids = send_batch(
        &a,
        proxy.addr(),
        "a long enough message to be cut in half ",
        1,
    )
    .await;
    disconnected(&mut a_ev, proxy.addr()).await;
    let reason = disconnected(&mut b_ev, a.peer_addr()).await;
    assert!(reason.starts_with("connection"), "{reason}");
    proxy.heal();
    all_delivered_in_order(&ids, &mut a_ev, &mut b_ev).await;
}
