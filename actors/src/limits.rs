//! The budgets of what peers can make a node hold (issue 13, docs/limits.md): the settings
//! ([`Limits`]), and the plain parts that enforce them where the state lives: the Listener's
//! [`ConnectionCounts`], a Session's [`TokenBucket`]s, the writers' shared [`WriteBudget`].
//! Data types only: no actor here (the Listener handles [`ConnectionEnded`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix::{Message, Recipient, WeakRecipient};

/// The longest name a peer may announce in its `hello`, in bytes (UTF-8). Longer ones are
/// refused (see `session/handshake.rs`); a `peers` entry with a longer name is skipped.
pub const MAX_NAME_BYTES: usize = 64;

/// At most this many entries are taken from one `peers` frame; the rest are ignored.
pub const MAX_PEERS_TAKEN: usize = 256;

/// Every budget a peer can push against, with its default (`Limits::default`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Inbound connections open at once (peerchat and classic, handshaking or not).
    pub max_sessions: usize,
    /// Inbound connections open at once from one remote IP.
    pub max_sessions_per_ip: usize,
    /// Chats a peer may send: past this rate its Session stops reading it for a moment.
    pub chats: Rate,
    /// `get_peers` a peer may ask: past this rate it gets `bye "rate limit"`.
    pub get_peers: Rate,
    /// Classic texts handled from one source IP (each is a connection of its own): past
    /// this rate a text waits its turn before it is shown, and its sender for its `[ACK]`.
    /// A rate of 0 (or below) is one text in 1000 s after the burst.
    pub classic_chats: Rate,
    /// Chats of one peer handed on but not yet shown (so not yet acked): at this many its
    /// Session stops reading it until the console catches up.
    pub max_unacked_chats: usize,
    /// The same in bytes of text.
    pub max_unacked_bytes: usize,
    /// Bytes queued for all peers together; past it the peers with the biggest queues are
    /// cut `too slow`.
    pub max_write_buffers: usize,
    /// Chat ids remembered per sender to show a resent chat once.
    pub seen_per_sender: usize,
    /// Chat ids remembered for all senders together; past it the window of the sender heard
    /// from longest ago is dropped.
    pub seen_total: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_sessions: 1024,
            max_sessions_per_ip: 32,
            chats: Rate {
                per_second: 200.0,
                burst: 1000.0,
            },
            get_peers: Rate {
                per_second: 1.0,
                burst: 5.0,
            },
            // A person types far slower; a classmate's script sending a hundred texts in a
            // loop goes through at once.
            classic_chats: Rate {
                per_second: 20.0,
                burst: 100.0,
            },
            max_unacked_chats: 1024,
            max_unacked_bytes: 1024 * 1024,
            max_write_buffers: 64 * 1024 * 1024,
            seen_per_sender: 65_536,
            seen_total: 1_000_000,
        }
    }
}

/// The limits a Session checks for every chat it reads, copied from [`Limits`] as it starts.
/// The template every Session shares holds them too, but it is one more cache line per
/// chat, and in a process serving many peers it is rarely in the cache (docs/performance.md,
/// fan-out, ninth round).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChatLimits {
    /// `Limits::chats`.
    pub(crate) rate: Rate,
    /// `Limits::max_unacked_chats`.
    pub(crate) max_unacked_chats: usize,
    /// `Limits::max_unacked_bytes`.
    pub(crate) max_unacked_bytes: usize,
}

impl From<&Limits> for ChatLimits {
    fn from(limits: &Limits) -> Self {
        ChatLimits {
            rate: limits.chats,
            max_unacked_chats: limits.max_unacked_chats,
            max_unacked_bytes: limits.max_unacked_bytes,
        }
    }
}

/// A sustained rate and the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens added per second.
    pub per_second: f64,
    /// Most tokens held (and the bucket's start).
    pub burst: f64,
}

