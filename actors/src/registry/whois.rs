//! Who a peer is, and the user's word on a changed key: the Console's `/whois PEER`
//! (`Whois`) and `/trust PEER` (`Trust`). PEER is a name, a number in the peer list, a
//! fingerprint prefix or `IP:PORT`. The rules live in the peer table and `trust.rs`.

use std::fmt;
use std::time::SystemTime;

use actix::prelude::*;

use super::trust::KeyChange;
use super::Registry;
use crate::guarded_handler;
use crate::key::{Fingerprint, PeerKey};
use crate::peer::PeerAddr;

/// `/whois PEER`.
#[derive(Message, Debug)]
#[rtype(result = "Result<WhoisReport, TrustError>")]
pub struct Whois {
    /// The peer, as the user wrote it.
    pub peer: String,
}

/// What `/whois` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhoisReport {
    /// Its name.
    pub name: String,
    /// Its key's fingerprint.
    pub fingerprint: Fingerprint,
    /// Every address known for it.
    pub addrs: Vec<WhoisAddress>,
    /// Whether its key is pinned for its name (trust on first use).
    pub pinned: bool,
    /// Whether a Session serves it now.
    pub connected: bool,
}

/// One address in `/whois`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhoisAddress {
    /// The address.
    pub addr: PeerAddr,
    /// How it was learned (`dialed and verified`, `introduced by bob`, ...).
    pub how: String,
    /// When a dial there last proved the key.
    pub last_worked: Option<SystemTime>,
}

/// `/trust PEER`: accept the new key of a peer whose key changed.
#[derive(Message, Debug)]
#[rtype(result = "Result<KeyChange, TrustError>")]
pub struct Trust {
    /// The peer, as the user wrote it.
    pub peer: String,
}

/// Why `/whois` or `/trust` found nothing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustError(pub String);

impl fmt::Display for TrustError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TrustError {}

guarded_handler!(
    Registry,
    Whois,
    |act, msg, _| act.whois(&msg.peer),
    on_panic: Err(TrustError("the registry failed; try again".into())),
);

guarded_handler!(
    Registry,
    Trust,
    |act, msg, ctx| act.trust(&msg.peer, ctx),
    on_panic: Err(TrustError("the registry failed; try again".into())),
);

/// A fingerprint as typed: lowercase, without the dashes.
fn squeeze(text: &str) -> String {
    let kept = text.chars().filter(|c| *c != '-');
    kept.flat_map(char::to_lowercase).collect()
}

/// Whether `typed` (4 characters or more) begins `fingerprint`.
fn fingerprint_starts(fingerprint: &Fingerprint, typed: &str) -> bool {
    let typed = squeeze(typed);
    typed.len() >= 4 && squeeze(fingerprint.as_str()).starts_with(&typed)
}

/// Digits, as the Console reads them (console/names.rs): the peer with that list number
/// (`numbered`), unless they also begin the fingerprint of another peer (`printed`: the keys
/// whose fingerprint they begin), which is ambiguous; digits that are no list number but
/// begin one fingerprint name its peer. `None`: nothing matches.
fn by_digits(
    digits: &str,
    numbered: Option<PeerKey>,
    printed: &[PeerKey],
) -> Option<Result<PeerKey, TrustError>> {
    let others = |key: PeerKey| printed.iter().filter(move |other| **other != key).count();
    match (numbered, printed) {
        (Some(key), _) if others(key) == 0 => Some(Ok(key)),
        (Some(_), _) => Some(Err(TrustError(format!(
            "{digits} is a peer's number and the start of another peer's fingerprint: give \
             the name, or more of the fingerprint (with its dash)"
        )))),
        (None, [one]) => Some(Ok(*one)),
        (None, []) => None,
        (None, _) => Some(Err(TrustError(format!(
            "{digits} begins the fingerprints of several peers: give more of it"
        )))),
    }
}

