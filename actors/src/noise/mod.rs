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
            // ring's ChaCha20-Poly1305 without its 544-byte key per direction per session
            // (small_cipher.rs), then ring's SHA-256 and RNG, then X25519 from the default.
            Backend::Ring => Box::new(FallbackResolver::new(
                Box::new(SmallCipherResolver),
                Box::new(FallbackResolver::new(
                    Box::new(RingResolver),
                    Box::new(DefaultResolver),
                )),
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

mod handshake;
mod small_cipher;
mod transport;

use handshake::whole_frame;
pub use handshake::*;
use small_cipher::SmallCipherResolver;
pub use transport::*;

#[cfg(test)]
mod tests;
