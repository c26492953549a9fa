//! Console: owns what the user sees and types. It turns each input line (a menu choice, a `/`
//! shortcut) into a message to the Registry through [`Node`], and prints the node's events
//! through a [`Screen`]: plain lines on a pipe, the binary's line editor on a terminal.

mod look;

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, Write};
use std::net::IpAddr;
use std::pin::Pin;

use actix::prelude::*;
use futures::channel::{mpsc, oneshot};
use futures::{Stream, StreamExt};

use crate::events::{NodeEvent, SupervisionStep};
use crate::faults::{parse_fault, Fault};
use crate::node::Node;
use crate::peer::{parse_port, MessageId, PeerAddr, PeerInfo};
use crate::registry::{ConnectAllReport, ConnectOutcome};
use crate::store::HistoryEntry;
use crate::supervisor::{guarded, suffer, ChildFailed, ChildName, ChildRestarted, SupervisedChild};
use crate::trace::{tell, Role, Traced};

pub use look::{wrap, Look};

/// The standard menu, printed as it is.
pub const MENU: &str = "\
***** Menu *****
1. Send message
2. Query active peers
3. Connect to active peers
4. Disconnect from all peers
5. Disconnect from a peer
0. Quit";

/// What `/help` prints.
pub const SHORTCUTS: &str = "\
Shortcuts (type them at \"Choose an option:\"):
  /msg IP:PORT text    send text to a peer (also /m)
  /r text              reply to the peer who wrote to you last
  /peers               list known peers, like 2
  /connect [IP:PORT]   connect to one peer, or to all known peers like 3
  /status              your name and address, connected peers, messages waiting
  /history [N]         the last N messages shown or delivered (default 20)
  /help                this list
  /quit                quit, like 0 (also /q)";

// ---- messages the Console handles ----

/// One line the user typed (without its line end).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct InputLine(pub String);

/// Print a line for the user, e.g. from start-up code.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Notice(pub String);

/// Quit as if the user chose 0 (Ctrl-C, SIGTERM).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Quit {
    /// Said in the quitting line (`Quitting (interrupted)...`).
    pub why: String,
}

/// How the console ended, for the process's exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuitReport {
    /// Chats still without an ack when the node stopped.
    pub undelivered: usize,
}

// ---- where the text goes ----

/// The Console's output. The Console decides what to print and when it is ready for the next
/// line; a Screen decides how that looks on its device.
pub trait Screen {
    /// Prints `text` (one line, or several joined by `\n`) above the line being typed.
    fn print(&mut self, text: &str);
    /// The Console is ready for the next input line, the answer to `prompt`. Called again
    /// after each print while the same question is open.
    fn prompt(&mut self, prompt: &str);
    /// A line arrived: the open question is answered.
    fn answered(&mut self);
    /// The Console is quitting: no more questions; what is printed now ends the session.
    fn close(&mut self) {}
    /// Columns to wrap long lines at; `None` keeps every line whole, for scripts.
    fn width(&self) -> Option<usize> {
        None
    }
    /// A person at a terminal: the status line comes with the menu.
    fn interactive(&self) -> bool {
        false
    }
}

/// The plain line protocol for pipes and scripts: every prompt is written as text, and a
/// line printed while a prompt is open starts on a line of its own.
pub struct PlainScreen {
    out: Box<dyn Write>,
    /// A prompt is out without its line end: the next print must end that line first.
    prompt_open: bool,
}

impl PlainScreen {
    /// A plain screen writing to `out` (stdout in the binary).
    pub fn new(out: Box<dyn Write>) -> PlainScreen {
        PlainScreen {
            out,
            prompt_open: false,
        }
    }
}

impl Screen for PlainScreen {
    fn print(&mut self, text: &str) {
        if self.prompt_open {
            let _ = writeln!(self.out);
            self.prompt_open = false;
        }
        let _ = writeln!(self.out, "{text}");
        let _ = self.out.flush();
    }

    fn prompt(&mut self, prompt: &str) {
        let _ = write!(self.out, "{prompt}");
        let _ = self.out.flush();
        self.prompt_open = true;
    }

    fn answered(&mut self) {
        // The user's Enter ended the prompt's line.
        self.prompt_open = false;
    }
}

// ---- the actor ----

