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

/// Read-buffer sizing, done by the decoder since only it sees the buffer between reads.
/// tokio-util grows a read buffer only when it is full *and* nothing consumed can be
/// reclaimed, so a small buffer (good for idle connections) would stay small under a stream
/// and cost one read per frame. The decoder grows it instead when the last read filled it
/// (more is probably waiting), up to `GROW_READ_UNTIL`, and shrinks an emptied buffer above
/// `SHRINK_READ_ABOVE` back to `SHRUNK_READ_BYTES`, so a quiet connection holds little.
const GROW_READ_BY: usize = 8 * 1024;
const GROW_READ_UNTIL: usize = 64 * 1024;
const SHRINK_READ_ABOVE: usize = 4 * 1024;
const SHRUNK_READ_BYTES: usize = 1024;

/// Called when the decoder needs more bytes: if the last read filled the buffer (no room was
/// left unfilled; consuming frames lowers length and capacity alike), make room for more.
fn grow_if_filled(src: &mut BytesMut) {
    if src.capacity() == src.len() && src.capacity() < GROW_READ_UNTIL {
        src.reserve(GROW_READ_BY);
    }
}

/// One frame of the protocol. Field order is the order of docs/protocol.md, and it is the
/// order of the keys on the wire.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Frame {
    /// First frame on every connection, from both sides.
    Hello {
        /// The protocol version, 1.
        protocol: u64,
        /// The sender's random node id.
        node_id: u64,
        /// The sender's name.
        name: String,
        /// The port the sender listens on.
        listen_port: u16,
    },
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
    /// Peers the sender knows.
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
    /// That peer's name (may be empty).
    pub name: String,
}

