//! Every frame kind in its canonical form, without serde: the bytes are exactly those
//! `rmp_serde::encode::write_named` would write (keys in protocol order, shortest integer, string,
//! array and map headers), and a payload is read here only if it is in exactly that form,
//! which serde would read to the same frame. Every other payload (keys in another order,
//! extra keys, other integer encodings, anything malformed) goes through the strict reader or
//! serde, which decide, and word the errors.

use bytes::{BufMut, BytesMut};

use super::{Frame, Hello, STATIC_KEY_BYTES};

/// Bytes `frame`'s payload takes, for reserving room before encoding.
pub(crate) fn size_hint(frame: &Frame) -> usize {
    match frame {
        // map, "type" and the kind, keys and the longest integers: under 64 bytes
        Frame::Chat { text, .. } => 64 + text.len(),
        Frame::Hello(hello) => 64 + hello.name.len(),
        Frame::Bye { reason } => 32 + reason.len(),
        Frame::Peers { peers } => {
            24 + peers
                .iter()
                .map(|p| 60 + p.addr.len() + p.name.len())
                .sum::<usize>()
        }
        _ => 32,
    }
}

/// Encodes the hot frames; false for the others (left to serde).
pub(crate) fn encode(frame: &Frame, dst: &mut BytesMut) -> bool {
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
        Frame::Hello(hello) => encode_hello(hello, dst),
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
                dst.put_u8(0x83);
                put_str(dst, "addr");
                put_str(dst, &peer.addr);
                put_str(dst, "name");
                put_str(dst, &peer.name);
                put_str(dst, "key");
                dst.put_u8(0xc4);
                dst.put_u8(STATIC_KEY_BYTES as u8);
                dst.put_slice(peer.key.as_bytes());
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

/// The `hello` map, keys in protocol order.
pub(crate) fn encode_hello(hello: &Hello, dst: &mut BytesMut) {
    dst.put_u8(0x84);
    put_str(dst, "type");
    put_str(dst, "hello");
    put_str(dst, "protocol");
    put_uint(dst, hello.protocol);
    put_str(dst, "name");
    put_str(dst, &hello.name);
    put_str(dst, "listen_port");
    put_uint(dst, u64::from(hello.listen_port));
}

/// MessagePack's shortest array header.
pub(crate) fn put_array_len(dst: &mut BytesMut, len: usize) {
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
pub(crate) fn put_uint(dst: &mut BytesMut, v: u64) {
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
pub(crate) fn put_str(dst: &mut BytesMut, s: &str) {
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
pub(crate) fn decode(payload: &[u8]) -> Option<Frame> {
    let mut r = Reader(payload);
    let entries = match r.byte()? {
        m @ 0x81..=0x84 => m - 0x80,
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
        (1, b"get_peers") => Frame::GetPeers,
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

    fn key(&mut self, want: &str) -> Option<()> {
        (self.str_bytes()? == want.as_bytes()).then_some(())
    }
}