/// What the next input line answers.
#[derive(Debug, Clone)]
enum Prompt {
    Menu,
    SendTo,
    SendPort { ip: IpAddr },
    SendText { to: PeerAddr },
    DisconnectWhich { connected: Vec<PeerAddr> },
}

impl Prompt {
    fn text(&self) -> &'static str {
        match self {
            Prompt::Menu => "Choose an option: ",
            Prompt::SendTo => "Recipient IP (or IP:PORT): ",
            Prompt::SendPort { .. } => "Recipient port: ",
            Prompt::SendText { .. } => "Message: ",
            Prompt::DisconnectWhich { .. } => "Peer to disconnect (number or IP:PORT): ",
        }
    }
}

/// Where a command returns when it is done: menu choices show the menu again, shortcuts
/// (for people who chat a lot) only the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Back {
    Menu,
    Prompt,
}

/// The user's lines, as the Console receives them.
pub type InputStream = Pin<Box<dyn Stream<Item = InputLine>>>;

/// The Console actor (see the module docs).
pub struct Console {
    node: Node,
    /// Accept `!` fault commands (`--faults`).
    faults: bool,
    /// Why the current incarnation failed, until `restarting` reports it.
    failure: Option<String>,
    /// How many times this Console has been restarted.
    incarnation: u32,
    screen: Box<dyn Screen>,
    look: Look,
    input: Option<InputStream>,
    /// False once the input stream has ended: quit when the queued commands are done.
    input_open: bool,
    prompt: Prompt,
    /// A command is waiting for the node; lines typed meanwhile wait their turn.
    busy: bool,
    queued: VecDeque<String>,
    /// What we sent, to say which message an ack is for.
    sent: HashMap<MessageId, (PeerAddr, String)>,
    /// Who wrote to us last, for `/r`.
    last_sender: Option<PeerAddr>,
    quitting: bool,
    on_quit: Option<oneshot::Sender<QuitReport>>,
}

impl Console {
    /// `input` is the user's lines; `on_quit` fires when the node has shut down.
    pub fn new(
        node: Node,
        input: InputStream,
        screen: Box<dyn Screen>,
        look: Look,
        on_quit: oneshot::Sender<QuitReport>,
    ) -> Self {
        Console {
            // Its requests show as "Console → Registry" in the trace.
            node: node.acting_as(Role::Console),
            faults: false,
            failure: None,
            incarnation: 0,
            screen,
            look,
            input: Some(input),
            input_open: true,
            prompt: Prompt::Menu,
            busy: false,
            queued: VecDeque::new(),
            sent: HashMap::new(),
            last_sender: None,
            quitting: false,
            on_quit: Some(on_quit),
        }
    }

    /// Accepts the `!` fault commands (see [`crate::faults::parse_fault`]).
    pub fn with_faults(mut self, enabled: bool) -> Self {
        self.faults = enabled;
        self
    }

    fn on_fault_command(&mut self, command: &str, ctx: &mut Context<Self>) {
        if !self.faults {
            let line = self
                .look
                .bad("Fault commands (!...) need peerchat to be started with --faults.");
            return self.done(Back::Prompt, &line, ctx);
        }
        let fault = match parse_fault(command.trim_start_matches('!')) {
            Ok(fault) => fault,
            Err(why) => {
                let line = self.look.bad(visible(&why));
                return self.done(Back::Prompt, &line, ctx);
            }
        };
        let line = self.look.warn(format!("Injecting {fault:?}"));
        self.screen.print(&line);
        match fault {
            Fault::Actor(ChildName::Console, fault) => {
                self.done(Back::Prompt, "", ctx);
                suffer(self, ctx, fault);
            }
            fault => self.run(
                move |node| async move { node.inject(fault).await },
                |console, result, ctx| {
                    let line = match result {
                        Ok(()) => "Injected.".to_string(),
                        Err(err) => console.look.bad(format!("Cannot inject: {err}")),
                    };
                    console.done(Back::Prompt, &line, ctx)
                },
                ctx,
            ),
        }
    }

    /// Prints one line above the prompt, keeping the prompt below it.
    fn say(&mut self, line: &str) {
        self.screen.print(line);
        if !self.busy {
            self.show_prompt();
        }
    }