/// Why bytes from a peer could not be read as a frame, or a frame could not be sent.
#[derive(Debug)]
pub enum WireError {
    /// The length prefix announces more than [`MAX_PAYLOAD`] bytes.
    TooLarge {
        /// The announced payload length.
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
    // The frames of a busy connection, written the way every conforming sender writes them
    // (section 2 of docs/protocol.md), are read directly. Anything else, including every
    // malformed input, goes through serde below, which decides and words the errors.
    if let Some(frame) = fast::decode(payload) {
        return Ok(frame);
    }
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
    dst.reserve(LENGTH_PREFIX + fast::size_hint(frame));
    dst.put_u32(0);
    if !fast::encode(frame, dst) {
        let mut writer = dst.writer();
        let encoded = rmp_serde::encode::write_named(&mut writer, frame);
        let dst = writer.into_inner();
        if let Err(err) = encoded {
            dst.truncate(start);
            return Err(WireError::Malformed(err.to_string()));
        }
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
    let mut buf = BytesMut::new();
    encode_frame_into(frame, &mut buf)?;
    Ok(buf.freeze())
}

/// Every frame kind in its canonical form, without serde: the bytes are exactly those
/// `rmp_serde::encode::write_named` writes (keys in protocol order, shortest integer, string,
/// array and map headers), and a payload is read here only if it is in exactly that form,
/// which serde would read to the same frame. Every other payload (keys in another order,
/// extra keys, other integer encodings, anything malformed) goes through serde, which
/// decides, and words the errors.
mod fast {
    use bytes::{BufMut, BytesMut};

    use super::{Frame, PeerEntry};

    /// Bytes `frame`'s payload takes, for reserving room before encoding.
    pub(super) fn size_hint(frame: &Frame) -> usize {
        match frame {
            // map, "type" and the kind, keys and the longest integers: under 64 bytes
            Frame::Chat { text, .. } => 64 + text.len(),
            Frame::Hello { name, .. } => 80 + name.len(),
            Frame::Bye { reason } => 32 + reason.len(),
            Frame::Peers { peers } => {
                24 + peers
                    .iter()
                    .map(|p| 20 + p.addr.len() + p.name.len())
                    .sum::<usize>()
            }
            _ => 32,
        }
    }

    /// Encodes the hot frames; false for the others (left to serde).
    pub(super) fn encode(frame: &Frame, dst: &mut BytesMut) -> bool {
        match frame {
            Frame::Chat {
                id,
                text,
                sent_at_ms,
            } => {
                dst.put_u8(0x84);
                put_str(dst, "type");
                put_str(dst, "chat");
                put_str(dst, "id");
                put_uint(dst, *id);
                put_str(dst, "text");
                put_str(dst, text);
                put_str(dst, "sent_at_ms");
                put_uint(dst, *sent_at_ms);
            }
            Frame::Ack { id } => {
                dst.put_u8(0x82);
                put_str(dst, "type");
                put_str(dst, "ack");
                put_str(dst, "id");
                put_uint(dst, *id);
            }
            Frame::Ping { nonce } | Frame::Pong { nonce } => {
                dst.put_u8(0x82);
                put_str(dst, "type");
                put_str(dst, frame.kind());
                put_str(dst, "nonce");
                put_uint(dst, *nonce);
            }
            Frame::Hello {
                protocol,
                node_id,
                name,
                listen_port,
            } => {
                dst.put_u8(0x85);
                put_str(dst, "type");
                put_str(dst, "hello");
                put_str(dst, "protocol");
                put_uint(dst, *protocol);
                put_str(dst, "node_id");
                put_uint(dst, *node_id);
                put_str(dst, "name");
                put_str(dst, name);
                put_str(dst, "listen_port");
                put_uint(dst, u64::from(*listen_port));
            }
            Frame::GetPeers => {
                dst.put_u8(0x81);
                put_str(dst, "type");
                put_str(dst, "get_peers");
            }
            Frame::Peers { peers } => {
                dst.put_u8(0x82);
                put_str(dst, "type");
                put_str(dst, "peers");
                put_str(dst, "peers");
                put_array_len(dst, peers.len());
                for peer in peers {
                    dst.put_u8(0x82);
                    put_str(dst, "addr");
                    put_str(dst, &peer.addr);
                    put_str(dst, "name");
                    put_str(dst, &peer.name);
                }
            }
            Frame::Bye { reason } => {
                dst.put_u8(0x82);
                put_str(dst, "type");
                put_str(dst, "bye");
                put_str(dst, "reason");
                put_str(dst, reason);
            }
            // Never sent.
            Frame::Unknown => return false,
        }
        true
    }

    /// MessagePack's shortest array header.
    pub(super) fn put_array_len(dst: &mut BytesMut, len: usize) {
        if len < 16 {
            dst.put_u8(0x90 | len as u8);
        } else if len <= usize::from(u16::MAX) {
            dst.put_u8(0xdc);
            dst.put_u16(len as u16);
        } else {
            dst.put_u8(0xdd);
            // More entries cannot be in a frame: the caller refuses the frame.
            dst.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
        }
    }

    /// MessagePack's shortest form of an unsigned integer.
    pub(super) fn put_uint(dst: &mut BytesMut, v: u64) {
        if v < 0x80 {
            dst.put_u8(v as u8);
        } else if v <= u64::from(u8::MAX) {
            dst.put_u8(0xcc);
            dst.put_u8(v as u8);
        } else if v <= u64::from(u16::MAX) {
            dst.put_u8(0xcd);
            dst.put_u16(v as u16);
        } else if v <= u64::from(u32::MAX) {
            dst.put_u8(0xce);
            dst.put_u32(v as u32);
        } else {
            dst.put_u8(0xcf);
            dst.put_u64(v);
        }
    }

    /// MessagePack's shortest form of a string.
    pub(super) fn put_str(dst: &mut BytesMut, s: &str) {
        let len = s.len();
        if len < 32 {
            dst.put_u8(0xa0 | len as u8);
        } else if len <= usize::from(u8::MAX) {
            dst.put_u8(0xd9);
            dst.put_u8(len as u8);
        } else if len <= usize::from(u16::MAX) {
            dst.put_u8(0xda);
            dst.put_u16(len as u16);
        } else {
            dst.put_u8(0xdb);
            // A longer string cannot be in a frame: the caller refuses the frame.
            dst.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
        }
        dst.put_slice(s.as_bytes());
    }

    /// Reads the payload if it is a hot frame in canonical form, else `None`.
    pub(super) fn decode(payload: &[u8]) -> Option<Frame> {
        let mut r = Reader(payload);
        let entries = match r.byte()? {
            m @ 0x81..=0x85 => m - 0x80,
            _ => return None,
        };
        r.key("type")?;
        let frame = match (entries, r.str_bytes()?) {
            (4, b"chat") => {
                r.key("id")?;
                let id = r.uint()?;
                r.key("text")?;
                let text = r.str()?.to_string();
                r.key("sent_at_ms")?;
                let sent_at_ms = r.uint()?;
                Frame::Chat {
                    id,
                    text,
                    sent_at_ms,
                }
            }
            (2, b"ack") => {
                r.key("id")?;
                Frame::Ack { id: r.uint()? }
            }
            (2, b"ping") => {
                r.key("nonce")?;
                Frame::Ping { nonce: r.uint()? }
            }
            (2, b"pong") => {
                r.key("nonce")?;
                Frame::Pong { nonce: r.uint()? }
            }
            (5, b"hello") => {
                r.key("protocol")?;
                let protocol = r.uint()?;
                r.key("node_id")?;
                let node_id = r.uint()?;
                r.key("name")?;
                let name = r.str()?.to_string();
                r.key("listen_port")?;
                // Out of range: serde words the error.
                let listen_port = u16::try_from(r.uint()?).ok()?;
                Frame::Hello {
                    protocol,
                    node_id,
                    name,
                    listen_port,
                }
            }
            (1, b"get_peers") => Frame::GetPeers,
            (2, b"peers") => {
                r.key("peers")?;
                let count = r.array_len()?;
                // Each entry takes at least 13 bytes: a hostile count allocates nothing.
                let mut peers = Vec::with_capacity(count.min(r.0.len() / 13));
                for _ in 0..count {
                    if r.byte()? != 0x82 {
                        return None;
                    }
                    r.key("addr")?;
                    let addr = r.str()?.to_string();
                    r.key("name")?;
                    let name = r.str()?.to_string();
                    peers.push(PeerEntry { addr, name });
                }
                Frame::Peers { peers }
            }
            (2, b"bye") => {
                r.key("reason")?;
                Frame::Bye {
                    reason: r.str()?.to_string(),
                }
            }
            _ => return None,
        };
        r.0.is_empty().then_some(frame)
    }

    struct Reader<'a>(&'a [u8]);

    impl<'a> Reader<'a> {
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            if self.0.len() < n {
                return None;
            }
            let (head, rest) = self.0.split_at(n);
            self.0 = rest;
            Some(head)
        }

        fn byte(&mut self) -> Option<u8> {
            self.take(1).map(|b| b[0])
        }

        fn be(&mut self, n: usize) -> Option<u64> {
            Some(
                self.take(n)?
                    .iter()
                    .fold(0u64, |v, b| (v << 8) | u64::from(*b)),
            )
        }

        /// An unsigned MessagePack integer (any width); `None` for anything else.
        fn uint(&mut self) -> Option<u64> {
            match self.byte()? {
                v @ 0x00..=0x7f => Some(u64::from(v)),
                0xcc => self.be(1),
                0xcd => self.be(2),
                0xce => self.be(4),
                0xcf => self.be(8),
                _ => None,
            }
        }

        /// A MessagePack `str` holding valid UTF-8; `None` for anything else.
        fn str(&mut self) -> Option<&'a str> {
            std::str::from_utf8(self.str_bytes()?).ok()
        }

