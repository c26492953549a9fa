//! Wire protocol v1: the frames peers exchange and the codec that turns them into bytes.
//! `docs/protocol.md` is the specification; this file and that one change together.
//!
//! A frame is a 4-byte big-endian payload length followed by the payload, one MessagePack
//! map with string keys whose `type` field names the frame.

use std::fmt;
use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio_util::codec::{Decoder, Encoder};

/// The protocol version this code speaks, sent in `hello`.
pub const PROTOCOL_VERSION: u64 = 1;

/// Largest payload (the bytes after the length prefix) a node sends or accepts.
pub const MAX_PAYLOAD: usize = 65536;

/// Longest chat text a node sends: what fits in [`MAX_PAYLOAD`] with the chat's other fields.
pub const MAX_TEXT_BYTES: usize = MAX_PAYLOAD - 64;

const LENGTH_PREFIX: usize = 4;

/// One frame of the protocol. Field order is the order of docs/protocol.md, and it is the
/// order of the keys on the wire.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Frame {
    /// First frame on every connection, from both sides.
    Hello {
        protocol: u64,
        node_id: u64,
        name: String,
        listen_port: u16,
    },
    Chat {
        id: u64,
        text: String,
        sent_at_ms: u64,
    },
    /// The chat with this id was handed to the receiver's console.
    Ack {
        id: u64,
    },
    GetPeers,
    Peers {
        peers: Vec<PeerEntry>,
    },
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
    },
    /// Sent just before closing the connection.
    Bye {
        reason: String,
    },
    /// Any `type` this version does not know; receivers ignore it so that newer peers can
    /// add frames without breaking older ones. Never sent.
    #[serde(other)]
    Unknown,
}

impl Frame {
    /// The `type` field's value, for logs and traces.
    pub fn kind(&self) -> &'static str {
        match self {
            Frame::Hello { .. } => "hello",
            Frame::Chat { .. } => "chat",
            Frame::Ack { .. } => "ack",
            Frame::GetPeers => "get_peers",
            Frame::Peers { .. } => "peers",
            Frame::Ping { .. } => "ping",
            Frame::Pong { .. } => "pong",
            Frame::Bye { .. } => "bye",
            Frame::Unknown => "unknown",
        }
    }
}

/// One entry of a `peers` frame.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PeerEntry {
    /// `IP:PORT` (IPv6 as `[IP]:PORT`): where that peer listens.
    pub addr: String,
    pub name: String,
}

/// Why bytes from a peer could not be read as a frame, or a frame could not be sent.
#[derive(Debug)]
pub enum WireError {
    /// The length prefix announces more than [`MAX_PAYLOAD`] bytes.
    TooLarge { len: usize },
    /// The payload does not start with a MessagePack map.
    NotAMap,
    /// The map is not a frame: missing or mistyped field, invalid UTF-8, bad MessagePack.
    Malformed(String),
    /// Bytes follow the map inside the payload.
    TrailingBytes(usize),
    /// The connection failed underneath.
    Io(io::Error),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::TooLarge { len } => write!(
                f,
                "frame of {len} bytes is over the {MAX_PAYLOAD}-byte limit"
            ),
            WireError::NotAMap => write!(f, "payload is not a MessagePack map"),
            WireError::Malformed(why) => write!(f, "malformed frame: {why}"),
            WireError::TrailingBytes(n) => write!(f, "{n} stray bytes after the frame's map"),
            WireError::Io(err) => write!(f, "connection error: {err}"),
        }
    }
}

impl std::error::Error for WireError {}

impl From<io::Error> for WireError {
    fn from(err: io::Error) -> Self {
        WireError::Io(err)
    }
}

/// Reads a payload (without its length prefix) as a frame.
pub fn decode_payload(payload: &[u8]) -> Result<Frame, WireError> {
    // serde would also accept a MessagePack array for a struct; the protocol says map.
    match payload.first() {
        Some(0x80..=0x8f | 0xde | 0xdf) => {}
        _ => return Err(WireError::NotAMap),
    }
    let mut rest = payload;
    let frame: Frame = rmp_serde::from_read(&mut rest).map_err(|e| {
        let why = e.to_string();
        // rmp-serde hands a string that is not UTF-8 on as bytes, which serde then
        // refuses as "a byte array, expected a string": say what it means.
        if why.contains("byte array, expected a string") {
            WireError::Malformed("a string field is not valid UTF-8".into())
        } else {
            WireError::Malformed(why)
        }
    })?;
    if !rest.is_empty() {
        return Err(WireError::TrailingBytes(rest.len()));
    }
    Ok(frame)
}

