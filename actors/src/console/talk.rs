//! Naming peers, conversations and sending to everyone at the Console (issue 14): a
//! [`Command::ToPeer`] is resolved (names.rs, with the Registry's one numbered list and a DNS
//! lookup off the actors' thread) and then applied to the one peer meant; `/talk` opens a
//! conversation; `/all` sends to every connected peer and sums up who got it.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};

use actix::prelude::*;

use super::command::{Back, Command, PeerAction, Prompt, Talk};
use super::names::{self, Listed, Named};
use super::render::Outcome;
use super::Console;
use crate::key::PeerKey;
use crate::peer::{MessageId, PeerAddr};
use crate::registry::Forgotten;
use crate::sanitize::visible;

/// Chats sent with `/all`, grouped to sum up who got them in one line.
#[derive(Debug, Default)]
pub(super) struct Everyone {
    groups: HashMap<u64, Group>,
    group_of: HashMap<MessageId, u64>,
    next: u64,
}

#[derive(Debug)]
struct Group {
    waiting: usize,
    got: Vec<String>,
    missed: Vec<String>,
}

impl Everyone {
    /// One `/all`: each chat's id and who it went to.
    pub(super) fn start(&mut self, sent: &[(MessageId, String)]) {
        self.next += 1;
        for (id, _) in sent {
            self.group_of.insert(*id, self.next);
        }
        self.groups.insert(
            self.next,
            Group {
                waiting: sent.len(),
                got: Vec::new(),
                missed: Vec::new(),
            },
        );
    }

    /// The outcome of chat `id` to `who`: `None` if it is not one of `/all`'s; else the
    /// summary once the last of its group is settled.
    pub(super) fn settle(
        &mut self,
        id: MessageId,
        who: &str,
        failed: Option<&str>,
    ) -> Option<Option<String>> {
        let group_id = self.group_of.remove(&id)?;
        let group = self.groups.get_mut(&group_id)?;
        match failed {
            None => group.got.push(who.to_string()),
            Some(why) => group.missed.push(format!("{who} ({})", visible(why))),
        }
        group.waiting = group.waiting.saturating_sub(1);
        if group.waiting > 0 {
            return Some(None);
        }
        let group = self.groups.remove(&group_id)?;
        Some(Some(summary(&group.got, &group.missed)))
    }
}

/// "Everyone got it: bob, carol." / "bob got it; not delivered to carol (why)."
fn summary(got: &[String], missed: &[String]) -> String {
    match (got.is_empty(), missed.is_empty()) {
        (_, true) => format!("Everyone got it: {}.", got.join(", ")),
        (true, false) => format!("Nobody got it: not delivered to {}.", missed.join(", ")),
        (false, false) => format!(
            "{} got it; not delivered to {}.",
            got.join(", "),
            missed.join(", ")
        ),
    }
}

/// Chats from others while you are in a conversation, since your last input: the note a
/// terminal shows on the line being typed (`2 unread: carol, dave`). Pipes never show it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Unread {
    count: usize,
    /// Who wrote them, first heard first; at most [`UNREAD_NAMED`] are kept.
    from: Vec<PeerAddr>,
}

/// Senders named in the unread note; more are summed up as `…`.
const UNREAD_NAMED: usize = 3;

impl Unread {
    /// A chat from `from` arrived; `talking` is the conversation's peer, if one is open.
    /// True if the count changed.
    pub(super) fn received(&mut self, from: &PeerAddr, talking: Option<&PeerAddr>) -> bool {
        if talking.is_none_or(|peer| peer == from) {
            return false;
        }
        self.count = self.count.saturating_add(1);
        if !self.from.contains(from) && self.from.len() <= UNREAD_NAMED {
            self.from.push(*from);
        }
        true
    }

    /// You typed a line: what came before it is read. True if there was anything unread.
    pub(super) fn typed(&mut self) -> bool {
        let had = self.count > 0;
        *self = Unread::default();
        had
    }

