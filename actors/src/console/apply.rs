//! Applying what a line meant: each [`Command`] becomes one request to the Registry through
//! the Console's `Node` handle ([`Console::run`]); what comes back, an [`Outcome`], is
//! remembered where the Console needs it and printed as render.rs says.

use std::future::Future;

use actix::prelude::*;

use futures::FutureExt;

use super::classic;
use super::command::{Back, Command, Parsed, Prompt};
use super::identity::Answer;
use super::nearby;
use super::render::{self, Outcome, Status, SHORTCUTS};
use super::{Console, Look};
use crate::child::ChildName;
use crate::faults::Fault;
use crate::node::Node;
use crate::peer::PeerAddr;
use crate::sanitize::visible;
use crate::supervision::suffer;

impl Console {
    /// Does what one parsed line asks: run a command, ask the next question, or say why the
    /// line was not understood.
    pub(super) fn apply(&mut self, parsed: Parsed, ctx: &mut Context<Self>) {
        match parsed {
            Parsed::Run(command, back) => self.apply_command(command, back, ctx),
            Parsed::Ask(prompt) => self.ask(prompt),
            Parsed::Wrong(why, back) => {
                let line = self.look.bad(why);
                self.done(back, &line, ctx)
            }
            Parsed::Cancelled(why, back) => self.done(back, why, ctx),
            Parsed::Retry(why, prompt) => {
                let line = self.look.bad(why);
                self.print(&line);
                self.ask(prompt)
            }
        }
    }

    fn apply_command(&mut self, command: Command, back: Back, ctx: &mut Context<Self>) {
        let node = self.node.clone();
        match command {
            Command::Menu => self.show_menu(ctx),
            Command::Help => self.done(back, SHORTCUTS, ctx),
            Command::Quit => self.quit("bye".into(), ctx),
            Command::Leave => self.leave(ctx),
            Command::Fault(fault) => self.inject(fault, back, ctx),
            Command::Send { to, text } => self.send(to, text, back, ctx),
            Command::SendClassic { to, text } => self.send_classic(to, text, back, ctx),
            Command::All(text) => self.send_all(text, back, ctx),
            Command::ToPeer { name, action } => self.name_peer(name, action, back, ctx),
            Command::AtPeer {
                to,
                announced: Some(announced),
                action,
            } => self.at_announced(to, announced, action, back, ctx),
            Command::AtPeer { to, action, .. } => self.at_peer(to, false, action, back, ctx),
            Command::ListPeers => self.run_noted(back, list_peers(node, self.look), ctx),
            Command::ConnectAll => self.connect_all(back, ctx),
            Command::Connect(peer) => self.run(back, connect(node, peer), ctx),
            Command::DisconnectAll => self.run(back, disconnect_all(node), ctx),
            Command::ChooseDisconnect => self.run(back, peers_to_disconnect(node), ctx),
            Command::Disconnect(peer) => self.run(back, disconnect(node, peer), ctx),
            Command::History(limit) => self.run(back, history(node, limit), ctx),
            Command::Status => self.run(back, self.status().map(Outcome::Status), ctx),
            Command::Whois(peer) => self.run(back, whois(node, peer), ctx),
            Command::Trust(peer) => self.run(back, trust(node, peer), ctx),
        }
    }

    /// `/connect` alone: it can take a while, so the user is told what is going on first.
    fn connect_all(&mut self, back: Back, ctx: &mut Context<Self>) {
        self.screen
            .print("Asking connected peers for their peers...");
        let node = self.node.clone();
        let connecting =
            async move { Outcome::ConnectedAll(node.connect_all().await.map_err(said)) };
        self.run(back, connecting, ctx)
    }

    /// A chat: queued by the Registry, which answers its id at once; the ack comes later as
    /// an event.
    pub(super) fn send(&mut self, to: PeerAddr, text: String, back: Back, ctx: &mut Context<Self>) {
        // On a terminal a shortcut's send (`/msg`, `/r`) makes that peer the conversation.
        if back == Back::Prompt && self.screen.interactive() {
            self.start_talk(to, false);
        }
        let node = self.node.clone();
        let shown = visible(&text).into_owned();
        let sending = async move {
            let result = node.send_chat(to, text).await.map_err(said);
            Outcome::Sent { to, shown, result }
        };
        self.run(back, sending, ctx)
    }

    /// The status line above the menu on a terminal.
    pub(super) fn ask_menu_status(&mut self, ctx: &mut Context<Self>) {
        let status = self.status();
        self.run(Back::Menu, async move { Outcome::Menu(status.await) }, ctx)
    }