/// A token bucket: each event takes a token; tokens come back at `rate.per_second`, up to
/// `rate.burst`. The rate is the caller's (`take` is given it), not kept here: a Session
/// holds two buckets, and thousands of Sessions share their rates (docs/performance.md).
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: Rate, now: Instant) -> Self {
        TokenBucket {
            tokens: rate.burst.max(1.0),
            last: now,
        }
    }

    /// Takes a token. If none is left the event is counted all the same (it has happened:
    /// a frame already read), as a debt, and the answer says how long until the bucket
    /// holds a token again: waiting that long before the next event keeps to the rate.
    /// `rate` is the one the bucket was made with.
    pub fn take(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        let per_second = rate.per_second.max(f64::MIN_POSITIVE);
        self.tokens = (self.tokens + elapsed * per_second).min(rate.burst.max(1.0));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        // At most one burst of debt, whatever the caller does.
        self.tokens = (self.tokens - 1.0).max(-rate.burst.max(1.0));
        let wait = (1.0 - self.tokens) / per_second;
        Err(Duration::from_secs_f64(wait.min(3600.0)))
    }
}

/// Inbound connections, counted by the Listener: in total and per remote IP.
#[derive(Debug, Default)]
pub struct ConnectionCounts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Held by every inbound connection the Listener admitted, for as long as it lives (the
/// Session's state, or the classic exchange): dropping it tells the Listener the connection
/// ended, however it ended. A recipient, not the Listener's address, so that Sessions do
/// not depend on the Listener; a weak one, made strong only for that last message: a strong
/// one held costs two small allocations of its own (about 96 bytes) in each of thousands of
/// connections (docs/performance.md), and a Listener that has stopped counts nothing.
#[derive(Debug)]
pub struct ConnectionSlot {
    listener: WeakRecipient<ConnectionEnded>,
    ip: IpAddr,
}

impl ConnectionSlot {
    /// A place counted for `ip`, given back to `listener` when dropped.
    pub fn new(listener: Recipient<ConnectionEnded>, ip: IpAddr) -> Self {
        ConnectionSlot {
            listener: listener.downgrade(),
            ip,
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Some(listener) = self.listener.upgrade() {
            listener.do_send(ConnectionEnded(self.ip));
        }
    }
}

/// From a [`ConnectionSlot`] to the Listener: a connection from this IP has ended.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ConnectionEnded(pub IpAddr);

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// `max_sessions` connections are open.
    Full(usize),
    /// `max_sessions_per_ip` connections are open from this IP.
    FullForIp(usize),
}

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Busy::Full(n) => write!(f, "busy: {n} connections open (--max-sessions)"),
            Busy::FullForIp(n) => write!(
                f,
                "busy: {n} connections open from this IP (--max-sessions-per-ip)"
            ),
        }
    }
}

impl ConnectionCounts {
    /// Counts a new connection from `ip`, unless a limit is reached.
    pub fn admit(&mut self, ip: IpAddr, limits: &Limits) -> Result<(), Busy> {
        let ip = ip.to_canonical();
        if self.total >= limits.max_sessions {
            return Err(Busy::Full(self.total));
        }
        let from_ip = self.per_ip.entry(ip).or_insert(0);
        if *from_ip >= limits.max_sessions_per_ip {
            return Err(Busy::FullForIp(*from_ip));
        }
        *from_ip += 1;
        self.total += 1;
        Ok(())
    }

    /// A connection counted by `admit` has ended.
    pub fn release(&mut self, ip: IpAddr) {
        let ip = ip.to_canonical();
        if let Some(from_ip) = self.per_ip.get_mut(&ip) {
            *from_ip -= 1;
            if *from_ip == 0 {
                self.per_ip.remove(&ip);
            }
            self.total = self.total.saturating_sub(1);
        }
    }

    /// Connections counted now.
    pub fn total(&self) -> usize {
        self.total
    }
}

/// The bytes queued by every writer of a node together, against `max_write_buffers`.
///
/// Shared by the writers as atomics, not kept by an actor: a writer checks it on every frame
/// it queues, from the Session's turn or its own task, and asking an actor there would put a
/// mailbox hop on every write. No lock is needed either: each writer only adds and removes
/// its own bytes, and the decision it takes (refuse its own frame) needs no exact snapshot of
/// the others: the counts may be a frame behind, never wrong for long.
#[derive(Debug)]
pub struct WriteBudget {
    limit: usize,
    queued: AtomicUsize,
    /// Writers holding at least one byte.
    writers: AtomicUsize,
}

