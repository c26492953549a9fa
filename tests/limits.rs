//! Issue 13: what a peer sends cannot grow a node's state without bound. Each test plays the
//! attack on a real node over 127.0.0.1 and asserts the limit of docs/limits.md.

mod common;

use std::time::{Duration, Instant};

use common::*;
use peerchat_actors::events::WhenShown;
use peerchat_actors::limits::{Limits, Rate, MAX_NAME_BYTES, MAX_PEERS_TAKEN};
use peerchat_actors::noise::StaticKeypair;
use peerchat_actors::wire::{Frame, Hello, PeerEntry};
use peerchat_actors::{NodeConfig, NodeEvent, NodeEvents, PeerAddr, PeerKey, SendError};

/// Connections from one IP past `max_sessions_per_ip` are closed before any handshake; the
/// ones admitted keep working, and a place freed is taken again.
#[actix_rt::test]
async fn connections_past_the_per_ip_limit_are_closed_and_the_first_keep_working() {
    let limit = Limits::default().max_sessions_per_ip;
    let (node, _events) = start("n").await;
    let addr = node.peer_addr();
    let mut admitted = Vec::new();
    for _ in 0..limit {
        admitted.push(RawPeer::handshake(addr, 0).await);
    }
    for extra in 0..3 {
        // Noise message 1 goes out; the node answers nothing and closes.
        let keys = StaticKeypair::generate().unwrap();
        let refused = RawPeer::handshake_as(addr, keys, Hello::new("extra", 0)).await;
        assert!(
            refused.is_err(),
            "connection {} past the limit got a handshake",
            limit + extra
        );
    }
    // Every admitted one still answers pings.
    for (nonce, peer) in admitted.iter_mut().enumerate() {
        let nonce = nonce as u64;
        peer.send(&Frame::Ping { nonce }).await;
        loop {
            match peer.next().await {
                Some(Frame::Pong { nonce: n }) if n == nonce => break,
                Some(_) => continue,
                None => panic!("admitted connection {nonce} was closed"),
            }
        }
    }
    // One leaves: its place is given back, and a new connection is served.
    admitted.pop().unwrap().shutdown().await;
    let deadline = Instant::now() + WAIT;
    loop {
        let keys = StaticKeypair::generate().unwrap();
        if RawPeer::handshake_as(addr, keys, Hello::new("late", 0))
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the freed place was never given back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The total limit holds whatever the IPs (here all one, under a higher per-IP limit).
#[actix_rt::test]
async fn connections_past_the_total_limit_are_closed() {
    let mut config = NodeConfig::local("n");
    config.limits.max_sessions = 3;
    config.limits.max_sessions_per_ip = 100;
    let (node, _events) = start_with(config).await;
    let mut admitted = Vec::new();
    for _ in 0..3 {
        admitted.push(RawPeer::handshake(node.peer_addr(), 0).await);
    }
    let keys = StaticKeypair::generate().unwrap();
    let refused = RawPeer::handshake_as(node.peer_addr(), keys, Hello::new("x", 0)).await;
    assert!(refused.is_err(), "a fourth connection got a handshake");
    admitted[0].send(&Frame::Ping { nonce: 7 }).await;
    assert!(matches!(
        admitted[0].next().await,
        Some(Frame::Pong { nonce: 7 })
    ));
}

#[actix_rt::test]
async fn a_hello_name_over_64_bytes_is_refused_with_a_bye() {
    let (node, _events) = start("n").await;
    let long = "é".repeat(MAX_NAME_BYTES / 2) + "x"; // 65 bytes, 33 characters
    let keys = StaticKeypair::generate().unwrap();
    let mut peer = RawPeer::handshake_as(node.peer_addr(), keys, Hello::new(long, 0))
        .await
        .expect("the handshake itself completes");
    let reason = peer.expect_bye_and_close().await;
    assert!(reason.contains("name too long: 65 bytes"), "{reason}");
    // 64 bytes are fine.
    let keys = StaticKeypair::generate().unwrap();
    let at_limit = "é".repeat(MAX_NAME_BYTES / 2);
    let mut peer = RawPeer::handshake_as(node.peer_addr(), keys, Hello::new(at_limit, 0))
        .await
        .unwrap();
    assert!(matches!(peer.next().await, Some(Frame::Peers { .. })));
}

/// A `peers` frame with 800 entries teaches the node at most 256 of them, and none with a
/// name over 64 bytes.
#[actix_rt::test]
async fn at_most_256_entries_are_taken_from_one_peers_frame() {
    let (node, _events) = start("n").await;
    let mut peer = RawPeer::handshake(node.peer_addr(), 0).await;
    let entry = |i: u32, name: String| {
        let mut key = [9u8; 32];
        key[..4].copy_from_slice(&i.to_be_bytes());
        PeerEntry {
            addr: format!("10.{}.{}.{}:4000", i >> 16 & 255, i >> 8 & 255, i & 255),
            name,
            key: PeerKey::from_bytes(key),
        }
    };
    // The first ten have names too long: skipped.
    let mut peers: Vec<PeerEntry> = (0..10).map(|i| entry(i, "n".repeat(65))).collect();
    peers.extend((10..800).map(|i| entry(i, format!("p{i}"))));
    peer.send(&Frame::Peers { peers }).await;
    // A ping answered means the frame before it was handled (one Session, in order), and
    // the Registry took what it handed on before answering its next question.
    peer.send(&Frame::Ping { nonce: 1 }).await;
    while !matches!(peer.next().await, Some(Frame::Pong { nonce: 1 })) {}
    let known = node.peers().await.unwrap();
    let learned: Vec<_> = known
        .iter()
        .filter(|p| p.addr.to_string().starts_with("10."))
        .collect();
    assert!(
        learned.len() <= MAX_PEERS_TAKEN - 10,
        "{} peers learned from one frame",
        learned.len()
    );
    assert!(!learned.is_empty(), "nothing was learned at all");
    assert!(learned
        .iter()
        .all(|p| p.name.as_ref().map_or(0, String::len) <= MAX_NAME_BYTES));
}

/// A `get_peers` loop (issue 13: 5.7× the bytes it sends came back) gets `bye "rate limit"`
/// past its burst.
#[actix_rt::test]
async fn a_get_peers_flood_gets_bye_rate_limit() {
    let (node, _events) = start("n").await;
    let mut peer = RawPeer::handshake(node.peer_addr(), 0).await;
    let burst = Limits::default().get_peers.burst as usize;
    peer.send_all(&vec![Frame::GetPeers; 50]).await;
    let mut answers = 0;
    let reason = loop {
        match peer.next().await {
            Some(Frame::Peers { .. }) => answers += 1,
            Some(Frame::Bye { reason }) => break reason,
            Some(_) => {}
            None => panic!("closed without a bye after {answers} answers"),
        }
    };
    assert!(reason.contains("rate limit"), "{reason}");
    assert!(answers <= burst, "{answers} answers to a flood");
}

/// Chats past a peer's rate are read more slowly, never dropped: every one is acked, and
/// the flood takes at least as long as its budget says.
#[actix_rt::test]
async fn chats_past_their_rate_are_slowed_down_not_dropped() {
    let mut config = NodeConfig::local("n");
    config.limits.chats = Rate {
        per_second: 100.0,
        burst: 20.0,
    };
    let (node, mut events) = start_with(config).await;
    let mut peer = RawPeer::handshake(node.peer_addr(), 0).await;
    let count = 220u64;
    let started = Instant::now();
    let chats: Vec<Frame> = (0..count)
        .map(|id| Frame::Chat {
            id,
            text: format!("c{id}"),
            sent_at_ms: 0,
        })
        .collect();
    peer.send_all(&chats).await;
    let mut acked = std::collections::BTreeSet::new();
    while acked.len() < count as usize {
        match peer.next().await {
            Some(Frame::Ack { id }) => {
                acked.insert(id);
            }
            Some(Frame::Bye { reason }) => panic!("bye {reason:?} after {} acks", acked.len()),
            Some(_) => {}
            None => panic!("closed after {} acks", acked.len()),
        }
    }
    let took = started.elapsed();
    // 200 chats past the burst at 100 a second: 2 s; a little slack for the clock.
    assert!(
        took >= Duration::from_millis(1800),
        "{count} chats acked in {took:?}"
    );
    let mut shown = 0;
    while shown < count {
        received(&mut events).await;
        shown += 1;
    }
}

/// The outbox's cap (10,000 chats) refuses the next chat with a clear error; nothing is
/// queued past it.
#[actix_rt::test]
async fn a_chat_past_the_outbox_cap_is_refused_with_outbox_full() {
    let dir = temp_dir("outbox-full");
    let mut config = NodeConfig::local("full");
    config.data_dir = Some(dir.clone());
    let (node, _events) = start_with(config).await;
    let nobody = RefusingPort::new();
    let to: PeerAddr = nobody.addr().parse().unwrap();
    let cap = peerchat_actors::store::StoreLimits::default().outbox_chats;
    let texts: Vec<String> = (0..cap).map(|n| format!("c{n}")).collect();
    node.send_chats(to, texts).await.expect("up to the cap");
    let refused = node.send_chat(to, "one more").await.unwrap_err();
    assert!(matches!(refused, SendError::OutboxFull(_)), "{refused:?}");
    assert!(refused.to_string().contains("outbox is full"), "{refused}");
    // All or none: two chats do not squeeze one in either.
    let refused = node.send_chats(to, ["a", "b"]).await.unwrap_err();
    assert!(matches!(refused, SendError::OutboxFull(_)), "{refused:?}");
    let waiting: usize = node.peers().await.unwrap().iter().map(|p| p.waiting).sum();
    assert_eq!(waiting, cap);
    node.shutdown(Duration::ZERO).await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 13: 300 peers that never read held 491 MB. Now all queues together are bounded
/// (`--max-write-buffers`, here 512 KiB under a per-peer 8 MiB): the peers with the biggest
/// queues are cut `too slow`, and a peer that reads loses nothing.
#[actix_rt::test]
async fn peers_that_never_read_are_cut_at_the_node_wide_write_budget() {
    let mut config = NodeConfig::local("a");
    config.write_buffer_bytes = 8 * 1024 * 1024;
    config.limits.max_write_buffers = 512 * 1024;
    // Only the budget may cut the slow peers here, not their silence.
    config.timeouts.ping_interval = Duration::from_secs(60);
    config.timeouts.idle = Duration::from_secs(120);
    let (a, mut a_events) = start_with(config).await;
    let (b, mut b_events) = start("b").await;
    b.connect(a.peer_addr()).await.unwrap();
    let slow_ports = [45101u16, 45102];
    let mut raws = Vec::new();
    for port in slow_ports {
        raws.push(RawPeer::handshake(a.peer_addr(), port).await);
    }
    let slow: Vec<PeerAddr> = slow_ports
        .iter()
        .map(|port| format!("127.0.0.1:{port}").parse().unwrap())
        .collect();
    let text = "x".repeat(1024);
    let mut cut = std::collections::HashMap::new();
    let mut b_ids = Vec::new();
    let mut sent = 0;
    while cut.len() < slow.len() {
        for peer in &slow {
            if !cut.contains_key(peer) {
                a.send_chat(*peer, text.clone()).await.unwrap();
            }
        }
        sent += 1;
        if sent % 100 == 0 {
            b_ids.push(
                a.send_chat(b.peer_addr(), format!("to b {sent}"))
                    .await
                    .unwrap(),
            );
        }
        while let Some(event) = a_events.next_within(Duration::ZERO).await {
            if let NodeEvent::PeerDisconnected { peer, reason, .. } = event {
                assert_ne!(peer, b.peer_addr(), "the reading peer was cut: {reason}");
                cut.insert(peer, reason);
            }
        }
        assert!(sent < 100_000, "the slow peers were never cut");
    }
    for (peer, reason) in &cut {
        assert!(
            reason.starts_with("too slow") && reason.contains("--max-write-buffers"),
            "{peer}: {reason}"
        );
    }
    let mut shown = std::collections::HashSet::new();
    while shown.len() < b_ids.len() {
        shown.insert(received(&mut b_events).await.1);
    }
    drop(raws);
}

/// A display that shows chats slowly: each `WhenShown` takes `delay`, then confirms every
/// chat received before it. Test state shared with the test body (a test may hold a lock).
struct SlowDisplay {
    delay: Duration,
    pending: Vec<u64>,
    state: std::sync::Arc<std::sync::Mutex<Shown>>,
}

#[derive(Default)]
struct Shown {
    /// Chats confirmed shown, in order.
    confirmed: Vec<u64>,
    /// Most chats ever received and not yet confirmed.
    most_pending: usize,
}

impl actix::Actor for SlowDisplay {
    type Context = actix::Context<Self>;
}

impl actix::Handler<NodeEvents> for SlowDisplay {
    type Result = ();
    fn handle(&mut self, events: NodeEvents, _: &mut Self::Context) {
        for event in events.0 {
            if let NodeEvent::ChatReceived { id, .. } = event {
                self.pending.push(id);
                let mut state = self.state.lock().unwrap();
                state.most_pending = state.most_pending.max(self.pending.len());
            }
        }
    }
}

impl actix::Handler<WhenShown> for SlowDisplay {
    type Result = actix::ResponseActFuture<Self, ()>;
    fn handle(&mut self, _: WhenShown, _: &mut Self::Context) -> Self::Result {
        use actix::{ActorFutureExt, WrapFuture};
        Box::pin(
            tokio::time::sleep(self.delay)
                .into_actor(self)
                .map(|_, act, _| {
                    let shown = std::mem::take(&mut act.pending);
                    act.state.lock().unwrap().confirmed.extend(shown);
                }),
        )
    }
}

/// Console flow control, in process: a display that confirms slowly. Every chat is shown
/// once, acked only after it was shown, the chats waiting to be shown never pass the
/// Session's bound, and the paused peer is not timed out for the silence we cause.
#[actix_rt::test]
async fn chats_are_acked_only_once_shown_and_a_slow_display_slows_the_sender() {
    use actix::Actor;
    let mut config = fast_config("n");
    config.limits.max_unacked_chats = 64;
    let (node, _events) = start_with(config).await;
    let state = std::sync::Arc::new(std::sync::Mutex::new(Shown::default()));
    let display = SlowDisplay {
        delay: Duration::from_millis(700), // longer than the 600 ms idle timeout
        pending: Vec::new(),
        state: state.clone(),
    }
    .start();
    node.subscribe_display(display.clone().recipient(), display.recipient());
    let mut peer = RawPeer::handshake(node.peer_addr(), 0).await;
    let count = 600u64;
    let chats: Vec<Frame> = (0..count)
        .map(|id| Frame::Chat {
            id,
            text: format!("c{id}"),
            sent_at_ms: 0,
        })
        .collect();
    peer.send_all(&chats).await;
    let mut acked = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.len() < count as usize {
        assert!(Instant::now() < deadline, "{} acks in 60 s", acked.len());
        match peer.next().await {
            Some(Frame::Ack { id }) => {
                let state = state.lock().unwrap();
                assert!(
                    state.confirmed.contains(&id),
                    "chat {id} acked before shown"
                );
                acked.insert(id);
            }
            // While its reading is held, the node reads none of these pongs: it must not
            // time the peer out for that silence.
            Some(Frame::Ping { nonce }) => peer.send(&Frame::Pong { nonce }).await,
            Some(Frame::Bye { reason }) => panic!("bye {reason:?} after {} acks", acked.len()),
            Some(_) => {}
            None => panic!("closed after {} acks", acked.len()),
        }
    }
    let state = state.lock().unwrap();
    let mut shown = state.confirmed.clone();
    shown.sort_unstable();
    assert_eq!(
        shown,
        (0..count).collect::<Vec<_>>(),
        "every chat shown once"
    );
    // At most the Session's bound waits, plus what one read turn hands over past it.
    assert!(
        state.most_pending <= 64 + 256,
        "{} chats waited to be shown",
        state.most_pending
    );
}

/// Issue 13: 64 KiB chats at full speed pushed another peer's ping to 127 ms. One peer
/// floods big chats for 3 s; another peer's pings stay answered quickly (a generous bound:
/// the machine is shared), and the flood is slowed to its rate, not cut.
#[actix_rt::test]
async fn a_flood_of_big_chats_does_not_starve_another_peers_pings() {
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    let (node, _events) = start("n").await;
    let flood = RawPeer::handshake(node.peer_addr(), 0).await;
    let (mut from_node, mut to_node, mut sealer) = flood.into_parts();
    let text = "f".repeat(peerchat_actors::wire::MAX_TEXT_BYTES - 100);
    let flooding_until = Instant::now() + Duration::from_secs(3);
    let writer = actix_rt::spawn(async move {
        let mut id = 0u64;
        while Instant::now() < flooding_until {
            let chat = Frame::Chat {
                id,
                text: text.clone(),
                sent_at_ms: 0,
            };
            let mut sealed = bytes::BytesMut::new();
            let framed = peerchat_actors::wire::encode_frame(&chat).unwrap();
            sealer.seal_frames(&framed, &mut sealed).unwrap();
            to_node
                .write_all(&sealed)
                .await
                .expect("the flood is slowed, not cut");
            id += 1;
        }
        (to_node, id)
    });
    let acker = actix_rt::spawn(async move {
        let mut acks = 0u64;
        while let Some(Ok(frame)) = from_node.next().await {
            match frame {
                Frame::Ack { .. } => acks += 1,
                Frame::Bye { reason } => panic!("the flood got bye {reason:?}"),
                _ => {}
            }
        }
        acks
    });
    let mut pinger = RawPeer::handshake(node.peer_addr(), 0).await;
    let mut rtts = Vec::new();
    let mut nonce = 0;
    while Instant::now() < flooding_until {
        nonce += 1;
        let sent = Instant::now();
        pinger.send(&Frame::Ping { nonce }).await;
        loop {
            match pinger.next().await {
                Some(Frame::Pong { nonce: n }) if n == nonce => break,
                Some(Frame::Ping { nonce }) => pinger.send(&Frame::Pong { nonce }).await,
                Some(_) => {}
                None => panic!("the pinging peer was disconnected"),
            }
        }
        rtts.push(sent.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_to_node, sent) = writer.await.unwrap();
    rtts.sort_unstable();
    let median = rtts[rtts.len() / 2];
    let worst = *rtts.last().unwrap();
    eprintln!(
        "{sent} chats of 64 KiB in 3 s; pings: median {median:?}, worst {worst:?} of {}",
        rtts.len()
    );
    assert!(sent > 100, "the flood itself never got going: {sent} chats");
    assert!(median < Duration::from_millis(50), "median ping {median:?}");
    assert!(worst < Duration::from_millis(500), "worst ping {worst:?}");
    drop(acker);
}

/// Known peers are bounded (issue 13: 200 `peers` frames made 492,608 known peers), and menu 3
/// dials a bounded number at a time (it made the node a flood amplifier: 6,488 connections
/// in 5 s to a third party).
#[actix_rt::test]
async fn known_peers_are_bounded_and_menu_3_dials_a_bounded_number() {
    use peerchat_actors::registry::{MAX_DIALS_AT_ONCE, MAX_KNOWN_PEERS};
    let (node, _events) = start("n").await;
    let mut peer = RawPeer::handshake(node.peer_addr(), 0).await;
    let own_port = node.peer_addr().port();
    let mut sent = 0u32;
    for frame in 0..6u32 {
        let peers = (0..250u32)
            .map(|i| frame * 250 + i)
            .filter(|n| 20_000 + *n as u16 != own_port)
            .map(|n| {
                let mut key = [7u8; 32];
                key[..4].copy_from_slice(&n.to_be_bytes());
                sent += 1;
                PeerEntry {
                    addr: format!("127.0.0.1:{}", 20_000 + n),
                    name: format!("p{n}"),
                    key: PeerKey::from_bytes(key),
                }
            })
            .collect();
        peer.send(&Frame::Peers { peers }).await;
    }
    peer.send(&Frame::Ping { nonce: 1 }).await;
    while !matches!(peer.next().await, Some(Frame::Pong { nonce: 1 })) {}
    assert!(
        sent as usize > MAX_KNOWN_PEERS,
        "the test sends more than the limit"
    );
    let known = node.peers().await.unwrap();
    assert!(
        known.len() <= MAX_KNOWN_PEERS,
        "{} peers known after {sent} introductions",
        known.len()
    );
    assert!(known.len() >= MAX_KNOWN_PEERS - 1, "{} known", known.len());
    let report = tokio::time::timeout(WAIT * 3, node.connect_all())
        .await
        .expect("menu 3 ends")
        .unwrap();
    assert!(
        report.attempts.len() <= MAX_DIALS_AT_ONCE,
        "{} dials at once",
        report.attempts.len()
    );
    assert!(report.not_tried > 0, "the rest are said to be not tried");
    // Every introduced peer is either dialed or counted as not tried: none is lost silently.
    let introduced = known
        .iter()
        .filter(|p| p.name.as_deref().is_some_and(|n| n.starts_with('p')))
        .count();
    assert_eq!(report.attempts.len() + report.not_tried, introduced);
}
