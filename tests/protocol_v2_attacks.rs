//! Protocol v2 against real nodes over TCP: a client written from docs/protocol.md alone
//! (snow and rmp-serde directly, not the crate's noise.rs) interoperates, and the attacks of
//! issue 12 are tried as an attacker would: a tampered byte, an impostor from bob's IP with
//! bob's port and name, a replayed handshake message presenting bob's key without his private
//! key, a lockout and a self-poisoning attempt. None of them has any effect.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use peerchat_actors::noise::StaticKeypair;
use peerchat_actors::wire::Hello;
use peerchat_actors::{EventStream, Node, NodeEvent, PeerAddr};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// ---- a client from the spec ----

const PATTERN: &str = "Noise_XX_25519_ChaChaPoly_SHA256";
const PROLOGUE: &[u8] = b"peerchat/2";

#[derive(Serialize)]
struct HelloOut<'a> {
    r#type: &'a str,
    protocol: u64,
    name: &'a str,
    listen_port: u16,
}

#[derive(Serialize)]
struct ChatOut<'a> {
    r#type: &'a str,
    id: u64,
    text: &'a str,
    sent_at_ms: u64,
}

#[derive(Serialize)]
struct AckOut<'a> {
    r#type: &'a str,
    id: u64,
}

#[derive(Serialize)]
struct NonceOut<'a> {
    r#type: &'a str,
    nonce: u64,
}

/// The maps a node may send this client.
#[derive(Deserialize, Debug)]
#[serde(tag = "type", rename_all = "snake_case")]
enum MapIn {
    Hello {
        protocol: u64,
        name: String,
        listen_port: u16,
    },
    Peers {
        #[allow(dead_code)]
        peers: Vec<IgnoredAny>,
    },
    Ack {
        id: u64,
    },
    Chat {
        id: u64,
        text: String,
    },
    Ping {
        nonce: u64,
    },
    Pong {
        #[allow(dead_code)]
        nonce: u64,
    },
    Bye {
        reason: String,
    },
    #[serde(other)]
    Other,
}

async fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    tokio::time::timeout(WAIT, stream.read_exact(&mut len))
        .await
        .expect("a frame in time")
        .ok()?;
    let len = u32::from_be_bytes(len) as usize;
    assert!(len <= 65535, "a frame over the Noise limit: {len}");
    let mut message = vec![0u8; len];
    tokio::time::timeout(WAIT, stream.read_exact(&mut message))
        .await
        .expect("a whole frame in time")
        .ok()?;
    Some(message)
}

fn framed(message: &[u8]) -> Vec<u8> {
    let mut out = (message.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(message);
    out
}

/// Every map of a plaintext, back to back.
fn maps(plaintext: &[u8]) -> Vec<MapIn> {
    let mut rest = plaintext;
    let mut out = Vec::new();
    while !rest.is_empty() {
        out.push(rmp_serde::from_read(&mut rest).expect("a map"));
    }
    out
}

struct SpecClient {
    stream: TcpStream,
    transport: snow::TransportState,
    /// The node's static key, as the handshake proved it.
    node_key: Vec<u8>,
}

impl SpecClient {
    /// Sections 2 and 7 of docs/protocol.md: message 1 (empty payload), message 2 (the node's
    /// hello), message 3 (ours), then transport mode.
    async fn connect(to: PeerAddr, name: &str, listen_port: u16) -> (SpecClient, MapIn) {
        let builder = snow::Builder::new(PATTERN.parse().unwrap());
        let keys = builder.generate_keypair().unwrap();
        let mut handshake = snow::Builder::new(PATTERN.parse().unwrap())
            .local_private_key(&keys.private)
            .unwrap()
            .prologue(PROLOGUE)
            .unwrap()
            .build_initiator()
            .unwrap();
        let mut stream = tcp(to).await;
        let mut buf = vec![0u8; 65535];
        let len = handshake.write_message(&[], &mut buf).unwrap();
        assert_eq!(len, 32, "message 1 is an ephemeral key");
        stream.write_all(&framed(&buf[..len])).await.unwrap();
        let message_2 = read_frame(&mut stream).await.expect("message 2");
        let mut payload = vec![0u8; message_2.len()];
        let len = handshake.read_message(&message_2, &mut payload).unwrap();
        let hello: MapIn = rmp_serde::from_slice(&payload[..len]).expect("the node's hello");
        let node_key = handshake.get_remote_static().unwrap().to_vec();
        let ours = rmp_serde::to_vec_named(&HelloOut {
            r#type: "hello",
            protocol: 2,
            name,
            listen_port,
        })
        .unwrap();
        let len = handshake.write_message(&ours, &mut buf).unwrap();
        stream.write_all(&framed(&buf[..len])).await.unwrap();
        let transport = handshake.into_transport_mode().unwrap();
        (
            SpecClient {
                stream,
                transport,
                node_key,
            },
            hello,
        )
    }

    /// Maps encoded back to back and sealed as one transport message, as a frame.
    fn seal(&mut self, plaintext: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; plaintext.len() + 16];
        let len = self.transport.write_message(plaintext, &mut buf).unwrap();
        framed(&buf[..len])
    }

    async fn send(&mut self, plaintext: &[u8]) {
        let frame = self.seal(plaintext);
        self.stream.write_all(&frame).await.unwrap();
    }

    /// The maps of the next transport message; `None` once the node closed the connection.
    async fn next(&mut self) -> Option<Vec<MapIn>> {
        let message = read_frame(&mut self.stream).await?;
        let mut plaintext = vec![0u8; message.len()];
        let len = self
            .transport
            .read_message(&message, &mut plaintext)
            .expect("the node's transport message decrypts");
        Some(maps(&plaintext[..len]))
    }
}

