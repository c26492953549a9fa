//! Wire protocol v2: the MessagePack maps peers exchange, and how they become bytes.
//! `docs/protocol.md` is the specification; this module and that page change together.
//!
//! Every connection starts with a Noise handshake whose messages 2 and 3 carry each side's
//! [`Hello`] (the Noise layer, `noise.rs`); after it, each frame is one Noise transport message whose
//! plaintext is one or more maps back to back, each one [`Frame`]. This module knows the maps
//! only: a writer encodes each frame behind a 4-byte length ([`encode_frame_into`]), the Noise
//! layer strips the lengths and seals the maps in batches; a reader splits a plaintext into
//! maps ([`split_maps`]) and decodes each ([`decode_payload`]).
//!
//! Its parts: `fast.rs` writes every map, and reads the hot ones, in their canonical form
//! without serde; `strict.rs` reads `hello` and `peers` (whose key must be a 32-byte `bin`)
//! and measures maps; `plain.rs` is serde's reading of every other map in any valid form.

use std::fmt;
use std::io;

use bytes::{BufMut, Bytes, BytesMut};

use crate::key::PeerKey;

mod fast;
mod plain;
mod strict;

pub use strict::{decode_hello, decode_peers};

/// The protocol version this code speaks, sent in `hello`.
pub const PROTOCOL_VERSION: u64 = 2;

/// Largest map (and largest plaintext of one transport message): a Noise message is at most
/// 65535 bytes, 16 of which are the authentication tag.
pub const MAX_MAP_BYTES: usize = 65535 - 16;

/// Longest chat text a node sends: what fits in [`MAX_MAP_BYTES`] with the chat's other
/// fields (at most 51 bytes of them).
pub const MAX_TEXT_BYTES: usize = MAX_MAP_BYTES - 64;

/// Bytes of an X25519 public key, as `peers` entries carry it.
pub const STATIC_KEY_BYTES: usize = crate::key::KEY_BYTES;

/// Deepest nesting of MessagePack arrays and maps a receiver walks through (in unknown fields
/// a newer peer may add); deeper is refused rather than recursed into.
const MAX_DEPTH: usize = 32;

const LENGTH_PREFIX: usize = 4;

/// One map of the protocol, as it travels inside a transport message. Field order is the
/// order of docs/protocol.md, and it is the order of the keys on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Only ever valid inside the handshake; after it, a `hello` is a protocol error.
    Hello(Hello),
    /// A chat message.
    Chat {
        /// The sender's id for it, unique among its chats.
        id: u64,
        /// The text (UTF-8).
        text: String,
        /// When it was sent (ms since the Unix epoch).
        sent_at_ms: u64,
    },
    /// The chat with this id was handed to the receiver's console.
    Ack {
        /// The id of the chat acked.
        id: u64,
    },
    /// Asks for the peer's `peers`.
    GetPeers,
    /// Peers the sender knows: introductions, each with the key expected at its address.
    Peers {
        /// At most 256 entries.
        peers: Vec<PeerEntry>,
    },
    /// Keepalive probe.
    Ping {
        /// Echoed in the `pong`.
        nonce: u64,
    },
    /// Answer to a `ping`.
    Pong {
        /// The `ping`'s nonce.
        nonce: u64,
    },
    /// Sent just before closing the connection.
    Bye {
        /// Why the connection closes.
        reason: String,
    },
    /// Any `type` this version does not know; receivers ignore it so that newer peers can
    /// add maps without breaking older ones. Never sent.
    Unknown,
}

impl Frame {
    /// The `type` field's value, for logs and traces.
    pub fn kind(&self) -> &'static str {
        match self {
            Frame::Hello(_) => "hello",
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

/// The `hello`: the payload of handshake messages 2 and 3. No node id: the sender's identity
/// is the static key the handshake proved; its name and port are claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The protocol version, [`PROTOCOL_VERSION`].
    pub protocol: u64,
    /// The sender's name.
    pub name: String,
    /// The port the sender listens on; 0: it does not listen (a one-shot `peerchat send`).
    pub listen_port: u16,
}

impl Hello {
    /// A hello from a node called `name` listening on `listen_port`.
    pub fn new(name: impl Into<String>, listen_port: u16) -> Self {
        Hello {
            protocol: PROTOCOL_VERSION,
            name: name.into(),
            listen_port,
        }
    }
}

/// One entry of a `peers` map: where a peer listens, its name, and its static key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerEntry {
    /// `IP:PORT` (IPv6 as `[IP]:PORT`).
    pub addr: String,
    /// That peer's name (may be empty).
    pub name: String,
    /// That peer's X25519 static public key, sent as a 32-byte MessagePack `bin`.
    pub key: PeerKey,
}

