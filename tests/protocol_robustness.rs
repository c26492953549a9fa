//! Robustness of the wire protocol over real TCP against real nodes: bad input from one peer
//! gets that peer a closed connection, and nothing else: a `bye` first if the bad map came
//! from the authenticated peer (it decrypted), none if it did not verify or the handshake
//! failed. See docs/protocol.md.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::*;
use peerchat_actors::noise::StaticKeypair;
use peerchat_actors::wire::{Frame, Hello};
use peerchat_actors::{EventStream, Node, NodeConfig, NodeEvent, PeerAddr};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---- helpers ----

/// One `reject` vector of tests/data/vectors.json, and what the bye's reason must mention.
struct Reject {
    name: String,
    bytes: Vec<u8>,
    mentions: &'static str,
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// What the reason for each reject vector must mention. Sent after the handshake, each one's
/// payload goes sealed in a transport message (it decrypts: the peer gets a `bye`), except
/// `length_over_limit`, a length no Noise message has, sent as it is (closed without one).
fn problem_of(name: &str) -> &'static str {
    match name {
        "length_over_limit" => "65537 bytes is over the 65535-byte Noise message limit",
        "not_msgpack" => "not a MessagePack map",
        "map_without_type" => "`type`",
        "chat_missing_id" => "`id`",
        // v1 said "70000" (serde's message); v2 reads `hello` with its strict reader.
        "hello_port_out_of_range" => "listen_port is over 65535",
        "chat_text_invalid_utf8" => "not valid UTF-8",
        other => panic!("reject vector {other:?} is new: say what its bye must mention"),
    }
}

fn rejects() -> Vec<Reject> {
    let vectors: Value = serde_json::from_str(include_str!("data/vectors.json")).unwrap();
    let rejects: Vec<Reject> = vectors["reject"]
        .as_array()
        .expect("vectors.json has a reject list")
        .iter()
        .map(|v| {
            let name = v["name"].as_str().unwrap().to_string();
            Reject {
                mentions: problem_of(&name),
                bytes: hex(v["frame_hex"].as_str().unwrap()),
                name,
            }
        })
        .collect();
    assert!(rejects.len() >= 6, "too few reject vectors");
    rejects
}

