//! Protocol v2's Noise layer, without actors or sockets: the `Noise_XX_25519_ChaChaPoly_SHA256`
//! handshake that opens every connection, and the transport that seals batches of encoded
//! maps into frames and opens them again. docs/protocol.md is the specification.
//! Used by the Session (through [`HandshakeCodec`], [`TransportCodec`] and [`Sealer`]).
//!
//! # On the wire
//!
//! Every Noise message travels as a frame: a 4-byte big-endian length, then the message
//! (at most [`MAX_NOISE_MESSAGE`] bytes). The handshake is three messages, prologue
//! [`PROLOGUE`]; the dialer is the initiator:
//!
//! 1. initiator → responder, `-> e`: empty payload;
//! 2. responder → initiator, `<- e, ee, s, es`: the responder's v2 `hello` map;
//! 3. initiator → responder, `-> s, se`: the initiator's v2 `hello` map.
//!
//! After it, each frame is one transport message whose plaintext (at most [`MAX_PLAINTEXT`]
//! bytes) is one or more whole MessagePack maps back to back.
//!
//! # How a Session uses it
//!
//! - **Handshake.** The Session's decoder (`session/codec.rs`) starts with a [`Handshake`]
//!   ([`Handshake::initiator`] for the side that dialed, whose message 1 the Session writes
//!   first; [`Handshake::responder`] for the other) and reads each message through
//!   [`HandshakeCodec`] into [`Handshake::read`], whose [`Step`] says what to write next,
//!   until [`Step::Done`] hands over an [`Established`]: the peer's proven key and its
//!   `hello`. All of it within the hello timeout.
//! - **Reading.** The same decoder then opens transport messages with a [`TransportCodec`]
//!   made from the [`Opener`], in the same `FramedRead`, so whatever was read ahead (a peer
//!   may send chats right behind its last handshake message) is kept; it yields one `Frame`
//!   per map, in order, several per transport message. [`NoiseError::says_bye`] tells a bad
//!   map (`bye`, then close) from a frame that does not decrypt (close at once).
//! - **Writing.** The Session's writer keeps encoding frames behind 4-byte lengths into its
//!   buffer; once the handshake is done it takes the [`Sealer`], and its task, once per
//!   write, passes what it took to [`Sealer::seal_frames`], which strips the length prefixes
//!   and packs the maps, whole, into as few transport messages as fit. A burst of chats
//!   queued in one actor turn is encrypted once, not once per chat. Bytes queued before
//!   that (the handshake messages) go out unsealed.
//!
//! Sealing and opening share the keys through an `Arc` of snow's stateless transport state
//! (immutable once made), each half counting its own nonces: the reader and the writer's
//! task never wait on each other.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use snow::resolvers::{CryptoResolver, DefaultResolver, FallbackResolver, RingResolver};
use snow::{HandshakeState, StatelessTransportState};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_util::codec::{Decoder, FramedRead};

use crate::key::PeerKey;
use crate::wire::{
    decode_hello, decode_payload, encode_hello, split_maps, Frame, Hello, WireError, MAX_MAP_BYTES,
    PROTOCOL_VERSION,
};

/// The Noise protocol name of v2.
pub const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_SHA256";

/// The handshake's prologue: both sides must use it, or the handshake fails.
pub const PROLOGUE: &[u8] = b"peerchat/2";

/// Largest Noise message, handshake or transport (the Noise specification's limit).
pub const MAX_NOISE_MESSAGE: usize = 65535;

/// Bytes of the authentication tag every encrypted payload carries.
pub const TAG_BYTES: usize = 16;

/// Largest plaintext of one transport message.
pub const MAX_PLAINTEXT: usize = MAX_NOISE_MESSAGE - TAG_BYTES;

pub use crate::key::KEY_BYTES;

const LENGTH_PREFIX: usize = 4;

/// Bytes of handshake message 1: the initiator's ephemeral key, nothing else.
const MESSAGE_1_BYTES: usize = KEY_BYTES;

// A plaintext and a v2 map have the same limit: one map always fits in one message.
const _: () = assert!(MAX_PLAINTEXT == MAX_MAP_BYTES);

