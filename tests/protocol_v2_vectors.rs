//! Protocol v2 against vectors made by independent implementations (Python `msgpack` and
//! `noiseprotocol`, see ../shared/protocol/make_vectors_v2.py): with the same static and
//! ephemeral keys, our handshake driver and transport must produce exactly those frames, and
//! read them back. A copy lives in tests/data so the test also runs where ../shared is absent;
//! when ../shared is present the two must agree.

use bytes::{BufMut, BytesMut};
use peerchat_actors::noise::{
    Established, Handshake, HandshakeOptions, NoiseError, StaticKeypair, Step, TransportCodec,
};
use peerchat_actors::wire::{
    decode_hello, decode_peers, encode_frame_into, encode_hello, encode_map, Frame, Hello,
    PeerEntry,
};
use peerchat_actors::PeerKey;
use serde_json::Value;
use tokio_util::codec::Decoder;

fn vectors() -> Value {
    let ours = include_str!("data/vectors-v2.json");
    if let Ok(shared) = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/protocol/vectors-v2.json"
    )) {
        assert_eq!(
            serde_json::from_str::<Value>(&shared).unwrap(),
            serde_json::from_str::<Value>(ours).unwrap(),
            "tests/data/vectors-v2.json is out of date: copy ../shared/protocol/vectors-v2.json"
        );
    }
    serde_json::from_str(ours).unwrap()
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn key32(value: &Value) -> [u8; 32] {
    hex(value.as_str().unwrap()).try_into().unwrap()
}

fn hello(value: &Value) -> Hello {
    Hello {
        protocol: value["protocol"].as_u64().unwrap(),
        name: value["name"].as_str().unwrap().into(),
        listen_port: value["listen_port"].as_u64().unwrap() as u16,
    }
}

/// The frame a vector's value describes (the transport vectors hold chats and acks).
fn frame(value: &Value) -> Frame {
    let u = |key: &str| value[key].as_u64().unwrap();
    match value["type"].as_str().unwrap() {
        "chat" => Frame::Chat {
            id: u("id"),
            text: value["text"].as_str().unwrap().into(),
            sent_at_ms: u("sent_at_ms"),
        },
        "ack" => Frame::Ack { id: u("id") },
        other => panic!("no transport vector of type {other} was expected"),
    }
}

/// Strips and checks a frame's 4-byte length prefix.
fn message(frame: &[u8]) -> &[u8] {
    let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
    assert_eq!(len, frame.len() - 4);
    &frame[4..]
}

struct Sides {
    initiator: StaticKeypair,
    responder: StaticKeypair,
    initiator_ephemeral: [u8; 32],
    responder_ephemeral: [u8; 32],
}

fn sides(handshake: &Value) -> Sides {
    let keys = &handshake["keys_hex"];
    Sides {
        initiator: StaticKeypair::from_private(key32(&keys["initiator_static"])).unwrap(),
        responder: StaticKeypair::from_private(key32(&keys["responder_static"])).unwrap(),
        initiator_ephemeral: key32(&keys["initiator_ephemeral"]),
        responder_ephemeral: key32(&keys["responder_ephemeral"]),
    }
}

fn fixed(ephemeral: [u8; 32], expected_remote: Option<PeerKey>) -> HandshakeOptions {
    HandshakeOptions {
        expected_remote,
        fixed_ephemeral_for_testing_only: Some(ephemeral),
        ..HandshakeOptions::default()
    }
}

/// Runs the vectors' handshake with our driver on both sides, checking every frame against
/// the vectors: (initiator's end, responder's end).
fn handshake_as_the_vectors_say(h: &Value) -> (Established, Established) {
    let sides = sides(h);
    let (initiator, m1) = Handshake::initiator(
        &sides.initiator,
        &hello(&h["msg3_payload"]),
        fixed(sides.initiator_ephemeral, None),
    )
    .unwrap();
    assert_eq!(
        m1.to_vec(),
        hex(h["msg1_frame_hex"].as_str().unwrap()),
        "msg1"
    );
    let responder = Handshake::responder(
        &sides.responder,
        &hello(&h["msg2_payload"]),
        fixed(sides.responder_ephemeral, None),
    )
    .unwrap();
    let Step::Reply(responder, m2) = responder.read(message(&m1)).unwrap() else {
        panic!("the responder answers message 1");
    };
    assert_eq!(
        m2.to_vec(),
        hex(h["msg2_frame_hex"].as_str().unwrap()),
        "msg2"
    );
    let Step::Done {
        reply: Some(m3),
        established: at_initiator,
    } = initiator.read(message(&m2)).unwrap()
    else {
        panic!("the initiator finishes on message 2");
    };
    assert_eq!(
        m3.to_vec(),
        hex(h["msg3_frame_hex"].as_str().unwrap()),
        "msg3"
    );
    let Step::Done {
        reply: None,
        established: at_responder,
    } = responder.read(message(&m3)).unwrap()
    else {
        panic!("the responder finishes on message 3");
    };
    (at_initiator, at_responder)
}