fn chat(id: u64, text: &str) -> Vec<u8> {
    rmp_serde::to_vec_named(&ChatOut {
        r#type: "chat",
        id,
        text,
        sent_at_ms: 1,
    })
    .unwrap()
}

async fn chat_from(events: &mut EventStream, from: PeerAddr, text: &str) {
    events
        .wait_for(WAIT, |e| match e {
            NodeEvent::ChatReceived {
                from: f, text: t, ..
            } if *f == from && t == text => Some(()),
            _ => None,
        })
        .await
        .unwrap_or_else(|e| panic!("{text:?} from {from} never shown: {e}"));
}

#[actix_rt::test]
async fn a_client_written_from_the_spec_handshakes_chats_and_gets_acks() {
    let (node, mut events) = start("bob").await;
    let (mut client, hello) = SpecClient::connect(node.peer_addr(), "spec", 4100).await;
    match hello {
        MapIn::Hello {
            protocol,
            name,
            listen_port,
        } => {
            assert_eq!((protocol, name.as_str()), (2, "bob"));
            assert_eq!(listen_port, node.peer_addr().port());
        }
        other => panic!("message 2 carried {other:?}"),
    }
    assert_eq!(client.node_key, node.key().as_bytes().to_vec());
    // Two chats in one transport message, then a ping in a message of its own.
    let mut two = chat(1, "one");
    two.extend(chat(2, "two"));
    client.send(&two).await;
    client
        .send(
            &rmp_serde::to_vec_named(&NonceOut {
                r#type: "ping",
                nonce: 9,
            })
            .unwrap(),
        )
        .await;
    let from = PeerAddr::from_ip_port([127, 0, 0, 1].into(), 4100);
    chat_from(&mut events, from, "one").await;
    chat_from(&mut events, from, "two").await;
    let (mut peers, mut acks, mut pong) = (false, Vec::new(), false);
    while !(peers && acks.len() == 2 && pong) {
        for map in client.next().await.expect("the node answers") {
            match map {
                MapIn::Peers { .. } => peers = true,
                MapIn::Ack { id } => acks.push(id),
                MapIn::Pong { .. } => pong = true,
                MapIn::Ping { nonce } => {
                    let pong = NonceOut {
                        r#type: "pong",
                        nonce,
                    };
                    client.send(&rmp_serde::to_vec_named(&pong).unwrap()).await;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(acks, vec![1, 2]);
    // A chat from the node reaches the client, sealed; the client's ack delivers it.
    let id = node.send_chat(from, "hi spec").await.unwrap();
    let chat_id = 'found: loop {
        for map in client.next().await.expect("the chat") {
            if let MapIn::Chat { id, text } = map {
                assert_eq!(text, "hi spec");
                break 'found id;
            }
        }
    };
    assert_eq!(chat_id, id);
    let ack = rmp_serde::to_vec_named(&AckOut {
        r#type: "ack",
        id: chat_id,
    })
    .unwrap();
    client.send(&ack).await;
    assert_eq!(delivered(&mut events, id).await, from);
}

#[actix_rt::test]
async fn flipping_one_ciphertext_byte_gets_the_connection_closed() {
    let (node, mut events) = start("bob").await;
    let (mut client, _) = SpecClient::connect(node.peer_addr(), "spec", 4101).await;
    let mut frame = client.seal(&chat(1, "tampered"));
    // A byte of the ciphertext, past the 4-byte length.
    frame[10] ^= 0x01;
    client.stream.write_all(&frame).await.unwrap();
    // Whatever comes before the close (the node's first peers map) decrypts; no bye.
    while let Some(maps) = client.next().await {
        for map in maps {
            if let MapIn::Bye { reason } = map {
                panic!("a bye ({reason:?}) for a message that did not verify");
            }
        }
    }
    let peer = PeerAddr::from_ip_port([127, 0, 0, 1].into(), 4101);
    let reason = events
        .wait_for(WAIT, |e| match e {
            NodeEvent::ChatReceived { text, .. } => panic!("a tampered chat was shown: {text}"),
            NodeEvent::PeerDisconnected {
                peer: p, reason, ..
            } if *p == peer => Some(reason.clone()),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(reason, "protocol error: a Noise message did not verify");
}

// ---- impostors ----

/// Alice, and bob connected to her (bob dialed).
async fn alice_and_bob() -> (Node, EventStream, Node, EventStream) {
    let (alice, mut alice_events) = start_with(fast_config("alice")).await;
    let (bob, bob_events) = start_with(fast_config("bob")).await;
    bob.connect(alice.peer_addr()).await.unwrap();
    connected(&mut alice_events, bob.peer_addr()).await;
    (alice, alice_events, bob, bob_events)
}

#[actix_rt::test]
async fn an_impostor_from_bobs_ip_with_bobs_port_and_name_cannot_evict_bob_or_take_his_chats() {
    let (alice, mut alice_events, bob, mut bob_events) = alice_and_bob().await;
    let bob_addr = bob.peer_addr();
    // Same IP (loopback), bob's listening port and name, its own key: refused.
    let mut impostor = RawPeer::handshake_as(
        alice.peer_addr(),
        StaticKeypair::generate().unwrap(),
        Hello::new("bob", bob_addr.port()),
    )
    .await
    .expect("the handshake itself completes");
    assert_eq!(
        impostor.expect_bye_and_close().await,
        "another key is connected from this address"
    );
    // Every chat meant for bob reaches bob, and only bob acks it.
    for i in 0..5 {
        let text = format!("for bob only {i}");
        let id = alice.send_chat(bob_addr, text.clone()).await.unwrap();
        assert_eq!(received(&mut bob_events).await, (alice.peer_addr(), text));
        assert_eq!(delivered(&mut alice_events, id).await, bob_addr);
    }
    // Bob was never disconnected.
    let peers = alice.peers().await.unwrap();
    assert!(
        peers.iter().any(|p| p.addr == bob_addr && p.connected),
        "{peers:?}"
    );
    while let Some(event) = alice_events.next_within(Duration::from_millis(100)).await {
        if let NodeEvent::PeerDisconnected { peer, reason, .. } = event {
            assert_ne!(peer, bob_addr, "bob was disconnected: {reason}");
        }
    }
}

#[actix_rt::test]
async fn many_impostors_cannot_lock_bob_out() {
    // v1: a live session holding bob's node id refused bob's own connections. v2: nobody
    // but bob can prove bob's key, so whatever others hold, bob gets in.
    let (alice, mut alice_events, bob, mut bob_events) = alice_and_bob().await;
    let mut squatters = Vec::new();
    for i in 0..20u16 {
        // Live sessions of other keys, some claiming bob's name.
        let raw = RawPeer::handshake_as(
            alice.peer_addr(),
            StaticKeypair::generate().unwrap(),
            Hello::new("bob", 5000 + i),
        )
        .await
        .unwrap();
        squatters.push(raw);
    }
    // Bob drops his connection and comes back, twice: let in each time.
    for _ in 0..2 {
        alice.disconnect(bob.peer_addr()).await.unwrap();
        disconnected(&mut alice_events, bob.peer_addr()).await;
        disconnected(&mut bob_events, alice.peer_addr()).await;
        bob.connect(alice.peer_addr()).await.unwrap();
        connected(&mut alice_events, bob.peer_addr()).await;
    }
    let id = alice
        .send_chat(bob.peer_addr(), "still yours")
        .await
        .unwrap();
    assert_eq!(delivered(&mut alice_events, id).await, bob.peer_addr());
}

#[actix_rt::test]
async fn a_hello_cannot_make_a_node_take_another_address_for_itself() {
    // v1: a hello with the victim's own node id made it treat that address as itself. v2:
    // only a peer proving the node's own key is the node itself.
    let (alice, mut alice_events) = start_with(fast_config("alice")).await;
    let carol_port = free_port();
    // An attacker claims carol's port, then leaves.
    let attacker = RawPeer::handshake(alice.peer_addr(), carol_port).await;
    attacker.shutdown().await;
    // Carol starts there; alice reaches her: the address is carol's, not alice's own.
    let mut config = fast_config("carol");
    config.port = carol_port;
    let (carol, mut carol_events) = start_with(config).await;
    let id = alice
        .send_chat(carol.peer_addr(), "hi carol")
        .await
        .unwrap();
    assert_eq!(received(&mut carol_events).await.1, "hi carol");
    assert_eq!(delivered(&mut alice_events, id).await, carol.peer_addr());
    // Reaching itself at an address it cannot tell is its own (through a relay) is still
    // recognised: the other end proves alice's own key.
    let (relay, _) = recording_relay(alice.peer_addr()).await;
    let err = alice.connect(relay).await.unwrap_err();
    assert_eq!(err.to_string(), "that address is this node itself");
}

// ---- bob's key without bob's private key ----

/// A relay that records what the dialing side sends through it.
async fn recording_relay(target: PeerAddr) -> (PeerAddr, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let tape = recorded.clone();
    tokio::spawn(async move {
        let Ok((inbound, _)) = listener.accept().await else {
            return;
        };
        let Ok(outbound) = TcpStream::connect(target.socket_addr()).await else {
            return;
        };
        let (mut in_read, mut in_write) = inbound.into_split();
        let (mut out_read, mut out_write) = outbound.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut out_read, &mut in_write).await;
        });
        let mut buf = [0u8; 4096];
        loop {
            match in_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    tape.lock().unwrap().extend_from_slice(&buf[..n]);
                    if out_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    (addr.into(), recorded)
}

#[actix_rt::test]
async fn replaying_bobs_recorded_handshake_fails_without_bobs_private_key() {
    let (alice, mut alice_events) = start("alice").await;
    let (bob, _bob_events) = start("bob").await;
    // Bob dials alice through a relay the attacker controls: it records bob's messages 1
    // and 3 (message 3 carries bob's static key, encrypted, and proves he holds it).
    let (relay, tape) = recording_relay(alice.peer_addr()).await;
    bob.connect(relay).await.unwrap();
    // Once alice has read bob's message 3, the relay has recorded it.
    connected(&mut alice_events, bob.peer_addr()).await;
    let recorded = tape.lock().unwrap().clone();
    let len_1 = u32::from_be_bytes(recorded[..4].try_into().unwrap()) as usize;
    let message_1 = &recorded[..4 + len_1];
    let rest = &recorded[4 + len_1..];
    let len_3 = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
    let message_3 = &rest[..4 + len_3];
    // The attacker replays them on a new connection: alice's message 2 is new (a fresh
    // ephemeral key), so bob's old message 3 does not verify. Cut, no bye.
    let mut attacker = tcp(alice.peer_addr()).await;
    let remote = attacker.local_addr().unwrap();
    attacker.write_all(message_1).await.unwrap();
    let mut len = [0u8; 4];
    attacker.read_exact(&mut len).await.unwrap();
    let mut message_2 = vec![0u8; u32::from_be_bytes(len) as usize];
    attacker.read_exact(&mut message_2).await.unwrap();
    attacker.write_all(message_3).await.unwrap();
    let mut after = Vec::new();
    tokio::time::timeout(WAIT, attacker.read_to_end(&mut after))
        .await
        .expect("alice closes")
        .ok();
    assert!(after.is_empty(), "alice said {after:?} to the replay");
    let reason = alice_events
        .wait_for(WAIT, |e| match e {
            NodeEvent::ConnectionRefused { remote: r, reason } if *r == remote => {
                Some(reason.clone())
            }
            NodeEvent::PeerConnected { peer, .. } if peer.port() != bob.peer_addr().port() => {
                panic!("the replay was admitted as {peer}")
            }
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(reason, "handshake failed: a Noise message did not verify");
    // Bob's own session is untouched.
    let id = alice
        .send_chat(bob.peer_addr(), "to the real bob")
        .await
        .unwrap();
    delivered(&mut alice_events, id).await;
}