/// Which implementation of the primitives snow uses. X25519 is curve25519-dalek in both
/// (ring has no static-key X25519); the backends differ in ChaCha20-Poly1305, SHA-256 and
/// the random number generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// snow's default resolver: the RustCrypto crates (`chacha20poly1305`, `sha2`).
    RustCrypto,
    /// ring's ChaCha20-Poly1305, SHA-256 and RNG, with the default resolver for X25519.
    Ring,
}

impl Backend {
    /// The backend a node uses, picked by measurement (`measure_backends` in this module's
    /// tests; release build, one core, three runs): ring seals and opens 5-7 times faster
    /// one message per chat (2.3 M vs 0.3 M chats/s) and 2-2.5 times faster batched
    /// (10-15 M vs 6-7 M chats/s); handshakes are the same within noise (2000-2900/s both
    /// ends: X25519 is curve25519-dalek in both).
    pub const CHOSEN: Backend = Backend::Ring;

    fn resolver(self) -> Box<dyn CryptoResolver + Send> {
        match self {
            Backend::RustCrypto => Box::new(DefaultResolver),
            Backend::Ring => Box::new(FallbackResolver::new(
                Box::new(RingResolver),
                Box::new(DefaultResolver),
            )),
        }
    }

    fn builder(self) -> Result<snow::Builder<'static>, NoiseError> {
        let params = NOISE_PARAMS.parse().map_err(NoiseError::from_snow)?;
        Ok(snow::Builder::with_resolver(params, self.resolver()))
    }
}

/// A node's X25519 static keypair. The private half is never printed.
#[derive(Clone)]
pub struct StaticKeypair {
    private: [u8; KEY_BYTES],
    public: PeerKey,
}

impl StaticKeypair {
    /// A new random keypair (snow's key generation, from the OS's random numbers).
    pub fn generate() -> Result<Self, NoiseError> {
        let keypair = Backend::RustCrypto
            .builder()?
            .generate_keypair()
            .map_err(NoiseError::from_snow)?;
        let private =
            keypair.private.as_slice().try_into().map_err(|_| {
                NoiseError::Crypto("generated a private key of the wrong size".into())
            })?;
        Self::from_private(private)
    }

    /// The keypair of this private key (its public half computed by snow's X25519).
    pub fn from_private(private: [u8; KEY_BYTES]) -> Result<Self, NoiseError> {
        let mut dh = DefaultResolver
            .resolve_dh(&snow::params::DHChoice::Curve25519)
            .ok_or_else(|| NoiseError::Crypto("no X25519 implementation".into()))?;
        dh.set(&private);
        let public = PeerKey::from_slice(dh.pubkey())
            .ok_or_else(|| NoiseError::Crypto("X25519 public key of the wrong size".into()))?;
        Ok(StaticKeypair { private, public })
    }

    /// The public half, which peers see.
    pub fn public(&self) -> PeerKey {
        self.public
    }

    /// The private half, for storing it in a key file; nothing else needs it.
    pub fn private_bytes(&self) -> &[u8; KEY_BYTES] {
        &self.private
    }
}

impl fmt::Debug for StaticKeypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticKeypair")
            .field("public", &self.public)
            .field("private", &"<hidden>")
            .finish()
    }
}

