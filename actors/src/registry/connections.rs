//! Connecting and disconnecting: the Console's `Connect`, `ConnectAll`, `Disconnect`,
//! `DisconnectAll` and `ListPeers`, and the dials behind them and behind chats waiting for an
//! unreachable peer (the `Dialer` keeps their state; here they meet TCP and timers).

use std::fmt;
use std::time::Duration;

use actix::prelude::*;
use futures::channel::oneshot;
use futures::future::join_all;
use tokio::net::TcpStream;

use super::dialer::DialWaiter;
use super::Registry;
use crate::events::NodeEvent;
use crate::guarded_handler;
use crate::helpers::{human, now_ms};
use crate::peer::{PeerAddr, PeerInfo};
use crate::session::{Close, Direction, Reannounce, RefreshPeers, Session};
use crate::supervision::guarded;
use crate::trace::{ask, tell, Role};

/// Connect to a peer (resolves when the handshake is done or has failed).
#[derive(Message, Debug)]
#[rtype(result = "Result<ConnectOutcome, ConnectError>")]
pub struct Connect {
    /// The peer to connect to.
    pub to: PeerAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// How a connect ended well.
pub enum ConnectOutcome {
    /// A new connection was made.
    Connected,
    /// There was one already.
    AlreadyConnected,
}

#[derive(Debug, Clone, PartialEq, Eq)]
/// Why a connect failed.
pub enum ConnectError {
    /// The address is this node's own.
    SelfAddress,
    /// Nothing listens there.
    Refused,
    /// No answer within the connect timeout.
    TimedOut(Duration),
    /// Another network error (unreachable host, ...).
    Unreachable(String),
    /// TCP connected but the handshake failed (bad hello, duplicate, bye...).
    Handshake(String),
    /// The node is quitting.
    ShuttingDown,
    /// The Registry failed while handling the request (it has been restarted).
    RegistryFailed,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::SelfAddress => write!(f, "that address is this node itself"),
            ConnectError::Refused => write!(f, "connection refused (is a peer listening there?)"),
            ConnectError::TimedOut(d) => write!(f, "no answer within {}", human(*d)),
            ConnectError::Unreachable(why) => write!(f, "cannot connect: {why}"),
            ConnectError::Handshake(why) => write!(f, "handshake failed: {why}"),
            ConnectError::ShuttingDown => write!(f, "node is shutting down"),
            ConnectError::RegistryFailed => {
                write!(
                    f,
                    "the registry failed handling this (it was restarted); try again"
                )
            }
        }
    }
}

impl std::error::Error for ConnectError {}

guarded_handler!(
    Registry,
    Connect as ResponseFuture<Result<ConnectOutcome, ConnectError>>,
    |act, msg, ctx| act.on_connect(msg, ctx),
    on_panic: Box::pin(async { Err(ConnectError::RegistryFailed) }),
);

