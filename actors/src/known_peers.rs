//! Trust on first use, as SSH's known_hosts: the key first seen for a peer's name and for its
//! address is pinned in the data directory's `known_peers` file, and a later peer showing
//! another key for either is a mismatch until the user trusts the new key. Plain data and a
//! file, no actors; the Registry (which owns the peer set) is meant to hold one.
//!
//! The file is text, one pin a line, `#` comments and blank lines ignored:
//!
//! ```text
//! # peerchat known peers (trust on first use): one pinned key per line
//! name "bob" 64b101b1d0be5a8704bd078f9895001fc03e8e9f9522f188dd128d9846d48466
//! addr 10.0.0.2:9000 64b101b1d0be5a8704bd078f9895001fc03e8e9f9522f188dd128d9846d48466
//! ```
//!
//! Names are JSON strings (any text, quoted and escaped), addresses `IP:PORT` (`[IP]:PORT` for
//! IPv6), keys the 32-byte X25519 public key in hex. A line that does not read is an error
//! naming the file and the line; the file is never rewritten over it.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::identity::private_file_options;
use crate::key::{parse_hex_key, Fingerprint, PeerKey};

/// The file's name in the data directory.
pub const KNOWN_PEERS_FILE: &str = "known_peers";

const HEADER: &str = "# peerchat known peers (trust on first use): one pinned key per line";

/// Largest file read: a line is under 200 bytes, so this is tens of thousands of pins.
const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// What a key is pinned by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
    /// The peer's name, as its `hello` says it.
    Name(String),
    /// The address the peer listens on.
    Addr(SocketAddr),
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pin::Name(name) => write!(f, "name {name:?}"),
            Pin::Addr(addr) => write!(f, "address {addr}"),
        }
    }
}

/// What [`PinnedKeys::check`] found for a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Neither its name nor its address has a pinned key: first contact.
    New,
    /// Every pin there is for its name and address is this key.
    Matches,
    /// A pin holds another key: warn loudly, refuse the session, and let the user decide.
    Mismatch {
        /// What holds the other key.
        pinned_by: Pin,
        /// The pinned key's fingerprint.
        pinned: Fingerprint,
        /// The fingerprint of the key the peer proved.
        presented: Fingerprint,
    },
}

/// Why the known-peers file cannot be used.
#[derive(Debug)]
pub enum KnownPeersError {
    /// A line that does not read. Nothing is rewritten over it.
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Its line number, from 1.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// A file operation failed.
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        err: io::Error,
    },
}

impl fmt::Display for KnownPeersError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KnownPeersError::Corrupt { path, line, why } => write!(
                f,
                "{}, line {line}: {why}. Fix or delete that line (deleting it forgets that \
                 pin: the next key seen there is trusted on first use)",
                path.display()
            ),
            KnownPeersError::Io { path, err } => write!(f, "{}: {err}", path.display()),
        }
    }
}

impl std::error::Error for KnownPeersError {}

/// The pinned keys, by name and by address. (Not `registry::KnownPeers`, the message that
/// asks the Registry for peers to introduce.)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PinnedKeys {
    by_name: BTreeMap<String, PeerKey>,
    by_addr: BTreeMap<SocketAddr, PeerKey>,
}

impl PinnedKeys {
    /// No pins.
    pub fn new() -> Self {
        Self::default()
    }