    /// A line that may be long (it holds a text someone typed): wrapped on a terminal.
    fn say_long(&mut self, line: &str) {
        let line = wrap(line, self.screen.width());
        self.say(&line);
    }

    fn show_prompt(&mut self) {
        if self.quitting {
            return;
        }
        self.screen.prompt(self.prompt.text());
    }

    fn show_menu(&mut self, ctx: &mut Context<Self>) {
        self.prompt = Prompt::Menu;
        if !self.screen.interactive() {
            self.screen.print(MENU);
            return self.show_prompt();
        }
        // On a terminal the status line comes first; it needs the Registry's peer list.
        self.run(
            |node| async move { node.peers().await },
            |console, peers, _| {
                if console.quitting {
                    return;
                }
                if let Ok(peers) = peers {
                    let status = console.status_line(&peers);
                    console.screen.print(&status);
                }
                let menu = match MENU.split_once('\n') {
                    Some((title, items)) => format!("{}\n{items}", console.look.heading(title)),
                    None => MENU.to_string(),
                };
                console.screen.print(&menu);
                console.show_prompt();
            },
            ctx,
        );
    }

    fn ask(&mut self, prompt: Prompt) {
        self.prompt = prompt;
        self.show_prompt();
    }

    /// Prints a line and goes back to the menu, or only to its prompt.
    fn done(&mut self, back: Back, line: &str, ctx: &mut Context<Self>) {
        self.screen.print(line);
        match back {
            Back::Menu => self.show_menu(ctx),
            Back::Prompt => {
                self.prompt = Prompt::Menu;
                self.show_prompt();
            }
        }
    }

    fn on_line(&mut self, line: String, ctx: &mut Context<Self>) {
        if self.quitting {
            return;
        }
        if self.busy {
            self.queued.push_back(line);
            return;
        }
        self.screen.answered();
        let answer = line.trim().to_string();
        match std::mem::replace(&mut self.prompt, Prompt::Menu) {
            Prompt::Menu if answer.starts_with('/') => self.on_shortcut(&answer, ctx),
            Prompt::Menu if answer.starts_with('!') => self.on_fault_command(&answer, ctx),
            Prompt::Menu => self.on_menu_choice(&answer, ctx),
            Prompt::SendTo => match answer.parse::<PeerAddr>() {
                Ok(to) => self.ask(Prompt::SendText { to }),
                Err(_) => match answer.parse::<IpAddr>() {
                    Ok(ip) => self.ask(Prompt::SendPort { ip }),
                    Err(_) => {
                        let line = self.look.bad(format!(
                            "'{}' is not an IP address or IP:PORT (e.g. 127.0.0.1:9000)",
                            visible(&answer)
                        ));
                        self.done(Back::Menu, &line, ctx)
                    }
                },
            },
            Prompt::SendPort { ip } => match parse_port(&answer) {
                Ok(port) => self.ask(Prompt::SendText {
                    to: PeerAddr::from_ip_port(ip, port),
                }),
                Err(err) => {
                    let line = self.look.bad(visible(&err.to_string()));
                    self.done(Back::Menu, &line, ctx)
                }
            },
            Prompt::SendText { to } => {
                // Keep the text as typed (spaces included), minus the line end.
                let text = line.trim_end_matches(['\r', '\n']).to_string();
                if text.trim().is_empty() {
                    return self.done(Back::Menu, "Empty message, nothing sent.", ctx);
                }
                self.send_chat(to, text, Back::Menu, ctx);
            }
            Prompt::DisconnectWhich { connected } => {
                let chosen = match answer.parse::<usize>() {
                    Ok(n) if (1..=connected.len()).contains(&n) => Some(connected[n - 1]),
                    Ok(_) => None,
                    Err(_) => answer.parse::<PeerAddr>().ok(),
                };
                match chosen {
                    Some(peer) => self.run(
                        move |node| async move { node.disconnect(peer).await },
                        move |console, result, ctx| match result {
                            Ok(()) => {
                                let line = format!(
                                    "{} {}.",
                                    console.look.warn("Disconnected from"),
                                    console.look.addr(peer)
                                );
                                console.done(Back::Menu, &line, ctx)
                            }
                            Err(err) => {
                                let line =
                                    console.look.bad(format!("{}.", visible(&err.to_string())));
                                console.done(Back::Menu, &line, ctx)
                            }
                        },
                        ctx,
                    ),
                    None => {
                        let line = self.look.bad(format!(
                            "'{}' is not a number from the list or an IP:PORT.",
                            visible(&answer)
                        ));
                        self.done(Back::Menu, &line, ctx)
                    }
                }
            }
        }
    }