        /// A MessagePack string's bytes, not checked for UTF-8 (for comparing with a
        /// known ASCII name).
        fn str_bytes(&mut self) -> Option<&'a [u8]> {
            let len = match self.byte()? {
                m @ 0xa0..=0xbf => usize::from(m & 0x1f),
                0xd9 => self.be(1)? as usize,
                0xda => self.be(2)? as usize,
                0xdb => self.be(4)? as usize,
                _ => return None,
            };
            self.take(len)
        }

        /// A MessagePack array header; `None` for anything else.
        fn array_len(&mut self) -> Option<usize> {
            match self.byte()? {
                m @ 0x90..=0x9f => Some(usize::from(m & 0x0f)),
                0xdc => Some(self.be(2)? as usize),
                0xdd => Some(self.be(4)? as usize),
                _ => None,
            }
        }

        fn key(&mut self, want: &str) -> Option<()> {
            (self.str_bytes()? == want.as_bytes()).then_some(())
        }
    }
}

/// tokio-util codec for [`Frame`]s: the Session reads its socket through it.
#[derive(Debug, Default, Clone, Copy)]
pub struct WireCodec;

impl Decoder for WireCodec {
    type Item = Frame;
    type Error = WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        if src.len() < LENGTH_PREFIX {
            grow_if_filled(src);
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
            grow_if_filled(src);
            src.reserve(LENGTH_PREFIX + len - src.len());
            return Ok(None);
        }
        // Read in place, then consumed whatever the outcome.
        let frame = decode_payload(&src[LENGTH_PREFIX..LENGTH_PREFIX + len]);
        src.advance(LENGTH_PREFIX + len);
        // The buffer's allocation is at least what is left plus the frame just consumed.
        if src.is_empty() && src.capacity() + LENGTH_PREFIX + len > SHRINK_READ_ABOVE {
            // The room a large frame needed is not kept for the connection's whole life.
            *src = BytesMut::with_capacity(SHRUNK_READ_BYTES);
        }
        frame.map(Some)
    }
}

impl Encoder<&Frame> for WireCodec {
    type Error = WireError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), WireError> {
        encode_frame_into(frame, dst)
    }
}

// ---- protocol v2: the maps that change, and maps back to back ----
//
// In v2 (docs/protocol-v2.md) a node *is* its static public key: `hello` loses `node_id`
// and travels inside the Noise handshake, `peers` entries carry each peer's key, and a
// transport message's plaintext is one or more maps back to back. Every other map is the
// v1 map above, unchanged.

/// The protocol version v2 nodes announce in their `hello`.
pub const PROTOCOL_VERSION_V2: u64 = 2;

/// Largest map (and largest plaintext of one transport message) in v2: a Noise message is at
/// most 65535 bytes, 16 of which are the authentication tag.
pub const MAX_MAP_BYTES_V2: usize = 65535 - 16;

/// Longest chat text a v2 node sends: what fits in [`MAX_MAP_BYTES_V2`] with the chat's other
/// fields (at most 51 bytes of them).
pub const MAX_TEXT_BYTES_V2: usize = MAX_MAP_BYTES_V2 - 64;

/// Bytes of an X25519 public key, as `peers` entries carry it.
pub const STATIC_KEY_BYTES: usize = 32;

/// Deepest nesting of MessagePack arrays and maps a receiver walks through (in unknown fields
/// a newer peer may add); deeper is refused rather than recursed into.
const MAX_DEPTH: usize = 32;

/// The v2 `hello`: the payload of handshake messages 2 and 3. No `node_id`: the sender's
/// identity is the static key the handshake proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloV2 {
    /// The protocol version, [`PROTOCOL_VERSION_V2`].
    pub protocol: u64,
    /// The sender's name.
    pub name: String,
    /// The port the sender listens on (0: it does not listen, e.g. a one-shot send).
    pub listen_port: u16,
}

impl HelloV2 {
    /// A v2 hello from a node called `name` listening on `listen_port`.
    pub fn new(name: impl Into<String>, listen_port: u16) -> Self {
        HelloV2 {
            protocol: PROTOCOL_VERSION_V2,
            name: name.into(),
            listen_port,
        }
    }
}

/// One entry of a v2 `peers` map: where a peer listens, its name, and its static key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedPeerEntry {
    /// `IP:PORT` (IPv6 as `[IP]:PORT`).
    pub addr: String,
    /// That peer's name (may be empty).
    pub name: String,
    /// That peer's X25519 static public key.
    pub key: [u8; STATIC_KEY_BYTES],
}

