//! After the handshake: sealing batches of maps into transport messages, and opening them
//! back into frames (`TransportCodec`).

use super::*;
use crate::spare::{self, Spare};

/// The sending half of an established session: seals maps into transport frames.
pub struct Sealer {
    pub(super) transport: Arc<StatelessTransportState>,
    pub(super) nonce: u64,
    /// The plaintext being packed, kept between calls for its allocation.
    pub(super) plaintext: Vec<u8>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("nonce", &self.nonce)
            .finish()
    }
}

impl Sealer {
    /// Seals one plaintext (at most [`MAX_PLAINTEXT`] bytes) as one frame appended to `dst`.
    pub fn seal(&mut self, plaintext: &[u8], dst: &mut BytesMut) -> Result<(), NoiseError> {
        if plaintext.len() > MAX_PLAINTEXT {
            return Err(NoiseError::MapTooLarge {
                len: plaintext.len(),
            });
        }
        // The last nonce, 2^64 - 1, is reserved by the Noise specification.
        if self.nonce == u64::MAX {
            return Err(NoiseError::NonceExhausted);
        }
        let start = dst.len();
        let len = plaintext.len() + TAG_BYTES;
        dst.reserve(LENGTH_PREFIX + len);
        // len <= MAX_NOISE_MESSAGE, so it fits in the u32 prefix.
        dst.put_u32(len as u32);
        dst.resize(start + LENGTH_PREFIX + len, 0);
        let written =
            self.transport
                .write_message(self.nonce, plaintext, &mut dst[start + LENGTH_PREFIX..]);
        match written {
            Ok(n) if n == len => {
                self.nonce += 1;
                Ok(())
            }
            Ok(_) => {
                dst.truncate(start);
                Err(NoiseError::Crypto(
                    "sealed message of an unexpected size".into(),
                ))
            }
            Err(err) => {
                dst.truncate(start);
                Err(NoiseError::from_snow(err))
            }
        }
    }

    /// Seals encoded maps, in order, packing as many whole maps into each transport message
    /// as fit in [`MAX_PLAINTEXT`]; appends the frames to `dst` and returns how many. A map
    /// over the limit is refused and nothing is appended.
    pub fn seal_maps<'m, I>(&mut self, maps: I, dst: &mut BytesMut) -> Result<usize, NoiseError>
    where
        I: IntoIterator<Item = &'m [u8]>,
    {
        let start = dst.len();
        let mut plaintext = std::mem::take(&mut self.plaintext);
        plaintext.clear();
        let mut sealed = 0;
        let mut result = Ok(());
        for map in maps {
            if map.len() > MAX_PLAINTEXT {
                result = Err(NoiseError::MapTooLarge { len: map.len() });
                break;
            }
            if plaintext.len() + map.len() > MAX_PLAINTEXT {
                if let Err(err) = self.seal(&plaintext, dst) {
                    result = Err(err);
                    break;
                }
                sealed += 1;
                plaintext.clear();
            }
            plaintext.extend_from_slice(map);
        }
        if result.is_ok() && !plaintext.is_empty() {
            result = self.seal(&plaintext, dst);
            sealed += 1;
        }
        plaintext.clear();
        // Kept for the next batch only while small: an idle session must not hold the 64 KiB
        // a burst (or its first `peers` frame) grew it to (docs/performance.md, idle sessions).
        if plaintext.capacity() <= KEEP_PLAINTEXT_BYTES {
            self.plaintext = plaintext;
        }
        match result {
            Ok(()) => Ok(sealed),
            Err(err) => {
                // Frames already sealed used nonces: this sealer is spent (the peer would
                // see a gap). The caller closes the connection.
                dst.truncate(start);
                Err(err)
            }
        }
    }

    /// Seals v1-style frames (each a 4-byte big-endian length and a map, as
    /// the wire's `encode_frame_into` writes them into a writer's buffer): the maps,
    /// prefixes stripped, packed as [`Sealer::seal_maps`] does. This is the step a writer
    /// applies to what it has buffered, once per write.
    pub fn seal_frames(&mut self, frames: &[u8], dst: &mut BytesMut) -> Result<usize, NoiseError> {
        // Checked whole first, so that bad framing seals nothing; then walked again as the
        // maps are sealed (a Vec of them cost an allocation per write).
        if v1_maps(frames).any(|map| map.is_none()) {
            return Err(NoiseError::BadFrames);
        }
        self.seal_maps(v1_maps(frames).flatten(), dst)
    }
}

/// The maps of v1-style frames, in order; `None` where the framing is bad (and nothing after).
fn v1_maps(frames: &[u8]) -> impl Iterator<Item = Option<&[u8]>> {
    let mut rest = Some(frames);
    std::iter::from_fn(move || {
        let frames = rest.filter(|frames| !frames.is_empty())?;
        let framed = frames
            .split_first_chunk::<LENGTH_PREFIX>()
            .and_then(|(prefix, after)| {
                let len = u32::from_be_bytes(*prefix) as usize;
                (after.len() >= len).then(|| after.split_at(len))
            });
        rest = framed.map(|(_, after)| after);
        Some(framed.map(|(map, _)| map))
    })
}