impl Registry {
    fn on_connect(
        &mut self,
        msg: Connect,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<Result<ConnectOutcome, ConnectError>> {
        if self.draining() {
            return Box::pin(async { Err(ConnectError::ShuttingDown) });
        }
        if self.peers.is_self(&msg.to) {
            return Box::pin(async { Err(ConnectError::SelfAddress) });
        }
        if self.peers.session_for(&msg.to).is_some() {
            return Box::pin(async { Ok(ConnectOutcome::AlreadyConnected) });
        }
        let (tx, rx) = oneshot::channel();
        self.dial(msg.to, Some(tx), ctx);
        Box::pin(async move { rx.await.unwrap_or(Err(ConnectError::ShuttingDown)) })
    }

    /// Starts connecting to `to` unless a dial is already under way; `waiter` learns the end.
    pub(super) fn dial(
        &mut self,
        to: PeerAddr,
        waiter: Option<DialWaiter>,
        ctx: &mut Context<Self>,
    ) {
        if self.classic.is_classic(&to) {
            // peerchat's protocol is never spoken to a classic peer (registry/classic.rs).
            let why = format!(
                "{to} is a classic peer: there is no connection to make, write to it with /msg"
            );
            if let Some(waiter) = waiter {
                let _ = waiter.send(Err(ConnectError::Unreachable(why)));
            }
            return;
        }
        if self.dialer.begin(to, waiter) {
            self.peers.know(to);
            self.open_connection(to, ctx);
        }
    }

    /// The TCP connect of a dial; it ends when the Session it starts registers or closes.
    fn open_connection(&mut self, to: PeerAddr, ctx: &mut Context<Self>) {
        let limit = self.timeouts.connect;
        let connect = async move {
            actix_rt::time::timeout(limit, TcpStream::connect(to.socket_addr())).await
        };
        ctx.spawn(connect.into_actor(self).map(move |result, act, ctx| {
            let stream = match result {
                Ok(Ok(stream)) => stream,
                Ok(Err(err)) => return act.dial_failed(to, connect_error(err), ctx),
                Err(_) => return act.dial_failed(to, ConnectError::TimedOut(limit), ctx),
            };
            let template = act.template(ctx);
            if let Err(err) = Session::start(stream, Direction::Outbound { dialed: to }, template) {
                act.dial_failed(to, connect_error(err), ctx);
            }
        }));
    }

    pub(super) fn dial_failed(
        &mut self,
        to: PeerAddr,
        error: ConnectError,
        ctx: &mut Context<Self>,
    ) {
        tracing::info!(peer = %to, "connect failed: {error}");
        self.dialer.finish(&to, Err(error.clone()));
        if self.peers.session_for(&to).is_none() {
            self.retry_later(to, error.to_string(), ctx);
        }
    }

    /// Chats wait for `to`, which cannot be reached now: try again after a backoff.
    pub(super) fn retry_later(&mut self, to: PeerAddr, reason: String, ctx: &mut Context<Self>) {
        let waiting = self.outbox.note_error(&to, &reason);
        if waiting == 0 || self.draining() || self.dialer.is_dialing(&to) {
            return;
        }
        let seed = self.next_message_id ^ u64::from(to.port()) ^ now_ms();
        let (retry_in, previous) = self.dialer.plan_redial(to, seed, |pause| {
            ctx.run_later(pause, move |act, ctx| {
                let still_waiting = act.outbox.waiting(&to) > 0;
                if still_waiting && act.peers.session_for(&to).is_none() && !act.draining() {
                    act.dial(to, None, ctx);
                }
            })
        });
        if let Some(timer) = previous {
            ctx.cancel_future(timer);
        }
        self.emit(NodeEvent::DeliveryDelayed {
            to,
            waiting,
            reason,
            retry_in,
        });
    }

    /// A restarted Registry: its Sessions register again, and its dials start over.
    pub(super) fn after_restart(&mut self, ctx: &mut Context<Self>) {
        for (_, live) in self.peers.all_sessions() {
            tell(Role::Registry, &live.handle, Reannounce);
        }
        // Dials in flight died with the old incarnation; their waiters still wait.
        for to in self.dialer.dialing() {
            self.open_connection(to, ctx);
        }
        // So did the redial timers: those peers are dialed now (a failure plans anew).
        for to in self.dialer.forget_redials() {
            let waiting = self.outbox.waiting(&to) > 0;
            if waiting && !self.peers.is_rejoining(&to) && !self.draining() {
                self.dial(to, None, ctx);
            }
        }
    }
}

fn connect_error(err: std::io::Error) -> ConnectError {
    match err.kind() {
        std::io::ErrorKind::ConnectionRefused => ConnectError::Refused,
        _ => ConnectError::Unreachable(err.to_string()),
    }
}

/// Menu 3: ask connected peers for their peers, then connect to every known one.
#[derive(Message, Debug)]
#[rtype(result = "ConnectAllReport")]
pub struct ConnectAll;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
/// What menu 3 did.
pub struct ConnectAllReport {
    /// Peers that were connected already.
    pub already_connected: Vec<PeerAddr>,
    /// Every dial and how it ended.
    pub attempts: Vec<(PeerAddr, Result<ConnectOutcome, ConnectError>)>,
}

guarded_handler!(
    Registry,
    ConnectAll as ResponseActFuture<Self, ConnectAllReport>,
    |act, msg, ctx| act.on_connect_all(msg, ctx),
    on_panic: Box::pin(actix::fut::ready(ConnectAllReport::default())),
);

impl Registry {
    fn on_connect_all(
        &mut self,
        _: ConnectAll,
        _: &mut Context<Self>,
    ) -> ResponseActFuture<Self, ConnectAllReport> {
        let refreshes: Vec<_> = self
            .peers
            .connected()
            .iter()
            .filter_map(|peer| self.peers.session_for(peer))
            .map(|(_, live)| ask(Role::Registry, &live.handle, RefreshPeers))
            .collect();
        let refreshed = actix_rt::time::timeout(self.timeouts.peer_refresh, join_all(refreshes));
        Box::pin(refreshed.into_actor(self).then(|_, act, ctx| {
            let mut report = ConnectAllReport::default();
            let mut waits = Vec::new();
            for addr in act.peers.keys() {
                if act.peers.is_self(&addr) {
                    continue;
                }
                if act.peers.session_for(&addr).is_some() {
                    report.already_connected.push(addr);
                } else if !act.draining() {
                    let (tx, rx) = oneshot::channel();
                    act.dial(addr, Some(tx), ctx);
                    waits.push(async move {
                        (addr, rx.await.unwrap_or(Err(ConnectError::ShuttingDown)))
                    });
                }
            }
            join_all(waits).into_actor(act).map(move |attempts, _, _| {
                report.attempts = attempts;
                report
            })
        }))
    }
}

/// Menu 2.
#[derive(Message, Debug)]
#[rtype(result = "Vec<PeerInfo>")]
pub struct ListPeers;

guarded_handler!(
    Registry,
    ListPeers as MessageResult<ListPeers>,
    |act, _, _| MessageResult(act.peers.list(|peer| act.outbox.waiting(peer))),
    on_panic: MessageResult(Vec::new()),
);

/// Menu 5: bye to one peer, which stays known.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), NotConnected>")]
pub struct Disconnect {
    /// The peer to say bye to.
    pub peer: PeerAddr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
/// Disconnect of a peer that is not connected.
pub struct NotConnected(pub PeerAddr);

impl fmt::Display for NotConnected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not connected to {}", self.0)
    }
}

