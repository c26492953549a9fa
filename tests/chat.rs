//! In-process tests: real nodes on 127.0.0.1, port 0, talking over real TCP.

mod common;

use common::*;
use peerchat_actors::{ConnectError, ConnectOutcome, NodeEvent, SendError};

#[actix_rt::test]
async fn two_nodes_exchange_messages_both_ways_and_acks_arrive() {
    let (alice, mut alice_events) = start("alice").await;
    let (bob, mut bob_events) = start("bob").await;

    let id = alice.send_chat(bob.peer_addr(), "hi bob").await.unwrap();
    assert_eq!(
        received(&mut bob_events).await,
        (alice.peer_addr(), "hi bob".into())
    );
    assert_eq!(delivered(&mut alice_events, id).await, bob.peer_addr());

    // Bob answers on the same connection, to the address he knows Alice by.
    let id = bob.send_chat(alice.peer_addr(), "hi alice").await.unwrap();
    assert_eq!(
        received(&mut alice_events).await,
        (bob.peer_addr(), "hi alice".into())
    );
    assert_eq!(delivered(&mut bob_events, id).await, alice.peer_addr());

    let alice_peers = alice.peers().await.unwrap();
    assert_eq!(alice_peers.len(), 1);
    assert_eq!(alice_peers[0].addr, bob.peer_addr());
    assert_eq!(alice_peers[0].name.as_deref(), Some("bob"));
    assert!(alice_peers[0].connected);
    assert_eq!(alice_peers[0].waiting, 0);
    let bob_peers = bob.peers().await.unwrap();
    assert_eq!(
        bob_peers.len(),
        1,
        "one connection, one peer: {bob_peers:?}"
    );
    assert_eq!(bob_peers[0].addr, alice.peer_addr());
}

#[actix_rt::test]
async fn three_nodes_chat_in_every_direction() {
    let (a, mut a_ev) = start("a").await;
    let (b, mut b_ev) = start("b").await;
    let (c, mut c_ev) = start("c").await;
    let nodes = [(&a, "a"), (&b, "b"), (&c, "c")];
    for (from, from_name) in nodes {
        for (to, to_name) in nodes {
            if from_name == to_name {
                continue;
            }
            let text = format!("{from_name} to {to_name}");
            from.send_chat(to.peer_addr(), text.clone()).await.unwrap();
            let events = match to_name {
                "a" => &mut a_ev,
                "b" => &mut b_ev,
                _ => &mut c_ev,
            };
            let got = events
                .wait_for(WAIT, |e| match e {
                    NodeEvent::ChatReceived { text: t, from, .. } if *t == text => Some(*from),
                    _ => None,
                })
                .await
                .unwrap();
            assert_eq!(got, from.peer_addr());
        }
    }
    for node in [&a, &b, &c] {
        let peers = node.peers().await.unwrap();
        assert_eq!(peers.len(), 2, "{peers:?}");
        assert!(peers.iter().all(|p| p.connected), "{peers:?}");
    }
}

#[actix_rt::test]
async fn peer_lists_propagate_through_a_connection() {
    let (a, mut a_ev) = start("a").await;
    let (b, mut b_ev) = start("b").await;
    let (c, _c_ev) = start("c").await;
    // B knows C.
    assert_eq!(
        b.connect(c.peer_addr()).await,
        Ok(ConnectOutcome::Connected)
    );
    connected(&mut b_ev, c.peer_addr()).await;
    // A connects to B and so learns of C.
    assert_eq!(
        a.connect(b.peer_addr()).await,
        Ok(ConnectOutcome::Connected)
    );
    a_ev.wait_for(WAIT, |e| match e {
        NodeEvent::PeerDiscovered { peer, name } if *peer == c.peer_addr() => {
            assert_eq!(name, "c");
            Some(())
        }
        _ => None,
    })
    .await
    .unwrap();
    let known = a.peers().await.unwrap();
    let c_entry = known.iter().find(|p| p.addr == c.peer_addr()).unwrap();
    assert!(!c_entry.connected, "learned peers are known, not connected");

    // Menu 3: connect to every known peer.
    let report = a.connect_all().await.unwrap();
    assert_eq!(report.already_connected, vec![b.peer_addr()]);
    assert_eq!(
        report.attempts,
        vec![(c.peer_addr(), Ok(ConnectOutcome::Connected))]
    );
    assert!(a.peers().await.unwrap().iter().all(|p| p.connected));
}