    /// The note in its forms, fullest first (`3 unread: carol, dave`, then `3 unread`), `who`
    /// naming each sender; none when nothing is unread. The screen shows the first form that
    /// fits beside the line being typed: a long line leaves room for the short one only.
    pub(super) fn note(&self, who: impl Fn(&PeerAddr) -> String) -> Vec<String> {
        if self.count == 0 {
            return Vec::new();
        }
        let mut names: Vec<String> = self.from.iter().take(UNREAD_NAMED).map(who).collect();
        if self.from.len() > UNREAD_NAMED {
            names.push("…".into());
        }
        let short = format!("{} unread", self.count);
        vec![format!("{short}: {}", names.join(", ")), short]
    }
}

/// What a name resolved to, with the list it was resolved in.
type Resolved = (Result<Named, String>, Vec<Listed>);

impl Console {
    /// Runs one request to the node, then `then` with its answer; input typed meanwhile
    /// waits, as with `run`.
    fn run_then<T: 'static>(
        &mut self,
        request: impl Future<Output = T> + 'static,
        then: impl FnOnce(&mut Console, T, &mut Context<Console>) + 'static,
        ctx: &mut Context<Self>,
    ) {
        self.busy = true;
        ctx.spawn(request.into_actor(self).map(move |value, console, ctx| {
            console.busy = false;
            then(console, value, ctx);
            console.drain_queue(ctx);
        }));
    }

    /// A peer named as typed: resolved with the Registry's list (and DNS for `host:port`),
    /// then `action` is applied to it, or the user chooses among several.
    pub(super) fn name_peer(
        &mut self,
        name: String,
        action: PeerAction,
        back: Back,
        ctx: &mut Context<Self>,
    ) {
        let node = self.node.clone();
        let local = local_ips(self.node.listen_addr());
        let resolving = async move {
            let peers = node.peers().await.unwrap_or_default();
            let nearby = node.nearby().await.unwrap_or_default();
            let listed = names::with_nearby(names::numbered(&peers), &nearby);
            let named = match names::resolve(&name, &listed, &local) {
                Ok(Named::Lookup { host, port }) => look_up(&host, port, &listed).await,
                other => other,
            };
            (named, listed)
        };
        self.run_then(
            resolving,
            move |console, (named, listed): Resolved, ctx| {
                console.resolved(named, &listed, action, back, ctx)
            },
            ctx,
        )
    }

    fn resolved(
        &mut self,
        named: Result<Named, String>,
        listed: &[Listed],
        action: PeerAction,
        back: Back,
        ctx: &mut Context<Self>,
    ) {
        for peer in listed {
            if let Some(name) = &peer.name {
                self.names.insert(peer.addr, name);
            }
        }
        match named {
            Ok(Named::Peer(to)) => self.at_peer(to, false, action, back, ctx),
            Ok(Named::Announced { addr, key, name }) => {
                self.at_announced(addr, (key, name), action, back, ctx)
            }
            Ok(Named::Classic(to)) => self.at_peer(to, true, action, back, ctx),
            Ok(Named::Lookup { host, .. }) => {
                // look_up never answers a lookup; said rather than assumed.
                let line = self.look.bad(format!("Cannot look up {}.", visible(&host)));
                self.done(back, &line, ctx)
            }
            Ok(Named::Ambiguous(candidates)) => {
                let mut text = String::from("Several peers answer to that:");
                for peer in &candidates {
                    text.push_str(&format!("\n  {}", listed_line(peer, &self.look)));
                }
                self.print(&text);
                self.ask(Prompt::WhichPeer { candidates, action });
            }
            Err(why) => {
                let line = self.look.bad(&why);
                match action {
                    // The question is asked again, with the reason.
                    PeerAction::AskText => {
                        self.print(&line);
                        self.ask(Prompt::SendTo)
                    }
                    PeerAction::Disconnect => {
                        self.print(&line);
                        self.ask(Prompt::DisconnectWhich)
                    }
                    _ => self.done(back, &line, ctx),
                }
            }
        }
    }

    /// `action` applied to a nearby peer: a message or a conversation first connects to it,
    /// and only a session proving the key it announced lets them go on (a mismatch is
    /// reported, as a `KeyMismatch` event and here, and nothing is sent). Once connected it
    /// is a known peer like any other.
    pub(super) fn at_announced(
        &mut self,
        to: PeerAddr,
        (key, name): (PeerKey, String),
        action: PeerAction,
        back: Back,
        ctx: &mut Context<Self>,
    ) {
        self.names.insert(to, &name);
        let node = self.node.clone();
        match action {
            PeerAction::Connect => {
                let connecting = async move {
                    let result = node.connect_announced(to, key, &name).await;
                    Outcome::Connected {
                        peer: to,
                        result: result.map_err(|err| err.to_string()),
                    }
                };
                self.run(back, connecting, ctx)
            }
            PeerAction::AskText | PeerAction::Send(_) | PeerAction::Talk => {
                let connecting = async move { node.connect_announced(to, key, &name).await };
                self.run_then(
                    connecting,
                    move |console, connected, ctx| match connected {
                        Ok(_) => console.at_peer(to, false, action, back, ctx),
                        Err(err) => {
                            // Whoever is at that address is not who announced that name.
                            let who = console.who(&to);
                            console.names.remove(&to);
                            let line = console.look.bad(format!(
                                "Not connected to {who} ({to}), nothing sent: {}.",
                                visible(&err.to_string())
                            ));
                            console.done(back, &line, ctx)
                        }
                    },
                    ctx,
                )
            }
            // About what this node keeps for the address: nothing to connect for.
            PeerAction::Disconnect | PeerAction::Forget | PeerAction::Cancel => {
                self.at_peer(to, false, action, back, ctx)
            }
        }
    }

    /// `action` applied to the one peer meant.
    pub(super) fn at_peer(
        &mut self,
        to: PeerAddr,
        classic: bool,
        action: PeerAction,
        back: Back,
        ctx: &mut Context<Self>,
    ) {
        match action {
            PeerAction::AskText if classic => self.ask(Prompt::SendClassicText { to }),
            PeerAction::AskText => self.ask(Prompt::SendText { to }),
            PeerAction::Send(text) if classic => self.send_classic(to, text, back, ctx),
            PeerAction::Send(text) => self.apply(
                super::command::Parsed::Run(Command::Send { to, text }, back),
                ctx,
            ),
            PeerAction::Talk => {
                self.start_talk(to, classic);
                self.done(Back::Prompt, "", ctx)
            }
            PeerAction::Connect => {
                self.apply(super::command::Parsed::Run(Command::Connect(to), back), ctx)
            }
            PeerAction::Disconnect => self.apply(
                super::command::Parsed::Run(Command::Disconnect(to), back),
                ctx,
            ),
            PeerAction::Cancel => self.cancel_waiting(to, back, ctx),
            PeerAction::Forget => self.forget(to, back, ctx),
        }
    }

    /// `/cancel PEER`: the chats still waiting for it are dropped.
    fn cancel_waiting(&mut self, to: PeerAddr, back: Back, ctx: &mut Context<Self>) {
        let node = self.node.clone();
        let who = self.who(&to);
        self.run_then(
            async move { node.cancel_waiting(to).await },
            move |console, cancelled, ctx| {
                let line = match cancelled {
                    Ok(0) => format!("No message was waiting for {who}."),
                    Ok(n) => format!("Cancelled {n} message(s) waiting for {who}."),
                    Err(err) => console.look.bad(err.to_string()),
                };
                console.done(back, &line, ctx)
            },
            ctx,
        )
    }

    /// `/forget PEER`: the node forgets it, and so does the Console, so that neither the
    /// conversation nor `/r` still points at it.
    fn forget(&mut self, to: PeerAddr, back: Back, ctx: &mut Context<Self>) {
        let node = self.node.clone();
        let who = self.who(&to);
        self.run_then(
            async move { node.forget(to).await },
            move |console, forgotten, ctx| {
                if console.talking.as_ref().is_some_and(|t| t.to == to) {
                    console.talking = None;
                }
                if console.known.last_sender == Some(to) {
                    console.known.last_sender = None;
                }
                let line = match forgotten {
                    Ok(done) => forgotten_line(&who, done),
                    Err(err) => console.look.bad(err.to_string()),
                };
                console.done(back, &line, ctx)
            },
            ctx,
        )
    }

    /// The peer as the user knows it: its name, else its address.
    pub(super) fn who(&self, peer: &PeerAddr) -> String {
        match self.names.get(peer) {
            Some(name) if !name.is_empty() => visible(name).into_owned(),
            _ => peer.to_string(),
        }
    }

    /// Opens a conversation with `to` (said when it is a new one).
    pub(super) fn start_talk(&mut self, to: PeerAddr, classic: bool) {
        let who = self.who(&to);
        if let Some(talk) = self.talking.as_mut().filter(|t| t.to == to) {
            // The same conversation; its peer may have a name by now.
            talk.prompt = format!("{who}> ");
            return;
        }
        self.talking = Some(Talk {
            to,
            classic,
            prompt: format!("{who}> "),
        });
        let line = format!(
            "Talking to {} ({}): a line you type goes to them; /menu goes back to the menu.",
            self.look.name(&who),
            self.look.addr(to)
        );
        self.print(&line);
    }

    /// `/menu`, `/leave`: the conversation ends, the menu shows.
    pub(super) fn leave(&mut self, ctx: &mut Context<Self>) {
        self.talking = None;
        self.show_menu(ctx);
    }

    /// `/all TEXT`: one chat to each connected peer; one line says who it went to, and one
    /// (later) who got it.
    pub(super) fn send_all(&mut self, text: String, back: Back, ctx: &mut Context<Self>) {
        let node = self.node.clone();
        let sending = async move {
            let mut peers = node.peers().await.unwrap_or_default();
            peers.retain(|p| p.connected);
            // One request for them all; if it failed as a whole, each peer says why.
            let outcomes = match node
                .send_chat_to_each(peers.iter().map(|p| p.addr), text.as_str())
                .await
            {
                Ok(outcomes) => outcomes,
                Err(err) => vec![Err(err); peers.len()],
            };
            let mut sent = Vec::new();
            let mut refused = Vec::new();
            for (peer, outcome) in peers.into_iter().zip(outcomes) {
                let who = match &peer.name {
                    Some(name) if !name.is_empty() => visible(name).into_owned(),
                    _ => peer.addr.to_string(),
                };
                match outcome {
                    Ok(id) => sent.push((id, who, peer.addr)),
                    Err(err) => refused.push(format!("{who} ({err})")),
                }
            }
            (sent, refused, text)
        };
        self.run_then(
            sending,
            move |console, (sent, refused, text), ctx| {
                if sent.is_empty() && refused.is_empty() {
                    let line = "Nobody is connected: nothing sent (/connect, then /all).";
                    return console.done(back, line, ctx);
                }
                let shown = visible(&text).into_owned();
                for (id, _, to) in &sent {
                    console.sent.insert(*id, (*to, shown.clone()));
                }
                let names: Vec<(MessageId, String)> =
                    sent.iter().map(|(id, who, _)| (*id, who.clone())).collect();
                console.everyone.start(&names);
                let to: Vec<&str> = names.iter().map(|(_, who)| who.as_str()).collect();
                let mut line = format!("Sending to everyone ({}): {shown}", to.join(", "));
                if !refused.is_empty() {
                    let refused = console
                        .look
                        .bad(format!("not sent to {}", refused.join(", ")));
                    line.push_str(&format!("; {refused}"));
                }
                let line = super::look::wrap(&line, console.screen.width());
                console.done(back, &line, ctx)
            },
            ctx,
        )
    }
}