/// Why a handshake or a transport frame failed. Built from the network's bytes, never a
/// panic: every variant says what was wrong and [`NoiseError::says_bye`] what to do.
#[derive(Debug)]
pub enum NoiseError {
    /// A frame's length prefix announces more than [`MAX_NOISE_MESSAGE`] bytes: it cannot be
    /// a Noise message.
    TooLarge {
        /// The announced length.
        len: usize,
    },
    /// A handshake message or a transport message did not verify: tampered with, out of
    /// order, from another key, another prologue, or not Noise at all.
    Decrypt,
    /// A handshake message that is not what its place in the handshake calls for.
    BadHandshakeMessage(&'static str),
    /// The `hello` in a handshake message is not a valid v2 `hello` map.
    BadHello(WireError),
    /// The peer's `hello` announces another protocol version.
    UnsupportedProtocol(u64),
    /// The peer proved a static key other than the one expected of it.
    UnexpectedKey {
        /// The key we expected (an introduction, or the key pinned for that address).
        expected: PeerKey,
        /// The key the peer proved.
        presented: PeerKey,
    },
    /// The handshake ended (the connection closed) before it was complete.
    Incomplete,
    /// A transport message decrypted, but its plaintext is not one or more whole maps.
    BadPlaintext(WireError),
    /// A map to send is larger than a transport message can carry.
    MapTooLarge {
        /// The map's size.
        len: usize,
    },
    /// A buffer to seal is not whole length-prefixed frames.
    BadFrames,
    /// This session has sent or received 2^64 - 1 messages: it must end.
    NonceExhausted,
    /// snow refused in a way none of the above says (a bug, or the RNG failed).
    Crypto(String),
    /// The connection failed underneath.
    Io(io::Error),
}

impl NoiseError {
    fn from_snow(err: snow::Error) -> Self {
        match err {
            snow::Error::Decrypt | snow::Error::Dh => NoiseError::Decrypt,
            snow::Error::State(snow::error::StateProblem::Exhausted) => NoiseError::NonceExhausted,
            other => NoiseError::Crypto(other.to_string()),
        }
    }

    /// Whether the peer gets a `bye` before the connection closes: only for a transport
    /// message that decrypted but holds a bad map. Anything that does not verify, and any
    /// failure during the handshake, closes the connection at once, without a word (there
    /// is no authenticated channel to say it on, or the peer is not who it should be).
    pub fn says_bye(&self) -> bool {
        matches!(self, NoiseError::BadPlaintext(_))
    }
}

impl fmt::Display for NoiseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoiseError::TooLarge { len } => write!(
                f,
                "frame of {len} bytes is over the {MAX_NOISE_MESSAGE}-byte Noise message limit"
            ),
            NoiseError::Decrypt => write!(f, "a Noise message did not verify"),
            NoiseError::BadHandshakeMessage(why) => write!(f, "bad handshake message: {why}"),
            NoiseError::BadHello(err) => write!(f, "bad hello in the handshake: {err}"),
            NoiseError::UnsupportedProtocol(v) => write!(
                f,
                "unsupported protocol {v} (this node speaks {PROTOCOL_VERSION})"
            ),
            NoiseError::UnexpectedKey {
                expected,
                presented,
            } => write!(
                f,
                "the peer proved key {presented} where {expected} was expected"
            ),
            NoiseError::Incomplete => write!(f, "the connection closed during the handshake"),
            NoiseError::BadPlaintext(err) => write!(f, "{err}"),
            NoiseError::MapTooLarge { len } => write!(
                f,
                "a map of {len} bytes is over the {MAX_PLAINTEXT}-byte transport limit"
            ),
            NoiseError::BadFrames => write!(f, "bytes to seal are not whole frames"),
            NoiseError::NonceExhausted => write!(f, "too many messages on one session"),
            NoiseError::Crypto(why) => write!(f, "Noise: {why}"),
            NoiseError::Io(err) => write!(f, "connection error: {err}"),
        }
    }
}

impl std::error::Error for NoiseError {}

impl From<io::Error> for NoiseError {
    fn from(err: io::Error) -> Self {
        NoiseError::Io(err)
    }
}

// ---- the handshake ----

/// How a handshake is set up beyond keys and hello.
#[derive(Debug, Clone, Default)]
pub struct HandshakeOptions {
    /// The backend; `None` is [`Backend::CHOSEN`].
    pub backend: Option<Backend>,
    /// The static key the peer must prove (an initiator dialing an introduced or pinned
    /// peer). An initiator checks it on message 2, before it sends its own identity in
    /// message 3; a responder on message 3.
    pub expected_remote: Option<PeerKey>,
    /// A fixed ephemeral private key, for test vectors only: a real handshake must use a
    /// fresh random one, or its secrecy is gone.
    pub fixed_ephemeral_for_testing_only: Option<[u8; KEY_BYTES]>,
}