fn loopback(port: u16) -> PeerAddr {
    PeerAddr::from_ip_port(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

/// MessagePack str (fixstr or str8), as an independent encoder would write it.
fn mp_str(s: &str) -> Vec<u8> {
    let len = s.len();
    let mut out = if len < 32 {
        vec![0xa0 | len as u8]
    } else {
        assert!(len < 256);
        vec![0xd9, len as u8]
    };
    out.extend_from_slice(s.as_bytes());
    out
}

/// A whole frame: 4-byte big-endian length, then the payload.
fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// A MessagePack map (fixmap) of already encoded keys and values.
fn mp_map(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    assert!(entries.len() < 16);
    let mut out = vec![0x80 | entries.len() as u8];
    for (key, value) in entries {
        out.extend(mp_str(key));
        out.extend_from_slice(value);
    }
    out
}

/// Waits for an event picked by `pick`, failing at once if one of `guarded` disconnects.
async fn wait_guarded<T>(
    events: &mut EventStream,
    guarded: &[PeerAddr],
    what: &str,
    mut pick: impl FnMut(&NodeEvent) -> Option<T>,
) -> T {
    events
        .wait_for(WAIT, |e| {
            if let NodeEvent::PeerDisconnected { peer, reason, .. } = e {
                assert!(
                    !guarded.contains(peer),
                    "{peer} should have stayed connected but disconnected: {reason}"
                );
            }
            pick(e)
        })
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Waits until the node shows a chat with exactly this text from `from`.
async fn chat_shown(events: &mut EventStream, guarded: &[PeerAddr], from: PeerAddr, text: &str) {
    wait_guarded(
        events,
        guarded,
        &format!("chat {text:?} from {from}"),
        |e| match e {
            NodeEvent::ChatReceived {
                from: f, text: t, ..
            } if *f == from && t == text => Some(()),
            _ => None,
        },
    )
    .await
}

/// Sends a chat from a raw peer and reads until its ack, answering pings meanwhile.
async fn chat_acked(raw: &mut RawPeer, id: u64, text: &str) {
    raw.send(&Frame::Chat {
        id,
        text: text.into(),
        sent_at_ms: 1,
    })
    .await;
    await_ack(raw, id).await;
}

async fn await_ack(raw: &mut RawPeer, id: u64) {
    let wait = async {
        loop {
            match raw.next().await {
                Some(Frame::Ack { id: acked }) if acked == id => return,
                Some(Frame::Ping { nonce }) => raw.send(&Frame::Pong { nonce }).await,
                Some(Frame::Bye { reason }) => panic!("bye instead of ack {id}: {reason}"),
                Some(_) => {}
                None => panic!("connection closed before ack {id}"),
            }
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("no ack {id} within {WAIT:?}"));
}

/// Sends a reject vector after the handshake as the vectors file says (see `problem_of`);
/// answers whether the node is due to say bye.
async fn send_reject(raw: &mut RawPeer, reject: &Reject) -> bool {
    if reject.name == "length_over_limit" {
        raw.send_raw(reject.bytes.clone()).await;
        false
    } else {
        raw.send_sealed(&reject.bytes[4..]).await;
        true
    }
}

/// Waits for the node to report that a connection that never completed its handshake ended.
async fn refused(events: &mut EventStream, remote: SocketAddr) -> String {
    events
        .wait_for(WAIT, |e| match e {
            NodeEvent::ConnectionRefused { remote: r, reason } if *r == remote => {
                Some(reason.clone())
            }
            _ => None,
        })
        .await
        .unwrap_or_else(|e| panic!("no ConnectionRefused for {remote}: {e}"))
}

/// A node that still serves: a fresh raw peer completes a handshake and gets a chat acked.
async fn still_serves(node: &Node, port: u16) {
    let mut raw = RawPeer::handshake(node.peer_addr(), port).await;
    chat_acked(&mut raw, 1, "still there?").await;
}

// ---- bad frames after the handshake ----

#[actix_rt::test]
async fn every_reject_vector_after_the_handshake_closes_only_that_connection() {
    let (node, mut events) = start("node").await;
    let (bob, mut bob_events) = start("bob").await;
    bob.connect(node.peer_addr()).await.unwrap();
    connected(&mut events, bob.peer_addr()).await;
    let good_addr = loopback(1999);
    let mut good = RawPeer::handshake(node.peer_addr(), good_addr.port()).await;
    connected(&mut events, good_addr).await;
    let guarded = [bob.peer_addr(), good_addr];

    let rejects = rejects();
    for (i, reject) in rejects.iter().enumerate() {
        let name = &reject.name;
        let bad_addr = loopback(2000 + i as u16);
        let mut bad = RawPeer::handshake(node.peer_addr(), bad_addr.port()).await;
        wait_guarded(&mut events, &guarded, name, |e| match e {
            NodeEvent::PeerConnected { peer, .. } if *peer == bad_addr => Some(()),
            _ => None,
        })
        .await;

        let says_bye = send_reject(&mut bad, reject).await;
        let said = if says_bye {
            Some(bad.expect_bye_and_close().await)
        } else {
            bad.expect_close_without_bye().await;
            None
        };
        let event_reason = wait_guarded(&mut events, &guarded, name, |e| match e {
            NodeEvent::PeerDisconnected { peer, reason, .. } if *peer == bad_addr => {
                Some(reason.clone())
            }
            _ => None,
        })
        .await;
        assert!(
            event_reason.starts_with("protocol error: ") && event_reason.contains(reject.mentions),
            "{name}: the reason is {event_reason:?}, it should mention {:?}",
            reject.mentions
        );
        if let Some(said) = said {
            assert_eq!(said, event_reason, "{name}: the bye says why");
        }

        // The other connections did not notice: both still chat both ways.
        let text = format!("bob after {name}");
        let id = bob.send_chat(node.peer_addr(), text.clone()).await.unwrap();
        chat_shown(&mut events, &guarded, bob.peer_addr(), &text).await;
        delivered(&mut bob_events, id).await;
        let text = format!("raw after {name}");
        chat_acked(&mut good, 100 + i as u64, &text).await;
        chat_shown(&mut events, &guarded, good_addr, &text).await;
    }

    let text = "node to bob, still";
    let id = node.send_chat(bob.peer_addr(), text).await.unwrap();
    assert_eq!(
        received(&mut bob_events).await,
        (node.peer_addr(), text.into())
    );
    wait_guarded(&mut events, &guarded, "delivered to bob", |e| match e {
        NodeEvent::Delivered { id: i, .. } if *i == id => Some(()),
        _ => None,
    })
    .await;

    let peers = node.peers().await.unwrap();
    for info in &peers {
        let should_be_connected = guarded.contains(&info.addr);
        assert_eq!(info.connected, should_be_connected, "{peers:?}");
    }
    assert_eq!(peers.len(), 2 + rejects.len(), "{peers:?}");
    let bob_peers = bob.peers().await.unwrap();
    assert!(
        bob_peers
            .iter()
            .any(|p| p.addr == node.peer_addr() && p.connected),
        "{bob_peers:?}"
    );
}

// ---- bad handshakes: cut at once, no bye ----

/// Connects, sends `bytes` instead of a handshake, and expects the node to cut the connection
/// without a word; returns the reason the node reports.
async fn cut_instead_of_a_handshake(node: &Node, events: &mut EventStream, bytes: &[u8]) -> String {
    let mut stream = tcp(node.peer_addr()).await;
    let remote = stream.local_addr().unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut said = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut said))
        .await
        .expect("the node closes")
        .ok();
    assert!(
        said.is_empty(),
        "the node said {said:?} to a failed handshake"
    );
    refused(events, remote).await
}

#[actix_rt::test]
async fn every_reject_vector_instead_of_a_handshake_is_cut_without_bye() {
    let (node, mut events) = start("node").await;
    for reject in rejects() {
        let reason = cut_instead_of_a_handshake(&node, &mut events, &reject.bytes).await;
        assert!(
            reason.starts_with("handshake failed: "),
            "{}: {reason:?}",
            reject.name
        );
    }
    assert!(node.peers().await.unwrap().is_empty());
    still_serves(&node, 3000).await;
}

#[actix_rt::test]
async fn a_plaintext_frame_instead_of_a_handshake_is_cut_without_bye() {
    let (node, mut events) = start("node").await;
    // v1's first frame, a hello, then a chat and a frame of an unknown type: not Noise.
    let v1_hello = mp_map(&[
        ("type", mp_str("hello")),
        ("protocol", vec![0x01]),
        ("node_id", vec![0x07]),
        ("name", mp_str("old")),
        ("listen_port", vec![0xcd, 0x0b, 0xb9]),
    ]);
    let chat = mp_map(&[
        ("type", mp_str("chat")),
        ("id", vec![0x01]),
        ("text", mp_str("hi, no handshake")),
        ("sent_at_ms", vec![0x00]),
    ]);
    let typing = mp_map(&[("type", mp_str("typing")), ("who", mp_str("x"))]);
    for payload in [v1_hello, chat, typing] {
        let reason = cut_instead_of_a_handshake(&node, &mut events, &framed(&payload)).await;
        assert_eq!(
            reason,
            "handshake failed: bad handshake message: message 1 must be exactly 32 bytes \
             (an ephemeral key, empty payload)"
        );
    }
    still_serves(&node, 3000).await;
}

#[actix_rt::test]
async fn no_handshake_within_the_hello_timeout_is_cut_without_bye() {
    let mut config = NodeConfig::local("node");
    config.timeouts.hello = Duration::from_millis(300);
    let (node, mut events) = start_with(config).await;
    // A peer that says nothing: the responder waits for message 1, and says nothing either.
    let started = tokio::time::Instant::now();
    let mut silent = tcp(node.peer_addr()).await;
    let remote = silent.local_addr().unwrap();
    assert!(closes(&mut silent).await, "the node closes");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        refused(&mut events, remote).await,
        "no handshake within 300ms"
    );
    // A peer that sends message 1, reads message 2 and stops: the whole handshake is bounded.
    let started = tokio::time::Instant::now();
    let mut stalled = tcp(node.peer_addr()).await;
    let remote = stalled.local_addr().unwrap();
    let keys = StaticKeypair::generate().unwrap();
    let (_handshake, message_1) = peerchat_actors::noise::Handshake::initiator(
        &keys,
        &Hello::new("stalls", 3001),
        Default::default(),
    )
    .unwrap();
    stalled.write_all(&message_1).await.unwrap();
    let mut said = Vec::new();
    tokio::time::timeout(WAIT, stalled.read_to_end(&mut said))
        .await
        .expect("the node closes")
        .ok();
    assert!(started.elapsed() >= Duration::from_millis(300));
    // Message 2 (its hello inside), and nothing after it: no bye.
    let len = u32::from_be_bytes(said[..4].try_into().unwrap()) as usize;
    assert_eq!(said.len(), 4 + len, "only message 2: {said:?}");
    assert_eq!(
        refused(&mut events, remote).await,
        "no handshake within 300ms"
    );
    still_serves(&node, 3000).await;
}

// ---- bad hellos ----

/// A handshake with `hello` as the initiator's hello: the node must cut it without a bye.
async fn hello_is_refused(hello: Hello) -> String {
    let (node, mut events) = start("node").await;
    let keys = StaticKeypair::generate().unwrap();
    let mut raw = RawPeer::handshake_as(node.peer_addr(), keys, hello)
        .await
        .expect("our side of the handshake completes");
    let remote = raw.local_addr();
    raw.expect_close_without_bye().await;
    let reason = refused(&mut events, remote).await;
    assert!(node.peers().await.unwrap().is_empty());
    still_serves(&node, 3000).await;
    reason
}

#[actix_rt::test]
async fn a_wrong_protocol_version_is_cut_without_bye() {
    let reason = hello_is_refused(Hello {
        protocol: 3,
        name: "future".into(),
        listen_port: 3001,
    })
    .await;
    assert_eq!(
        reason,
        "handshake failed: unsupported protocol 3 (this node speaks 2)"
    );
}

#[actix_rt::test]
async fn a_hello_with_listen_port_0_is_a_one_shot_sender() {
    // v1 refused such a hello; in v2 it is a sender that does not listen (`peerchat send`):
    // its chats are shown and acked, and it is never passed on to other peers.
    let (node, mut events) = start("node").await;
    let keys = StaticKeypair::generate().unwrap();
    let mut sender = RawPeer::handshake_as(node.peer_addr(), keys, Hello::new("script", 0))
        .await
        .unwrap();
    let from = PeerAddr::new(sender.local_addr());
    assert!(matches!(sender.next().await, Some(Frame::Peers { .. })));
    chat_acked(&mut sender, 1, "from a script").await;
    chat_shown(&mut events, &[], from, "from a script").await;
    let mut other = RawPeer::handshake(node.peer_addr(), 3002).await;
    other.send(&Frame::GetPeers).await;
    let listed = loop {
        match other.next().await {
            Some(Frame::Peers { peers }) => break peers,
            Some(_) => continue,
            None => panic!("closed"),
        }
    };
    assert!(
        listed.iter().all(|entry| entry.addr != from.to_string()),
        "a one-shot sender was passed on: {listed:?}"
    );
}

#[actix_rt::test]
async fn a_second_hello_gets_bye() {
    let (node, mut events) = start("node").await;
    let mut raw = RawPeer::handshake(node.peer_addr(), 3001).await;
    raw.send(&Frame::Hello(Hello::new("again", 3001))).await;
    assert_eq!(
        raw.expect_bye_and_close().await,
        "second hello on one connection"
    );
    assert_eq!(
        disconnected(&mut events, loopback(3001)).await,
        "second hello on one connection"
    );
}

#[actix_rt::test]
async fn a_new_connection_with_the_same_key_replaces_the_old_one() {
    // v1 kept the first of two connections opened by the same node; v2 keeps the new one:
    // proving the same key, it is the same node, restarted or reconnecting.
    let (node, mut events) = start("node").await;
    let keys = StaticKeypair::generate().unwrap();
    let mut first = RawPeer::handshake_as(node.peer_addr(), keys.clone(), Hello::new("raw", 3001))
        .await
        .unwrap();
    connected(&mut events, loopback(3001)).await;
    let mut second = RawPeer::handshake_as(node.peer_addr(), keys, Hello::new("raw", 3001))
        .await
        .unwrap();
    assert!(matches!(second.next().await, Some(Frame::Peers { .. })));
    assert_eq!(
        first.expect_bye_and_close().await,
        "replaced by a new connection"
    );
    chat_acked(&mut second, 1, "second connection up").await;
    chat_shown(
        &mut events,
        &[loopback(3001)],
        loopback(3001),
        "second connection up",
    )
    .await;
}

#[actix_rt::test]
async fn another_key_from_a_connected_peers_address_is_refused_and_the_peer_stays() {
    // v1 let a new connection from the same address replace the old one; v2 refuses it.
    let (node, mut events) = start("node").await;
    let mut first = RawPeer::handshake(node.peer_addr(), 3001).await;
    connected(&mut events, loopback(3001)).await;
    let mut other = RawPeer::handshake_as(
        node.peer_addr(),
        StaticKeypair::generate().unwrap(),
        Hello::new("raw", 3001),
    )
    .await
    .unwrap();
    assert_eq!(
        other.expect_bye_and_close().await,
        "another key is connected from this address"
    );
    chat_acked(&mut first, 1, "first connection still up").await;
    chat_shown(
        &mut events,
        &[loopback(3001)],
        loopback(3001),
        "first connection still up",
    )
    .await;
}

// ---- frames that are accepted ----

#[actix_rt::test]
async fn an_unknown_frame_type_is_ignored() {
    let (node, mut events) = start("node").await;
    let peer = loopback(3001);
    let mut raw = RawPeer::handshake(node.peer_addr(), peer.port()).await;
    raw.send_sealed(&mp_map(&[("type", mp_str("typing")), ("who", mp_str("x"))]))
        .await;
    chat_acked(&mut raw, 1, "after typing").await;
    chat_shown(&mut events, &[peer], peer, "after typing").await;
    assert!(node.peers().await.unwrap()[0].connected);
}

#[actix_rt::test]
async fn keys_in_any_order_unknown_keys_and_longer_integer_forms_are_accepted() {
    let (node, mut events) = start("node").await;
    let peer = loopback(3001);
    let mut raw = RawPeer::handshake(node.peer_addr(), peer.port()).await;
    raw.send_sealed(&mp_map(&[
        // Integers in longer forms than needed: int8 5, and uint32 7.
        ("sent_at_ms", vec![0xd0, 0x05]),
        ("text", mp_str("reordered")),
        ("signature", vec![0x92, 0x01, 0xc0]),
        ("id", vec![0xce, 0x00, 0x00, 0x00, 0x07]),
        ("type", mp_str("chat")),
    ]))
    .await;
    await_ack(&mut raw, 7).await;
    let (id, sent_at_ms) = wait_guarded(&mut events, &[peer], "reordered chat", |e| match e {
        NodeEvent::ChatReceived {
            text,
            id,
            sent_at_ms,
            ..
        } if text == "reordered" => Some((*id, *sent_at_ms)),
        _ => None,
    })
    .await;
    assert_eq!((id, sent_at_ms), (7, 5));
}

#[actix_rt::test]
async fn control_characters_in_a_chat_are_delivered_verbatim() {
    let (node, mut events) = start("node").await;
    let peer = loopback(3001);
    let mut raw = RawPeer::handshake(node.peer_addr(), peer.port()).await;
    let text = "\u{1b}[2J\u{7}bell\r\u{0}\u{9b}31m";
    raw.send(&Frame::Chat {
        id: 42,
        text: text.into(),
        sent_at_ms: 1234,
    })
    .await;
    await_ack(&mut raw, 42).await;
    let got = wait_guarded(&mut events, &[peer], "the chat", |e| match e {
        NodeEvent::ChatReceived {
            from,
            id: 42,
            text,
            sent_at_ms: 1234,
            ..
        } if *from == peer => Some(text.clone()),
        _ => None,
    })
    .await;
    assert_eq!(got, text, "the node hands the text on unchanged");
}

// ---- bad chats and lengths ----

#[actix_rt::test]
async fn invalid_utf8_in_a_chat_gets_bye() {
    let (node, mut events) = start("node").await;
    let peer = loopback(3001);
    let mut raw = RawPeer::handshake(node.peer_addr(), peer.port()).await;
    raw.send_sealed(&mp_map(&[
        ("type", mp_str("chat")),
        ("id", vec![0x01]),
        ("text", vec![0xa4, b'o', 0xc3, 0x28, b'k']),
        ("sent_at_ms", vec![0x00]),
    ]))
    .await;
    let reason = raw.expect_bye_and_close().await;
    assert!(reason.starts_with("protocol error: "), "{reason}");
    let event_reason = events
        .wait_for(WAIT, |e| match e {
            NodeEvent::ChatReceived { text, .. } => panic!("bad chat was shown: {text:?}"),
            NodeEvent::PeerDisconnected {
                peer: p, reason, ..
            } if *p == peer => Some(reason.clone()),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(event_reason, reason);
}

#[actix_rt::test]
async fn a_huge_length_prefix_is_cut_without_bye_and_the_node_keeps_serving() {
    let (node, mut events) = start("node").await;
    let (bob, mut bob_events) = start("bob").await;
    bob.connect(node.peer_addr()).await.unwrap();
    let peer = loopback(3001);
    let mut raw = RawPeer::handshake(node.peer_addr(), peer.port()).await;
    raw.send_raw(vec![0xff, 0xff, 0xff, 0xff]).await;
    // Not from a verified message: cut without a bye.
    raw.expect_close_without_bye().await;
    assert_eq!(
        disconnected(&mut events, peer).await,
        "protocol error: frame of 4294967295 bytes is over the 65535-byte Noise message limit"
    );
    let id = bob.send_chat(node.peer_addr(), "still here").await.unwrap();
    delivered(&mut bob_events, id).await;
    still_serves(&node, 3002).await;
}

// ---- keepalive ----

#[actix_rt::test]
async fn a_silent_peer_is_pinged_then_dropped_with_a_timeout() {
    let (node, mut events) = start_with(fast_config("node")).await;
    let peer = loopback(3001);
    let mut raw = RawPeer::handshake(node.peer_addr(), peer.port()).await;
    let mut pings = 0;
    let reason = loop {
        match raw.next().await {
            Some(Frame::Ping { .. }) => pings += 1,
            Some(Frame::Bye { reason }) => break reason,
            Some(other) => panic!("unexpected {other:?}"),
            None => panic!("closed without a bye"),
        }
    };
    assert!(
        raw.next().await.is_none(),
        "connection not closed after bye"
    );
    assert!(pings >= 1, "no ping before the timeout");
    assert!(reason.contains("timeout"), "{reason}");
    assert_eq!(reason, "timeout: nothing heard for 600ms");
    assert_eq!(disconnected(&mut events, peer).await, reason);
}

#[actix_rt::test]
async fn nodes_that_answer_pings_stay_connected() {
    let (a, mut a_ev) = start_with(fast_config("a")).await;
    let (b, mut b_ev) = start_with(fast_config("b")).await;
    a.connect(b.peer_addr()).await.unwrap();
    connected(&mut b_ev, a.peer_addr()).await;
    // The thing under test: silence much longer than the idle timeout (400 ms).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let id = a.send_chat(b.peer_addr(), "still with me?").await.unwrap();
    chat_shown(&mut b_ev, &[a.peer_addr()], a.peer_addr(), "still with me?").await;
    wait_guarded(&mut a_ev, &[b.peer_addr()], "delivery", |e| match e {
        NodeEvent::Delivered { id: i, to, .. } if *i == id => {
            assert_eq!(*to, b.peer_addr());
            Some(())
        }
        NodeEvent::DeliveryFailed { id: i, reason, .. } if *i == id => panic!("{reason}"),
        _ => None,
    })
    .await;
    for (node, other) in [(&a, b.peer_addr()), (&b, a.peer_addr())] {
        let peers = node.peers().await.unwrap();
        assert_eq!(peers.len(), 1, "{peers:?}");
        assert!(peers[0].addr == other && peers[0].connected, "{peers:?}");
    }
}