impl WriteBudget {
    /// A budget of `limit` bytes for all writers together.
    pub fn new(limit: usize) -> Self {
        WriteBudget {
            limit: limit.max(1),
            queued: AtomicUsize::new(0),
            writers: AtomicUsize::new(0),
        }
    }

    /// Bytes queued by all writers.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// A writer's queue went from `before` to `after` bytes.
    pub fn moved(&self, before: usize, after: usize) {
        if after > before {
            self.queued.fetch_add(after - before, Ordering::Relaxed);
        } else if before > after {
            self.queued.fetch_sub(before - after, Ordering::Relaxed);
        }
        match (before == 0, after == 0) {
            (true, false) => {
                self.writers.fetch_add(1, Ordering::Relaxed);
            }
            (false, true) => {
                self.writers.fetch_sub(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// Whether a writer holding `mine` bytes must let go: all queues together are over the
    /// limit, and `mine` is among the biggest (at least the mean of the queues holding
    /// bytes). The biggest queue is always at or above the mean, so it is cut first; a peer
    /// that reads keeps a small queue and is never cut for another's backlog.
    pub fn over_for(&self, mine: usize) -> bool {
        let queued = self.queued();
        if queued <= self.limit || mine == 0 {
            return false;
        }
        let writers = self.writers.load(Ordering::Relaxed).max(1);
        mine >= queued / writers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let start = Instant::now();
        let rate = Rate {
            per_second: 10.0,
            burst: 3.0,
        };
        let mut bucket = TokenBucket::new(rate, start);
        for _ in 0..3 {
            assert!(bucket.take(rate, start).is_ok());
        }
        // The fourth is a debt: a token is back after 200 ms, not 100.
        let wait = bucket.take(rate, start).unwrap_err();
        assert!(wait > Duration::from_millis(190) && wait <= Duration::from_millis(200));
        assert!(bucket
            .take(rate, start + Duration::from_millis(200))
            .is_ok());
        assert!(bucket
            .take(rate, start + Duration::from_millis(200))
            .is_err());
        // Tokens never pile up past the burst.
        let later = start + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(bucket.take(rate, later).is_ok());
        }
        assert!(bucket.take(rate, later).is_err());
    }

    #[test]
    fn connections_are_counted_per_ip_and_in_total() {
        let limits = Limits {
            max_sessions: 3,
            max_sessions_per_ip: 2,
            ..Limits::default()
        };
        let mut counts = ConnectionCounts::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(counts.admit(a, &limits).is_ok());
        assert!(counts.admit(a, &limits).is_ok());
        assert_eq!(counts.admit(a, &limits), Err(Busy::FullForIp(2)));
        // An IPv4-mapped IPv6 address is the same IP.
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(counts.admit(mapped, &limits), Err(Busy::FullForIp(2)));
        assert!(counts.admit(b, &limits).is_ok());
        assert_eq!(counts.admit(b, &limits), Err(Busy::Full(3)));
        counts.release(a);
        assert!(counts.admit(b, &limits).is_ok());
        assert_eq!(counts.total(), 3);
        // Releasing what was never admitted changes nothing.
        counts.release("10.9.9.9".parse().unwrap());
        assert_eq!(counts.total(), 3);
    }

    #[test]
    fn the_write_budget_picks_the_biggest_queues_once_over() {
        let budget = WriteBudget::new(100);
        budget.moved(0, 60);
        budget.moved(0, 30);
        assert!(!budget.over_for(60), "under the limit nobody is cut");
        budget.moved(0, 20);
        assert_eq!(budget.queued(), 110);
        assert!(budget.over_for(60), "the biggest queue");
        assert!(!budget.over_for(20), "a small queue");
        budget.moved(60, 0);
        assert!(!budget.over_for(30));
        assert_eq!(budget.queued(), 50);
    }
}