/// A handshake under way, as a value: give it each message read, write what it answers.
/// Consumed by every step, so a failed handshake cannot be continued by mistake.
pub struct Handshake {
    state: HandshakeState,
    /// Our `hello`, encoded: the payload of message 2 (responder) or 3 (initiator).
    hello: BytesMut,
    expected_remote: Option<PeerKey>,
    /// A responder has read message 1.
    read_message_1: bool,
}

impl fmt::Debug for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handshake")
            .field("initiator", &self.state.is_initiator())
            .field("expected_remote", &self.expected_remote)
            .finish_non_exhaustive()
    }
}

/// What to do after a handshake message was read.
#[derive(Debug)]
pub enum Step {
    /// Write this frame, then read the next message into the handshake.
    Reply(Box<Handshake>, Bytes),
    /// The handshake is complete: write `reply` if there is one (the initiator's message 3),
    /// then speak transport messages.
    Done {
        /// The last handshake frame, ours to write.
        reply: Option<Bytes>,
        /// The peer's key and hello, and the transport's two halves.
        established: Established,
    },
}

/// A completed handshake.
#[derive(Debug)]
pub struct Established {
    /// The static key the peer proved it holds.
    pub remote_key: PeerKey,
    /// The peer's `hello` (protocol checked to be 2; its name and port are claims).
    pub remote_hello: Hello,
    /// The handshake hash, the same on both sides: a name for this session.
    pub handshake_hash: Vec<u8>,
    /// Seals what we send.
    pub sealer: Sealer,
    /// Opens what we receive.
    pub opener: Opener,
}

impl Handshake {
    /// Starts a handshake as the side that dialed. Returns the handshake and message 1's
    /// frame, to write first.
    pub fn initiator(
        keys: &StaticKeypair,
        hello: &Hello,
        options: HandshakeOptions,
    ) -> Result<(Handshake, Bytes), NoiseError> {
        let mut handshake = Self::build(true, keys, hello, options)?;
        let message_1 = handshake.write(&[])?;
        Ok((handshake, message_1))
    }

    /// Starts a handshake as the side that accepted: it waits for message 1.
    pub fn responder(
        keys: &StaticKeypair,
        hello: &Hello,
        options: HandshakeOptions,
    ) -> Result<Handshake, NoiseError> {
        Self::build(false, keys, hello, options)
    }

    fn build(
        initiator: bool,
        keys: &StaticKeypair,
        hello: &Hello,
        options: HandshakeOptions,
    ) -> Result<Handshake, NoiseError> {
        let backend = options.backend.unwrap_or(Backend::CHOSEN);
        let mut encoded = BytesMut::new();
        encode_hello(hello, &mut encoded);
        let ephemeral = options.fixed_ephemeral_for_testing_only;
        let mut builder = backend
            .builder()?
            .local_private_key(keys.private_bytes())
            .and_then(|b| b.prologue(PROLOGUE))
            .map_err(NoiseError::from_snow)?;
        if let Some(ephemeral) = &ephemeral {
            builder = builder.fixed_ephemeral_key_for_testing_only(ephemeral);
        }
        let state = if initiator {
            builder.build_initiator()
        } else {
            builder.build_responder()
        }
        .map_err(NoiseError::from_snow)?;
        Ok(Handshake {
            state,
            hello: encoded,
            expected_remote: options.expected_remote,
            read_message_1: false,
        })
    }

