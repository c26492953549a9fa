//! Strict MessagePack reading for the maps whose every field is checked by hand (`hello`,
//! and `peers` with its 32-byte `bin` keys), and the measuring of maps sent back to back:
//! every length is checked against what is there before anything is allocated, and every
//! error says which field.

use super::{Hello, PeerEntry, WireError, MAX_DEPTH, STATIC_KEY_BYTES};
use crate::key::PeerKey;

/// Reads a `hello` map. Strict: the payload is exactly one map, `type` is `"hello"`,
/// `protocol` and `listen_port` unsigned integers (the port at most 65535), `name` a UTF-8
/// string, each present once. Keys may come in any order; unknown keys are skipped, so that
/// a newer peer can add fields. Whether `protocol` is 2 is the caller's check.
pub fn decode_hello(payload: &[u8]) -> Result<Hello, WireError> {
    let mut map = Map::open(payload, "hello")?;
    let (mut protocol, mut name, mut listen_port) = (None, None, None);
    while let Some(key) = map.next_key()? {
        match key {
            "protocol" => once(&mut protocol, "protocol", map.uint("protocol")?)?,
            "name" => once(&mut name, "name", map.str("name")?.to_string())?,
            "listen_port" => {
                let port = u16::try_from(map.uint("listen_port")?)
                    .map_err(|_| WireError::Malformed("listen_port is over 65535".into()))?;
                once(&mut listen_port, "listen_port", port)?
            }
            _ => map.skip_value()?,
        }
    }
    map.close()?;
    Ok(Hello {
        protocol: required(protocol, "protocol")?,
        name: required(name, "name")?,
        listen_port: required(listen_port, "listen_port")?,
    })
}

/// Reads a `peers` map. Strict as [`decode_hello`]; each entry is a map with `addr` and
/// `name` strings and `key`, a MessagePack `bin` of exactly 32 bytes (not a string, not an
/// array of integers).
pub fn decode_peers(payload: &[u8]) -> Result<Vec<PeerEntry>, WireError> {
    let mut map = Map::open(payload, "peers")?;
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
                once(&mut peers, "peers", list)?;
            }
            _ => map.skip_value()?,
        }
    }
    map.close()?;
    required(peers, "peers")
}

/// The value of the map's top-level `type` key, if it has exactly one that is a string and
/// the map is whole. `None` for anything else: serde then words the error.
pub(crate) fn kind_of(payload: &[u8]) -> Option<String> {
    let mut map = Map {
        rest: payload,
        entries_left: 0,
    };
    map.entries_left = map.map_header().ok()?;
    let mut found = None;
    while let Some(key) = map.next_key().ok()? {
        if key == "type" {
            once(&mut found, "type", map.str("type").ok()?).ok()?;
        } else {
            map.skip_value().ok()?;
        }
    }
    found.map(str::to_string)
}

fn malformed(why: impl Into<String>) -> WireError {
    WireError::Malformed(why.into())
}

fn truncated() -> WireError {
    malformed("the map ends before its last field")
}

pub(crate) fn once<T>(slot: &mut Option<T>, key: &str, value: T) -> Result<(), WireError> {
    if slot.replace(value).is_some() {
        return Err(malformed(format!("`{key}` appears twice")));
    }
    Ok(())
}

pub(crate) fn required<T>(slot: Option<T>, key: &str) -> Result<T, WireError> {
    slot.ok_or_else(|| malformed(format!("missing field `{key}`")))
}

/// A reader over one top-level map of a given `type`.
pub(crate) struct Map<'a> {
    rest: &'a [u8],
    entries_left: usize,
}

