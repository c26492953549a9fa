//! Actor faults: crash, panic and stall the supervised actors (Registry, Listener) and panic a
//! Session, while messages flow. Each test checks the recovery AND that nothing was lost.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use peerchat_actors::child::ChildName;
use peerchat_actors::config::RestartPolicy;
use peerchat_actors::events::SupervisionStep;
use peerchat_actors::faults::{ActorFault, ConnectionFault, Fault};
use peerchat_actors::{EventStream, Node, NodeConfig, NodeEvent, PeerAddr};

async fn restarted(events: &mut EventStream, actor: ChildName) {
    events
        .wait_for(WAIT, |e| match e {
            NodeEvent::Supervision {
                actor: a,
                step: SupervisionStep::Restarted,
            } if *a == actor => Some(()),
            _ => None,
        })
        .await
        .unwrap_or_else(|e| panic!("{actor} never restarted: {e}"));
}

/// Sends `count` chats from `from` to `to`, injecting `fault` into `faulty` halfway, and
/// checks that every chat is shown exactly once at `to` and acked at `from`.
async fn chats_survive(
    from: &Node,
    from_events: &mut EventStream,
    to: &Node,
    to_events: &mut EventStream,
    faulty: &Node,
    fault: Fault,
    count: usize,
) {
    let mut ids = Vec::new();
    for i in 0..count {
        if i == count / 2 {
            faulty.inject(fault).await.unwrap();
        }
        ids.push(
            from.send_chat(to.peer_addr(), format!("m{i}"))
                .await
                .unwrap(),
        );
    }
    let mut shown: HashMap<String, usize> = HashMap::new();
    while shown.len() < count {
        let (_, text) = received(to_events).await;
        *shown.entry(text).or_default() += 1;
    }
    for id in ids {
        delivered(from_events, id).await;
    }
    // Nothing more arrives: no chat was shown twice.
    while let Some(event) = to_events.next_within(Duration::from_millis(300)).await {
        if let NodeEvent::ChatReceived { text, .. } = event {
            *shown.entry(text).or_default() += 1;
        }
    }
    assert_eq!(shown.len(), count);
    assert!(
        shown.values().all(|n| *n == 1),
        "shown more than once: {shown:?}"
    );
}

async fn pair() -> (Node, EventStream, Node, EventStream) {
    let (a, mut a_ev) = start("a").await;
    let (b, mut b_ev) = start("b").await;
    a.connect(b.peer_addr()).await.unwrap();
    connected(&mut a_ev, b.peer_addr()).await;
    connected(&mut b_ev, a.peer_addr()).await;
    (a, a_ev, b, b_ev)
}

async fn still_connected(node: &Node, peer: PeerAddr) {
    let peers = node.peers().await.unwrap();
    let entry = peers.iter().find(|p| p.addr == peer).expect("peer known");
    assert!(entry.connected, "{peers:?}");
    assert_eq!(
        peers.len(),
        1,
        "peer list whole and without strays: {peers:?}"
    );
}

#[actix_rt::test]
async fn registry_panic_on_the_sender_loses_nothing() {
    let (a, mut a_ev, b, mut b_ev) = pair().await;
    let fault = Fault::Actor(ChildName::Registry, ActorFault::Panic);
    chats_survive(&a, &mut a_ev, &b, &mut b_ev, &a, fault, 400).await;
    // (The supervision events came before the deliveries we skipped over; check the effect.)
    still_connected(&a, b.peer_addr()).await;
    let id = a.send_chat(b.peer_addr(), "after").await.unwrap();
    delivered(&mut a_ev, id).await;
}

#[actix_rt::test]
async fn registry_panic_on_the_receiver_loses_nothing() {
    let (a, mut a_ev, b, mut b_ev) = pair().await;
    let fault = Fault::Actor(ChildName::Registry, ActorFault::Panic);
    chats_survive(&a, &mut a_ev, &b, &mut b_ev, &b, fault, 400).await;
    still_connected(&b, a.peer_addr()).await;
    still_connected(&a, b.peer_addr()).await;
}

#[actix_rt::test]
async fn registry_crash_while_messages_flow_loses_nothing() {
    let (a, mut a_ev, b, mut b_ev) = pair().await;
    let fault = Fault::Actor(ChildName::Registry, ActorFault::Crash);
    chats_survive(&a, &mut a_ev, &b, &mut b_ev, &a, fault, 400).await;
    let fault = Fault::Actor(ChildName::Registry, ActorFault::Crash);
    chats_survive(&a, &mut a_ev, &b, &mut b_ev, &b, fault, 400).await;
    still_connected(&a, b.peer_addr()).await;
    still_connected(&b, a.peer_addr()).await;
}

#[actix_rt::test]
async fn registry_stall_delays_but_loses_nothing() {
    let (a, mut a_ev, b, mut b_ev) = pair().await;
    let fault = Fault::Actor(
        ChildName::Registry,
        ActorFault::Stall(Duration::from_millis(500)),
    );
    chats_survive(&a, &mut a_ev, &b, &mut b_ev, &b, fault, 200).await;
}

