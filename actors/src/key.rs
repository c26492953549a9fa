//! Who a node is in protocol v2: its X25519 static public key ([`PeerKey`]), and the short
//! fingerprint people compare ([`Fingerprint`]). Plain data at the bottom of the crate: the
//! wire, the Noise layer, the identity on disk and the Registry all speak of keys.
//!
//! # Fingerprints
//!
//! A fingerprint is the first 100 bits of SHA-256 of the 32-byte public key, written as 20
//! characters of Crockford's base32 alphabet in lowercase (digits and letters without `i`,
//! `l`, `o`, `u`), in five groups of four: `7qdm-3xk9-a0ve-tg2h-zn4c`. Why:
//!
//! - short enough to read aloud or compare at a glance (SSH's SHA256 fingerprints are 43
//!   characters of case-sensitive base64), with no letters that look like digits and no
//!   case to get wrong;
//! - 100 bits is what an impostor would have to match: making a key whose fingerprint equals
//!   a given one takes about 2^100 key generations, far out of reach. (A collision between
//!   two keys of the attacker's own is cheaper, but gains nothing: it must match *your*
//!   peer's key.)
//! - a hash of the raw key, nothing else, so that any client can compute it.

use std::fmt;

use sha2::{Digest, Sha256};

/// Bytes of an X25519 key, public or private.
pub const KEY_BYTES: usize = 32;

/// Crockford's base32 alphabet, lowercase.
pub(crate) const BASE32: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// An X25519 static public key: what a v2 node *is*. Proven by the Noise handshake; names
/// and addresses are only claims. Ordered as 32 bytes (the duplicate-connection rule uses
/// it). Displayed as its [`Fingerprint`], debugged as hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey([u8; KEY_BYTES]);

impl PeerKey {
    /// The key of these 32 bytes.
    pub const fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        PeerKey(bytes)
    }

    /// The key in `bytes`, if they are exactly 32.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(PeerKey)
    }

    /// The key written as 64 hex digits, if it is.
    pub fn from_hex(text: &str) -> Option<Self> {
        parse_hex_key(text).map(PeerKey)
    }

    /// Its 32 bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_BYTES] {
        &self.0
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Its fingerprint, for people to compare.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(self)
    }
}

/// Printed as hex, in traces and test failures.
impl fmt::Debug for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerKey({})", self.to_hex())
    }
}

/// Printed as the short fingerprint (`xxxx-xxxx-xxxx-xxxx-xxxx`), for people.
impl fmt::Display for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Fingerprint::of(self), f)
    }
}

/// Stored as 64 hex digits (history.jsonl, docs/storage.md).
impl serde::Serialize for PeerKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for PeerKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(deserializer)?;
        PeerKey::from_hex(&text).ok_or_else(|| serde::de::Error::custom("a key is 64 hex digits"))
    }
}

/// A short, human-checkable fingerprint of a public key (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The fingerprint of `key`.
    pub fn of(key: &PeerKey) -> Self {
        let digest = Sha256::digest(key.as_bytes());
        let mut text = String::with_capacity(24);
        // 20 characters of 5 bits: the first 100 bits of the digest.
        for i in 0..20 {
            let bit = i * 5;
            let pair = u16::from_be_bytes([digest[bit / 8], digest[bit / 8 + 1]]);
            let index = (pair >> (11 - bit % 8)) & 0x1f;
            if i > 0 && i % 4 == 0 {
                text.push('-');
            }
            text.push(char::from(BASE32[usize::from(index)]));
        }
        Fingerprint(text)
    }

    /// As text, `xxxx-xxxx-xxxx-xxxx-xxxx`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 64 hex digits as 32 bytes.
pub(crate) fn parse_hex_key(hex: &str) -> Option<[u8; KEY_BYTES]> {
    if hex.len() != 2 * KEY_BYTES || !hex.is_ascii() {
        return None;
    }
    let mut key = [0u8; KEY_BYTES];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_short_stable_and_differ_per_key() {
        let key = PeerKey::from_bytes([0; 32]);
        let fingerprint = Fingerprint::of(&key);
        let text = fingerprint.as_str();
        assert_eq!(text.len(), 24);
        let groups: Vec<&str> = text.split('-').collect();
        assert_eq!(groups.len(), 5);
        assert!(groups.iter().all(|g| g.len() == 4));
        assert!(text
            .chars()
            .all(|c| c == '-' || BASE32.contains(&(c as u8))));
        // Computed independently (Python hashlib): SHA-256 of 32 zero bytes is 66687aad...
        assert_eq!(text, "csm7-nbfr-cayq-ev4f-r65r");
        assert_eq!(Fingerprint::of(&key), fingerprint);
        assert_eq!(
            key.to_string(),
            text,
            "a key is displayed as its fingerprint"
        );
        let other = Fingerprint::of(&PeerKey::from_bytes([1; 32]));
        assert_ne!(other, fingerprint);
    }

    #[test]
    fn keys_read_back_from_hex_and_json() {
        let key = PeerKey::from_bytes([0xab; 32]);
        assert_eq!(PeerKey::from_hex(&key.to_hex()), Some(key));
        for bad in ["", "ab", &"zz".repeat(32), &"ab".repeat(33)] {
            assert_eq!(PeerKey::from_hex(bad), None, "{bad}");
        }
        let json = serde_json::to_string(&key).unwrap();
        assert_eq!(json, format!("\"{}\"", key.to_hex()));
        assert_eq!(serde_json::from_str::<PeerKey>(&json).unwrap(), key);
        assert!(serde_json::from_str::<PeerKey>("\"abc\"").is_err());
        assert_eq!(PeerKey::from_slice(&[7; 31]), None);
    }
}