/// One peer of the one list, as listings show it: `2. 127.0.0.1:9002  carol  connected`.
pub(super) fn listed_line(peer: &Listed, look: &super::look::Look) -> String {
    let (name, state) = super::render::name_and_state(peer.name.as_deref(), peer.connected, look);
    format!("{}. {}  {name}  {state}", peer.number, look.addr(peer.addr))
}

/// This machine's addresses a peer could be told, for the hint when someone types `0.0.0.0`.
fn local_ips(listen: SocketAddr) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = super::addresses::reachable(listen)
        .iter()
        .map(SocketAddr::ip)
        .collect();
    let loopback = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    if listen.ip().is_unspecified() && !ips.contains(&loopback) {
        ips.insert(0, loopback);
    }
    ips
}

/// `host:port` looked up by the system's resolver, on tokio's blocking pool (never on the
/// actors' thread).
async fn look_up(host: &str, port: u16, listed: &[Listed]) -> Result<Named, String> {
    match tokio::net::lookup_host((host, port)).await {
        Ok(found) => {
            let found: Vec<PeerAddr> = found.map(PeerAddr::new).collect();
            match names::pick_looked_up(&found, listed) {
                Some(addr) => Ok(Named::Peer(addr)),
                None => Err(format!("'{}' has no address.", visible(host))),
            }
        }
        Err(_) => Err(format!(
            "'{}' is not a known peer, and no host has that name: give a name or number from \
             /peers, IP:PORT or HOST:PORT.",
            visible(host)
        )),
    }
}