impl<'a> Map<'a> {
    /// Opens the payload's map and checks that its `type` is `kind`, wherever the key is.
    pub(crate) fn open(payload: &'a [u8], kind: &str) -> Result<Self, WireError> {
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

    pub(crate) fn remaining(&self) -> usize {
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
    pub(crate) fn next_key(&mut self) -> Result<Option<&'a str>, WireError> {
        if self.entries_left == 0 {
            return Ok(None);
        }
        self.entries_left -= 1;
        self.str("a key").map(Some)
    }

    /// The map had no bytes after its last entry.
    pub(crate) fn close(&self) -> Result<(), WireError> {
        match self.rest.len() {
            0 => Ok(()),
            n => Err(WireError::TrailingBytes(n)),
        }
    }

    pub(crate) fn uint(&mut self, field: &str) -> Result<u64, WireError> {
        match self.byte()? {
            v @ 0x00..=0x7f => Ok(u64::from(v)),
            0xcc => self.be(1),
            0xcd => self.be(2),
            0xce => self.be(4),
            0xcf => self.be(8),
            _ => Err(malformed(format!("`{field}` is not an unsigned integer"))),
        }
    }

    pub(crate) fn str(&mut self, field: &str) -> Result<&'a str, WireError> {
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

    pub(crate) fn array_len(&mut self, field: &str) -> Result<usize, WireError> {
        match self.byte()? {
            m @ 0x90..=0x9f => Ok(usize::from(m & 0x0f)),
            0xdc => Ok(self.be(2)? as usize),
            0xdd => Ok(self.be(4)? as usize),
            _ => Err(malformed(format!("`{field}` is not an array"))),
        }
    }

    fn key(&mut self) -> Result<PeerKey, WireError> {
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
        PeerKey::from_slice(self.take(len)?).ok_or_else(truncated)
    }

    pub(crate) fn skip_value(&mut self) -> Result<(), WireError> {
        let len = value_len(self.rest, 0)?;
        self.take(len).map(|_| ())
    }

    pub(crate) fn keyed_peer_entry(&mut self) -> Result<PeerEntry, WireError> {
        let entries = self
            .map_header()
            .map_err(|_| malformed("a `peers` entry is not a map"))?;
        let (mut addr, mut name, mut key) = (None, None, None);
        for _ in 0..entries {
            match self.str("a key")? {
                "addr" => once(&mut addr, "addr", self.str("addr")?.to_string())?,
                "name" => once(&mut name, "name", self.str("name")?.to_string())?,
                "key" => once(&mut key, "key", self.key()?)?,
                _ => self.skip_value()?,
            }
        }
        Ok(PeerEntry {
            addr: required(addr, "addr")?,
            name: required(name, "name")?,
            key: required(key, "key")?,
        })
    }
}

/// Bytes the MessagePack value at the start of `buf` takes, checked to be all there.
///
/// A loop over the values with a stack of the containers still open, not a call per value:
/// every map read from a peer goes through here (a chat is nine values), and the recursive
/// version cost about 1,000 instructions per chat (docs/performance.md, fan-out eighth
/// round). `value_len_recursive` (wire/tests.rs) is that version, kept as the model the
/// property tests compare this one with.
pub(crate) fn value_len(buf: &[u8], depth: usize) -> Result<usize, WireError> {
    // Children still to read, per open container; the next value's depth is `depth + open`.
    let mut left = [0usize; MAX_DEPTH + 1];
    let mut open = 0;
    let mut at = 0;
    loop {
        if depth + open > MAX_DEPTH {
            return Err(malformed(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        let (head, body, children) = value_header(&buf[at..])?;
        at = head
            .checked_add(body)
            .and_then(|len| at.checked_add(len))
            .filter(|end| *end <= buf.len())
            .ok_or_else(truncated)?;
        if children > 0 {
            // Every child takes a byte at least: a hostile count ends at the buffer's end.
            if at >= buf.len() {
                return Err(truncated());
            }
            left[open] = children;
            open += 1;
            continue;
        }
        // A value ended: so does every container whose last child it was.
        loop {
            let Some(top) = open.checked_sub(1) else {
                return Ok(at);
            };
            left[top] -= 1;
            if left[top] > 0 {
                if at >= buf.len() {
                    return Err(truncated());
                }
                break;
            }
            open = top;
        }
    }
}

/// The value at the start of `buf`: (bytes before its payload, payload bytes, child
/// values), its length fields checked to be there.
pub(super) fn value_header(buf: &[u8]) -> Result<(usize, usize, usize), WireError> {
    let be = |at: usize, n: usize| -> Result<usize, WireError> {
        let bytes = buf.get(at..at + n).ok_or_else(truncated)?;
        Ok(bytes.iter().fold(0usize, |v, b| (v << 8) | usize::from(*b)))
    };
    let marker = *buf.first().ok_or_else(truncated)?;
    Ok(match marker {
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
    })
}