#[test]
fn the_static_keys_give_the_vectors_public_keys() {
    let vectors = vectors();
    let h = &vectors["handshake"];
    assert_eq!(vectors["noise"], "Noise_XX_25519_ChaChaPoly_SHA256");
    assert_eq!(vectors["prologue"], "peerchat/2");
    let sides = sides(h);
    let public = &h["public_keys_hex"];
    assert_eq!(
        sides.initiator.public().to_hex(),
        public["initiator_static"].as_str().unwrap()
    );
    assert_eq!(
        sides.responder.public().to_hex(),
        public["responder_static"].as_str().unwrap()
    );
}

#[test]
fn the_handshake_is_bit_exact_and_each_side_learns_the_other() {
    let vectors = vectors();
    let h = &vectors["handshake"];
    let (at_initiator, at_responder) = handshake_as_the_vectors_say(h);
    let sides = sides(h);
    assert_eq!(at_initiator.remote_key, sides.responder.public());
    assert_eq!(at_responder.remote_key, sides.initiator.public());
    assert_eq!(at_initiator.remote_hello, hello(&h["msg2_payload"]));
    assert_eq!(at_responder.remote_hello, hello(&h["msg3_payload"]));
    assert_eq!(at_initiator.handshake_hash, at_responder.handshake_hash);
}

#[test]
fn transport_frames_are_bit_exact_and_decode_back() {
    let vectors = vectors();
    let h = &vectors["handshake"];
    let (mut at_initiator, mut at_responder) = handshake_as_the_vectors_say(h);
    let mut initiator_reads = TransportCodec::new(at_initiator.opener);
    let mut responder_reads = TransportCodec::new(at_responder.opener);
    let transport = h["transport"].as_array().unwrap();
    assert_eq!(transport.len(), 3);
    let mut batches = 0;
    for vector in transport {
        let values: Vec<Frame> = match vector.get("values") {
            Some(values) => values.as_array().unwrap().iter().map(frame).collect(),
            None => vec![frame(&vector["value"])],
        };
        batches += usize::from(values.len() > 1);
        // The way a writer buffers them: v1 frames back to back.
        let mut buffered = BytesMut::new();
        for value in &values {
            encode_frame_into(value, &mut buffered).unwrap();
        }
        let (sealer, reader) = match vector["from"].as_str().unwrap() {
            "initiator" => (&mut at_initiator.sealer, &mut responder_reads),
            "responder" => (&mut at_responder.sealer, &mut initiator_reads),
            other => panic!("from {other}"),
        };
        let mut wire = BytesMut::new();
        assert_eq!(sealer.seal_frames(&buffered, &mut wire).unwrap(), 1);
        let expected = hex(vector["frame_hex"].as_str().unwrap());
        assert_eq!(wire.to_vec(), expected, "{vector}");
        let mut decoded = Vec::new();
        while let Some(frame) = reader.decode(&mut wire).unwrap() {
            decoded.push(frame);
        }
        assert_eq!(decoded, values);
    }
    assert_eq!(batches, 1, "the vectors hold one batch of two chats");
}