/// What forgetting `who` did, in one line.
fn forgotten_line(who: &str, done: Forgotten) -> String {
    let mut line = format!("Forgot {who}");
    if done.cancelled > 0 {
        line.push_str(&format!(
            ": {} waiting message(s) cancelled",
            done.cancelled
        ));
    }
    if done.disconnected {
        line.push_str(", disconnected");
    }
    line.push('.');
    if !done.was_listed {
        line.push_str(" It was not in /peers.");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16) -> PeerAddr {
        PeerAddr::from_ip_port([127, 0, 0, 1].into(), port)
    }

    fn name(peer: &PeerAddr) -> String {
        match peer.port() {
            1 => "bob".into(),
            2 => "carol".into(),
            3 => "dave".into(),
            _ => peer.to_string(),
        }
    }

    #[test]
    fn unread_counts_chats_from_others_while_talking_until_you_type() {
        let (bob, carol, dave) = (peer(1), peer(2), peer(3));
        let mut unread = Unread::default();
        // Not in a conversation: the chats are on screen, nothing is counted.
        assert!(!unread.received(&carol, None));
        assert!(unread.note(name).is_empty());
        // From the peer you are talking to: read as it comes.
        assert!(!unread.received(&bob, Some(&bob)));
        assert!(unread.note(name).is_empty());
        assert!(unread.received(&carol, Some(&bob)));
        assert!(unread.received(&dave, Some(&bob)));
        assert!(unread.received(&carol, Some(&bob)));
        assert_eq!(unread.note(name), ["3 unread: carol, dave", "3 unread"]);
        assert!(unread.typed());
        assert!(unread.note(name).is_empty());
        // Nothing was unread: typing changes nothing to show.
        assert!(!unread.typed());
    }

    #[test]
    fn many_senders_are_summed_up_after_the_first_three() {
        let mut unread = Unread::default();
        for port in 2..10 {
            unread.received(&peer(port), Some(&peer(1)));
            unread.received(&peer(port), Some(&peer(1)));
        }
        assert_eq!(
            unread.note(name),
            ["16 unread: carol, dave, 127.0.0.1:4, …", "16 unread"]
        );
        assert!(unread.from.len() <= UNREAD_NAMED + 1);
    }
}
