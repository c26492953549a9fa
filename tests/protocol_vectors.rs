//! The codec against wire-protocol vectors made by an independent MessagePack implementation
//! (Python `msgpack`, see ../shared/protocol/make_vectors.py). A copy lives in tests/data so the
//! test also runs where ../shared is absent; when ../shared is present the two must agree.

use bytes::BytesMut;
use peerchat_actors::wire::{encode_frame, Frame, WireCodec};
use serde_json::Value;
use tokio_util::codec::Decoder;

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

#[test]
fn decodes_every_vector_to_its_value() {
    let vectors = vectors();
    let frames = vectors["frames"].as_array().unwrap();
    assert!(frames.len() >= 13);
    for vector in frames {
        let name = vector["name"].as_str().unwrap();
        let mut buf = BytesMut::from(&hex(vector["frame_hex"].as_str().unwrap())[..]);
        let frame = WireCodec
            .decode(&mut buf)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .unwrap_or_else(|| panic!("{name}: incomplete"));
        assert!(buf.is_empty(), "{name}: bytes left over");
        assert_eq!(
            serde_json::to_value(&frame).unwrap(),
            vector["value"],
            "{name}"
        );
    }
}

#[test]
fn encodes_every_value_to_exactly_the_vector_bytes() {
    for vector in vectors()["frames"].as_array().unwrap() {
        let name = vector["name"].as_str().unwrap();
        let frame: Frame = serde_json::from_value(vector["value"].clone()).unwrap();
        assert_ne!(frame, Frame::Unknown, "{name}");
        let bytes = encode_frame(&frame).unwrap();
        assert_eq!(
            bytes.to_vec(),
            hex(vector["frame_hex"].as_str().unwrap()),
            "{name}"
        );
    }
}

#[test]
fn refuses_every_reject_vector() {
    let vectors = vectors();
    let rejects = vectors["reject"].as_array().unwrap();
    assert!(rejects.len() >= 6);
    for vector in rejects {
        let name = vector["name"].as_str().unwrap();
        let mut buf = BytesMut::from(&hex(vector["frame_hex"].as_str().unwrap())[..]);
        let result = WireCodec.decode(&mut buf);
        assert!(result.is_err(), "{name} was accepted: {result:?}");
    }
}