    /// The pins in `dir`'s file; none if there is no file yet.
    pub fn load(dir: &Path) -> Result<Self, KnownPeersError> {
        let path = dir.join(KNOWN_PEERS_FILE);
        let io_err = |err| KnownPeersError::Io {
            path: path.clone(),
            err,
        };
        let file = match private_file_options().read(true).open(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Self::new()),
            Err(err) => return Err(io_err(err)),
        };
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err)?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(KnownPeersError::Corrupt {
                path,
                line: 1,
                why: format!("the file is over {MAX_FILE_BYTES} bytes"),
            });
        }
        let text = String::from_utf8(bytes).map_err(|err| {
            let line = 1 + err.as_bytes()[..err.utf8_error().valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            KnownPeersError::Corrupt {
                path: path.clone(),
                line,
                why: "not valid UTF-8".into(),
            }
        })?;
        Self::parse(&text).map_err(|(line, why)| KnownPeersError::Corrupt { path, line, why })
    }

    /// Reads the file's text; an error is (line number, what is wrong).
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut pins = Self::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            pins.parse_line(line).map_err(|why| (index + 1, why))?;
        }
        Ok(pins)
    }

    fn parse_line(&mut self, line: &str) -> Result<(), String> {
        let (kind, rest) = line
            .split_once(' ')
            .ok_or("expected `name \"NAME\" KEY` or `addr IP:PORT KEY`")?;
        let rest = rest.trim_start();
        match kind {
            "name" => {
                let mut strings = serde_json::Deserializer::from_str(rest).into_iter::<String>();
                let name = match strings.next() {
                    Some(Ok(name)) => name,
                    _ => return Err("the name is not a quoted string".into()),
                };
                let key = parse_key(&rest[strings.byte_offset()..])?;
                if self.by_name.insert(name.clone(), key).is_some() {
                    return Err(format!("the name {name:?} is pinned twice"));
                }
            }
            "addr" => {
                let (addr, key) = rest.split_once(' ').ok_or("expected `addr IP:PORT KEY`")?;
                let addr: SocketAddr = addr
                    .parse()
                    .map_err(|_| format!("{addr:?} is not an address IP:PORT"))?;
                let key = parse_key(key)?;
                if self.by_addr.insert(addr, key).is_some() {
                    return Err(format!("the address {addr} is pinned twice"));
                }
            }
            other => return Err(format!("{other:?} is not `name` or `addr`")),
        }
        Ok(())
    }

    /// The file's text: the header, then names and addresses in order.
    pub fn to_text(&self) -> String {
        let mut text = format!("{HEADER}\n");
        for (name, key) in &self.by_name {
            // A String always serializes.
            let quoted = serde_json::to_string(name).unwrap_or_default();
            text.push_str(&format!("name {quoted} {}\n", key.to_hex()));
        }
        for (addr, key) in &self.by_addr {
            text.push_str(&format!("addr {addr} {}\n", key.to_hex()));
        }
        text
    }

    /// Writes the pins to `dir`'s file: whole under another name (mode 0600), then renamed
    /// into place, so a crash leaves the old file or the new one, never half of one.
    pub fn save(&self, dir: &Path) -> Result<(), KnownPeersError> {
        let path = dir.join(KNOWN_PEERS_FILE);
        let staging = dir.join(format!("{KNOWN_PEERS_FILE}.new"));
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |err| KnownPeersError::Io { path, err }
        };
        match fs::remove_file(&staging) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(io_err(&staging)(err)),
        }
        let mut file = private_file_options()
            .write(true)
            .create_new(true)
            .open(&staging)
            .map_err(io_err(&staging))?;
        file.write_all(self.to_text().as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io_err(&staging))?;
        drop(file);
        fs::rename(&staging, &path).map_err(io_err(&path))
    }

    /// Checks the key a peer proved against the pins for its name (unless empty) and its
    /// address (`None` when it has none worth pinning, e.g. a one-shot sender).
    pub fn check(&self, name: &str, addr: Option<SocketAddr>, key: &PeerKey) -> Check {
        let by_name = (!name.is_empty())
            .then(|| self.by_name.get(name).map(|k| (Pin::Name(name.into()), k)))
            .flatten();
        let by_addr = addr.and_then(|a| self.by_addr.get(&a).map(|k| (Pin::Addr(a), k)));
        let mut pinned_any = false;
        for (pin, pinned) in [by_name, by_addr].into_iter().flatten() {
            if pinned != key {
                return Check::Mismatch {
                    pinned_by: pin,
                    pinned: Fingerprint::of(pinned),
                    presented: Fingerprint::of(key),
                };
            }
            pinned_any = true;
        }
        if pinned_any {
            Check::Matches
        } else {
            Check::New
        }
    }

    /// Pins `key` for `name` (unless empty) and `addr`, replacing what was pinned there:
    /// first contact, or the user's `/trust`. Returns whether anything changed (then save).
    pub fn trust(&mut self, name: &str, addr: Option<SocketAddr>, key: PeerKey) -> bool {
        let mut changed = false;
        if !name.is_empty() {
            changed |= self.by_name.insert(name.to_string(), key) != Some(key);
        }
        if let Some(addr) = addr {
            changed |= self.by_addr.insert(addr, key) != Some(key);
        }
        changed
    }

    /// The key pinned for a name.
    pub fn key_for_name(&self, name: &str) -> Option<PeerKey> {
        self.by_name.get(name).copied()
    }

    /// The key pinned for an address.
    pub fn key_for_addr(&self, addr: SocketAddr) -> Option<PeerKey> {
        self.by_addr.get(&addr).copied()
    }

    /// Drops every pin of `key` (the user forgets a peer); returns how many.
    pub fn forget(&mut self, key: &PeerKey) -> usize {
        let before = self.by_name.len() + self.by_addr.len();
        self.by_name.retain(|_, k| k != key);
        self.by_addr.retain(|_, k| k != key);
        before - self.by_name.len() - self.by_addr.len()
    }
}