    fn on_menu_choice(&mut self, choice: &str, ctx: &mut Context<Self>) {
        match choice {
            "" => self.show_menu(ctx),
            "1" => self.ask(Prompt::SendTo),
            "2" => self.list_peers(Back::Menu, ctx),
            "3" => self.connect_all(Back::Menu, ctx),
            "4" => self.run(
                |node| async move { node.disconnect_all().await },
                |console, count, ctx| {
                    let line = match count {
                        Ok(0) => "Not connected to any peer.".to_string(),
                        Ok(n) => format!("{} {n} peer(s).", console.look.warn("Disconnected from")),
                        Err(err) => console.look.bad(err),
                    };
                    console.done(Back::Menu, &line, ctx)
                },
                ctx,
            ),
            "5" => self.run(
                |node| async move { node.peers().await },
                |console, peers, ctx| {
                    let connected: Vec<PeerInfo> = peers
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|p| p.connected)
                        .collect();
                    if connected.is_empty() {
                        return console.done(Back::Menu, "Not connected to any peer.", ctx);
                    }
                    let listing = peer_listing(&connected, true, &console.look);
                    console.screen.print(&listing);
                    let connected = connected.iter().map(|p| p.addr).collect();
                    console.ask(Prompt::DisconnectWhich { connected });
                },
                ctx,
            ),
            "0" => self.quit("bye".into(), ctx),
            other => {
                let line = self.look.bad(format!(
                    "'{}' is not a menu option: type a number from 0 to 5.",
                    visible(other)
                ));
                self.done(Back::Menu, &line, ctx)
            }
        }
    }

    /// A line starting with `/` at the menu prompt.
    fn on_shortcut(&mut self, line: &str, ctx: &mut Context<Self>) {
        let (command, rest) = split_word(line);
        let usage = |console: &mut Console, text: &str, ctx: &mut Context<Self>| {
            let line = console.look.bad(text);
            console.done(Back::Prompt, &line, ctx)
        };
        match command {
            "/msg" | "/m" => {
                let (to, text) = split_word(rest);
                if to.is_empty() || text.trim().is_empty() {
                    return usage(self, "Usage: /msg IP:PORT text", ctx);
                }
                match to.parse::<PeerAddr>() {
                    Ok(to) => self.send_chat(to, text.to_string(), Back::Prompt, ctx),
                    Err(err) => usage(self, &visible(&err.to_string()), ctx),
                }
            }
            "/r" | "/reply" => match self.last_sender {
                None => usage(
                    self,
                    "No one has written to you yet: use /msg IP:PORT text.",
                    ctx,
                ),
                Some(to) if rest.trim().is_empty() => {
                    usage(self, &format!("Usage: /r text (replies to {to})"), ctx)
                }
                Some(to) => self.send_chat(to, rest.to_string(), Back::Prompt, ctx),
            },
            "/peers" => self.list_peers(Back::Prompt, ctx),
            "/connect" if rest.is_empty() => self.connect_all(Back::Prompt, ctx),
            "/connect" => match rest.parse::<PeerAddr>() {
                Ok(peer) => self.run(
                    move |node| async move { node.connect(peer).await },
                    move |console, result, ctx| {
                        let look = console.look;
                        let line = match result {
                            Ok(ConnectOutcome::Connected) => {
                                format!("{} {}.", look.good("Connected to"), look.addr(peer))
                            }
                            Ok(ConnectOutcome::AlreadyConnected) => {
                                format!("Already connected to {}.", look.addr(peer))
                            }
                            Err(err) => look.bad(format!(
                                "Cannot connect to {peer}: {}.",
                                visible(&err.to_string())
                            )),
                        };
                        console.done(Back::Prompt, &line, ctx)
                    },
                    ctx,
                ),
                Err(err) => usage(self, &visible(&err.to_string()), ctx),
            },
            "/history" => {
                let limit = match rest.trim() {
                    "" => Ok(20),
                    n => n.parse::<usize>().map_err(|_| n.to_string()),
                };
                match limit {
                    Ok(limit) => self.run(
                        move |node| async move { node.history(limit).await },
                        |console, history, ctx| {
                            let line = match history {
                                Ok(entries) if entries.is_empty() => "No messages yet.".into(),
                                Ok(entries) => history_listing(&entries, &console.look),
                                Err(err) => console.look.bad(err),
                            };
                            console.done(Back::Prompt, &line, ctx)
                        },
                        ctx,
                    ),
                    Err(bad) => usage(
                        self,
                        &format!("Usage: /history [N] ('{}' is not a number)", visible(&bad)),
                        ctx,
                    ),
                }
            }
            "/status" => self.run(
                |node| async move { node.peers().await },
                |console, peers, ctx| {
                    let line = match peers {
                        Ok(peers) => console.status_line(&peers),
                        Err(err) => console.look.bad(err),
                    };
                    console.done(Back::Prompt, &line, ctx)
                },
                ctx,
            ),
            "/help" | "/?" | "/h" => self.done(Back::Prompt, SHORTCUTS, ctx),
            "/quit" | "/q" | "/exit" => self.quit("bye".into(), ctx),
            other => {
                let line = self.look.bad(format!(
                    "'{}' is not a shortcut: type /help for the list.",
                    visible(other)
                ));
                self.done(Back::Prompt, &line, ctx)
            }
        }
    }

    fn list_peers(&mut self, back: Back, ctx: &mut Context<Self>) {
        self.run(
            |node| async move { node.peers().await },
            move |console, peers, ctx| {
                let listing = match peers {
                    Ok(peers) => peer_listing(&peers, false, &console.look),
                    Err(err) => console.look.bad(err),
                };
                console.done(back, &listing, ctx)
            },
            ctx,
        )
    }

    fn connect_all(&mut self, back: Back, ctx: &mut Context<Self>) {
        self.screen
            .print("Asking connected peers for their peers...");
        self.run(
            |node| async move { node.connect_all().await },
            move |console, report, ctx| {
                let listing = match report {
                    Ok(report) => connect_all_listing(&report, &console.look),
                    Err(err) => console.look.bad(err),
                };
                console.done(back, &listing, ctx)
            },
            ctx,
        )
    }

    /// One line: who and where we are, how many peers are connected, how many of our
    /// messages wait for an ack.
    fn status_line(&self, peers: &[PeerInfo]) -> String {
        let connected = peers.iter().filter(|p| p.connected).count();
        let waiting: usize = peers.iter().map(|p| p.waiting).sum();
        let look = &self.look;
        format!(
            "{} {} at {} | connected peers: {} ({} known) | messages waiting: {}",
            look.heading("Status:"),
            look.name(&visible(self.node.name())),
            look.addr(self.node.listen_addr()),
            if connected > 0 {
                look.good(connected)
            } else {
                look.warn(connected)
            },
            peers.len(),
            if waiting > 0 {
                look.warn(waiting)
            } else {
                waiting.to_string()
            },
        )
    }

    fn send_chat(&mut self, to: PeerAddr, text: String, back: Back, ctx: &mut Context<Self>) {
        let shown = visible(&text);
        self.run(
            move |node| async move { node.send_chat(to, text).await },
            move |console, result, ctx| match result {
                Ok(id) => {
                    let line = format!("Sending to {}: {shown}", console.look.addr(to));
                    console.sent.insert(id, (to, shown));
                    let line = wrap(&line, console.screen.width());
                    console.done(back, &line, ctx);
                }
                Err(err) => {
                    let line = console.look.bad(format!(
                        "Cannot send to {to}: {}.",
                        visible(&err.to_string())
                    ));
                    console.done(back, &line, ctx)
                }
            },
            ctx,
        );
    }

    /// Runs one command against the node; input typed meanwhile waits, events still print.
    fn run<T: 'static, F: std::future::Future<Output = T> + 'static>(
        &mut self,
        command: impl FnOnce(Node) -> F,
        then: impl FnOnce(&mut Console, T, &mut Context<Self>) + 'static,
        ctx: &mut Context<Self>,
    ) {
        self.busy = true;
        ctx.spawn(
            command(self.node.clone())
                .into_actor(self)
                .map(move |result, console, ctx| {
                    console.busy = false;
                    then(console, result, ctx);
                    console.drain_queue(ctx);
                }),
        );
    }

    fn drain_queue(&mut self, ctx: &mut Context<Self>) {
        while !self.busy && !self.quitting {
            match self.queued.pop_front() {
                Some(line) => self.on_line(line, ctx),
                None => break,
            }
        }
        if self.queued.is_empty() && !self.input_open && !self.busy {
            self.quit("end of input".into(), ctx);
        }
    }

    fn quit(&mut self, why: String, ctx: &mut Context<Self>) {
        if self.quitting {
            return;
        }
        let waiting = self.sent.len();
        self.quitting = true;
        self.screen.close();
        if waiting > 0 {
            self.screen.print(&format!(
                "Quitting ({why}): waiting for {waiting} message(s) to be acknowledged..."
            ));
        } else {
            self.screen.print(&format!("Quitting ({why})..."));
        }
        let node = self.node.clone();
        let grace = self.node.quit_grace();
        ctx.spawn(
            async move { node.shutdown(grace).await }
                .into_actor(self)
                .map(|report, console, _| {
                    if report.undelivered > 0 && report.kept {
                        let line = console.look.bad(format!(
                            "Warning: {} message(s) not delivered yet; they are kept in the \
                             data directory and sent at the next start.",
                            report.undelivered
                        ));
                        console.screen.print(&line);
                    } else if report.undelivered > 0 {
                        let line = console.look.bad(format!(
                            "Warning: {} message(s) were not delivered.",
                            report.undelivered
                        ));
                        console.screen.print(&line);
                    }
                    console.screen.print("Goodbye.");
                    if let Some(on_quit) = console.on_quit.take() {
                        let _ = on_quit.send(QuitReport {
                            undelivered: report.undelivered,
                        });
                    }
                    // Not stopped: to its Supervisor a stop is a failure to restart from.
                    // The process ends once `on_quit` is heard.
                }),
        );
    }

    fn on_event(&mut self, event: NodeEvent) {
        let look = self.look;
        let time = look.dim(format!("[{}]", chrono::Local::now().format("%H:%M:%S")));
        let who = |name: &str, addr: PeerAddr| {
            format!("{} ({})", look.name(&visible(name)), look.addr(addr))
        };
        let line = match event {
            NodeEvent::ChatReceived {
                from, name, text, ..
            } => {
                self.last_sender = Some(from);
                format!("{time} {}: {}", who(&name, from), visible(&text))
            }
            NodeEvent::Delivered { to, id, text } => {
                self.sent.remove(&id);
                let what = look.good("delivered");
                format!("{time} {what} to {}: {}", look.addr(to), visible(&text))
            }
            NodeEvent::DeliveryDelayed {
                to,
                waiting,
                reason,
                retry_in,
            } => format!(
                "{time} {} {} ({}): {waiting} message(s) waiting, retrying in {:.1}s",
                look.addr(to),
                look.bad("unreachable"),
                visible(&reason),
                retry_in.as_secs_f64()
            ),
            NodeEvent::DeliveryFailed {
                to,
                id,
                text,
                reason,
            } => {
                self.sent.remove(&id);
                let what = look.bad("failed to deliver");
                format!(
                    "{time} {what} to {} ({}): {}",
                    look.addr(to),
                    visible(&text),
                    visible(&reason)
                )
            }
            NodeEvent::PeerConnected { peer, name, .. } => {
                format!("{time} {} {}", look.good("connected to"), who(&name, peer))
            }
            NodeEvent::PeerDisconnected { peer, name, reason } => format!(
                "{time} {} {}: {}",
                look.warn("disconnected from"),
                who(&name, peer),
                visible(&reason)
            ),
            NodeEvent::PeerDiscovered { peer, name } => {
                format!("{time} learned of peer {}", who(&name, peer))
            }
            NodeEvent::ConnectionRefused { remote, reason } => format!(
                "{time} {} from {}: {}",
                look.warn("refused a connection"),
                look.addr(remote),
                visible(&reason)
            ),
            NodeEvent::Supervision { actor, step } => {
                format!("{time} supervisor: {actor} {}", supervision_text(&step))
            }
        };
        self.say_long(&line);
    }
}

