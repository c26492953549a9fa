//! Trace mode (`--trace`): one readable line for every message that passes between actors,
//!
//! ```text
//! 06:51:07.123456  Console    → Registry    SendChat { to: 127.0.0.1:9001, text: "hi" }
//! ```
//!
//! written to stderr or a file by a thread of its own, filtered by actor. Actors send through
//! [`tell`] and [`ask`] instead of `do_send` and `send`; when tracing is off that costs one
//! relaxed atomic load per message.

use std::fmt::{self, Debug};
use std::io::Write;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{mpsc, OnceLock};

use actix::dev::{Request, ToEnvelope};
use actix::prelude::*;

/// Who sends or receives a message. `Node` is code outside the actors (a test, the binary,
/// a library user) calling the `Node` API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Code outside the actors calling the `Node` API.
    Node,
    /// The Console.
    Console,
    /// The Registry.
    Registry,
    /// The Listener.
    Listener,
    /// A Session.
    Session,
    /// The NodeSupervisor.
    Supervisor,
    /// The Discovery actor (mDNS on the LAN).
    Discovery,
}

impl Role {
    /// Every role, for `--trace` without a list.
    pub const ALL: [Role; 7] = [
        Role::Node,
        Role::Console,
        Role::Registry,
        Role::Listener,
        Role::Session,
        Role::Supervisor,
        Role::Discovery,
    ];

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// The name printed in trace lines.
    pub fn name(self) -> &'static str {
        match self {
            Role::Node => "Node",
            Role::Console => "Console",
            Role::Registry => "Registry",
            Role::Listener => "Listener",
            Role::Session => "Session",
            Role::Supervisor => "Supervisor",
            Role::Discovery => "Discovery",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|role| role.name().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| {
                format!(
                    "'{}' is not an actor: node, console, registry, listener, session, supervisor or discovery",
                    text.trim()
                )
            })
    }
}

/// Parses `--trace`'s value: `all` or a comma-separated list of actors.
pub fn parse_roles(text: &str) -> Result<Vec<Role>, String> {
    if text.trim().eq_ignore_ascii_case("all") || text.trim().is_empty() {
        return Ok(Role::ALL.to_vec());
    }
    text.split(',').map(Role::from_str).collect()
}

/// Actors whose messages are traced: a line is written when its sender or its receiver is
/// among them. 0 = tracing off.
static FILTER: AtomicU8 = AtomicU8::new(0);
static SINK: OnceLock<mpsc::Sender<ToWriter>> = OnceLock::new();

/// What the trace writer thread is sent.
enum ToWriter {
    /// A line to write.
    Line(String),
    /// Answer once every line before this one is written (see [`flush`]).
    Flush(mpsc::SyncSender<()>),
}

/// Turns tracing on for messages from or to `roles`, written to `out` by a thread of its
/// own. Can be called once per process; later calls only change the filter.
pub fn enable(roles: &[Role], out: Box<dyn Write + Send>) {
    let _ = SINK.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<ToWriter>();
        let mut out = out;
        let spawned = std::thread::Builder::new()
            .name("trace".into())
            .spawn(move || {
                for item in rx {
                    match item {
                        ToWriter::Line(line) => {
                            if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                                break;
                            }
                        }
                        ToWriter::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            });
        if let Err(err) = spawned {
            tracing::error!("cannot start the trace writer: {err}");
        }
        tx
    });
    let mask = roles.iter().fold(0u8, |mask, role| mask | role.bit());
    FILTER.store(mask, Ordering::Relaxed);
}

/// Waits (at most `limit`) until every line recorded so far is written: a process that
/// exits right after its last message would otherwise lose the end of its trace.
pub fn flush(limit: std::time::Duration) {
    let Some(sink) = SINK.get() else {
        return;
    };
    let (done_tx, done_rx) = mpsc::sync_channel(1);
    if sink.send(ToWriter::Flush(done_tx)).is_ok() {
        let _ = done_rx.recv_timeout(limit);
    }
}

/// Turns tracing off.
pub fn disable() {
    FILTER.store(0, Ordering::Relaxed);
}

#[inline]
/// Whether a message from `from` to `to` is traced now.
pub fn enabled(from: Role, to: Role) -> bool {
    let filter = FILTER.load(Ordering::Relaxed);
    filter != 0 && filter & (from.bit() | to.bit()) != 0
}

/// Longest message description in a trace line.
const MAX_DESCRIPTION: usize = 200;

/// Writes one trace line (call only when [`enabled`]). Kept out of line: the hot path is
/// the check in [`tell`] and [`ask`], not this.
#[cold]
#[inline(never)]
pub fn record(from: Role, to: Role, message: &dyn Debug) {
    let Some(sink) = SINK.get() else {
        return;
    };
    let mut description = format!("{message:?}");
    if description.len() > MAX_DESCRIPTION {
        let mut cut = MAX_DESCRIPTION;
        while !description.is_char_boundary(cut) {
            cut -= 1;
        }
        description.truncate(cut);
        description.push('…');
    }
    let time = chrono::Local::now().format("%H:%M:%S%.6f");
    let _ = sink.send(ToWriter::Line(format!(
        "{time}  {:<10} → {:<10}  {description}",
        from.name(),
        to.name()
    )));
}

/// An actor with a role in the trace.
pub trait Traced: Actor {
    /// This actor's role in trace lines.
    const ROLE: Role;
}

/// `do_send`, traced.
#[inline]
pub fn tell<A, M>(from: Role, to: &Addr<A>, message: M)
where
    A: Traced + Handler<M>,
    A::Context: ToEnvelope<A, M>,
    M: Message + Send + Debug + 'static,
    M::Result: Send,
{
    if enabled(from, A::ROLE) {
        record(from, A::ROLE, &message);
    }
    to.do_send(message);
}

/// `send` (a request with an answer), traced.
#[inline]
pub fn ask<A, M>(from: Role, to: &Addr<A>, message: M) -> Request<A, M>
where
    A: Traced + Handler<M>,
    A::Context: ToEnvelope<A, M>,
    M: Message + Send + Debug + 'static,
    M::Result: Send,
{
    if enabled(from, A::ROLE) {
        record(from, A::ROLE, &message);
    }
    to.send(message)
}

/// `do_send` to a `Recipient`, traced. A recipient does not know its actor's role, so the
/// caller names it: a child reporting to its supervisor through a `SupervisorLink`.
pub fn tell_recipient<M>(from: Role, to: Role, recipient: &Recipient<M>, message: M)
where
    M: Message + Send + Debug + 'static,
    M::Result: Send,
{
    if enabled(from, to) {
        record(from, to, &message);
    }
    recipient.do_send(message);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_actor_lists() {
        assert_eq!(parse_roles("all").unwrap().len(), 7);
        assert_eq!(
            parse_roles("registry, Session").unwrap(),
            vec![Role::Registry, Role::Session]
        );
        assert!(parse_roles("registry,bogus").is_err());
    }
}
