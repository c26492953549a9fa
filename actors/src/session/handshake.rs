//! The end of a Session's handshake: the Noise handshake (run by `codec.rs`) proved the
//! peer's key and brought its `hello`; the Registry decides whether this Session may serve
//! that peer (`Register`), and after a Registry restart the Session registers again
//! (`Reannounce`).

use actix::prelude::*;

use super::{Direction, Session, State};
use crate::key::PeerKey;
use crate::limits::MAX_NAME_BYTES;
use crate::peer::PeerAddr;
use crate::registry::Register;
use crate::trace::{ask, Role};
use crate::wire::{Frame, Hello};

/// The peer, once the Registry accepted it.
#[derive(Debug)]
pub(super) struct Established {
    pub(super) peer: PeerAddr,
    /// The static key it proved in the handshake: who it is.
    pub(super) key: PeerKey,
    pub(super) name: Box<str>,
    /// The port it says it listens on; 0 for a one-shot sender.
    pub(super) listen_port: u16,
}

impl Session {
    /// The handshake is complete: ask the Registry whether this Session may serve the peer.
    pub(super) fn on_handshake_done(
        &mut self,
        key: PeerKey,
        hello: Hello,
        ctx: &mut Context<Self>,
    ) {
        // Refused rather than cut short: a shortened name could look like someone else's,
        // and the peer's implementer learns what is wrong. peerchat itself never sends one
        // (the binary refuses a longer --name).
        if hello.name.len() > MAX_NAME_BYTES {
            let reason = format!(
                "name too long: {} bytes; the limit is {MAX_NAME_BYTES}",
                hello.name.len()
            );
            return self.close(ctx, reason, true);
        }
        // The peer is known by the address we reached it at, or else by the IP its
        // connection comes from and the port it says it listens on. A one-shot sender
        // (port 0) listens nowhere: it is known by its connection's own address.
        let peer = match (self.direction, hello.listen_port) {
            (Direction::Outbound { dialed }, _) => dialed,
            (Direction::Inbound, 0) => PeerAddr::new(self.remote),
            (Direction::Inbound, port) => PeerAddr::from_ip_port(self.remote.ip(), port),
        };
        let established = Established {
            peer,
            key,
            name: hello.name.into_boxed_str(),
            listen_port: hello.listen_port,
        };
        let register = self.register(&established, false, ctx);
        // Wait: nothing else from this peer is handled until the Registry has decided.
        ctx.wait(
            ask(Role::Session, &self.template.registry, register)
                .into_actor(self)
                .map(move |answer, act, ctx| match answer {
                    Ok(Ok(known)) => {
                        act.established(established, ctx);
                        act.send_frame(&Frame::Peers { peers: known }, ctx);
                    }
                    Ok(Err(refusal)) => act.close(ctx, refusal, true),
                    Err(_) => act.close(ctx, "node is shutting down".into(), true),
                }),
        );
    }

    /// The Registry accepted the peer.
    fn established(&mut self, established: Established, ctx: &mut Context<Self>) {
        // Past the handshake, the hello timeout has nothing left to check.
        if let Some(timer) = self.hello_timer.take() {
            ctx.cancel_future(timer);
        }
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
            key: peer.key,
            name: peer.name.to_string(),
            listen_port: peer.listen_port,
            local_ip: self.local_ip,
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
        if self.state.peer().is_none() {
            return; // Still in its handshake: it registers when that completes.
        }
        // The failed Registry will never ack the chats it had: the peer sends them again
        // after its ack timeout, and they are read (and shown once) then.
        self.unacked_done(self.acks_pending as usize, self.unacked_bytes);
        let Some(peer) = self.state.peer() else {
            return;
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