/// Appends the v2 `hello` map (no length prefix) to `dst`, keys in protocol order.
pub fn encode_hello_v2(hello: &HelloV2, dst: &mut BytesMut) {
    dst.reserve(64 + hello.name.len());
    dst.put_u8(0x84);
    fast::put_str(dst, "type");
    fast::put_str(dst, "hello");
    fast::put_str(dst, "protocol");
    fast::put_uint(dst, hello.protocol);
    fast::put_str(dst, "name");
    fast::put_str(dst, &hello.name);
    fast::put_str(dst, "listen_port");
    fast::put_uint(dst, u64::from(hello.listen_port));
}

/// Appends the v2 `peers` map (no length prefix) to `dst`: entries `{addr, name, key}` with
/// the key as a 32-byte MessagePack `bin`.
pub fn encode_peers_v2(peers: &[KeyedPeerEntry], dst: &mut BytesMut) {
    dst.reserve(
        24 + peers
            .iter()
            .map(|p| 60 + p.addr.len() + p.name.len())
            .sum::<usize>(),
    );
    dst.put_u8(0x82);
    fast::put_str(dst, "type");
    fast::put_str(dst, "peers");
    fast::put_str(dst, "peers");
    fast::put_array_len(dst, peers.len());
    for peer in peers {
        dst.put_u8(0x83);
        fast::put_str(dst, "addr");
        fast::put_str(dst, &peer.addr);
        fast::put_str(dst, "name");
        fast::put_str(dst, &peer.name);
        fast::put_str(dst, "key");
        dst.put_u8(0xc4);
        dst.put_u8(STATIC_KEY_BYTES as u8);
        dst.put_slice(&peer.key);
    }
}

/// Reads a v2 `hello` map. Strict: the payload is exactly one map, `type` is `"hello"`,
/// `protocol` and `listen_port` unsigned integers (the port at most 65535), `name` a UTF-8
/// string, each present once. Keys may come in any order; unknown keys are skipped, so that
/// a newer peer can add fields. Whether `protocol` is 2 is the caller's check.
pub fn decode_hello_v2(payload: &[u8]) -> Result<HelloV2, WireError> {
    let mut map = strict::Map::open(payload, "hello")?;
    let (mut protocol, mut name, mut listen_port) = (None, None, None);
    while let Some(key) = map.next_key()? {
        match key {
            "protocol" => strict::once(&mut protocol, "protocol", map.uint("protocol")?)?,
            "name" => strict::once(&mut name, "name", map.str("name")?.to_string())?,
            "listen_port" => {
                let port = u16::try_from(map.uint("listen_port")?)
                    .map_err(|_| WireError::Malformed("listen_port is over 65535".into()))?;
                strict::once(&mut listen_port, "listen_port", port)?
            }
            _ => map.skip_value()?,
        }
    }
    map.close()?;
    Ok(HelloV2 {
        protocol: strict::required(protocol, "protocol")?,
        name: strict::required(name, "name")?,
        listen_port: strict::required(listen_port, "listen_port")?,
    })
}