#[test]
fn a_flipped_ciphertext_byte_fails_to_decrypt() {
    let vectors = vectors();
    let h = &vectors["handshake"];
    let chat = hex(h["transport"][0]["frame_hex"].as_str().unwrap());
    for at in [4, 10, chat.len() / 2, chat.len() - 1] {
        let (_, at_responder) = handshake_as_the_vectors_say(h);
        let mut reader = TransportCodec::new(at_responder.opener);
        let mut tampered = BytesMut::from(&chat[..]);
        tampered[at] ^= 0x01;
        let err = reader.decode(&mut tampered).unwrap_err();
        assert!(matches!(err, NoiseError::Decrypt), "byte {at}: {err}");
        assert!(
            !err.says_bye(),
            "a frame that does not decrypt closes at once"
        );
    }
    // The same, in handshake message 2: the initiator refuses it.
    let sides = sides(h);
    let (initiator, _) = Handshake::initiator(
        &sides.initiator,
        &hello(&h["msg3_payload"]),
        fixed(sides.initiator_ephemeral, None),
    )
    .unwrap();
    let mut m2 = hex(h["msg2_frame_hex"].as_str().unwrap());
    let last = m2.len() - 1;
    m2[last] ^= 0x01;
    assert!(matches!(
        initiator.read(message(&m2)),
        Err(NoiseError::Decrypt)
    ));
}

#[test]
fn a_responder_with_another_static_key_is_detected() {
    let vectors = vectors();
    let h = &vectors["handshake"];
    let sides = sides(h);
    // The initiator expects a key other than the one the vectors' responder proves.
    let expected = PeerKey::from_bytes([9; 32]);
    let (initiator, _) = Handshake::initiator(
        &sides.initiator,
        &hello(&h["msg3_payload"]),
        fixed(sides.initiator_ephemeral, Some(expected)),
    )
    .unwrap();
    let m2 = hex(h["msg2_frame_hex"].as_str().unwrap());
    match initiator.read(message(&m2)) {
        Err(NoiseError::UnexpectedKey {
            expected: e,
            presented,
        }) => {
            assert_eq!(e, expected);
            assert_eq!(presented, sides.responder.public());
        }
        other => panic!("{other:?}"),
    }
    // Expecting the right key: accepted.
    let (initiator, _) = Handshake::initiator(
        &sides.initiator,
        &hello(&h["msg3_payload"]),
        fixed(sides.initiator_ephemeral, Some(sides.responder.public())),
    )
    .unwrap();
    assert!(matches!(
        initiator.read(message(&m2)),
        Ok(Step::Done { .. })
    ));
}

#[test]
fn the_v2_maps_encode_bit_exact_and_decode_strictly() {
    let vectors = vectors();
    let maps = vectors["maps"].as_array().unwrap();
    assert_eq!(maps.len(), 2);
    for vector in maps {
        let name = vector["name"].as_str().unwrap();
        let payload = hex(vector["payload_hex"].as_str().unwrap());
        let value = &vector["value"];
        let mut encoded = BytesMut::new();
        match name {
            "hello_v2" => {
                assert!(value.get("node_id").is_none());
                encode_hello(&hello(value), &mut encoded);
                assert_eq!(decode_hello(&payload).unwrap(), hello(value), "{name}");
            }
            "peers_with_keys" => {
                let peers: Vec<PeerEntry> = value["peers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| PeerEntry {
                        addr: p["addr"].as_str().unwrap().into(),
                        name: p["name"].as_str().unwrap().into(),
                        key: PeerKey::from_bytes(key32(&p["key"]["bin_hex"])),
                    })
                    .collect();
                encoded.extend_from_slice(
                    &encode_map(&Frame::Peers {
                        peers: peers.clone(),
                    })
                    .unwrap(),
                );
                assert_eq!(decode_peers(&payload).unwrap(), peers, "{name}");
                // The key as a string, or as 31 bytes, is refused.
                let mut as_str = payload.clone();
                let at = as_str.windows(2).position(|w| w == [0xc4, 0x20]).unwrap();
                as_str[at] = 0xd9;
                assert!(decode_peers(&as_str).is_err(), "key as str accepted");
                let mut short = payload.clone();
                short[at + 1] = 31;
                short.remove(at + 2);
                assert!(decode_peers(&short).is_err(), "31-byte key accepted");
                let mut trailing = payload.clone();
                trailing.put_u8(0xc0);
                assert!(decode_peers(&trailing).is_err());
            }
            other => panic!("no test for map {other}"),
        }
        assert_eq!(encoded.to_vec(), payload, "{name}");
    }
}
