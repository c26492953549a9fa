//! ring's ChaCha20-Poly1305 for snow, holding only the 32-byte key. snow's own ring cipher
//! keeps a ring `LessSafeKey`, which is sized for AES-GCM's key schedule (544 B), and every
//! session holds two (one per direction): at thousands of sessions that was the largest
//! single item of a session's memory (docs/performance.md, many peers). Here the ring key is
//! built from the bytes for each message, which for ChaCha20 is a copy, not a key schedule.
//! The primitive, the nonce layout (4 zero bytes, then the counter little-endian, as in
//! snow's ring and RustCrypto ciphers and the Noise specification) and the tag are ring's
//! and snow's; this file only glues them.

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::CryptoResolver;
use snow::types::{Cipher, Dh, Hash, Random};

const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;

/// Resolves ChaChaPoly to [`SmallChaChaPoly`] and nothing else (the next resolver in a
/// `FallbackResolver` provides the rest).
pub(super) struct SmallCipherResolver;

impl CryptoResolver for SmallCipherResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        None
    }

    fn resolve_dh(&self, _: &DHChoice) -> Option<Box<dyn Dh>> {
        None
    }

    fn resolve_hash(&self, _: &HashChoice) -> Option<Box<dyn Hash>> {
        None
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        match choice {
            CipherChoice::ChaChaPoly => Some(Box::new(SmallChaChaPoly { key: [0; KEY_LEN] })),
            _ => None,
        }
    }
}

/// ChaCha20-Poly1305 through ring, keeping the key's bytes only.
struct SmallChaChaPoly {
    key: [u8; KEY_LEN],
}

impl SmallChaChaPoly {
    /// The ring key for one message. Cannot fail: the key has ChaCha20's length.
    fn ring_key(&self) -> Option<LessSafeKey> {
        UnboundKey::new(&CHACHA20_POLY1305, &self.key)
            .ok()
            .map(LessSafeKey::new)
    }
}

fn nonce(counter: u64) -> Nonce {
    let mut bytes = [0u8; aead::NONCE_LEN];
    bytes[4..].copy_from_slice(&counter.to_le_bytes());
    Nonce::assume_unique_for_key(bytes)
}

impl Cipher for SmallChaChaPoly {
    fn name(&self) -> &'static str {
        "ChaChaPoly"
    }

    fn set(&mut self, key: &[u8; KEY_LEN]) {
        self.key = *key;
    }

    /// The sealed length, or 0 if it could not seal (which the callers treat as a failure:
    /// `Sealer::seal` checks the length, a handshake message would not verify).
    fn encrypt(&self, counter: u64, authtext: &[u8], plaintext: &[u8], out: &mut [u8]) -> usize {
        let len = plaintext.len();
        let (Some(key), true) = (self.ring_key(), out.len() >= len + TAG_LEN) else {
            return 0;
        };
        out[..len].copy_from_slice(plaintext);
        match key.seal_in_place_separate_tag(nonce(counter), Aad::from(authtext), &mut out[..len]) {
            Ok(tag) => {
                out[len..len + TAG_LEN].copy_from_slice(tag.as_ref());
                len + TAG_LEN
            }
            Err(_) => 0,
        }
    }

    fn decrypt(
        &self,
        counter: u64,
        authtext: &[u8],
        ciphertext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, snow::Error> {
        let key = self.ring_key().ok_or(snow::Error::Decrypt)?;
        // ring opens in place: the ciphertext and its tag go into `out` first when they fit
        // (snow gives room for them), else into a copy.
        if out.len() >= ciphertext.len() {
            let in_out = &mut out[..ciphertext.len()];
            in_out.copy_from_slice(ciphertext);
            let opened = key
                .open_in_place(nonce(counter), Aad::from(authtext), in_out)
                .map_err(|_| snow::Error::Decrypt)?;
            Ok(opened.len())
        } else {
            let mut in_out = ciphertext.to_vec();
            let opened = key
                .open_in_place(nonce(counter), Aad::from(authtext), &mut in_out)
                .map_err(|_| snow::Error::Decrypt)?;
            let len = opened.len();
            out.get_mut(..len)
                .ok_or(snow::Error::Decrypt)?
                .copy_from_slice(opened);
            Ok(len)
        }
    }
}