/// Reads a v2 `peers` map. Strict as [`decode_hello_v2`]; each entry is a map with `addr` and
/// `name` strings and `key`, a MessagePack `bin` of exactly 32 bytes (not a string, not an
/// array of integers).
pub fn decode_peers_v2(payload: &[u8]) -> Result<Vec<KeyedPeerEntry>, WireError> {
    let mut map = strict::Map::open(payload, "peers")?;
    let mut peers = None;
    while let Some(key) = map.next_key()? {
        match key {
            "peers" => {
                let entries = map.array_len("peers")?;
                // Each entry takes at least 50 bytes: a hostile count allocates nothing.
                let mut list = Vec::with_capacity(entries.min(map.remaining() / 50));
                for _ in 0..entries {
                    list.push(map.keyed_peer_entry()?);
                }
                strict::once(&mut peers, "peers", list)?;
            }
            _ => map.skip_value()?,
        }
    }
    map.close()?;
    strict::required(peers, "peers")
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

/// The maps of a v2 plaintext, one or more back to back, each as its own slice (which
/// [`decode_payload`] reads as one v1 payload). Stops at the first error.
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

/// Strict MessagePack reading for the v2 maps: every length is checked against what is
/// there before anything is allocated, and every error says which field.
mod strict {
    use super::{KeyedPeerEntry, WireError, MAX_DEPTH, STATIC_KEY_BYTES};

    fn malformed(why: impl Into<String>) -> WireError {
        WireError::Malformed(why.into())
    }

    fn truncated() -> WireError {
        malformed("the map ends before its last field")
    }

    pub(super) fn once<T>(slot: &mut Option<T>, key: &str, value: T) -> Result<(), WireError> {
        if slot.replace(value).is_some() {
            return Err(malformed(format!("`{key}` appears twice")));
        }
        Ok(())
    }

    pub(super) fn required<T>(slot: Option<T>, key: &str) -> Result<T, WireError> {
        slot.ok_or_else(|| malformed(format!("missing field `{key}`")))
    }

    /// A reader over one top-level map of a given `type`.
    pub(super) struct Map<'a> {
        rest: &'a [u8],
        entries_left: usize,
    }

    impl<'a> Map<'a> {
        /// Opens the payload's map and checks that its `type` is `kind`, wherever the key is.
        pub(super) fn open(payload: &'a [u8], kind: &str) -> Result<Self, WireError> {
            let mut reader = Map {
                rest: payload,
                entries_left: 0,
            };
            reader.entries_left = reader.map_header()?;
            // `type` first is what every sender writes; look for it anywhere all the same.
            let mut probe = Map {
                rest: reader.rest,
                entries_left: reader.entries_left,
            };
            let mut found = None;
            while let Some(key) = probe.next_key()? {
                if key == "type" {
                    let value = probe.str("type")?;
                    once(&mut found, "type", value)?;
                } else {
                    probe.skip_value()?;
                }
            }
            probe.close()?;
            match found {
                Some(found) if found == kind => Ok(reader),
                Some(found) => Err(malformed(format!("expected a `{kind}` map, got `{found}`"))),
                None => Err(malformed("missing field `type`")),
            }
        }

        pub(super) fn remaining(&self) -> usize {
            self.rest.len()
        }

        fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
            if self.rest.len() < n {
                return Err(truncated());
            }
            let (head, rest) = self.rest.split_at(n);
            self.rest = rest;
            Ok(head)
        }

        fn byte(&mut self) -> Result<u8, WireError> {
            Ok(self.take(1)?[0])
        }

        fn be(&mut self, n: usize) -> Result<u64, WireError> {
            Ok(self
                .take(n)?
                .iter()
                .fold(0u64, |v, b| (v << 8) | u64::from(*b)))
        }

        fn map_header(&mut self) -> Result<usize, WireError> {
            match self.rest.first() {
                Some(0x80..=0x8f) => Ok(usize::from(self.byte()? & 0x0f)),
                Some(0xde) => {
                    self.byte()?;
                    Ok(self.be(2)? as usize)
                }
                Some(0xdf) => {
                    self.byte()?;
                    Ok(self.be(4)? as usize)
                }
                _ => Err(WireError::NotAMap),
            }
        }

        /// The next key of this map, `None` after the last. Keys are strings.
        pub(super) fn next_key(&mut self) -> Result<Option<&'a str>, WireError> {
            if self.entries_left == 0 {
                return Ok(None);
            }
            self.entries_left -= 1;
            self.str("a key").map(Some)
        }

        /// The map had no bytes after its last entry.
        pub(super) fn close(&self) -> Result<(), WireError> {
            match self.rest.len() {
                0 => Ok(()),
                n => Err(WireError::TrailingBytes(n)),
            }
        }

        pub(super) fn uint(&mut self, field: &str) -> Result<u64, WireError> {
            match self.byte()? {
                v @ 0x00..=0x7f => Ok(u64::from(v)),
                0xcc => self.be(1),
                0xcd => self.be(2),
                0xce => self.be(4),
                0xcf => self.be(8),
                _ => Err(malformed(format!("`{field}` is not an unsigned integer"))),
            }
        }

        pub(super) fn str(&mut self, field: &str) -> Result<&'a str, WireError> {
            let len = match self.byte()? {
                m @ 0xa0..=0xbf => usize::from(m & 0x1f),
                0xd9 => self.be(1)? as usize,
                0xda => self.be(2)? as usize,
                0xdb => self.be(4)? as usize,
                _ => return Err(malformed(format!("`{field}` is not a string"))),
            };
            std::str::from_utf8(self.take(len)?)
                .map_err(|_| malformed(format!("`{field}` is not valid UTF-8")))
        }

        pub(super) fn array_len(&mut self, field: &str) -> Result<usize, WireError> {
            match self.byte()? {
                m @ 0x90..=0x9f => Ok(usize::from(m & 0x0f)),
                0xdc => Ok(self.be(2)? as usize),
                0xdd => Ok(self.be(4)? as usize),
                _ => Err(malformed(format!("`{field}` is not an array"))),
            }
        }

        fn key_bytes(&mut self) -> Result<[u8; STATIC_KEY_BYTES], WireError> {
            let len = match self.byte()? {
                0xc4 => self.be(1)? as usize,
                0xc5 => self.be(2)? as usize,
                0xc6 => self.be(4)? as usize,
                _ => return Err(malformed("`key` is not a MessagePack bin")),
            };
            if len != STATIC_KEY_BYTES {
                return Err(malformed(format!(
                    "`key` is {len} bytes, not {STATIC_KEY_BYTES}"
                )));
            }
            let mut key = [0u8; STATIC_KEY_BYTES];
            key.copy_from_slice(self.take(len)?);
            Ok(key)
        }

        pub(super) fn skip_value(&mut self) -> Result<(), WireError> {
            let len = value_len(self.rest, 0)?;
            self.take(len).map(|_| ())
        }

        pub(super) fn keyed_peer_entry(&mut self) -> Result<KeyedPeerEntry, WireError> {
            let entries = self
                .map_header()
                .map_err(|_| malformed("a `peers` entry is not a map"))?;
            let (mut addr, mut name, mut key) = (None, None, None);
            for _ in 0..entries {
                match self.str("a key")? {
                    "addr" => once(&mut addr, "addr", self.str("addr")?.to_string())?,
                    "name" => once(&mut name, "name", self.str("name")?.to_string())?,
                    "key" => once(&mut key, "key", self.key_bytes()?)?,
                    _ => self.skip_value()?,
                }
            }
            Ok(KeyedPeerEntry {
                addr: required(addr, "addr")?,
                name: required(name, "name")?,
                key: required(key, "key")?,
            })
        }
    }

    /// Bytes the MessagePack value at the start of `buf` takes, checked to be all there.
    pub(super) fn value_len(buf: &[u8], depth: usize) -> Result<usize, WireError> {
        if depth > MAX_DEPTH {
            return Err(malformed(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        let be = |at: usize, n: usize| -> Result<usize, WireError> {
            let bytes = buf.get(at..at + n).ok_or_else(truncated)?;
            Ok(bytes.iter().fold(0usize, |v, b| (v << 8) | usize::from(*b)))
        };
        let marker = *buf.first().ok_or_else(truncated)?;
        // (bytes before the payload, payload bytes) or (header bytes, child values)
        let (head, body, children): (usize, usize, usize) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (1, 0, 0),
            0x80..=0x8f => (1, 0, 2 * usize::from(marker & 0x0f)),
            0x90..=0x9f => (1, 0, usize::from(marker & 0x0f)),
            0xa0..=0xbf => (1, usize::from(marker & 0x1f), 0),
            0xc1 => return Err(malformed("0xc1 is not a MessagePack value")),
            0xc4 | 0xd9 => (2, be(1, 1)?, 0),
            0xc5 | 0xda => (3, be(1, 2)?, 0),
            0xc6 | 0xdb => (5, be(1, 4)?, 0),
            0xc7 => (3, be(1, 1)?, 0),
            0xc8 => (4, be(1, 2)?, 0),
            0xc9 => (6, be(1, 4)?, 0),
            0xca => (1, 4, 0),
            0xcb => (1, 8, 0),
            0xcc | 0xd0 => (1, 1, 0),
            0xcd | 0xd1 => (1, 2, 0),
            0xce | 0xd2 => (1, 4, 0),
            0xcf | 0xd3 => (1, 8, 0),
            0xd4 => (2, 1, 0),
            0xd5 => (2, 2, 0),
            0xd6 => (2, 4, 0),
            0xd7 => (2, 8, 0),
            0xd8 => (2, 16, 0),
            0xdc => (3, 0, be(1, 2)?),
            0xdd => (5, 0, be(1, 4)?),
            0xde => (3, 0, 2 * be(1, 2)?),
            0xdf => (5, 0, 2 * be(1, 4)?),
        };
        let mut at = head
            .checked_add(body)
            .filter(|end| *end <= buf.len())
            .ok_or_else(truncated)?;
        for _ in 0..children {
            // Every child takes a byte at least: a hostile count ends at the buffer's end.
            if at >= buf.len() {
                return Err(truncated());
            }
            at += value_len(&buf[at..], depth + 1)?;
        }
        Ok(at)
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

    /// Frames of every kind, at every integer, string and array width.
    fn hot_frames() -> Vec<Frame> {
        let ints = [
            0,
            1,
            0x7f,
            0x80,
            0xff,
            0x100,
            0xffff,
            0x1_0000,
            0xffff_ffff,
            0x1_0000_0000,
            u64::MAX,
        ];
        let texts = [0, 1, 31, 32, 255, 256, 4096, MAX_TEXT_BYTES]
            .into_iter()
            .map(|n| "é".repeat(n / 2) + &"x".repeat(n % 2))
            .chain(["", "ünï ✓ 🎉", "\u{0}\u{1b}[2J"].map(String::from));
        let mut frames = Vec::new();
        for (i, text) in texts.enumerate() {
            frames.push(Frame::Chat {
                id: ints[i % ints.len()],
                text,
                sent_at_ms: ints[(i + 3) % ints.len()],
            });
        }
        for v in ints {
            frames.extend([
                Frame::Ack { id: v },
                Frame::Ping { nonce: v },
                Frame::Pong { nonce: v },
                Frame::Hello {
                    protocol: v,
                    node_id: u64::MAX - v,
                    name: "ünï".repeat((v % 40) as usize),
                    listen_port: (v % 65536) as u16,
                },
                Frame::Bye {
                    reason: "q".repeat((v % 300) as usize),
                },
            ]);
        }
        frames.push(Frame::GetPeers);
        for n in [0, 1, 15, 16, 300, 1000] {
            let peers = (0..n)
                .map(|i| PeerEntry {
                    addr: format!("10.0.{}.{}:{}", i / 256, i % 256, 1000 + i),
                    name: "n".repeat(i % 40),
                })
                .collect();
            frames.push(Frame::Peers { peers });
        }
        frames.push(Frame::Peers {
            peers: vec![PeerEntry {
                addr: "[::1]:9001".into(),
                name: String::new(),
            }],
        });
        frames
    }

    #[test]
    fn fast_array_headers_match_rmp_serde_beyond_a_frame() {
        // 65536 entries do not fit in a frame, but the header must still be serde's.
        for n in [65535usize, 65536] {
            let peers = vec![
                PeerEntry {
                    addr: String::new(),
                    name: String::new()
                };
                n
            ];
            let frame = Frame::Peers { peers };
            let mut fast = BytesMut::new();
            assert!(fast::encode(&frame, &mut fast));
            assert_eq!(&fast[..], &rmp_serde::to_vec_named(&frame).unwrap()[..]);
        }
    }

    #[test]
    fn fast_encoding_is_byte_for_byte_rmp_serde() {
        for frame in hot_frames() {
            let mut fast = BytesMut::new();
            encode_frame_into(&frame, &mut fast).unwrap();
            let payload = rmp_serde::to_vec_named(&frame).unwrap();
            assert_eq!(&fast[4..], &payload[..], "{}", frame.kind());
            assert_eq!(&fast[..4], &(payload.len() as u32).to_be_bytes());
        }
    }

    #[test]
    fn fast_decoding_agrees_with_serde() {
        for frame in hot_frames() {
            let payload = rmp_serde::to_vec_named(&frame).unwrap();
            assert_eq!(fast::decode(&payload).as_ref(), Some(&frame));
            let serde: Frame = rmp_serde::from_slice(&payload).unwrap();
            assert_eq!(serde, frame);
            // Cut short, or with a byte more: not the fast path's to judge.
            assert!(fast::decode(&payload[..payload.len() - 1]).is_none());
            let mut longer = payload.clone();
            longer.push(0xc0);
            assert!(fast::decode(&longer).is_none());
            assert!(matches!(
                decode_payload(&longer),
                Err(WireError::TrailingBytes(1))
            ));
        }
    }

    #[test]
    fn non_canonical_hot_frames_still_decode_through_serde() {
        // Keys in another order, a signed integer, a bin text, an extra key: all valid.
        let cases = [
            serde_json::json!({"id": 7, "type": "ack"}),
            serde_json::json!({"type": "ack", "id": 7, "extra": true}),
            serde_json::json!({"type": "chat", "sent_at_ms": 1, "text": "hi", "id": 7}),
        ];
        for case in cases {
            let payload = rmp_serde::to_vec_named(&case).unwrap();
            assert!(fast::decode(&payload).is_none());
            assert!(decode_payload(&payload).is_ok(), "{case}");
        }
        // ack with id as int8 (0xd0 0x07): serde accepts it, the fast path leaves it.
        let signed = [
            0x82, 0xa4, b't', b'y', b'p', b'e', 0xa3, b'a', b'c', b'k', 0xa2, b'i', b'd', 0xd0, 7,
        ];
        assert!(fast::decode(&signed).is_none());
        assert_eq!(decode_payload(&signed).unwrap(), Frame::Ack { id: 7 });
        // chat whose text is invalid UTF-8: refused through serde, with a reason that says so.
        let mut bad = vec![
            0x84, 0xa4, b't', b'y', b'p', b'e', 0xa4, b'c', b'h', b'a', b't',
        ];
        bad.extend([
            0xa2, b'i', b'd', 1, 0xa4, b't', b'e', b'x', b't', 0xa1, 0xff,
        ]);
        bad.extend([0xaa]);
        bad.extend(b"sent_at_ms");
        bad.push(1);
        assert!(fast::decode(&bad).is_none());
        let err = decode_payload(&bad).unwrap_err().to_string();
        assert!(err.contains("not valid UTF-8"), "{err}");
        // hello with listen_port out of range: serde's error, not a fast-path frame
        let hello = rmp_serde::to_vec_named(&serde_json::json!({
            "type": "hello", "protocol": 1, "node_id": 1, "name": "x", "listen_port": 70000
        }))
        .unwrap();
        assert!(fast::decode(&hello).is_none());
        let err = decode_payload(&hello).unwrap_err().to_string();
        assert!(err.contains("expected u16"), "{err}");
        // a peers entry with its keys the other way round, or an extra key: still valid
        for entry in [
            serde_json::json!({"name": "n", "addr": "1.2.3.4:5"}),
            serde_json::json!({"addr": "1.2.3.4:5", "name": "n", "x": 1}),
        ] {
            let peers = rmp_serde::to_vec_named(&serde_json::json!({
                "type": "peers", "peers": [entry]
            }))
            .unwrap();
            assert!(fast::decode(&peers).is_none());
            assert!(matches!(decode_payload(&peers), Ok(Frame::Peers { .. })));
        }
        // a peers frame announcing more entries than it holds
        let mut short = vec![0x82, 0xa4, b't', b'y', b'p', b'e', 0xa5];
        short.extend(b"peers");
        short.push(0xa5);
        short.extend(b"peers");
        short.extend([0xdd, 0xff, 0xff, 0xff, 0xff]);
        assert!(fast::decode(&short).is_none());
        assert!(decode_payload(&short).is_err());
        // a key twice is an error, never a fast-path frame
        let twice = [
            0x82, 0xa4, b't', b'y', b'p', b'e', 0xa3, b'a', b'c', b'k', 0xa4, b't', b'y', b'p',
            b'e', 0xa3, b'a', b'c', b'k',
        ];
        assert!(fast::decode(&twice).is_none());
        assert!(decode_payload(&twice).is_err());
    }

    #[test]
    fn a_large_frame_leaves_no_large_read_buffer_behind() {
        let peers = (0..1000)
            .map(|i| PeerEntry {
                addr: format!("10.0.{}.{}:9000", i / 256, i % 256),
                name: format!("peer{i}"),
            })
            .collect();
        let frame = Frame::Peers { peers };
        let mut buf = BytesMut::with_capacity(8 * 1024);
        encode_frame_into(&frame, &mut buf).unwrap();
        assert!(buf.capacity() > SHRINK_READ_ABOVE);
        assert_eq!(WireCodec.decode(&mut buf).unwrap(), Some(frame));
        assert!(buf.is_empty() && buf.capacity() <= SHRUNK_READ_BYTES * 2);
        // tokio-util's default 8 KiB, emptied: shrunk too. A small one is left alone.
        let mut buf = BytesMut::with_capacity(8 * 1024);
        encode_frame_into(&Frame::Ack { id: 1 }, &mut buf).unwrap();
        WireCodec.decode(&mut buf).unwrap();
        assert!(buf.capacity() <= SHRUNK_READ_BYTES * 2);
        let mut buf = BytesMut::with_capacity(2 * 1024);
        encode_frame_into(&Frame::Ack { id: 1 }, &mut buf).unwrap();
        WireCodec.decode(&mut buf).unwrap();
        assert!(buf.capacity() >= 2 * 1024 - 32, "{}", buf.capacity());
    }

    #[test]
    fn a_small_read_buffer_grows_when_reads_fill_it() {
        // A 256-byte buffer filled by one read: a frame and a half of a stream.
        let chat = encode_frame(&Frame::Chat {
            id: 1,
            text: "x".repeat(150),
            sent_at_ms: 0,
        })
        .unwrap();
        let mut buf = BytesMut::with_capacity(256);
        while buf.len() < buf.capacity() {
            let room = buf.capacity() - buf.len();
            buf.extend_from_slice(&chat[..room.min(chat.len())]);
        }
        assert!(WireCodec.decode(&mut buf).unwrap().is_some());
        assert!(WireCodec.decode(&mut buf).unwrap().is_none());
        assert!(
            buf.capacity() - buf.len() >= GROW_READ_BY,
            "room for a real read"
        );
        // A read that left room unfilled: no growth.
        let mut buf = BytesMut::with_capacity(256);
        buf.extend_from_slice(&chat[..100]);
        assert!(WireCodec.decode(&mut buf).unwrap().is_none());
        assert!(buf.capacity() < 1024);
    }

    #[test]
    fn v2_hello_decodes_in_any_key_order_and_refuses_what_is_not_a_hello() {
        let hello = HelloV2::new("ünï", 9000);
        let mut canonical = BytesMut::new();
        encode_hello_v2(&hello, &mut canonical);
        assert_eq!(decode_hello_v2(&canonical).unwrap(), hello);
        let reordered = rmp_serde::to_vec_named(&serde_json::json!({
            "listen_port": 9000, "name": "ünï", "node_id": 5, "type": "hello", "protocol": 2
        }))
        .unwrap();
        assert_eq!(decode_hello_v2(&reordered).unwrap(), hello);
        let bad = [
            serde_json::json!({"type": "hello", "protocol": 2, "name": "x"}),
            serde_json::json!({"type": "chat", "protocol": 2, "name": "x", "listen_port": 1}),
            serde_json::json!({"protocol": 2, "name": "x", "listen_port": 1}),
            serde_json::json!({"type": "hello", "protocol": 2, "name": 5, "listen_port": 1}),
            serde_json::json!({"type": "hello", "protocol": -1, "name": "x", "listen_port": 1}),
            serde_json::json!({"type": "hello", "protocol": 2, "name": "x", "listen_port": 70000}),
            serde_json::json!(["hello", 2, "x", 1]),
        ];
        for case in bad {
            let payload = rmp_serde::to_vec_named(&case).unwrap();
            assert!(decode_hello_v2(&payload).is_err(), "{case}");
        }
        let mut trailing = canonical.to_vec();
        trailing.push(0xc0);
        assert!(matches!(
            decode_hello_v2(&trailing),
            Err(WireError::TrailingBytes(1))
        ));
        // A key twice, and every truncation: errors, never a panic.
        let mut twice = vec![0x85];
        twice.extend_from_slice(&canonical[1..]);
        twice.extend_from_slice(&[0xa4, b'n', b'a', b'm', b'e', 0xa1, b'y']);
        assert!(decode_hello_v2(&twice).is_err());
        for cut in 0..canonical.len() {
            assert!(decode_hello_v2(&canonical[..cut]).is_err());
        }
    }

    #[test]
    fn maps_back_to_back_are_split_whole_and_anything_else_is_refused() {
        let mut plaintext = BytesMut::new();
        let frames = [
            Frame::Chat {
                id: 1,
                text: "x".repeat(300),
                sent_at_ms: 2,
            },
            Frame::Ack { id: 1 },
            Frame::Peers {
                peers: vec![PeerEntry {
                    addr: "1.2.3.4:5".into(),
                    name: "n".into(),
                }],
            },
        ];
        for frame in &frames {
            plaintext.extend_from_slice(&rmp_serde::to_vec_named(frame).unwrap());
        }
        // An unknown map with nested values of every kind: skipped whole.
        let unknown = rmp_serde::to_vec_named(&serde_json::json!({
            "type": "typing", "nested": {"a": [1, -2, 3.5, null, true, "s", {"b": []}]}
        }))
        .unwrap();
        plaintext.extend_from_slice(&unknown);
        let maps: Vec<&[u8]> = split_maps(&plaintext).map(|m| m.unwrap()).collect();
        assert_eq!(maps.len(), 4);
        for (map, frame) in maps.iter().zip(&frames) {
            assert_eq!(&decode_payload(map).unwrap(), frame);
        }
        assert_eq!(decode_payload(maps[3]).unwrap(), Frame::Unknown);
        // Cut anywhere inside the last map: the whole maps before it, then an error.
        let cut = &plaintext[..plaintext.len() - 1];
        let results: Vec<_> = split_maps(cut).collect();
        assert_eq!(results.len(), 4);
        assert!(results[..3].iter().all(Result::is_ok));
        assert!(results[3].is_err());
        // Not a map, a hostile count, nesting too deep: errors.
        assert!(matches!(map_len(&[0x01]), Err(WireError::NotAMap)));
        assert!(map_len(&[0xdf, 0xff, 0xff, 0xff, 0xff]).is_err());
        let mut deep = vec![0x81, 0xa1, b'k'];
        deep.extend(std::iter::repeat_n(0x91, 100));
        deep.push(0x01);
        assert!(map_len(&deep).is_err());
        assert!(map_len(&[0x81, 0xa1, b'k', 0xc1]).is_err());
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
