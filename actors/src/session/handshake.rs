//! A Session's handshake: the peer's first frame must be `hello`; the Registry decides
//! whether this Session may serve that peer (`Register`), and after a Registry restart the
//! Session registers again (`Reannounce`).

use actix::prelude::*;

use super::{Direction, Session, State};
use crate::peer::{NodeId, PeerAddr};
use crate::registry::Register;
use crate::trace::{ask, Role};
use crate::wire::{Frame, PROTOCOL_VERSION};

/// The peer, once its `hello` is accepted by the Registry.
#[derive(Debug)]
pub(super) struct Established {
    pub(super) peer: PeerAddr,
    pub(super) node_id: NodeId,
    pub(super) name: String,
}

impl Session {
    /// A frame before the handshake is done: only `hello` is welcome.
    pub(super) fn on_first_frame(&mut self, frame: Frame, ctx: &mut Context<Self>) {
        match frame {
            Frame::Hello {
                protocol,
                node_id,
                name,
                listen_port,
            } => self.on_hello(protocol, node_id, name, listen_port, ctx),
            other => {
                let reason = format!("expected hello as first frame, got {}", other.kind());
                self.close(ctx, reason, true)
            }
        }
    }

    fn on_hello(
        &mut self,
        protocol: u64,
        node_id: NodeId,
        name: String,
        listen_port: u16,
        ctx: &mut Context<Self>,
    ) {
        if protocol != PROTOCOL_VERSION {
            let reason =
                format!("unsupported protocol {protocol} (this node speaks {PROTOCOL_VERSION})");
            return self.close(ctx, reason, true);
        }
        if listen_port == 0 {
            return self.close(ctx, "hello with listen_port 0".into(), true);
        }
        // The peer is known by the address we reached it at, or else by the IP its
        // connection comes from and the port it says it listens on.
        let peer = match self.direction {
            Direction::Outbound { dialed } => dialed,
            Direction::Inbound => PeerAddr::from_ip_port(self.remote.ip(), listen_port),
        };
        let established = Established {
            peer,
            node_id,
            name,
        };
        let register = self.register(&established, false, ctx);
        // Wait: nothing else from this peer is handled until the Registry has decided.
        ctx.wait(
            ask(Role::Session, &self.template.registry, register)
                .into_actor(self)
                .map(move |answer, act, ctx| match answer {
                    Ok(Ok(known)) => {
                        act.established(established);
                        act.send_frame(&Frame::Peers { peers: known }, ctx);
                    }
                    Ok(Err(refusal)) => act.close(ctx, refusal, true),
                    Err(_) => act.close(ctx, "node is shutting down".into(), true),
                }),
        );
    }

    /// The Registry accepted the peer.
    fn established(&mut self, established: Established) {
        self.death_watch.peer = Some(established.peer);
        match &mut self.state {
            // Closed while the Registry decided: acks may still come, and need the peer.
            State::Lingering(peer) => *peer = Some(established),
            state => *state = State::Established(established),
        }
    }

    fn register(&self, peer: &Established, rejoin: bool, ctx: &Context<Self>) -> Register {
        Register {
            session_id: self.id,
            session: ctx.address(),
            peer: peer.peer,
            direction: self.direction,
            node_id: peer.node_id,
            name: peer.name.clone(),
            local_ip: self.local.ip(),
            rejoin,
        }
    }
}

/// From a restarted Registry: register again (it has forgotten the live sessions).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Reannounce;

impl Handler<Reannounce> for Session {
    type Result = ();

    fn handle(&mut self, _: Reannounce, ctx: &mut Context<Self>) {
        let Some(peer) = self.state.peer() else {
            return; // Still in its handshake: it registers when that completes.
        };
        let register = self.register(peer, true, ctx);
        ctx.wait(
            ask(Role::Session, &self.template.registry, register)
                .into_actor(self)
                .map(|answer, act, ctx| match answer {
                    Ok(Ok(_)) => {}
                    Ok(Err(refusal)) => act.close(ctx, refusal, true),
                    // The Registry failed again before answering: its next incarnation
                    // asks again. Only a Registry gone for good ends the session.
                    Err(_) if act.template.registry.connected() => {}
                    Err(_) => act.close(ctx, "node is shutting down".into(), true),
                }),
        );
    }
}