#[actix_rt::test]
async fn connect_all_first_asks_connected_peers_for_news() {
    let (a, _a_ev) = start("a").await;
    let (b, mut b_ev) = start("b").await;
    let (c, _c_ev) = start("c").await;
    a.connect(b.peer_addr()).await.unwrap();
    // B meets C after A connected: A only hears of C through get_peers.
    b.connect(c.peer_addr()).await.unwrap();
    connected(&mut b_ev, c.peer_addr()).await;
    let report = a.connect_all().await.unwrap();
    assert!(
        report
            .attempts
            .contains(&(c.peer_addr(), Ok(ConnectOutcome::Connected))),
        "{report:?}"
    );
}

#[actix_rt::test]
async fn disconnect_one_then_all() {
    let (a, mut a_ev) = start("a").await;
    let (b, mut b_ev) = start("b").await;
    let (c, mut c_ev) = start("c").await;
    a.connect(b.peer_addr()).await.unwrap();
    a.connect(c.peer_addr()).await.unwrap();

    a.disconnect(b.peer_addr()).await.unwrap();
    assert_eq!(
        disconnected(&mut a_ev, b.peer_addr()).await,
        "disconnected by user"
    );
    let reason = disconnected(&mut b_ev, a.peer_addr()).await;
    assert_eq!(reason, "peer said bye: disconnected by user");
    let peers = a.peers().await.unwrap();
    assert_eq!(peers.len(), 2, "B stays known: {peers:?}");
    assert!(
        !peers
            .iter()
            .find(|p| p.addr == b.peer_addr())
            .unwrap()
            .connected
    );
    assert!(
        peers
            .iter()
            .find(|p| p.addr == c.peer_addr())
            .unwrap()
            .connected
    );
    assert!(
        a.disconnect(b.peer_addr()).await.is_err(),
        "already disconnected"
    );

    assert_eq!(a.disconnect_all().await.unwrap(), 1);
    disconnected(&mut c_ev, a.peer_addr()).await;
    assert!(a.peers().await.unwrap().iter().all(|p| !p.connected));

    // And they can talk again afterwards.
    let id = a.send_chat(b.peer_addr(), "back").await.unwrap();
    delivered(&mut a_ev, id).await;
}

#[actix_rt::test]
async fn simultaneous_connects_collapse_to_one_session() {
    for _ in 0..5 {
        let (a, mut a_ev) = start("a").await;
        let (b, mut b_ev) = start("b").await;
        let (ra, rb) = futures::join!(a.connect(b.peer_addr()), b.connect(a.peer_addr()));
        assert!(ra.is_ok() && rb.is_ok(), "{ra:?} {rb:?}");
        // Both sides agree on one connection: messages flow both ways, each shown once ...
        let id = a.send_chat(b.peer_addr(), "one").await.unwrap();
        assert_eq!(received(&mut b_ev).await.1, "one");
        delivered(&mut a_ev, id).await;
        let id = b.send_chat(a.peer_addr(), "two").await.unwrap();
        assert_eq!(received(&mut a_ev).await.1, "two");
        delivered(&mut b_ev, id).await;
        // ... and each knows exactly one peer, connected.
        for node in [&a, &b] {
            let peers = node.peers().await.unwrap();
            assert_eq!(peers.len(), 1, "{peers:?}");
            assert!(peers[0].connected, "{peers:?}");
        }
        a.shutdown(WAIT).await;
        b.shutdown(WAIT).await;
    }
}