impl Actor for Console {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.incarnation == 0 {
            // Input and events come through the mailbox, not streams of this context: a
            // restart clears a context's streams, the mailbox survives it.
            self.node.subscribe(ctx.address().recipient());
            if let Some(mut input) = self.input.take() {
                let console = ctx.address();
                actix_rt::spawn(async move {
                    while let Some(line) = input.next().await {
                        console.do_send(line);
                    }
                    console.do_send(InputEnded);
                });
            }
        } else {
            let supervisor = self.node.supervisor();
            tell(
                Role::Console,
                &supervisor,
                ChildRestarted {
                    child: ChildName::Console,
                },
            );
        }
        if !self.quitting {
            self.show_menu(ctx);
        }
    }
}

/// On a restart the Console keeps its screen, what it sent and the lines typed but not yet
/// handled; the question being asked and the command under way are dropped (back to the
/// menu).
impl Supervised for Console {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.incarnation += 1;
        let reason = self.failure.take().unwrap_or_else(|| "stopped".to_string());
        let supervisor = self.node.supervisor();
        tell(
            Role::Console,
            &supervisor,
            ChildFailed {
                child: ChildName::Console,
                reason,
            },
        );
        self.prompt = Prompt::Menu;
        self.busy = false;
    }
}

impl SupervisedChild for Console {
    const NAME: ChildName = ChildName::Console;