    /// Reads the peer's next handshake message (without its length prefix, as
    /// [`HandshakeCodec`] yields it).
    pub fn read(mut self, message: &[u8]) -> Result<Step, NoiseError> {
        if self.state.is_my_turn() || self.state.is_handshake_finished() {
            return Err(NoiseError::BadHandshakeMessage("a message out of turn"));
        }
        let initiator = self.state.is_initiator();
        // A responder's first read is message 1.
        let message_1 = !initiator && !self.read_message_1;
        if message_1 && message.len() != MESSAGE_1_BYTES {
            // Message 1 is an ephemeral key and an empty payload, nothing else.
            return Err(NoiseError::BadHandshakeMessage(
                "message 1 must be exactly 32 bytes (an ephemeral key, empty payload)",
            ));
        }
        let mut payload = vec![0u8; message.len()];
        let len = self
            .state
            .read_message(message, &mut payload)
            .map_err(|err| match err {
                snow::Error::Input => {
                    NoiseError::BadHandshakeMessage("too short for its place in the handshake")
                }
                other => NoiseError::from_snow(other),
            })?;
        payload.truncate(len);
        if message_1 {
            self.read_message_1 = true;
            // Read message 1; answer with message 2, which carries our hello.
            let hello = std::mem::take(&mut self.hello);
            let reply = self.write(&hello)?;
            return Ok(Step::Reply(Box::new(self), reply));
        }
        // Message 2 (initiator) or 3 (responder): the peer's static key and hello.
        let remote_key = self
            .state
            .get_remote_static()
            .and_then(PeerKey::from_slice)
            .ok_or(NoiseError::BadHandshakeMessage("no static key"))?;
        if let Some(expected) = self.expected_remote {
            if expected != remote_key {
                return Err(NoiseError::UnexpectedKey {
                    expected,
                    presented: remote_key,
                });
            }
        }
        let remote_hello = decode_hello(&payload).map_err(NoiseError::BadHello)?;
        if remote_hello.protocol != PROTOCOL_VERSION {
            return Err(NoiseError::UnsupportedProtocol(remote_hello.protocol));
        }
        let reply = if initiator {
            let hello = std::mem::take(&mut self.hello);
            Some(self.write(&hello)?)
        } else {
            None
        };
        let handshake_hash = self.state.get_handshake_hash().to_vec();
        let transport = Arc::new(
            self.state
                .into_stateless_transport_mode()
                .map_err(NoiseError::from_snow)?,
        );
        Ok(Step::Done {
            reply,
            established: Established {
                remote_key,
                remote_hello,
                handshake_hash,
                sealer: Sealer {
                    transport: transport.clone(),
                    nonce: 0,
                    plaintext: Vec::new(),
                },
                opener: Opener {
                    transport,
                    nonce: 0,
                },
            },
        })
    }

    /// Our next handshake message with this payload, as a frame.
    fn write(&mut self, payload: &[u8]) -> Result<Bytes, NoiseError> {
        let mut frame = BytesMut::zeroed(LENGTH_PREFIX + MAX_NOISE_MESSAGE);
        let len = self
            .state
            .write_message(payload, &mut frame[LENGTH_PREFIX..])
            .map_err(|err| match err {
                snow::Error::Input => NoiseError::MapTooLarge { len: payload.len() },
                other => NoiseError::from_snow(other),
            })?;
        frame.truncate(LENGTH_PREFIX + len);
        // len <= MAX_NOISE_MESSAGE, so it fits in the u32 prefix.
        frame[..LENGTH_PREFIX].copy_from_slice(&(len as u32).to_be_bytes());
        Ok(frame.freeze())
    }
}

/// Reads a frame's length prefix; `Ok(None)` until the whole frame is in `src`.
fn whole_frame(src: &mut BytesMut) -> Result<Option<usize>, NoiseError> {
    if src.len() < LENGTH_PREFIX {
        return Ok(None);
    }
    let mut prefix = [0u8; LENGTH_PREFIX];
    prefix.copy_from_slice(&src[..LENGTH_PREFIX]);
    let len = u32::from_be_bytes(prefix) as usize;
    // Refuse before buffering: a hostile length must not make us allocate.
    if len > MAX_NOISE_MESSAGE {
        return Err(NoiseError::TooLarge { len });
    }
    if src.len() < LENGTH_PREFIX + len {
        src.reserve(LENGTH_PREFIX + len - src.len());
        return Ok(None);
    }
    Ok(Some(len))
}

/// tokio-util decoder of the handshake's frames: yields each Noise message, length prefix
/// removed. Bytes read past the last one stay in the buffer for [`TransportCodec`]
/// (`FramedRead::map_decoder`).
#[derive(Debug, Default, Clone, Copy)]
pub struct HandshakeCodec;

impl Decoder for HandshakeCodec {
    type Item = BytesMut;
    type Error = NoiseError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, NoiseError> {
        let Some(len) = whole_frame(src)? else {
            return Ok(None);
        };
        src.advance(LENGTH_PREFIX);
        Ok(Some(src.split_to(len)))
    }
}

