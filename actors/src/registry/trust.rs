//! Trust on first use as the Registry applies it: the data directory's pinned keys
//! (`known_peers.rs`), the key changes waiting for the user's `/trust`, and where each
//! expectation of a dial came from. A plain struct owned by the Registry; no sockets.

use std::path::{Path, PathBuf};

use crate::key::{Fingerprint, PeerKey};
use crate::known_peers::{Check, PinnedKeys};
use crate::peer::PeerAddr;

/// A peer refused because its key is not the pinned one, until the user trusts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChange {
    /// The name it gave.
    pub name: String,
    /// Its listening address, if it has one.
    pub addr: Option<PeerAddr>,
    /// What holds the pinned key (`name "bob"`, `address IP:PORT`).
    pub pinned_by: String,
    /// The pinned key.
    pub pinned: Fingerprint,
    /// The key it proved.
    pub presented: PeerKey,
}

/// A key a dial must prove, and where the expectation came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expectation {
    pub(crate) key: PeerKey,
    /// `None`: pinned for that address (a mismatch is a key change); else where it came
    /// from (`introduced by bob`, `announced on the LAN as bob`).
    pub(crate) source: Option<String>,
}

/// The key a dial must prove: the one pinned for the address; else the one it was
/// introduced with (and by whom); else the one announced for it on the LAN (its `id`, the
/// key in hex, and its name). An announcement whose id is no key expects nothing.
pub(crate) fn expectation(
    pinned: Option<PeerKey>,
    introduced: Option<(PeerKey, String)>,
    announced: Option<(&str, &str)>,
) -> Option<Expectation> {
    if let Some(key) = pinned {
        return Some(Expectation { key, source: None });
    }
    if let Some((key, by)) = introduced {
        let source = Some(format!("introduced by {by}"));
        return Some(Expectation { key, source });
    }
    let (id, name) = announced?;
    let key = PeerKey::from_hex(id)?;
    let source = Some(format!("announced on the LAN as {name}"));
    Some(Expectation { key, source })
}

/// The pins and the key changes waiting for `/trust` (see the module docs).
#[derive(Default)]
pub(crate) struct Pins {
    /// `None` without a data directory, or when its file could not be read (then it is
    /// never written over either).
    known: Option<PinnedKeys>,
    dir: Option<PathBuf>,
    pending: Vec<KeyChange>,
}

impl Pins {
    /// The pins of data directory `dir`; none for a node without one.
    pub(crate) fn load(dir: Option<&Path>) -> Self {
        let Some(dir) = dir else {
            return Pins::default();
        };
        match PinnedKeys::load(dir) {
            Ok(known) => Pins {
                known: Some(known),
                dir: Some(dir.to_path_buf()),
                pending: Vec::new(),
            },
            Err(err) => {
                tracing::error!("{err}; keys are not pinned in this run");
                Pins::default()
            }
        }
    }