/// Appends one whole frame (length prefix and payload) to `dst`.
pub fn encode_frame_into(frame: &Frame, dst: &mut BytesMut) -> Result<(), WireError> {
    let start = dst.len();
    dst.put_u32(0);
    let mut writer = dst.writer();
    let encoded = rmp_serde::encode::write_named(&mut writer, frame);
    let dst = writer.into_inner();
    if let Err(err) = encoded {
        dst.truncate(start);
        return Err(WireError::Malformed(err.to_string()));
    }
    let len = dst.len() - start - LENGTH_PREFIX;
    if len > MAX_PAYLOAD {
        dst.truncate(start);
        return Err(WireError::TooLarge { len });
    }
    // len <= MAX_PAYLOAD, so it fits in the u32 prefix.
    dst[start..start + LENGTH_PREFIX].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// One whole frame as bytes, ready to be written to a socket.
pub fn encode_frame(frame: &Frame) -> Result<Bytes, WireError> {
    let mut buf = BytesMut::with_capacity(64);
    encode_frame_into(frame, &mut buf)?;
    Ok(buf.freeze())
}

/// tokio-util codec for [`Frame`]s: the Session reads its socket through it.
#[derive(Debug, Default, Clone, Copy)]
pub struct WireCodec;

impl Decoder for WireCodec {
    type Item = Frame;
    type Error = WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        if src.len() < LENGTH_PREFIX {
            return Ok(None);
        }
        let mut prefix = [0u8; LENGTH_PREFIX];
        prefix.copy_from_slice(&src[..LENGTH_PREFIX]);
        let len = u32::from_be_bytes(prefix) as usize;
        // Refuse before buffering: a hostile length must not make us allocate.
        if len > MAX_PAYLOAD {
            return Err(WireError::TooLarge { len });
        }
        if src.len() < LENGTH_PREFIX + len {
            src.reserve(LENGTH_PREFIX + len - src.len());
            return Ok(None);
        }
        src.advance(LENGTH_PREFIX);
        let payload = src.split_to(len);
        decode_payload(&payload).map(Some)
    }
}

impl Encoder<&Frame> for WireCodec {
    type Error = WireError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), WireError> {
        encode_frame_into(frame, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> Vec<Result<Frame, String>> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        loop {
            match WireCodec.decode(&mut buf) {
                Ok(Some(frame)) => out.push(Ok(frame)),
                Ok(None) => break,
                Err(err) => {
                    out.push(Err(err.to_string()));
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn round_trips_every_frame_kind() {
        let frames = vec![
            Frame::Hello {
                protocol: 1,
                node_id: u64::MAX,
                name: "ünï".into(),
                listen_port: 65535,
            },
            Frame::Chat {
                id: 7,
                text: "hi".into(),
                sent_at_ms: 1,
            },
            Frame::Ack { id: 0 },
            Frame::GetPeers,
            Frame::Peers {
                peers: vec![PeerEntry {
                    addr: "1.2.3.4:5".into(),
                    name: "x".into(),
                }],
            },
            Frame::Ping { nonce: 3 },
            Frame::Pong { nonce: 3 },
            Frame::Bye {
                reason: "quit".into(),
            },
        ];
        let mut buf = BytesMut::new();
        for frame in &frames {
            WireCodec.encode(frame, &mut buf).unwrap();
        }
        let decoded: Vec<Frame> = decode_all(&buf).into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(decoded, frames);
    }

    #[test]
    fn waits_for_a_whole_frame() {
        let bytes = encode_frame(&Frame::Ack { id: 1 }).unwrap();
        let mut buf = BytesMut::new();
        for (i, byte) in bytes.iter().enumerate() {
            buf.put_u8(*byte);
            let got = WireCodec.decode(&mut buf).unwrap();
            assert_eq!(got.is_some(), i == bytes.len() - 1);
        }
    }

    #[test]
    fn unknown_type_with_extra_fields_is_ignorable() {
        // {type: "typing", who: "bob", extra: [1,2]}
        let payload = rmp_serde::to_vec_named(&serde_json::json!({
            "type": "typing", "who": "bob", "extra": [1, 2]
        }))
        .unwrap();
        assert_eq!(decode_payload(&payload).unwrap(), Frame::Unknown);
    }

    #[test]
    fn known_type_with_extra_fields_is_accepted() {
        let payload = rmp_serde::to_vec_named(&serde_json::json!({
            "type": "ack", "id": 5, "signature": "later"
        }))
        .unwrap();
        assert_eq!(decode_payload(&payload).unwrap(), Frame::Ack { id: 5 });
    }

    #[test]
    fn refuses_arrays_trailing_bytes_and_empty_payloads() {
        let array = rmp_serde::to_vec(&("ack", 1u64)).unwrap();
        assert!(matches!(decode_payload(&array), Err(WireError::NotAMap)));
        assert!(matches!(decode_payload(&[]), Err(WireError::NotAMap)));
        let mut ack = rmp_serde::to_vec_named(&Frame::Ack { id: 1 }).unwrap();
        ack.push(0xc0);
        assert!(matches!(
            decode_payload(&ack),
            Err(WireError::TrailingBytes(1))
        ));
        // a map whose type is not a string
        let payload = rmp_serde::to_vec_named(&serde_json::json!({"type": 5})).unwrap();
        assert!(decode_payload(&payload).is_err());
    }

    #[test]
    fn invalid_utf8_is_named_as_such() {
        // {type: "chat", id: 1, text: <ff fe fd as a str>, sent_at_ms: 0}
        let payload = b"\x84\xa4type\xa4chat\xa2id\x01\xa4text\xa3\xff\xfe\xfd\xaasent_at_ms\x00";
        let err = decode_payload(payload).unwrap_err().to_string();
        assert_eq!(err, "malformed frame: a string field is not valid UTF-8");
    }

    #[test]
    fn refuses_to_encode_a_frame_over_the_limit() {
        let frame = Frame::Chat {
            id: 1,
            text: "x".repeat(MAX_PAYLOAD),
            sent_at_ms: 0,
        };
        let mut buf = BytesMut::from(&b"kept"[..]);
        assert!(matches!(
            encode_frame_into(&frame, &mut buf),
            Err(WireError::TooLarge { .. })
        ));
        assert_eq!(&buf[..], b"kept", "a refused frame leaves no bytes behind");
    }

    #[test]
    fn huge_length_prefix_is_refused_before_buffering() {
        let got = decode_all(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(got.len(), 1);
        assert!(got[0]
            .as_ref()
            .unwrap_err()
            .contains("over the 65536-byte limit"));
    }
}