fn parse_key(text: &str) -> Result<PeerKey, String> {
    parse_hex_key(text.trim())
        .map(PeerKey::from_bytes)
        .ok_or_else(|| "the key is not 64 hex digits".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> PeerKey {
        PeerKey::from_bytes([byte; 32])
    }

    fn addr(text: &str) -> Option<SocketAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn first_contact_is_new_then_pinned_keys_match_and_others_mismatch() {
        let mut pins = PinnedKeys::new();
        let bob = addr("10.0.0.2:9000");
        assert_eq!(pins.check("bob", bob, &key(1)), Check::New);
        assert!(pins.trust("bob", bob, key(1)));
        assert!(!pins.trust("bob", bob, key(1)), "nothing new");
        assert_eq!(pins.check("bob", bob, &key(1)), Check::Matches);
        // Same name from elsewhere, same key: matches (a peer moves).
        assert_eq!(
            pins.check("bob", addr("10.0.0.9:9000"), &key(1)),
            Check::Matches
        );
        // Another key for the name: mismatch, with both fingerprints.
        assert_eq!(
            pins.check("bob", addr("10.0.0.9:9000"), &key(2)),
            Check::Mismatch {
                pinned_by: Pin::Name("bob".into()),
                pinned: Fingerprint::of(&key(1)),
                presented: Fingerprint::of(&key(2)),
            }
        );
        // Another name at bob's address with another key: mismatch by address.
        match pins.check("mallory", bob, &key(3)) {
            Check::Mismatch { pinned_by, .. } => assert_eq!(pinned_by, Pin::Addr(bob.unwrap())),
            other => panic!("{other:?}"),
        }
        // The user trusts the new key: it replaces the pin.
        assert!(pins.trust("bob", bob, key(2)));
        assert_eq!(pins.check("bob", bob, &key(2)), Check::Matches);
        assert_eq!(pins.key_for_name("bob"), Some(key(2)));
        // An empty name and no address pin nothing.
        assert_eq!(pins.check("", None, &key(9)), Check::New);
        assert!(!pins.trust("", None, key(9)));
        assert_eq!(pins.forget(&key(2)), 2);
        assert_eq!(pins.check("bob", bob, &key(5)), Check::New);
    }

    #[test]
    fn the_file_round_trips_names_of_any_text() {
        let mut pins = PinnedKeys::new();
        pins.trust("bob", addr("10.0.0.2:9000"), key(1));
        pins.trust("Zoë \"z\" \n 🎉", addr("[::1]:9001"), key(2));
        pins.trust("carol", None, key(3));
        let text = pins.to_text();
        assert!(text.starts_with('#'));
        assert_eq!(PinnedKeys::parse(&text).unwrap(), pins);
        assert_eq!(text.lines().count(), 1 + 3 + 2);
    }

    #[test]
    fn corrupt_lines_are_errors_with_their_number_never_panics() {
        let good = format!("name \"bob\" {}", key(1).to_hex());
        let cases = [
            "garbage".to_string(),
            "name bob 00".to_string(),
            format!("name \"bob {}", key(1).to_hex()),
            "name \"bob\" 0102".to_string(),
            format!("addr nowhere {}", key(1).to_hex()),
            format!("addr 1.2.3.4:99999 {}", key(1).to_hex()),
            "addr 1.2.3.4:5".to_string(),
            format!("peer \"bob\" {}", key(1).to_hex()),
            format!("name \"bob\" {}zz", &key(1).to_hex()[..62]),
            format!("name \"bob\" {}é", &key(1).to_hex()[..62]),
            good.clone(),
            "name \"".to_string(),
            "name".to_string(),
        ];
        for (i, bad) in cases.iter().enumerate() {
            let text = format!("# header\n\n{good}\n{bad}\n");
            let (line, why) = PinnedKeys::parse(&text).unwrap_err();
            assert_eq!(line, 4, "case {i}: {bad}: {why}");
            assert!(!why.is_empty());
        }
    }

    #[test]
    fn the_file_is_saved_private_and_a_corrupt_one_is_reported_and_kept() {
        let dir = std::env::temp_dir().join(format!("peerchat-known-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(PinnedKeys::load(&dir).unwrap(), PinnedKeys::new());
        let mut pins = PinnedKeys::new();
        pins.trust("bob", addr("10.0.0.2:9000"), key(1));
        pins.save(&dir).unwrap();
        assert_eq!(PinnedKeys::load(&dir).unwrap(), pins);
        let path = dir.join(KNOWN_PEERS_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let corrupt = format!("{}name \"x\" nothex\n", pins.to_text());
        fs::write(&path, &corrupt).unwrap();
        let err = PinnedKeys::load(&dir).unwrap_err();
        assert!(
            matches!(err, KnownPeersError::Corrupt { line: 4, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("line 4"), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), corrupt, "kept as it is");
        fs::write(&path, b"# ok\n\xff\xfe\n").unwrap();
        assert!(matches!(
            PinnedKeys::load(&dir),
            Err(KnownPeersError::Corrupt { line: 2, .. })
        ));
        let _ = fs::remove_dir_all(&dir);
    }
}