/// The most plaintext buffer a [`Sealer`] keeps between batches.
const KEEP_PLAINTEXT_BYTES: usize = 2048;

/// The receiving half of an established session: opens transport messages.
pub struct Opener {
    pub(super) transport: Arc<StatelessTransportState>,
    pub(super) nonce: u64,
}

impl fmt::Debug for Opener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opener")
            .field("nonce", &self.nonce)
            .finish()
    }
}

impl Opener {
    /// Opens one transport message (without its length prefix); its plaintext replaces the
    /// contents of `plaintext`. A message that does not verify is [`NoiseError::Decrypt`]:
    /// the connection must close.
    pub fn open(&mut self, message: &[u8], plaintext: &mut Vec<u8>) -> Result<(), NoiseError> {
        if message.len() > MAX_NOISE_MESSAGE {
            return Err(NoiseError::TooLarge { len: message.len() });
        }
        if message.len() < TAG_BYTES {
            return Err(NoiseError::Decrypt);
        }
        if self.nonce == u64::MAX {
            return Err(NoiseError::NonceExhausted);
        }
        plaintext.clear();
        plaintext.resize(message.len(), 0);
        let len = self
            .transport
            .read_message(self.nonce, message, plaintext)
            .map_err(NoiseError::from_snow)?;
        plaintext.truncate(len);
        self.nonce += 1;
        Ok(())
    }
}

/// tokio-util decoder of an established session's frames: opens each transport message and
/// yields the [`Frame`] of each map in it, in order. A map that does not decode ends the
/// stream with [`NoiseError::BadPlaintext`] after the maps before it were yielded.
///
/// The maps of an opened message are decoded one per call, straight from its plaintext, not
/// queued as frames first: a queue would keep its allocation in every session for the
/// connection's life. For the same reason the plaintext buffer is kept only while a read is
/// being decoded (the messages of one read share it) and let go once everything read is
/// decoded: a session waiting for its peer holds none (one allocation per read instead;
/// thousands of sessions, docs/performance.md).
pub struct TransportCodec {
    pub(super) opener: Opener,
    /// The last message opened.
    pub(super) plaintext: Vec<u8>,
    /// How much of `plaintext` is decoded already.
    pub(super) decoded: usize,
}

impl fmt::Debug for TransportCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportCodec")
            .field("opener", &self.opener)
            .field("undecoded", &(self.plaintext.len() - self.decoded))
            .finish_non_exhaustive()
    }
}

impl TransportCodec {
    /// A decoder for frames opened by `opener`.
    pub fn new(opener: Opener) -> Self {
        TransportCodec {
            opener,
            plaintext: Vec::new(),
            decoded: 0,
        }
    }

    /// Decodes the next map of the opened message (there is one: `decoded < len`).
    fn next_map(&mut self) -> Result<Frame, NoiseError> {
        let decoded = match split_maps(&self.plaintext[self.decoded..]).next() {
            Some(Ok(map)) => {
                self.decoded += map.len();
                decode_payload(map)
            }
            Some(Err(err)) => Err(err),
            None => return Err(NoiseError::BadFrames),
        };
        if decoded.is_err() {
            // Nothing after a bad map is read.
            self.decoded = self.plaintext.len();
        }
        decoded.map_err(NoiseError::BadPlaintext)
    }
}

thread_local! {
    /// A plaintext buffer let go of by a `TransportCodec` once all it read was decoded: the
    /// next message opened on this thread takes it instead of allocating (one per read).
    pub(super) static SPARE_PLAINTEXT: Spare<Vec<u8>> = const { Spare::new() };
}

/// Keeps `plaintext`, emptied, as the thread's spare (in place of the one kept before),
/// unless it grew past what a sealer keeps (`KEEP_PLAINTEXT_BYTES`).
fn keep_spare_plaintext(plaintext: Vec<u8>) {
    spare::keep(&SPARE_PLAINTEXT, plaintext, |plaintext| {
        plaintext.clear();
        plaintext.capacity() > 0 && plaintext.capacity() <= KEEP_PLAINTEXT_BYTES
    });
}

impl Decoder for TransportCodec {
    type Item = Frame;
    type Error = NoiseError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, NoiseError> {
        if self.decoded < self.plaintext.len() {
            return self.next_map().map(Some);
        }
        let Some(len) = whole_frame(src)? else {
            // All that was read is decoded: nothing is kept until the next read (the buffer
            // is the thread's spare meanwhile).
            keep_spare_plaintext(std::mem::take(&mut self.plaintext));
            self.decoded = 0;
            return Ok(None);
        };
        self.decoded = 0;
        if self.plaintext.capacity() == 0 {
            self.plaintext = spare::take(&SPARE_PLAINTEXT).unwrap_or_default();
        }
        let opened = self.opener.open(
            &src[LENGTH_PREFIX..LENGTH_PREFIX + len],
            &mut self.plaintext,
        );
        src.advance(LENGTH_PREFIX + len);
        if let Err(err) = opened {
            self.plaintext.clear();
            return Err(err);
        }
        if self.plaintext.is_empty() {
            return Err(NoiseError::BadPlaintext(WireError::Malformed(
                "a transport message with no map".into(),
            )));
        }
        self.next_map().map(Some)
    }
}
