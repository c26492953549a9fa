//! Listener: owns the node's listening TCP socket and the count of inbound connections open
//! (in total and per remote IP). For each accepted connection within the limits it starts a
//! Session (which then reports to the Registry); each holds a [`ConnectionSlot`] that tells
//! the Listener when it ends. Supervised: after a failure it binds the same port again; it
//! reports its failures and restarts to the NodeSupervisor.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::child::ChildName;
use crate::classic::ClassicConfig;
use crate::classic_session::route;
use crate::faults::Inject;
use crate::guarded_handler;
use crate::limits::{ConnectionCounts, ConnectionEnded, ConnectionSlot, Limits};
use crate::session::SessionTemplate;
use crate::supervision::{guarded, suffer, Retire, SupervisedChild, SupervisorLink};
use crate::trace::{Role, Traced};

/// How long to wait before trying again when the port cannot be bound after a restart.
const REBIND_PAUSE: Duration = Duration::from_millis(100);

/// The Listener actor (see the module docs).
pub struct Listener {
    socket: Option<TcpListener>,
    local_addr: SocketAddr,
    /// One for every Session it starts (they share it).
    template: Arc<SessionTemplate>,
    supervisor: SupervisorLink,
    failure: Option<String>,
    incarnation: u32,
    /// The port is closed for good (node failed, or the ListenerGone fault).
    retired: bool,
    /// Whether classic connections are served (`--no-classic`).
    classic: ClassicConfig,
    /// `max_sessions` and `max_sessions_per_ip`.
    limits: Limits,
    /// Inbound connections open now. Kept across restarts: the connections outlive them.
    open: ConnectionCounts,
}

/// Binds a listening socket the way every incarnation of the Listener does: with
/// SO_REUSEADDR, so that a restarted Listener can bind the port its predecessor had while
/// connections it accepted are still open.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

impl Listener {
    /// Takes a socket that is already bound, so that a busy port is reported by whoever
    /// starts the node, before any actor runs.
    pub fn new(
        socket: TcpListener,
        template: SessionTemplate,
        supervisor: SupervisorLink,
    ) -> io::Result<Self> {
        let local_addr = socket.local_addr()?;
        Ok(Listener {
            socket: Some(socket),
            local_addr,
            template: Arc::new(template),
            supervisor,
            failure: None,
            incarnation: 0,
            retired: false,
            classic: ClassicConfig::default(),
            limits: Limits::default(),
            open: ConnectionCounts::default(),
        })
    }

    /// The connection limits (the node's `NodeConfig::limits`).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// How classic connections are treated (the node's `NodeConfig::classic`).
    pub fn with_classic(mut self, classic: ClassicConfig) -> Self {
        self.classic = classic;
        self
    }

    fn accept_from(&mut self, socket: TcpListener, ctx: &mut Context<Self>) {
        let accepted = futures::stream::unfold(socket, |socket| async move {
            let next = socket.accept().await;
            Some((next, socket))
        });
        ctx.add_stream(accepted);
        tracing::info!("listening on {}", self.local_addr);
    }

    /// After a restart: the old socket went with the old incarnation's stream.
    fn rebind(&mut self, ctx: &mut Context<Self>) {
        match bind(self.local_addr) {
            Ok(socket) => {
                self.accept_from(socket, ctx);
                self.report_restart();
            }
            Err(err) => {
                tracing::warn!("cannot bind {} again: {err}; retrying", self.local_addr);
                ctx.run_later(REBIND_PAUSE, |act, ctx| act.rebind(ctx));
            }
        }
    }
}

impl Actor for Listener {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.retired {
            return;
        }
        match self.socket.take() {
            Some(socket) => self.accept_from(socket, ctx),
            None => self.rebind(ctx),
        }
    }
}

impl Supervised for Listener {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.incarnation += 1;
        // Retiring stops the Listener on purpose: not a failure to report.
        if !self.retired {
            self.report_failure();
        }
    }
}

impl Traced for Listener {
    const ROLE: Role = Role::Listener;
}

impl SupervisedChild for Listener {
    const NAME: ChildName = ChildName::Listener;

    fn failure(&mut self) -> &mut Option<String> {
        &mut self.failure
    }

    fn supervisor(&self) -> &SupervisorLink {
        &self.supervisor
    }
}

impl StreamHandler<io::Result<(TcpStream, SocketAddr)>> for Listener {
    fn handle(&mut self, accepted: io::Result<(TcpStream, SocketAddr)>, ctx: &mut Context<Self>) {
        guarded(
            self,
            ctx,
            || (),
            |act, ctx| match accepted {
                Ok((stream, remote)) => {
                    // Decided here, before any handshake: a refused connection costs no
                    // crypto. It is closed at once (no `bye`: before the handshake there is
                    // no channel to say it on); the accept loop goes on to the next one.
                    if let Err(busy) = act.open.admit(remote.ip(), &act.limits) {
                        tracing::info!(%remote, "connection refused: {busy}");
                        drop(stream);
                        return;
                    }
                    let slot = ConnectionSlot::new(ctx.address().recipient(), remote.ip());
                    // Its first byte says which protocol it speaks (classic_session.rs).
                    let template = act.template.clone();
                    actix_rt::spawn(route(stream, remote, template, act.classic, slot));
                }
                Err(err) => {
                    // E.g. out of file descriptors: pause instead of spinning on the error.
                    tracing::warn!("accept failed: {err}");
                    ctx.wait(actix_rt::time::sleep(REBIND_PAUSE).into_actor(act));
                }
            },
        )
    }

    fn finished(&mut self, _: &mut Context<Self>) {
        // The accept stream never ends on its own; a restart replaces it.
    }
}

guarded_handler!(Listener, Inject, |act, msg, ctx| suffer(act, ctx, msg.0));

guarded_handler!(Listener, ConnectionEnded, |act, msg, _| act
    .open
    .release(msg.0));

// `Retire` closes the port for good: node shutdown, node failure, or the ListenerGone fault.
guarded_handler!(Listener, Retire, |act, msg, ctx| act
    .retire(&msg.reason, ctx));

impl Listener {
    fn retire(&mut self, reason: &str, ctx: &mut Context<Self>) {
        tracing::info!("closing {}: {reason}", self.local_addr);
        self.retired = true;
        // Stopping drops the accept stream and with it the socket; the restart that follows
        // finds `retired`, reports no failure and binds nothing.
        ctx.stop();
    }
}
