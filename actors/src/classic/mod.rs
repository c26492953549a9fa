//! The classic protocol: the plain-text format of the class assignment peerchat began as
//! (issue 15, docs/protocol.md appendix A). Plain data and functions only, no actor and no
//! socket: the texts ([`text`]), the classic peers the Registry knows ([`peers`]), what a
//! classic connection reports ([`ClassicEvent`]), one message sent ([`sender`]) and how fast
//! one source's texts are handled ([`rate`]).

pub mod outbox;
pub mod peers;
pub mod rate;
pub mod sender;
pub mod text;

use std::net::SocketAddr;

use crate::peer::PeerAddr;

/// Something a classic peer did, as the Registry reports it (inside `NodeEvent::Classic`).
/// Classic peers have no key and nothing they send is encrypted; the Console says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassicEvent {
    /// A classic chat, shown like any chat but marked classic and unencrypted.
    Chat {
        /// The peer: the IP it claimed (or the connection's, see `text::shown_ip`) and the
        /// port it said it listens on.
        from: PeerAddr,
        /// The team name it gave.
        team: String,
        /// The text.
        text: String,
        /// The sender kept sending past `text::MAX_INBOUND_BYTES`: what follows was dropped.
        cut: bool,
    },
    /// A `CONNECT_REQUEST`, answered `CONNECTED` (accepted) or `REJECTED`.
    ConnectRequest {
        /// The peer asking.
        from: PeerAddr,
        /// What we answered (`--classic-accept`).
        accepted: bool,
    },
    /// The peer said it leaves: `DISCONNECTED`, or the text `exit`.
    Left {
        /// The peer.
        from: PeerAddr,
        /// Its team name, if it ever gave one.
        team: Option<String>,
        /// `DISCONNECTED` or `exit`, as it said it.
        said: String,
    },
    /// A classic connection sent something that is not the classic format (no spaces, not
    /// UTF-8, ...); it was closed without a reply.
    Invalid {
        /// The connection's source.
        remote: SocketAddr,
        /// What was wrong.
        reason: String,
    },
}

/// How a node treats classic peers (`--no-classic`, `--classic-accept`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassicConfig {
    /// Accept classic connections (off with `--no-classic`: closed unread).
    pub enabled: bool,
    /// Answer a `CONNECT_REQUEST` with `CONNECTED` (else `REJECTED`).
    pub accept: bool,
    /// Connecting to a classic peer, and waiting for its reply.
    pub timeout: std::time::Duration,
    /// Attempts at one message before it is reported failed.
    pub attempts: u32,
}

impl Default for ClassicConfig {
    fn default() -> Self {
        ClassicConfig {
            enabled: true,
            accept: true,
            timeout: text::CLASSIC_TIMEOUT,
            attempts: 3,
        }
    }
}
