//! The addresses of one peer (a key): how each was learned and when it last worked, and the
//! rules for which may be kept, chatted to and passed on (docs/protocol.md, "Addresses").
//! Plain data owned by the peer table (`peers.rs`); no sockets.

use std::net::IpAddr;
use std::time::SystemTime;

use crate::peer::PeerAddr;

/// How an address came to be known for a key; later kinds are stronger.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Learned {
    /// Another peer's `peers` frame said the key listens there (a claim of that peer).
    Introduced {
        /// The name (or fingerprint) of the peer that said so. Boxed: a pointer, so that
        /// a `KnownAddr` is 56 bytes, not 64 (an allocation of 64 bytes, not 80, in the
        /// record of each peer; few addresses are introduced ones).
        by: Box<String>,
    },
    /// The key's own inbound connection came from this IP and its `hello` named this port:
    /// a claim until dialed. For a one-shot sender, its connection's own address.
    Claimed,
    /// We dialed it and the peer there proved the key.
    Dialed,
}

impl Learned {
    /// Whether chats to this address go to the key: only when the key's own connection
    /// stands behind it, never on a third party's word.
    pub fn routes(&self) -> bool {
        !matches!(self, Learned::Introduced { .. })
    }

    /// How it reads in `/whois`.
    pub fn describe(&self) -> String {
        match self {
            Learned::Introduced { by } => format!("introduced by {by}"),
            Learned::Claimed => "claimed by the peer (not dialed yet)".into(),
            Learned::Dialed => "dialed and verified".into(),
        }
    }
}

/// One address of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownAddr {
    /// The address.
    pub addr: PeerAddr,
    /// How it was learned.
    pub learned: Learned,
    /// When a dial there last proved the key.
    pub last_worked: Option<SystemTime>,
}

/// Whether an address may be stored or passed on at all: never an unspecified (`0.0.0.0`,
/// `::`), multicast or broadcast address, nor port 0.
pub fn usable(addr: &PeerAddr) -> bool {
    let ip = addr.ip();
    let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    addr.port() != 0 && !ip.is_unspecified() && !ip.is_multicast() && !broadcast
}

/// Whether `addr` may be told to a peer reached at `recipient`: it must have worked, and a
/// loopback address means something only to a peer on the same host.
pub fn worth_passing_on(known: &KnownAddr, recipient: &PeerAddr) -> bool {
    known.learned == Learned::Dialed
        && known.last_worked.is_some()
        && usable(&known.addr)
        && known.addr != *recipient
        && (recipient.ip().is_loopback() || !known.addr.ip().is_loopback())
}

/// Adds or strengthens `addr` in `addrs`: a stronger kind replaces a weaker one, never the
/// other way; `worked` marks it as having just proved the key.
pub fn note(addrs: &mut Vec<KnownAddr>, addr: PeerAddr, learned: Learned, worked: bool) {
    let now = worked.then(SystemTime::now);
    match addrs.iter_mut().find(|known| known.addr == addr) {
        Some(known) => {
            if learned > known.learned {
                known.learned = learned;
            }
            if now.is_some() {
                known.last_worked = now;
            }
        }
        None => {
            if addrs.is_empty() {
                // Most peers have one address: room for one, not the four a first push
                // makes, in each of thousands of records.
                addrs.reserve_exact(1);
            }
            addrs.push(KnownAddr {
                addr,
                learned,
                last_worked: now,
            })
        }
    }
}

/// The address to dial a key at: the one that worked last, else the strongest.
pub fn best(addrs: &[KnownAddr]) -> Option<PeerAddr> {
    addrs
        .iter()
        .max_by(|a, b| {
            (a.last_worked, &a.learned)
                .partial_cmp(&(b.last_worked, &b.learned))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .map(|known| known.addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> PeerAddr {
        text.parse().unwrap()
    }

    fn dialed(text: &str) -> KnownAddr {
        KnownAddr {
            addr: at(text),
            learned: Learned::Dialed,
            last_worked: Some(SystemTime::now()),
        }
    }

    #[test]
    fn unspecified_multicast_broadcast_and_port_zero_are_never_usable() {
        for bad in [
            "0.0.0.0:9000",
            "[::]:9000",
            "224.0.0.251:9000",
            "[ff02::1]:9000",
            "255.255.255.255:9000",
        ] {
            assert!(!usable(&at(bad)), "{bad}");
        }
        assert!(!usable(&PeerAddr::from_ip_port([10, 0, 0, 1].into(), 0)));
        for good in ["10.0.0.1:9000", "127.0.0.1:9000", "[::1]:9000"] {
            assert!(usable(&at(good)), "{good}");
        }
    }

    #[test]
    fn only_worked_addresses_are_passed_on_and_loopback_only_to_loopback() {
        let remote = at("10.0.0.9:9000");
        let local = at("127.0.0.1:9000");
        assert!(worth_passing_on(&dialed("10.0.0.2:9001"), &remote));
        assert!(!worth_passing_on(&dialed("127.0.0.1:9001"), &remote));
        assert!(worth_passing_on(&dialed("127.0.0.1:9001"), &local));
        // Never back to the recipient itself.
        assert!(!worth_passing_on(&dialed("10.0.0.9:9000"), &remote));
        let claimed = KnownAddr {
            learned: Learned::Claimed,
            last_worked: None,
            ..dialed("10.0.0.2:9001")
        };
        assert!(!worth_passing_on(&claimed, &remote));
        let introduced = KnownAddr {
            learned: Learned::Introduced {
                by: Box::new("bob".into()),
            },
            ..claimed
        };
        assert!(!worth_passing_on(&introduced, &remote));
    }

    #[test]
    fn a_stronger_kind_replaces_a_weaker_one_never_the_reverse() {
        let mut addrs = Vec::new();
        note(&mut addrs, at("10.0.0.2:9001"), Learned::Claimed, false);
        note(&mut addrs, at("10.0.0.2:9001"), Learned::Dialed, true);
        let by = Learned::Introduced {
            by: Box::new("eve".into()),
        };
        note(&mut addrs, at("10.0.0.2:9001"), by, false);
        assert_eq!(addrs.len(), 1);
        assert_eq!(addrs[0].learned, Learned::Dialed);
        assert!(addrs[0].last_worked.is_some());
        assert!(Learned::Claimed.routes() && Learned::Dialed.routes());
        assert!(!Learned::Introduced {
            by: Box::new("x".into())
        }
        .routes());
    }

    #[test]
    fn the_best_address_is_the_one_that_worked() {
        let mut addrs = Vec::new();
        note(&mut addrs, at("10.0.0.3:9001"), Learned::Claimed, false);
        note(&mut addrs, at("10.0.0.2:9001"), Learned::Dialed, true);
        assert_eq!(best(&addrs), Some(at("10.0.0.2:9001")));
        assert_eq!(best(&[]), None);
    }
}
