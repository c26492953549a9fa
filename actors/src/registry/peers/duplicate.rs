//! The rule that keeps one connection per pair of nodes (docs/protocol.md, "One session per
//! key"): when a Session registers while another serves the same key or address, which one
//! stays. A pure function of the two connections and our key, so both ends agree.

use crate::key::PeerKey;

/// One connection as the duplicate rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Connection {
    /// The key the node at the other end proved.
    pub(crate) key: PeerKey,
    /// True if this node opened it.
    pub(crate) outbound: bool,
}

/// What becomes of a connection registered while another serves the same key or address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The existing one stays; the newcomer is refused for this reason.
    KeepExisting(&'static str),
    /// The newcomer takes over; the existing one is closed for this reason.
    Replace(&'static str),
}

/// Refusal of a connection from another key at the address of a connected peer.
pub(crate) const ADDRESS_TAKEN: &str = "another key is connected from this address";

/// Two connections, the newcomer's and one already serving the same key or address
/// (docs/protocol.md, "One session per key"):
/// - another key never evicts anyone: the newcomer is refused, whatever it claims;
/// - the same key, opened by the same side: the peer restarted or lost its connection, or
///   we reached it at another of its addresses, so the new one replaces the old;
/// - the same key, opened by opposite sides (both dialed at once): the connection dialed by
///   the node with the lower key survives. Both ends compute the same answer.
pub(crate) fn settle_duplicate(me: PeerKey, existing: Connection, newcomer: Connection) -> Verdict {
    if existing.key != newcomer.key {
        return Verdict::KeepExisting(ADDRESS_TAKEN);
    }
    if existing.outbound == newcomer.outbound {
        return Verdict::Replace("replaced by a new connection");
    }
    let opener = |c: Connection| if c.outbound { me } else { c.key };
    if opener(existing) <= opener(newcomer) {
        Verdict::KeepExisting("duplicate connection")
    } else {
        Verdict::Replace("duplicate connection")
    }
}