impl Registry {
    /// The key `selector` names: a number in the peer list, an address, a name or a
    /// fingerprint prefix.
    fn find_key(&self, selector: &str) -> Result<PeerKey, TrustError> {
        let selector = selector.trim();
        let unknown = || TrustError(format!("no known peer matches {selector:?}"));
        if selector.bytes().all(|b| b.is_ascii_digit()) {
            let listed = self.peers.list(|_| 0);
            let numbered = selector.parse::<usize>().ok().and_then(|n| {
                let peer = listed.get(n.checked_sub(1)?)?;
                peer.key
            });
            let printed: Vec<PeerKey> = self
                .peers
                .keys()
                .filter(|(key, _)| fingerprint_starts(&key.fingerprint(), selector))
                .map(|(key, _)| *key)
                .collect();
            return by_digits(selector, numbered, &printed).ok_or_else(unknown)?;
        }
        if let Ok(addr) = selector.parse::<PeerAddr>() {
            return self.peers.key_at(&addr).ok_or_else(unknown);
        }
        // Several keys may have gone by one name (a key changed and was trusted): the one
        // pinned for it first, then a connected one.
        let named = self.peers.keys();
        let named = named.filter(|(_, record)| record.name.as_deref() == Some(selector));
        let by_name = named.max_by_key(|(key, record)| {
            (self.pins.is_pinned(selector, key), record.session.is_some())
        });
        if let Some((key, _)) = by_name {
            return Ok(*key);
        }
        let mut keys = self.peers.keys();
        let by_print = keys.find(|(key, _)| fingerprint_starts(&key.fingerprint(), selector));
        by_print.map(|(key, _)| *key).ok_or_else(unknown)
    }

    fn whois(&self, selector: &str) -> Result<WhoisReport, TrustError> {
        let key = self.find_key(selector)?;
        let unknown = || TrustError(format!("no known peer matches {selector:?}"));
        let record = self.peers.record(&key).ok_or_else(unknown)?;
        let name = record.name.as_deref().unwrap_or_default().to_string();
        let addrs = record.addrs.iter().map(|known| WhoisAddress {
            addr: known.addr,
            how: known.learned.describe(),
            last_worked: known.last_worked,
        });
        Ok(WhoisReport {
            pinned: self.pins.is_pinned(&name, &key),
            name,
            fingerprint: key.fingerprint(),
            addrs: addrs.collect(),
            connected: record.session.is_some(),
        })
    }

    /// Accepts the key change `selector` names, and dials the peer at its address.
    fn trust(&mut self, selector: &str, ctx: &mut Context<Self>) -> Result<KeyChange, TrustError> {
        if !self.pins.enabled() {
            return Err(TrustError(
                "keys are pinned only with a data directory (this node has none)".into(),
            ));
        }
        let selector = selector.trim();
        let known = self
            .find_key(selector)
            .ok()
            .and_then(|key| self.peers.record(&key));
        let known_name = known.and_then(|record| record.name.as_deref().map(String::from));
        let known_addrs: Vec<PeerAddr> = known
            .map(|record| record.addrs.iter().map(|known| known.addr).collect())
            .unwrap_or_default();
        let change = self.pins.pending(|change| {
            change.name == selector
                || Some(&change.name) == known_name.as_ref()
                || change
                    .addr
                    .is_some_and(|addr| addr.to_string() == selector || known_addrs.contains(&addr))
                || fingerprint_starts(&change.presented.fingerprint(), selector)
                || fingerprint_starts(&change.pinned, selector)
        });
        let change = change.ok_or_else(|| {
            TrustError(format!(
                "no changed key waits to be trusted for {selector:?}"
            ))
        })?;
        self.pins.accept(&change);
        if let Some(addr) = change.addr {
            if self.peers.session_for(&addr).is_none() && !self.draining() {
                self.dial(addr, None, ctx);
            }
        }
        Ok(change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_prefixes_ignore_case_and_dashes_and_need_four_characters() {
        let print = PeerKey::from_bytes([0; 32]).fingerprint();
        assert_eq!(print.as_str(), "csm7-nbfr-cayq-ev4f-r65r");
        assert!(fingerprint_starts(&print, "csm7"));
        assert!(fingerprint_starts(&print, "CSM7-NB"));
        assert!(fingerprint_starts(&print, "csm7nbfr"));
        assert!(!fingerprint_starts(&print, "csm"));
        assert!(!fingerprint_starts(&print, "csm8"));
    }

    #[test]
    fn digits_are_a_number_a_fingerprint_prefix_or_ambiguous_as_in_the_console() {
        let (a, b) = (PeerKey::from_bytes([1; 32]), PeerKey::from_bytes([2; 32]));
        assert_eq!(by_digits("2", Some(a), &[]), Some(Ok(a)));
        assert_eq!(by_digits("1234", Some(a), &[a]), Some(Ok(a)));
        assert!(matches!(by_digits("1234", Some(a), &[b]), Some(Err(_))));
        assert_eq!(by_digits("0815", None, &[b]), Some(Ok(b)));
        assert!(matches!(by_digits("0815", None, &[a, b]), Some(Err(_))));
        assert_eq!(by_digits("99", None, &[]), None);
    }
}