    /// Pins kept in memory only (for tests of the rules).
    #[cfg(test)]
    pub(crate) fn in_memory() -> Self {
        Pins {
            known: Some(PinnedKeys::new()),
            ..Pins::default()
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.known.is_some()
    }

    /// A listening peer named `name` at `addr` proved `key`. First contact pins it; a key
    /// other than the pinned one is a [`KeyChange`] (also kept for `/trust`).
    pub(crate) fn check(
        &mut self,
        name: &str,
        addr: Option<PeerAddr>,
        key: PeerKey,
    ) -> Result<(), Box<KeyChange>> {
        let Some(known) = self.known.as_mut() else {
            return Ok(());
        };
        let socket = addr.map(|a| a.socket_addr());
        match known.check(name, socket, &key) {
            Check::New | Check::Matches => {
                // Pins whichever of name and address was not pinned yet.
                if known.trust(name, socket, key) {
                    self.save();
                }
                Ok(())
            }
            Check::Mismatch {
                pinned_by, pinned, ..
            } => {
                let change = KeyChange {
                    name: name.to_string(),
                    addr,
                    pinned_by: pinned_by.to_string(),
                    pinned,
                    presented: key,
                };
                self.pending.retain(|old| old.presented != key);
                self.pending.push(change.clone());
                Err(Box::new(change))
            }
        }
    }

    /// The key a dial to `addr` must prove, if one is pinned there.
    pub(crate) fn pinned_at(&self, addr: &PeerAddr) -> Option<PeerKey> {
        self.known.as_ref()?.key_for_addr(addr.socket_addr())
    }

    /// Whether `key` is pinned for `name`.
    pub(crate) fn is_pinned(&self, name: &str, key: &PeerKey) -> bool {
        let known = self.known.as_ref();
        known.is_some_and(|k| k.key_for_name(name) == Some(*key))
    }

    /// A dial to `addr`, expecting its pinned key, met `presented`: a key change.
    pub(crate) fn changed_at(
        &mut self,
        addr: PeerAddr,
        name: &str,
        presented: PeerKey,
    ) -> Option<KeyChange> {
        let pinned = self.pinned_at(&addr)?;
        let change = KeyChange {
            name: name.to_string(),
            addr: Some(addr),
            pinned_by: format!("address {addr}"),
            pinned: pinned.fingerprint(),
            presented,
        };
        self.pending.retain(|old| old.presented != presented);
        self.pending.push(change.clone());
        Some(change)
    }

    /// The waiting key change `matches` picks, if any.
    pub(crate) fn pending(&self, matches: impl Fn(&KeyChange) -> bool) -> Option<KeyChange> {
        self.pending
            .iter()
            .rev()
            .find(|change| matches(change))
            .cloned()
    }

    /// The user trusts `change`: its key replaces the pinned one.
    pub(crate) fn accept(&mut self, change: &KeyChange) {
        self.pending.retain(|old| old.presented != change.presented);
        if let Some(known) = self.known.as_mut() {
            let socket = change.addr.map(|a| a.socket_addr());
            if known.trust(&change.name, socket, change.presented) {
                self.save();
            }
        }
    }

    fn save(&self) {
        if let (Some(known), Some(dir)) = (&self.known, &self.dir) {
            if let Err(err) = known.save(dir) {
                tracing::error!("cannot save the pinned keys: {err}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> PeerKey {
        PeerKey::from_bytes([n; 32])
    }

    fn at(text: &str) -> Option<PeerAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn a_dial_expects_the_pinned_key_then_the_introduced_then_the_announced_one() {
        let hex = key(3).to_hex();
        let announced = Some((hex.as_str(), "carol"));
        let introduced = Some((key(2), "bob".to_string()));
        let pinned = expectation(Some(key(1)), introduced.clone(), announced).unwrap();
        assert_eq!((pinned.key, pinned.source), (key(1), None));
        let by_bob = expectation(None, introduced, announced).unwrap();
        assert_eq!(by_bob.key, key(2));
        assert_eq!(by_bob.source.as_deref(), Some("introduced by bob"));
        let on_lan = expectation(None, None, announced).unwrap();
        assert_eq!(on_lan.key, key(3));
        assert_eq!(
            on_lan.source.as_deref(),
            Some("announced on the LAN as carol")
        );
        // An announcement that carries no key (an old node id) expects nothing.
        assert_eq!(
            expectation(None, None, Some(("00000000000000b0", "x"))),
            None
        );
        assert_eq!(expectation(None, None, None), None);
    }

    #[test]
    fn without_a_data_directory_nothing_is_pinned_or_refused() {
        let mut pins = Pins::load(None);
        assert!(!pins.enabled());
        assert_eq!(pins.check("bob", at("10.0.0.2:9000"), key(1)), Ok(()));
        assert_eq!(pins.check("bob", at("10.0.0.2:9000"), key(2)), Ok(()));
    }

    #[test]
    fn the_first_key_is_pinned_and_another_is_refused_until_trusted() {
        let mut pins = Pins::in_memory();
        assert_eq!(pins.check("bob", at("10.0.0.2:9000"), key(1)), Ok(()));
        assert!(pins.is_pinned("bob", &key(1)));
        assert_eq!(pins.pinned_at(&at("10.0.0.2:9000").unwrap()), Some(key(1)));
        let change = pins
            .check("bob", at("10.0.0.3:9000"), key(2))
            .expect_err("another key for a pinned name");
        assert_eq!(change.pinned, key(1).fingerprint());
        assert_eq!(change.pinned_by, "name \"bob\"");
        // The same refusal again until the user decides.
        assert!(pins.check("bob", at("10.0.0.3:9000"), key(2)).is_err());
        let waiting = pins.pending(|c| c.name == "bob").expect("waits for /trust");
        pins.accept(&waiting);
        assert_eq!(pins.check("bob", at("10.0.0.3:9000"), key(2)), Ok(()));
        assert!(pins.is_pinned("bob", &key(2)));
        assert_eq!(pins.pending(|_| true), None);
    }

    #[test]
    fn another_key_at_a_pinned_address_is_a_change_too() {
        let mut pins = Pins::in_memory();
        pins.check("bob", at("10.0.0.2:9000"), key(1)).unwrap();
        let change = pins.check("eve", at("10.0.0.2:9000"), key(3)).unwrap_err();
        assert_eq!(change.pinned_by, "address 10.0.0.2:9000");
        let dialed = pins.changed_at(at("10.0.0.2:9000").unwrap(), "bob", key(4));
        assert_eq!(dialed.map(|c| c.pinned), Some(key(1).fingerprint()));
        assert_eq!(
            pins.changed_at(at("10.0.0.9:9000").unwrap(), "x", key(4)),
            None
        );
    }
}