impl std::error::Error for NotConnected {}

impl Handler<Disconnect> for Registry {
    type Result = Result<(), NotConnected>;

    fn handle(&mut self, msg: Disconnect, ctx: &mut Context<Self>) -> Self::Result {
        let peer = msg.peer;
        guarded(
            self,
            ctx,
            move || Err(NotConnected(peer)),
            |act, _| match act.disconnect(msg.peer, "disconnected by user") {
                true => Ok(()),
                false => Err(NotConnected(msg.peer)),
            },
        )
    }
}

/// Menu 4: bye to every connected peer; answers how many.
#[derive(Message, Debug)]
#[rtype(result = "usize")]
pub struct DisconnectAll;

guarded_handler!(
    Registry,
    DisconnectAll,
    |act, _, _| act.disconnect_all(),
    on_panic: 0,
);

impl Registry {
    /// Menu 4: says bye to every connected peer; how many there were.
    fn disconnect_all(&mut self) -> usize {
        let connected = self.peers.connected();
        connected
            .into_iter()
            .filter(|peer| self.disconnect(*peer, "disconnected by user"))
            .count()
    }

    /// Says bye to the peer's Session; the peer is disconnected from now on.
    pub(super) fn disconnect(&mut self, peer: PeerAddr, reason: &str) -> bool {
        let Some(session) = self.peers.disconnect(&peer) else {
            return false;
        };
        if let Some(live) = self.peers.session(session) {
            let close = Close {
                reason: reason.to_string(),
            };
            tell(Role::Registry, &live.handle, close);
        }
        let name = self.peers.name_of(&peer);
        self.emit(NodeEvent::PeerDisconnected {
            peer,
            name,
            reason: reason.to_string(),
        });
        true
    }
}
