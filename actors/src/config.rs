//! Settings of one node: who it is, where it listens, and its timeouts.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use crate::classic::ClassicConfig;
use crate::limits::Limits;
use crate::noise::StaticKeypair;

/// Everything [`crate::Node::start`] needs. `NodeConfig::local("alice")` is a node on
/// 127.0.0.1 with a free port and the default timeouts, the usual start for a test.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Name shown to peers in `hello`.
    pub name: String,
    /// Interface to listen on; 0.0.0.0 (the binary's default) lets LAN peers reach us.
    pub bind: IpAddr,
    /// Port to listen on; 0 picks a free one.
    pub port: u16,
    /// Timeouts of the handshake, heartbeat, connects, acks and quitting.
    pub timeouts: Timeouts,
    /// Bytes a Session may queue for a peer that reads slower than we write, before it
    /// disconnects that peer as too slow. Bounds memory per connection.
    pub write_buffer_bytes: usize,
    /// Restart intensity of the node's supervisor.
    pub restarts: RestartPolicy,
    /// How undelivered chats are retried.
    pub retry: RetryPolicy,
    /// Where the node's key, the outbox and the history are kept across restarts, locked
    /// against a second node for as long as this one runs; `None` keeps nothing on disk (a
    /// new key each run, the outbox and history in memory).
    pub data_dir: Option<PathBuf>,
    /// Announce the node on the LAN and find others there (mDNS/DNS-SD, discovery.rs). Never
    /// on loopback, whatever this says. Off in `local`, so that tests stay off the LAN; the
    /// binary turns it on unless `--no-discovery`.
    pub discovery: bool,
    /// A key file of this node's own, used without any lock (a one-shot `peerchat send`
    /// beside a node running on the same data directory: its `send.key`). Made if missing.
    /// `None`: the data directory's key, or a new one.
    pub key_file: Option<PathBuf>,
    /// Tells peers it does not listen (`listen_port` 0 in its `hello`): a one-shot sender,
    /// which they do not dial back or pass on.
    pub one_shot: bool,
    /// Classic peers: accepted or not, and how a `CONNECT_REQUEST` is answered (issue 15).
    pub classic: ClassicConfig,
    /// The budgets of what peers can make the node hold (docs/limits.md).
    pub limits: Limits,
}

impl NodeConfig {
    /// A node called `name` on 127.0.0.1, any free port, default timeouts: the usual start of a test.
    pub fn local(name: &str) -> Self {
        NodeConfig {
            name: name.to_string(),
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            timeouts: Timeouts::default(),
            write_buffer_bytes: 1024 * 1024,
            restarts: RestartPolicy::default(),
            retry: RetryPolicy::default(),
            data_dir: None,
            discovery: false,
            key_file: None,
            one_shot: false,
            classic: ClassicConfig::default(),
            limits: Limits::default(),
        }
    }
}

/// How long to wait for each thing a peer should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A new connection must complete its handshake (both `hello`s) within this.
    pub hello: Duration,
    /// A Session pings its peer after this much silence...
    pub ping_interval: Duration,
    /// ...and closes the connection after this much silence.
    pub idle: Duration,
    /// TCP connect to a peer.
    pub connect: Duration,
    /// A chat without an ack after this long is sent again (on a live connection a frame
    /// cannot vanish, but a peer may drop it).
    pub ack: Duration,
    /// `get_peers` answers awaited by "connect to active peers".
    pub peer_refresh: Duration,
    /// On quit, how long to wait for acks of messages still in flight.
    pub quit_grace: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            hello: Duration::from_secs(5),
            ping_interval: Duration::from_secs(2),
            idle: Duration::from_secs(6),
            connect: Duration::from_secs(3),
            ack: Duration::from_secs(10),
            peer_refresh: Duration::from_secs(2),
            quit_grace: Duration::from_secs(3),
        }
    }
}

/// Who this node is, as every Session proves and announces it in its handshake.
#[derive(Debug, Clone)]
pub struct LocalIdentity {
    /// The static keypair every handshake proves: the public half is who this node is.
    pub keys: StaticKeypair,
    /// The name announced in `hello`.
    pub name: String,
    /// The port announced in `hello`: the one this node listens on, or 0 for a one-shot
    /// sender.
    pub listen_port: u16,
    /// The interface this node listens on.
    pub bind: IpAddr,
}

/// Reconnecting to a peer that has chats waiting: exponential backoff with jitter, from
/// `first_backoff` doubling up to `max_backoff` (`registry::dialer::backoff`); a chat is
/// reported failed once it has waited `give_up_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Pause before the first reconnect attempt.
    pub first_backoff: Duration,
    /// Longest pause between two attempts.
    pub max_backoff: Duration,
    /// A chat waiting longer than this is reported failed.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(10),
            give_up_after: Duration::from_secs(120),
        }
    }
}

/// Restart intensity: more than `max_restarts` within `window` escalates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Restarts allowed within `window`.
    pub max_restarts: usize,
    /// The window restarts are counted in.
    pub window: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            max_restarts: 10,
            window: Duration::from_secs(10),
        }
    }
}