    fn failure(&mut self) -> &mut Option<String> {
        &mut self.failure
    }
}

impl Traced for Console {
    const ROLE: Role = Role::Console;
}

/// The input has ended (Ctrl-D, end of a pipe).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct InputEnded;

impl Handler<InputLine> for Console {
    type Result = ();

    fn handle(&mut self, line: InputLine, ctx: &mut Context<Self>) {
        guarded(
            self,
            ctx,
            || (),
            |console, ctx| console.on_line(line.0, ctx),
        )
    }
}

impl Handler<InputEnded> for Console {
    type Result = ();

    fn handle(&mut self, _: InputEnded, ctx: &mut Context<Self>) {
        guarded(
            self,
            ctx,
            || (),
            |console, ctx| {
                // End of input quits, once the commands already typed have run.
                console.input_open = false;
                if !console.busy {
                    console.drain_queue(ctx);
                }
            },
        )
    }
}

impl Handler<NodeEvent> for Console {
    type Result = ();

    fn handle(&mut self, event: NodeEvent, ctx: &mut Context<Self>) {
        guarded(self, ctx, || (), |console, _| console.on_event(event))
    }
}

impl Handler<Notice> for Console {
    type Result = ();

    fn handle(&mut self, msg: Notice, _: &mut Context<Self>) {
        self.say_long(&msg.0);
    }
}

