//! The codec against wire-protocol vectors made by an independent MessagePack implementation
//! (Python `msgpack`, see ../shared/protocol/make_vectors.py). A copy lives in tests/data so the
//! test also runs where ../shared is absent; when ../shared is present the two must agree.
//!
//! The vectors are protocol 1's frames. Protocol 2 keeps the maps of `chat`, `ack`,
//! `get_peers`, `ping`, `pong` and `bye` byte for byte (each is what a transport message's
//! plaintext holds; the 4-byte length before it is what a writer queues before sealing), so
//! those are checked both ways. v1's `hello` and `peers` changed in v2 (no `node_id`; entries
//! carry keys): tests/protocol_v2_vectors.rs covers them, and here they only show what a v2
//! node makes of v1's.

use bytes::BytesMut;
use peerchat_actors::noise::{NoiseError, MAX_NOISE_MESSAGE};
use peerchat_actors::wire::{decode_payload, encode_frame, Frame, WireError};
use serde_json::{json, Value};

fn vectors() -> Value {
    let ours = include_str!("data/vectors.json");
    if let Ok(shared) = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/protocol/vectors.json"
    )) {
        assert_eq!(
            serde_json::from_str::<Value>(&shared).unwrap(),
            serde_json::from_str::<Value>(ours).unwrap(),
            "tests/data/vectors.json is out of date: copy ../shared/protocol/vectors.json"
        );
    }
    serde_json::from_str(ours).unwrap()
}

pub fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// The maps v2 keeps from v1 unchanged.
const KEPT: [&str; 6] = ["chat", "ack", "get_peers", "ping", "pong", "bye"];

/// A frame as the vectors write its value.
fn to_json(frame: &Frame) -> Value {
    match frame {
        Frame::Chat {
            id,
            text,
            sent_at_ms,
        } => json!({"type": "chat", "id": id, "text": text, "sent_at_ms": sent_at_ms}),
        Frame::Ack { id } => json!({"type": "ack", "id": id}),
        Frame::GetPeers => json!({"type": "get_peers"}),
        Frame::Ping { nonce } => json!({"type": "ping", "nonce": nonce}),
        Frame::Pong { nonce } => json!({"type": "pong", "nonce": nonce}),
        Frame::Bye { reason } => json!({"type": "bye", "reason": reason}),
        other => panic!("not a kept map: {other:?}"),
    }
}

/// The frame a vector's value describes (kept maps only).
fn from_json(value: &Value) -> Frame {
    let u = |key: &str| value[key].as_u64().unwrap();
    let s = |key: &str| value[key].as_str().unwrap().to_string();
    match value["type"].as_str().unwrap() {
        "chat" => Frame::Chat {
            id: u("id"),
            text: s("text"),
            sent_at_ms: u("sent_at_ms"),
        },
        "ack" => Frame::Ack { id: u("id") },
        "get_peers" => Frame::GetPeers,
        "ping" => Frame::Ping { nonce: u("nonce") },
        "pong" => Frame::Pong { nonce: u("nonce") },
        "bye" => Frame::Bye {
            reason: s("reason"),
        },
        other => panic!("not a kept map: {other}"),
    }
}

/// A vector's frame: its payload (the map), after checking the length prefix.
fn payload(vector: &Value) -> Vec<u8> {
    let name = vector["name"].as_str().unwrap();
    let bytes = hex(vector["frame_hex"].as_str().unwrap());
    let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
    assert_eq!(len, bytes.len() - 4, "{name}: length prefix");
    bytes[4..].to_vec()
}

fn kept(vector: &Value) -> bool {
    KEPT.contains(&vector["value"]["type"].as_str().unwrap())
}

#[test]
fn decodes_every_kept_vector_to_its_value() {
    let vectors = vectors();
    let frames: Vec<&Value> = vectors["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| kept(v))
        .collect();
    assert!(frames.len() >= 9);
    for vector in frames {
        let name = vector["name"].as_str().unwrap();
        let frame = decode_payload(&payload(vector)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(to_json(&frame), vector["value"], "{name}");
    }
}

#[test]
fn encodes_every_kept_value_to_exactly_the_vector_bytes() {
    for vector in vectors()["frames"].as_array().unwrap() {
        if !kept(vector) {
            continue;
        }
        let name = vector["name"].as_str().unwrap();
        let frame = from_json(&vector["value"]);
        let bytes = encode_frame(&frame).unwrap();
        assert_eq!(
            bytes.to_vec(),
            hex(vector["frame_hex"].as_str().unwrap()),
            "{name}"
        );
    }
}

#[test]
fn what_v2_makes_of_v1_hello_and_peers() {
    for vector in vectors()["frames"].as_array().unwrap() {
        let name = vector["name"].as_str().unwrap();
        match vector["value"]["type"].as_str().unwrap() {
            // Read as a hello (its node_id, unknown to v2, skipped): after the handshake a
            // hello is refused anyway ("second hello on one connection").
            "hello" => {
                let Ok(Frame::Hello(hello)) = decode_payload(&payload(vector)) else {
                    panic!("{name}: not read as a hello");
                };
                assert_eq!(hello.protocol, 1, "{name}");
                assert_eq!(hello.name, vector["value"]["name"], "{name}");
            }
            // Entries without a key are malformed in v2; an empty list is the same map.
            "peers" => {
                let result = decode_payload(&payload(vector));
                if vector["value"]["peers"].as_array().unwrap().is_empty() {
                    assert_eq!(result.unwrap(), Frame::Peers { peers: vec![] }, "{name}");
                } else {
                    let err = result.unwrap_err().to_string();
                    assert!(err.contains("missing field `key`"), "{name}: {err}");
                }
            }
            _ => {}
        }
    }
}

#[test]
fn refuses_every_reject_vector() {
    let vectors = vectors();
    let rejects = vectors["reject"].as_array().unwrap();
    assert!(rejects.len() >= 6);
    for vector in rejects {
        let name = vector["name"].as_str().unwrap();
        let bytes = hex(vector["frame_hex"].as_str().unwrap());
        let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        if len > MAX_NOISE_MESSAGE {
            // A length no Noise message can have: refused by the framing, before any byte
            // of it is buffered (tests/protocol_robustness.rs sends it to a node).
            assert_eq!(name, "length_over_limit");
            let mut codec = peerchat_actors::noise::HandshakeCodec;
            let mut buf = BytesMut::from(&bytes[..]);
            let result = tokio_util::codec::Decoder::decode(&mut codec, &mut buf);
            assert!(
                matches!(result, Err(NoiseError::TooLarge { .. })),
                "{name}: {result:?}"
            );
            continue;
        }
        let result = decode_payload(&bytes[4..]);
        assert!(
            matches!(
                result,
                Err(WireError::NotAMap | WireError::Malformed(_) | WireError::TrailingBytes(_))
            ),
            "{name} was accepted: {result:?}"
        );
    }
}