#[actix_rt::test]
async fn a_node_refuses_to_connect_to_itself() {
    let (a, mut a_ev) = start("a").await;
    assert_eq!(
        a.connect(a.peer_addr()).await,
        Err(ConnectError::SelfAddress)
    );
    assert_eq!(
        a.send_chat(a.peer_addr(), "me?").await,
        Err(SendError::SelfAddress)
    );
    assert!(a_ev
        .next_within(std::time::Duration::from_millis(50))
        .await
        .is_none());
    assert!(a.peers().await.unwrap().is_empty());

    // Dialed through a relay, at an address that is not its own: it finds out in the
    // handshake (its own node id comes back) and refuses.
    let relay = relay_to(a.peer_addr()).await;
    assert_eq!(a.connect(relay).await, Err(ConnectError::SelfAddress));
    assert!(
        a.peers().await.unwrap().is_empty(),
        "a self address is not a peer"
    );
    // Once found out, it is refused at once.
    assert_eq!(a.send_chat(relay, "x").await, Err(SendError::SelfAddress));
}

#[actix_rt::test]
async fn sending_to_a_peer_nobody_listens_on_is_retried_then_fails_clearly() {
    let mut config = peerchat_actors::NodeConfig::local("a");
    config.retry.give_up_after = std::time::Duration::from_millis(800);
    let (a, mut a_ev) = start_with(config).await;
    // Bind then drop a socket to get a port where nothing listens.
    let refusing = RefusingPort::new();
    let nowhere: peerchat_actors::PeerAddr = refusing.addr().parse().unwrap();
    assert_eq!(a.connect(nowhere).await, Err(ConnectError::Refused));
    let id = a.send_chat(nowhere, "anyone?").await.unwrap();
    // First it says the message waits ...
    let (waiting, reason) = a_ev
        .wait_for(WAIT, |e| match e {
            NodeEvent::DeliveryDelayed {
                to,
                waiting,
                reason,
                ..
            } if *to == nowhere => Some((*waiting, reason.clone())),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(waiting, 1);
    assert!(reason.contains("refused"), "{reason}");
    // ... then, when the retry budget runs out, that it failed, and why.
    let reason = a_ev
        .wait_for(WAIT, |e| match e {
            NodeEvent::DeliveryFailed { id: i, reason, .. } if *i == id => Some(reason.clone()),
            _ => None,
        })
        .await
        .unwrap();
    assert!(
        reason.starts_with("gave up after 800ms: connection refused"),
        "{reason}"
    );
    // The node goes on.
    let (b, _) = start("b").await;
    let id = a.send_chat(b.peer_addr(), "still here").await.unwrap();
    delivered(&mut a_ev, id).await;
}

#[actix_rt::test]
async fn a_repeated_chat_is_acked_twice_and_shown_once() {
    let (node, mut events) = start("n").await;
    let mut raw = RawPeer::handshake(node.peer_addr(), 40000).await;
    let chat = peerchat_actors::wire::Frame::Chat {
        id: 9,
        text: "once".into(),
        sent_at_ms: 1,
    };
    raw.send(&chat).await;
    raw.send(&chat).await;
    let mut acks = 0;
    while acks < 2 {
        match raw.next().await {
            Some(peerchat_actors::wire::Frame::Ack { id }) => {
                assert_eq!(id, 9);
                acks += 1;
            }
            Some(_) => {}
            None => panic!("closed"),
        }
    }
    assert_eq!(received(&mut events).await.1, "once");
    // No second ChatReceived: the next chat seen is a new one.
    raw.send(&peerchat_actors::wire::Frame::Chat {
        id: 10,
        text: "twice".into(),
        sent_at_ms: 2,
    })
    .await;
    assert_eq!(received(&mut events).await.1, "twice");
}

#[actix_rt::test]
async fn chats_read_together_with_a_bye_and_the_end_of_the_stream_are_acked() {
    // What a node does when it disconnects: its last chats, its bye, then it closes its half.
    // Read in one go there is no pause between the last frame and the end of the stream, so
    // the Session must hand the chats over (and ack them) at the end itself.
    use peerchat_actors::wire::Frame;
    let (node, mut events) = start("n").await;
    let mut raw = RawPeer::handshake(node.peer_addr(), 40003).await;
    let chat = |id: u64| Frame::Chat {
        id,
        text: format!("last {id}"),
        sent_at_ms: 1,
    };
    let bye = Frame::Bye {
        reason: "leaving".into(),
    };
    raw.send_all(&[chat(1), chat(2), bye]).await;
    raw.shutdown_write().await;
    let mut acked = Vec::new();
    while acked.len() < 2 {
        match raw.next().await {
            Some(Frame::Ack { id }) => acked.push(id),
            Some(_) => {}
            None => panic!("closed after acks {acked:?}, before both chats were acked"),
        }
    }
    assert_eq!(acked, [1, 2]);
    assert_eq!(received(&mut events).await.1, "last 1");
    assert_eq!(received(&mut events).await.1, "last 2");
}

/// A one-connection TCP relay on a free loopback port that forwards to `target`.
async fn relay_to(target: peerchat_actors::PeerAddr) -> peerchat_actors::PeerAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    actix_rt::spawn(async move {
        if let Ok((mut inbound, _)) = listener.accept().await {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(target.socket_addr()).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        }
    });
    addr.into()
}

#[actix_rt::test]
async fn a_chat_sent_just_before_a_disconnect_is_delivered_and_reported() {
    let (a, mut a_ev) = start("a").await;
    let (b, mut b_ev) = start("b").await;
    a.connect(b.peer_addr()).await.unwrap();
    for round in 0..20 {
        let text = format!("last words {round}");
        let id = a.send_chat(b.peer_addr(), text.clone()).await.unwrap();
        a.disconnect(b.peer_addr()).await.unwrap();
        assert_eq!(received(&mut b_ev).await.1, text);
        delivered(&mut a_ev, id).await;
        a.connect(b.peer_addr()).await.unwrap();
    }
}

#[actix_rt::test]
async fn a_peers_frame_passes_on_only_addresses_that_worked() {
    // Protocol v2: a `peers` frame lists only addresses this node dialed and saw prove the
    // key (its bound of PEERS_PER_FRAME entries is unit-tested in registry/peers/tests.rs).
    use peerchat_actors::wire::{Frame, PeerEntry};
    let (node, _events) = start("hub").await;
    let (friend, _) = start("friend").await;
    let (caller, _) = start("caller").await;
    // The hub dialed its friend; the caller dialed the hub (its address is only a claim).
    node.connect(friend.peer_addr()).await.unwrap();
    caller.connect(node.peer_addr()).await.unwrap();
    // Teach the hub of many peers it never reached.
    let mut teacher = RawPeer::handshake(node.peer_addr(), 40001).await;
    let many: Vec<PeerEntry> = (0..300u16)
        .map(|i| PeerEntry {
            addr: format!("10.9.{}.{}:9000", i / 250, i % 250 + 1),
            name: format!("p{i}"),
            key: peerchat_actors::PeerKey::from_bytes([i as u8; 32]),
        })
        .collect();
    teacher.send(&Frame::Peers { peers: many }).await;
    teacher.send(&Frame::GetPeers).await;
    let listed = loop {
        match teacher.next().await {
            Some(Frame::Peers { peers }) => break peers,
            Some(_) => continue,
            None => panic!("closed"),
        }
    };
    let addrs: Vec<&str> = listed.iter().map(|p| p.addr.as_str()).collect();
    assert_eq!(addrs, vec![friend.peer_addr().to_string()], "{listed:?}");
    assert_eq!(listed[0].key, friend.key());
}

#[actix_rt::test]
async fn send_chats_sends_many_in_order_in_one_request_or_none() {
    let (a, mut a_ev) = start("a").await;
    let (b, mut b_ev) = start("b").await;
    // Before the connection exists, then while it does: both batches arrive whole, in order.
    let first = a
        .send_chats(b.peer_addr(), (0..300).map(|i| format!("m{i}")))
        .await
        .unwrap();
    let second = a
        .send_chats(b.peer_addr(), (300..600).map(|i| format!("m{i}")))
        .await
        .unwrap();
    let ids: Vec<u64> = first.iter().chain(&second).copied().collect();
    assert_eq!(ids.len(), 600);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in order");
    for i in 0..600 {
        assert_eq!(received(&mut b_ev).await.1, format!("m{i}"));
    }
    for id in ids {
        delivered(&mut a_ev, id).await;
    }

    // One text too long: nothing of the batch is accepted.
    let too_long = "x".repeat(peerchat_actors::wire::MAX_TEXT_BYTES + 1);
    let refused = a
        .send_chats(b.peer_addr(), ["would be first".to_string(), too_long])
        .await;
    assert!(
        matches!(refused, Err(SendError::TooLong { .. })),
        "{refused:?}"
    );
    a.send_chat(b.peer_addr(), "after").await.unwrap();
    assert_eq!(received(&mut b_ev).await.1, "after");
}

#[actix_rt::test]
async fn send_chat_to_each_sends_one_chat_to_every_peer_each_accepted_on_its_own() {
    let (a, mut a_ev) = start("a").await;
    let (b, mut b_ev) = start("b").await;
    let (c, mut c_ev) = start("c").await;
    a.connect(b.peer_addr()).await.unwrap();
    // b connected, c not yet (dialed for its chat), a itself refused, b listed twice: two
    // chats to b, in the order listed, in one Deliver.
    let to = [b.peer_addr(), a.peer_addr(), c.peer_addr(), b.peer_addr()];
    let outcomes = a.send_chat_to_each(to, "to each").await.unwrap();
    assert_eq!(outcomes.len(), 4);
    assert_eq!(outcomes[1], Err(SendError::SelfAddress));
    let ids: Vec<u64> = [0, 2, 3]
        .iter()
        .map(|&i| outcomes[i].clone().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids in the order listed: {ids:?}"
    );
    assert_eq!(received(&mut b_ev).await.1, "to each");
    assert_eq!(received(&mut b_ev).await.1, "to each");
    assert_eq!(received(&mut c_ev).await.1, "to each");
    // Each acked once: one Delivered per accepted chat, to the peer it was written to.
    let mut waiting: std::collections::HashMap<u64, peerchat_actors::PeerAddr> = [
        (ids[0], b.peer_addr()),
        (ids[1], c.peer_addr()),
        (ids[2], b.peer_addr()),
    ]
    .into();
    while !waiting.is_empty() {
        let event = a_ev
            .next_within(std::time::Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("not delivered: {waiting:?}"));
        match event {
            NodeEvent::Delivered { id, to, .. } => {
                assert_eq!(
                    waiting.remove(&id),
                    Some(to),
                    "chat {id} delivered once, to {to}"
                );
            }
            NodeEvent::DeliveryFailed { id, reason, .. } => panic!("chat {id} failed: {reason}"),
            _ => {}
        }
    }
    // Nobody listed: nothing sent, nothing refused.
    let none = a
        .send_chat_to_each(Vec::<peerchat_actors::PeerAddr>::new(), "nobody")
        .await
        .unwrap();
    assert!(none.is_empty());
}

#[actix_rt::test]
async fn a_burst_of_chats_in_one_write_is_shown_once_each_in_order_and_all_acked() {
    use peerchat_actors::wire::Frame;
    let (node, mut events) = start("node").await;
    let mut raw = RawPeer::handshake(node.peer_addr(), 40002).await;
    // 1000 chats sealed together (one write, a few transport messages): the Session hands
    // them over in batches (at most 256 each). One is repeated right after itself, and a
    // ping sits in the middle.
    let mut burst = Vec::new();
    for i in 0..1000u64 {
        let chat = Frame::Chat {
            id: 1000 + i,
            text: format!("c{i}"),
            sent_at_ms: 0,
        };
        burst.push(chat.clone());
        if i == 500 {
            burst.push(chat);
        }
        if i == 700 {
            burst.push(Frame::Ping { nonce: 7 });
        }
    }
    raw.send_all(&burst).await;
    for i in 0..1000 {
        assert_eq!(received(&mut events).await.1, format!("c{i}"));
    }
    // Every chat acked in the order it came, the repeat once more; the ping answered.
    let mut expected: Vec<u64> = (1000..2000).collect();
    expected.insert(501, 1500);
    let (mut acks, mut pong) = (Vec::new(), false);
    while acks.len() < expected.len() {
        match raw.next().await {
            Some(Frame::Ack { id }) => acks.push(id),
            Some(Frame::Pong { nonce: 7 }) => pong = true,
            Some(_) => {}
            None => panic!("closed after {} acks", acks.len()),
        }
    }
    assert_eq!(acks, expected);
    assert!(pong, "no pong");
    // The repeat was not shown: the next chat shown is the next one sent.
    raw.send(&Frame::Chat {
        id: 5000,
        text: "after".into(),
        sent_at_ms: 0,
    })
    .await;
    assert_eq!(received(&mut events).await.1, "after");
}

#[actix_rt::test]
async fn several_nodes_can_send_their_events_into_one_shared_stream() {
    let (sink, mut shared) = peerchat_actors::EventStream::shared();
    let (bob, mut bob_own) = start("bob").await;
    let (carol, _carol_own) = start("carol").await;
    bob.events_to(&sink);
    carol.events_to(&sink);
    drop(sink);
    let (alice, _alice_events) = start("alice").await;

    alice.send_chat(bob.peer_addr(), "to bob").await.unwrap();
    alice
        .send_chat(carol.peer_addr(), "to carol")
        .await
        .unwrap();
    let mut texts = vec![received(&mut shared).await, received(&mut shared).await];
    texts.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        texts,
        vec![
            (alice.peer_addr(), "to bob".to_string()),
            (alice.peer_addr(), "to carol".to_string()),
        ]
    );
    // A node's own stream still gets its events, beside the shared one.
    assert_eq!(received(&mut bob_own).await.1, "to bob");
}