impl Handler<Quit> for Console {
    type Result = ();

    fn handle(&mut self, msg: Quit, ctx: &mut Context<Self>) {
        self.quit(msg.why, ctx);
    }
}

/// `/history`: one line per message, oldest first.
fn history_listing(entries: &[HistoryEntry], look: &Look) -> String {
    let time = |at_ms: u64| {
        chrono::DateTime::from_timestamp_millis(at_ms as i64)
            .map(|t| {
                t.with_timezone(&chrono::Local)
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string()
            })
            .unwrap_or_default()
    };
    let lines: Vec<String> = entries
        .iter()
        .map(|entry| match entry {
            HistoryEntry::In {
                at_ms,
                from,
                name,
                text,
                ..
            } => format!(
                "  {} {} ({}): {}",
                look.dim(time(*at_ms)),
                look.name(&visible(name)),
                from,
                visible(text)
            ),
            HistoryEntry::Out {
                at_ms, to, text, ..
            } => format!(
                "  {} you to {}: {}",
                look.dim(time(*at_ms)),
                to,
                visible(text)
            ),
        })
        .collect();
    format!("History:\n{}", lines.join("\n"))
}

/// The first word of `text` and the rest after the spaces that follow it (kept as typed).
fn split_word(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    match text.find(char::is_whitespace) {
        Some(at) => (&text[..at], text[at..].trim_start()),
        None => (text, ""),
    }
}

fn supervision_text(step: &SupervisionStep) -> String {
    match step {
        SupervisionStep::Failed { reason } => format!("failed: {}", visible(reason)),
        SupervisionStep::Restarting { restarts_in_window } => {
            format!("restarting (restart {restarts_in_window} in the current window)")
        }
        SupervisionStep::Restarted => "restarted".into(),
        SupervisionStep::Escalated { reason } => {
            format!("failed too often, node gives up: {}", visible(reason))
        }
    }
}

