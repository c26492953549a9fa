//! Listener: owns the node's listening TCP socket. For each accepted connection it starts a
//! Session (which then reports to the Registry); it talks to nobody else.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use actix::prelude::*;
use tokio::net::{TcpListener, TcpStream};

use crate::session::{Direction, Session, SessionTemplate};

pub struct Listener {
    socket: Option<TcpListener>,
    local_addr: SocketAddr,
    template: SessionTemplate,
}

impl Listener {
    /// Takes a socket that is already bound, so that a busy port is reported by whoever
    /// starts the node, before any actor runs.
    pub fn new(socket: TcpListener, template: SessionTemplate) -> io::Result<Self> {
        let local_addr = socket.local_addr()?;
        Ok(Listener {
            socket: Some(socket),
            local_addr,
            template,
        })
    }
}

impl Actor for Listener {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(socket) = self.socket.take() {
            let accepted = futures::stream::unfold(socket, |socket| async move {
                let next = socket.accept().await;
                Some((next, socket))
            });
            ctx.add_stream(accepted);
        }
        tracing::info!("listening on {}", self.local_addr);
    }
}

impl StreamHandler<io::Result<(TcpStream, SocketAddr)>> for Listener {
    fn handle(&mut self, accepted: io::Result<(TcpStream, SocketAddr)>, ctx: &mut Context<Self>) {
        match accepted {
            Ok((stream, remote)) => {
                if let Err(err) = Session::start(stream, Direction::Inbound, self.template.clone())
                {
                    tracing::info!(%remote, "connection lost before its session started: {err}");
                }
            }
            Err(err) => {
                // E.g. out of file descriptors: pause instead of spinning on the error.
                tracing::warn!("accept failed: {err}");
                ctx.wait(actix_rt::time::sleep(Duration::from_millis(100)).into_actor(self));
            }
        }
    }
}