/// Why bytes from a peer could not be read as a map, or a map could not be sent.
#[derive(Debug)]
pub enum WireError {
    /// The map is over [`MAX_MAP_BYTES`].
    TooLarge {
        /// Its length.
        len: usize,
    },
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
                "map of {len} bytes is over the {MAX_MAP_BYTES}-byte limit"
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

/// Reads one map (a v1-style payload: exactly one map, nothing after it) as a frame.
pub fn decode_payload(payload: &[u8]) -> Result<Frame, WireError> {
    // The maps of a busy connection, written the way every conforming sender writes them
    // (docs/protocol.md), are read directly. Anything else, including every malformed input,
    // goes through the strict reader (hello, peers) or serde, which decide and word the errors.
    if let Some(frame) = fast::decode(payload) {
        return Ok(frame);
    }
    // serde would also accept a MessagePack array for a struct; the protocol says map.
    match payload.first() {
        Some(0x80..=0x8f | 0xde | 0xdf) => {}
        _ => return Err(WireError::NotAMap),
    }
    match strict::kind_of(payload).as_deref() {
        Some("hello") => decode_hello(payload).map(Frame::Hello),
        Some("peers") => decode_peers(payload).map(|peers| Frame::Peers { peers }),
        _ => plain::decode(payload),
    }
}

/// Appends one frame, as a 4-byte big-endian length and its map, to `dst` (the form a
/// writer queues and the Noise layer's `Sealer::seal_frames` seals).
pub fn encode_frame_into(frame: &Frame, dst: &mut BytesMut) -> Result<(), WireError> {
    let start = dst.len();
    dst.reserve(LENGTH_PREFIX + fast::size_hint(frame));
    dst.put_u32(0);
    if !fast::encode(frame, dst) {
        dst.truncate(start);
        return Err(WireError::Malformed(format!(
            "a `{}` map is never sent",
            frame.kind()
        )));
    }
    let len = dst.len() - start - LENGTH_PREFIX;
    if len > MAX_MAP_BYTES {
        dst.truncate(start);
        return Err(WireError::TooLarge { len });
    }
    // len <= MAX_MAP_BYTES, so it fits in the u32 prefix.
    dst[start..start + LENGTH_PREFIX].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// One frame (length prefix and map) as bytes.
pub fn encode_frame(frame: &Frame) -> Result<Bytes, WireError> {
    let mut buf = BytesMut::new();
    encode_frame_into(frame, &mut buf)?;
    Ok(buf.freeze())
}

/// One frame's map alone, without the length prefix: what goes into a plaintext.
pub fn encode_map(frame: &Frame) -> Result<Bytes, WireError> {
    let mut buf = BytesMut::new();
    encode_frame_into(frame, &mut buf)?;
    Ok(buf.split_off(LENGTH_PREFIX).freeze())
}

/// Appends the `hello` map (no length prefix) to `dst`, keys in protocol order.
pub fn encode_hello(hello: &Hello, dst: &mut BytesMut) {
    dst.reserve(64 + hello.name.len());
    fast::encode_hello(hello, dst);
}

/// Bytes the MessagePack map at the start of `buf` takes (header, keys and values), so that
/// maps sent back to back can be told apart. Refuses anything that is not a whole map.
pub fn map_len(buf: &[u8]) -> Result<usize, WireError> {
    match buf.first() {
        Some(0x80..=0x8f | 0xde | 0xdf) => {}
        _ => return Err(WireError::NotAMap),
    }
    strict::value_len(buf, 0)
}

/// The maps of a plaintext, one or more back to back, each as its own slice (which
/// [`decode_payload`] reads). Stops at the first error.
pub fn split_maps(plaintext: &[u8]) -> SplitMaps<'_> {
    SplitMaps {
        rest: plaintext,
        failed: false,
    }
}

/// Iterator of [`split_maps`].
#[derive(Debug)]
pub struct SplitMaps<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Iterator for SplitMaps<'a> {
    type Item = Result<&'a [u8], WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() || self.failed {
            return None;
        }
        match map_len(self.rest) {
            Ok(len) => {
                let (map, rest) = self.rest.split_at(len);
                self.rest = rest;
                Some(Ok(map))
            }
            Err(err) => {
                self.failed = true;
                Some(Err(err))
            }
        }
    }
}

#[cfg(test)]
mod tests;