fn peer_listing(peers: &[PeerInfo], numbered_connected_only: bool, look: &Look) -> String {
    if peers.is_empty() {
        return "No known peers yet.".into();
    }
    let mut text = String::from(if numbered_connected_only {
        "Connected peers:"
    } else {
        "Known peers:"
    });
    for (n, peer) in peers.iter().enumerate() {
        let name = match peer.name.as_deref() {
            Some(name) => look.name(&visible(name)),
            None => "?".into(),
        };
        let state = if peer.connected {
            look.good("connected")
        } else {
            look.warn("not connected")
        };
        let waiting = match peer.waiting {
            0 => String::new(),
            n => format!(", {n} message(s) waiting"),
        };
        text.push_str(&format!(
            "\n  {}. {}  {name}  {state}{waiting}",
            n + 1,
            look.addr(peer.addr),
        ));
    }
    text
}

fn connect_all_listing(report: &ConnectAllReport, look: &Look) -> String {
    if report.attempts.is_empty() && report.already_connected.is_empty() {
        return "No known peers to connect to.".into();
    }
    let mut lines = Vec::new();
    for (peer, result) in &report.attempts {
        let peer = look.addr(peer);
        lines.push(match result {
            Ok(ConnectOutcome::Connected) => format!("  {peer}: {}", look.good("connected")),
            Ok(ConnectOutcome::AlreadyConnected) => format!("  {peer}: already connected"),
            Err(err) => format!(
                "  {peer}: {}",
                look.bad(format!("failed: {}", visible(&err.to_string())))
            ),
        });
    }
    for peer in &report.already_connected {
        lines.push(format!("  {}: already connected", look.addr(peer)));
    }
    format!("Connect to active peers:\n{}", lines.join("\n"))
}

/// Makes text safe to print: control characters (escape sequences, carriage returns, bells),
/// bidirectional overrides and line separators are shown as `\u{..}` escapes instead of
/// acting on the terminal. Everything else, any script or emoji, is shown as it is.
pub fn visible(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
        let separator = matches!(c, '\u{2028}' | '\u{2029}');
        if c.is_control() || bidi || separator {
            match c {
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                _ => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Standard input as a stream of lines, read on a thread of its own (reading a terminal
/// blocks). Invalid UTF-8 is replaced, not fatal. The stream ends at end of input.
pub fn stdin_lines() -> mpsc::UnboundedReceiver<InputLine> {
    let (tx, rx) = mpsc::unbounded();
    let spawned = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let stdin = io::stdin();
            let mut reader = stdin.lock();
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        while matches!(buf.last(), Some(b'\n' | b'\r')) {
                            buf.pop();
                        }
                        let line = String::from_utf8_lossy(&buf).into_owned();
                        if tx.unbounded_send(InputLine(line)).is_err() {
                            break;
                        }
                    }
                }
            }
        });
    if let Err(err) = spawned {
        tracing::error!("cannot read standard input: {err}");
    }
    rx
}

#[cfg(test)]
mod tests {
    use super::{split_word, visible};

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(visible("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(visible("x\ry\n\t\u{7}"), "x\\ry\\n\\t\\u{7}");
        assert_eq!(visible("\u{202e}evil"), "\\u{202e}evil");
        assert_eq!(visible("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(visible("a\u{2028}b"), "a\\u{2028}b");
        assert_eq!(visible("नमस्ते 👋 ünï"), "नमस्ते 👋 ünï");
        // Emoji sequences joined by ZWJ stay whole.
        assert_eq!(visible("👩\u{200d}💻"), "👩\u{200d}💻");
    }

    #[test]
    fn shortcuts_split_into_command_and_text_as_typed() {
        assert_eq!(
            split_word("/msg 1.2.3.4:5  hi  there "),
            ("/msg", "1.2.3.4:5  hi  there ")
        );
        assert_eq!(
            split_word("1.2.3.4:5  hi  there "),
            ("1.2.3.4:5", "hi  there ")
        );
        assert_eq!(split_word("/peers"), ("/peers", ""));
        assert_eq!(split_word(""), ("", ""));
    }
}