/// Runs a whole handshake over a reader and a writer (a test client, the benchmark; the
/// Session drives [`Handshake`] itself). `start` is what [`Handshake::initiator`] returns, or a
/// responder with no frame. Bound it with a timeout: a peer that says nothing keeps it waiting.
pub async fn run_handshake<R, W>(
    reader: &mut FramedRead<R, HandshakeCodec>,
    writer: &mut W,
    start: (Handshake, Option<Bytes>),
) -> Result<Established, NoiseError>
where
    R: tokio::io::AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    use futures::StreamExt;
    let (mut handshake, first) = start;
    if let Some(frame) = first {
        writer.write_all(&frame).await?;
    }
    loop {
        let message = reader.next().await.ok_or(NoiseError::Incomplete)??;
        match handshake.read(&message)? {
            Step::Reply(next, frame) => {
                writer.write_all(&frame).await?;
                handshake = *next;
            }
            Step::Done { reply, established } => {
                if let Some(frame) = reply {
                    writer.write_all(&frame).await?;
                }
                return Ok(established);
            }
        }
    }
}

// ---- the transport ----

/// The sending half of an established session: seals maps into transport frames.
pub struct Sealer {
    transport: Arc<StatelessTransportState>,
    nonce: u64,
    /// The plaintext being packed, kept between calls for its allocation.
    plaintext: Vec<u8>,
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
        self.plaintext = plaintext;
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
        let mut maps = Vec::new();
        let mut rest = frames;
        while !rest.is_empty() {
            let Some((prefix, after)) = rest.split_first_chunk::<LENGTH_PREFIX>() else {
                return Err(NoiseError::BadFrames);
            };
            let len = u32::from_be_bytes(*prefix) as usize;
            if after.len() < len {
                return Err(NoiseError::BadFrames);
            }
            let (map, after) = after.split_at(len);
            maps.push(map);
            rest = after;
        }
        self.seal_maps(maps, dst)
    }
}

/// The receiving half of an established session: opens transport messages.
pub struct Opener {
    transport: Arc<StatelessTransportState>,
    nonce: u64,
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
pub struct TransportCodec {
    opener: Opener,
    plaintext: Vec<u8>,
    ready: VecDeque<Frame>,
    /// The error after the maps in `ready`.
    failed: Option<NoiseError>,
}

impl fmt::Debug for TransportCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportCodec")
            .field("opener", &self.opener)
            .field("ready", &self.ready.len())
            .finish_non_exhaustive()
    }
}

impl TransportCodec {
    /// A decoder for frames opened by `opener`.
    pub fn new(opener: Opener) -> Self {
        TransportCodec {
            opener,
            plaintext: Vec::new(),
            ready: VecDeque::new(),
            failed: None,
        }
    }
}

impl Decoder for TransportCodec {
    type Item = Frame;
    type Error = NoiseError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, NoiseError> {
        if let Some(frame) = self.ready.pop_front() {
            return Ok(Some(frame));
        }
        if let Some(err) = self.failed.take() {
            return Err(err);
        }
        let Some(len) = whole_frame(src)? else {
            return Ok(None);
        };
        let opened = self.opener.open(
            &src[LENGTH_PREFIX..LENGTH_PREFIX + len],
            &mut self.plaintext,
        );
        src.advance(LENGTH_PREFIX + len);
        opened?;
        if self.plaintext.is_empty() {
            return Err(NoiseError::BadPlaintext(WireError::Malformed(
                "a transport message with no map".into(),
            )));
        }
        for map in split_maps(&self.plaintext) {
            match map.and_then(decode_payload) {
                Ok(frame) => self.ready.push_back(frame),
                Err(err) => {
                    self.failed = Some(NoiseError::BadPlaintext(err));
                    break;
                }
            }
        }
        match self.ready.pop_front() {
            Some(frame) => Ok(Some(frame)),
            None => Err(self.failed.take().unwrap_or(NoiseError::BadFrames)),
        }
    }
}

#[cfg(test)]
mod tests;