#[actix_rt::test]
async fn send_chat_to_each_keeps_every_outcome_in_place_and_every_chat_in_order() {
    let (a, mut a_ev) = start("a").await;
    let (b, mut b_ev) = start("b").await;
    // Connected first: the chats leave in the Registry's turn (`deliver_accepted`), all 128
    // to one Session, not later from the outbox.
    a.connect(b.peer_addr()).await.unwrap();
    // b 128 times, with a itself (refused) at the start, the middle and the end.
    let count = 131;
    let refused = [0, 64, 130];
    let to: Vec<_> = (0..count)
        .map(|i| {
            if refused.contains(&i) {
                a.peer_addr()
            } else {
                b.peer_addr()
            }
        })
        .collect();
    let outcomes = a.send_chat_to_each(to, "to each").await.unwrap();
    assert_eq!(outcomes.len(), count);
    let mut ids = Vec::new();
    for (i, outcome) in outcomes.iter().enumerate() {
        if refused.contains(&i) {
            assert_eq!(*outcome, Err(SendError::SelfAddress), "outcome {i}");
        } else {
            ids.push(
                outcome
                    .clone()
                    .unwrap_or_else(|e| panic!("outcome {i}: {e}")),
            );
        }
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids rising: {ids:?}");
    // b shows each once, in the order they were listed.
    let mut shown = Vec::new();
    while shown.len() < ids.len() {
        let event = b_ev
            .next_within(WAIT)
            .await
            .unwrap_or_else(|| panic!("{} of {} shown", shown.len(), ids.len()));
        if let NodeEvent::ChatReceived { id, .. } = event {
            shown.push(id);
        }
    }
    assert_eq!(shown, ids);
    // Each acked once, and nothing shown twice.
    let mut waiting: std::collections::BTreeSet<u64> = ids.iter().copied().collect();
    while !waiting.is_empty() {
        let event = a_ev
            .next_within(WAIT)
            .await
            .unwrap_or_else(|| panic!("not delivered: {waiting:?}"));
        if let NodeEvent::Delivered { id, .. } = event {
            assert!(waiting.remove(&id), "chat {id} delivered twice");
        }
    }
    let later = b_ev
        .wait_for(std::time::Duration::from_millis(300), |e| match e {
            NodeEvent::ChatReceived { id, .. } => Some(*id),
            _ => None,
        })
        .await;
    assert!(later.is_err(), "a chat shown again: {later:?}");
}