#[actix_rt::test]
async fn registry_restart_is_reported_step_by_step() {
    let (a, mut a_ev) = start("a").await;
    a.inject(Fault::Actor(ChildName::Registry, ActorFault::Panic))
        .await
        .unwrap();
    let mut steps = Vec::new();
    while steps.len() < 3 {
        match a_ev.next_within(WAIT).await {
            Some(NodeEvent::Supervision { actor, step }) => {
                assert_eq!(actor, ChildName::Registry);
                steps.push(step);
            }
            Some(_) => {}
            None => panic!("supervision steps missing; got {steps:?}"),
        }
    }
    assert!(
        matches!(&steps[0], SupervisionStep::Failed { reason } if reason.contains("panic (injected)")),
        "{steps:?}"
    );
    assert_eq!(
        steps[1],
        SupervisionStep::Restarting {
            restarts_in_window: 1
        }
    );
    assert_eq!(steps[2], SupervisionStep::Restarted);
}

#[actix_rt::test]
async fn listener_crash_and_panic_rebind_the_port_and_new_peers_connect() {
    for fault in [ActorFault::Crash, ActorFault::Panic] {
        let (a, mut a_ev, b, mut b_ev) = pair().await;
        a.inject(Fault::Actor(ChildName::Listener, fault))
            .await
            .unwrap();
        restarted(&mut a_ev, ChildName::Listener).await;
        // Same port, new peers welcome.
        let (c, mut c_ev) = start("c").await;
        assert!(c.connect(a.peer_addr()).await.is_ok());
        let id = c
            .send_chat(a.peer_addr(), "hi after restart")
            .await
            .unwrap();
        delivered(&mut c_ev, id).await;
        // The connection accepted before the fault never noticed.
        let id = b.send_chat(a.peer_addr(), "still here").await.unwrap();
        delivered(&mut b_ev, id).await;
        assert!(a.peers().await.unwrap().iter().all(|p| p.connected));
    }
}

#[actix_rt::test]
async fn a_session_panic_drops_only_that_peer_and_reconnecting_works() {
    let (a, mut a_ev) = start("a").await;
    let (b, mut b_ev) = start("b").await;
    let (c, mut c_ev) = start("c").await;
    a.connect(b.peer_addr()).await.unwrap();
    a.connect(c.peer_addr()).await.unwrap();
    connected(&mut c_ev, a.peer_addr()).await;
    a.inject(Fault::Connection(b.peer_addr(), ConnectionFault::Panic))
        .await
        .unwrap();
    let reason = disconnected(&mut a_ev, b.peer_addr()).await;
    assert_eq!(reason, "session crashed");
    disconnected(&mut b_ev, a.peer_addr()).await;
    // C never noticed.
    let id = a.send_chat(c.peer_addr(), "c is fine").await.unwrap();
    delivered(&mut a_ev, id).await;
    assert_eq!(received(&mut c_ev).await.1, "c is fine");
    while let Some(event) = c_ev.next_within(Duration::from_millis(200)).await {
        assert!(
            !matches!(event, NodeEvent::PeerDisconnected { .. }),
            "C noticed: {event:?}"
        );
    }
    // Reconnecting works.
    let id = a.send_chat(b.peer_addr(), "b again").await.unwrap();
    delivered(&mut a_ev, id).await;
    assert_eq!(received(&mut b_ev).await.1, "b again");
}

#[actix_rt::test]
async fn a_restart_storm_escalates_and_the_node_shuts_down() {
    let mut config = NodeConfig::local("stormy");
    config.restarts = RestartPolicy {
        max_restarts: 3,
        window: Duration::from_secs(10),
    };
    let (a, mut a_ev) = start_with(config).await;
    let (b, mut b_ev) = start("b").await;
    a.connect(b.peer_addr()).await.unwrap();
    connected(&mut b_ev, a.peer_addr()).await;
    let started = std::time::Instant::now();
    for _ in 0..4 {
        a.inject(Fault::Actor(ChildName::Registry, ActorFault::Panic))
            .await
            .unwrap();
    }
    let failure = actix_rt::time::timeout(WAIT, a.failed())
        .await
        .expect("the node gives up within the bound");
    assert!(failure.reason.contains("4 restarts within"), "{failure}");
    assert!(started.elapsed() < WAIT);
    a_ev.wait_for(WAIT, |e| {
        matches!(
            e,
            NodeEvent::Supervision {
                step: SupervisionStep::Escalated { .. },
                ..
            }
        )
        .then_some(())
    })
    .await
    .unwrap();
    // Cleanly: peers are told, the port is closed.
    let reason = disconnected(&mut b_ev, a.peer_addr()).await;
    assert!(reason.contains("node failed"), "{reason}");
    assert_eq!(
        b.connect(a.peer_addr()).await,
        Err(peerchat_actors::ConnectError::Refused)
    );
}

#[actix_rt::test]
async fn listener_gone_refuses_new_peers_and_keeps_old_ones() {
    let (a, _a_ev, b, mut b_ev) = pair().await;
    a.inject(Fault::ListenerGone).await.unwrap();
    let (c, _) = start("c").await;
    // Wait (bounded) for the port to close: the Listener retires asynchronously.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        match c.connect(a.peer_addr()).await {
            Err(peerchat_actors::ConnectError::Refused) => break,
            _ if std::time::Instant::now() > deadline => panic!("port still open"),
            _ => {
                c.disconnect_all().await.unwrap();
                actix_rt::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let id = b
        .send_chat(a.peer_addr(), "old friends still talk")
        .await
        .unwrap();
    delivered(&mut b_ev, id).await;
}