    /// This node and its peers, for the status line.
    fn status(&self) -> impl Future<Output = Result<Status, String>> + 'static {
        let node = self.node.clone();
        // The fingerprint beside the name: what a peer compares out of band.
        let name = format!("{} (key {})", self.node.name(), self.node.fingerprint());
        let addr = self.node.listen_addr();
        async move {
            let peers = node.peers().await.map_err(said)?;
            Ok(Status {
                name,
                addr,
                reachable: super::addresses::reachable(addr),
                peers,
            })
        }
    }

    /// A `!` fault: the Console's own applied here, the others sent to the node.
    fn inject(&mut self, fault: Fault, back: Back, ctx: &mut Context<Self>) {
        let line = self.look.warn(format!("Injecting {fault:?}"));
        self.print(&line);
        match fault {
            Fault::Actor(ChildName::Console, fault) => {
                self.done(back, "", ctx);
                suffer(self, ctx, fault);
            }
            fault => {
                let node = self.node.clone();
                let injecting =
                    async move { Outcome::Injected(node.inject(fault).await.map_err(said)) };
                self.run(back, injecting, ctx)
            }
        }
    }

    /// Runs one request to the node; input typed meanwhile waits, events still print. When
    /// the answer comes, [`Console::finish`] prints it and the waiting input runs.
    pub(super) fn run(
        &mut self,
        back: Back,
        request: impl Future<Output = Outcome> + 'static,
        ctx: &mut Context<Self>,
    ) {
        self.run_noted(back, request.map(|outcome| (outcome, None)), ctx)
    }

    /// Like `run`, for a request that brings a note to print below its outcome (the nearby
    /// peers under the peer list).
    fn run_noted(
        &mut self,
        back: Back,
        request: impl Future<Output = (Outcome, Option<String>)> + 'static,
        ctx: &mut Context<Self>,
    ) {
        self.busy = true;
        ctx.spawn(
            request
                .into_actor(self)
                .map(move |(outcome, note), console, ctx| {
                    console.busy = false;
                    console.finish(outcome, note, back, ctx);
                    console.drain_queue(ctx);
                }),
        );
    }

    /// What a request brought back: remembered where it matters, printed, and then back to
    /// the menu (or its prompt), or on to the next question.
    fn finish(
        &mut self,
        outcome: Outcome,
        note: Option<String>,
        back: Back,
        ctx: &mut Context<Self>,
    ) {
        let mut text = match &outcome {
            // On a terminal your message stays on screen as you typed it: shown once, and
            // its delivery is a short line later.
            Outcome::Sent { result: Ok(_), .. } if self.screen.interactive() => String::new(),
            _ => render::outcome(&outcome, &self.look, self.screen.width()),
        };
        if let Some(note) = note {
            text = format!("{text}\n{note}");
        }
        match outcome {
            Outcome::Menu(status) => {
                if self.quitting {
                    return;
                }
                if status.is_ok() {
                    self.print(&text);
                }
                self.print(&render::menu(&self.look));
                return self.show_prompt();
            }
            Outcome::Sent {
                to,
                shown,
                result: Ok(id),
            } => {
                self.sent.insert(id, (to, shown));
            }
            Outcome::ToDisconnect(peers) if peers.iter().any(|p| p.connected) => {
                self.print(&text);
                return self.ask(Prompt::DisconnectWhich);
            }
            _ => {}
        }
        self.done(back, &text, ctx)
    }
}

/// The peer list, with the nearby and classic peers as a note below it.
async fn list_peers(node: Node, look: Look) -> (Outcome, Option<String>) {
    let known = node.peers().await;
    let nearby = node.nearby().await.unwrap_or_default();
    let classic_peers = node.classic_peers().await.unwrap_or_default();
    let nearby = nearby::listing(known.as_deref().unwrap_or(&[]), &nearby, &look);
    let peers = Outcome::Peers(known.map_err(said));
    (
        peers,
        classic::notes(nearby, classic::listing(&classic_peers, &look)),
    )
}

async fn connect(node: Node, peer: PeerAddr) -> Outcome {
    let result = node.connect(peer).await.map_err(said);
    Outcome::Connected { peer, result }
}

async fn disconnect_all(node: Node) -> Outcome {
    Outcome::DisconnectedAll(node.disconnect_all().await.map_err(said))
}

/// Menu 5's list to choose from.
async fn peers_to_disconnect(node: Node) -> Outcome {
    // The whole list: its numbers are the ones every listing uses.
    Outcome::ToDisconnect(node.peers().await.unwrap_or_default())
}

async fn disconnect(node: Node, peer: PeerAddr) -> Outcome {
    let result = node.disconnect(peer).await.map_err(said);
    Outcome::Disconnected { peer, result }
}

/// The last `limit` messages, with the names of the peers known now to label them.
async fn history(node: Node, limit: usize) -> Outcome {
    let peers = node.peers().await.unwrap_or_default();
    let names = peers
        .into_iter()
        .filter_map(|peer| peer.name.map(|name| (peer.addr, name)))
        .collect();
    Outcome::History(node.history(limit).await.map_err(said), names)
}

async fn whois(node: Node, peer: String) -> Outcome {
    Outcome::Identity(Answer::Whois(node.whois(&peer).await))
}

async fn trust(node: Node, peer: String) -> Outcome {
    Outcome::Identity(Answer::Trusted(node.trust(&peer).await))
}

/// An error as the node words it.
fn said(err: impl ToString) -> String {
    err.to_string()
}
