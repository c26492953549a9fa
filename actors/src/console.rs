//! Console: owns the terminal. It reads menu input line by line, turns each command into a
//! message to the Registry (through [`Node`]), and prints what the node reports: incoming
//! chats, delivery results, peers coming and going.

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, Write};
use std::net::IpAddr;
use std::pin::Pin;
use std::time::Duration;

use actix::prelude::*;
use futures::channel::{mpsc, oneshot};
use futures::Stream;

use crate::events::{NodeEvent, SupervisionStep};
use crate::node::Node;
use crate::peer::{parse_port, MessageId, PeerAddr, PeerInfo};
use crate::registry::{ConnectAllReport, ConnectOutcome};

pub const MENU: &str = "\
***** Menu *****
1. Send message
2. Query active peers
3. Connect to active peers
4. Disconnect from all peers
5. Disconnect from a peer
0. Quit";

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
    pub why: String,
}

/// How the console ended, for the process's exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuitReport {
    pub undelivered: usize,
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

pub type InputStream = Pin<Box<dyn Stream<Item = InputLine>>>;

pub struct Console {
    node: Node,
    out: Box<dyn Write>,
    input: Option<InputStream>,
    /// False once the input stream has ended: quit when the queued commands are done.
    input_open: bool,
    prompt: Prompt,
    /// A prompt is on screen without its line end: an event must start a new line.
    prompt_open: bool,
    /// A command is waiting for the node; lines typed meanwhile wait their turn.
    busy: bool,
    queued: VecDeque<String>,
    /// What we sent, to say which message an ack is for.
    sent: HashMap<MessageId, (PeerAddr, String)>,
    quitting: bool,
    on_quit: Option<oneshot::Sender<QuitReport>>,
}

impl Console {
    /// `input` is the user's lines; `on_quit` fires when the node has shut down.
    pub fn new(
        node: Node,
        input: InputStream,
        out: Box<dyn Write>,
        on_quit: oneshot::Sender<QuitReport>,
    ) -> Self {
        Console {
            node,
            out,
            input: Some(input),
            input_open: true,
            prompt: Prompt::Menu,
            prompt_open: false,
            busy: false,
            queued: VecDeque::new(),
            sent: HashMap::new(),
            quitting: false,
            on_quit: Some(on_quit),
        }
    }

    /// Prints one line above the prompt, keeping the prompt intact below it.
    fn say(&mut self, line: &str) {
        if self.prompt_open {
            let _ = writeln!(self.out);
            self.prompt_open = false;
        }
        let _ = writeln!(self.out, "{line}");
        if !self.busy && !self.quitting {
            self.show_prompt();
        }
        let _ = self.out.flush();
    }

    fn show_prompt(&mut self) {
        if self.quitting {
            return;
        }
        let _ = write!(self.out, "{}", self.prompt.text());
        let _ = self.out.flush();
        self.prompt_open = true;
    }

    fn show_menu(&mut self) {
        self.prompt = Prompt::Menu;
        if self.prompt_open {
            let _ = writeln!(self.out);
            self.prompt_open = false;
        }
        let _ = writeln!(self.out, "{MENU}");
        self.show_prompt();
    }

    fn ask(&mut self, prompt: Prompt) {
        self.prompt = prompt;
        self.prompt_open = false;
        self.show_prompt();
    }

    /// Prints a line and goes back to the menu.
    fn done(&mut self, line: &str) {
        self.prompt_open = false;
        let _ = writeln!(self.out, "{line}");
        self.show_menu();
    }

    fn on_line(&mut self, line: String, ctx: &mut Context<Self>) {
        if self.quitting {
            return;
        }
        if self.busy {
            self.queued.push_back(line);
            return;
        }
        // The user ended the prompt's line by pressing Enter.
        self.prompt_open = false;
        let answer = line.trim().to_string();
        match std::mem::replace(&mut self.prompt, Prompt::Menu) {
            Prompt::Menu => self.on_menu_choice(&answer, ctx),
            Prompt::SendTo => match answer.parse::<PeerAddr>() {
                Ok(to) => self.ask(Prompt::SendText { to }),
                Err(_) => match answer.parse::<IpAddr>() {
                    Ok(ip) => self.ask(Prompt::SendPort { ip }),
                    Err(_) => self.done(&format!(
                        "'{}' is not an IP address or IP:PORT (e.g. 127.0.0.1:9000)",
                        visible(&answer)
                    )),
                },
            },
            Prompt::SendPort { ip } => match parse_port(&answer) {
                Ok(port) => self.ask(Prompt::SendText {
                    to: PeerAddr::from_ip_port(ip, port),
                }),
                Err(err) => self.done(&visible(&err.to_string())),
            },
            Prompt::SendText { to } => {
                // Keep the text as typed (spaces included), minus the line end.
                let text = line.trim_end_matches(['\r', '\n']).to_string();
                if text.trim().is_empty() {
                    return self.done("Empty message, nothing sent.");
                }
                self.send_chat(to, text, ctx);
            }
            Prompt::DisconnectWhich { connected } => {
                let chosen = match answer.parse::<usize>() {
                    Ok(n) if (1..=connected.len()).contains(&n) => Some(connected[n - 1]),
                    Ok(_) => None,
                    Err(_) => answer.parse::<PeerAddr>().ok(),
                };
                match chosen {
                    Some(peer) => self.run(
                        self.node.clone(),
                        move |node| async move { node.disconnect(peer).await },
                        move |console, result| match result {
                            Ok(()) => console.done(&format!("Disconnected from {peer}.")),
                            Err(err) => console.done(&format!("{err}.")),
                        },
                        ctx,
                    ),
                    None => self.done(&format!(
                        "'{}' is not a number from the list or an IP:PORT.",
                        visible(&answer)
                    )),
                }
            }
        }
    }

    fn on_menu_choice(&mut self, choice: &str, ctx: &mut Context<Self>) {
        match choice {
            "" => self.show_menu(),
            "1" => self.ask(Prompt::SendTo),
            "2" => self.run(
                self.node.clone(),
                |node| async move { node.peers().await },
                |console, peers| match peers {
                    Ok(peers) => {
                        let listing = peer_listing(&peers, false);
                        console.done(&listing);
                    }
                    Err(err) => console.done(&format!("{err}")),
                },
                ctx,
            ),
            "3" => {
                let _ = writeln!(self.out, "Asking connected peers for their peers...");
                self.run(
                    self.node.clone(),
                    |node| async move { node.connect_all().await },
                    |console, report| match report {
                        Ok(report) => console.done(&connect_all_listing(&report)),
                        Err(err) => console.done(&format!("{err}")),
                    },
                    ctx,
                )
            }
            "4" => self.run(
                self.node.clone(),
                |node| async move { node.disconnect_all().await },
                |console, count| match count {
                    Ok(0) => console.done("Not connected to any peer."),
                    Ok(n) => console.done(&format!("Disconnected from {n} peer(s).")),
                    Err(err) => console.done(&format!("{err}")),
                },
                ctx,
            ),
            "5" => self.run(
                self.node.clone(),
                |node| async move { node.peers().await },
                |console, peers| {
                    let connected: Vec<PeerInfo> = peers
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|p| p.connected)
                        .collect();
                    if connected.is_empty() {
                        return console.done("Not connected to any peer.");
                    }
                    let _ = writeln!(console.out, "{}", peer_listing(&connected, true));
                    let connected = connected.iter().map(|p| p.addr).collect();
                    console.ask(Prompt::DisconnectWhich { connected });
                },
                ctx,
            ),
            "0" => self.quit("bye".into(), ctx),
            other => self.done(&format!(
                "'{}' is not a menu option: type a number from 0 to 5.",
                visible(other)
            )),
        }
    }

    fn send_chat(&mut self, to: PeerAddr, text: String, ctx: &mut Context<Self>) {
        let shown = visible(&text);
        self.run(
            self.node.clone(),
            move |node| async move { node.send_chat(to, text).await },
            move |console, result| match result {
                Ok(id) => {
                    console.sent.insert(id, (to, shown.clone()));
                    console.done(&format!("Sending to {to}: {shown}"));
                }
                Err(err) => console.done(&format!("Cannot send to {to}: {err}.")),
            },
            ctx,
        );
    }

    /// Runs one command against the node; input typed meanwhile waits, events still print.
    fn run<T: 'static, F: std::future::Future<Output = T> + 'static>(
        &mut self,
        node: Node,
        command: impl FnOnce(Node) -> F,
        then: impl FnOnce(&mut Console, T) + 'static,
        ctx: &mut Context<Self>,
    ) {
        self.busy = true;
        ctx.spawn(
            command(node)
                .into_actor(self)
                .map(move |result, console, ctx| {
                    console.busy = false;
                    then(console, result);
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
        if self.prompt_open {
            let _ = writeln!(self.out);
            self.prompt_open = false;
        }
        if waiting > 0 {
            let _ = writeln!(
                self.out,
                "Quitting ({why}): waiting for {waiting} message(s) to be acknowledged..."
            );
        } else {
            let _ = writeln!(self.out, "Quitting ({why})...");
        }
        let _ = self.out.flush();
        self.quitting = true;
        let node = self.node.clone();
        let grace = Duration::from_secs(3);
        ctx.spawn(
            async move { node.shutdown(grace).await }
                .into_actor(self)
                .map(|report, console, ctx| {
                    if report.undelivered > 0 && report.kept {
                        let _ = writeln!(
                            console.out,
                            "Warning: {} message(s) not delivered yet; they are kept in the \
                             data directory and sent at the next start.",
                            report.undelivered
                        );
                    } else if report.undelivered > 0 {
                        let _ = writeln!(
                            console.out,
                            "Warning: {} message(s) were not delivered.",
                            report.undelivered
                        );
                    }
                    let _ = writeln!(console.out, "Goodbye.");
                    let _ = console.out.flush();
                    if let Some(on_quit) = console.on_quit.take() {
                        let _ = on_quit.send(QuitReport {
                            undelivered: report.undelivered,
                        });
                    }
                    ctx.stop();
                }),
        );
    }

    fn on_event(&mut self, event: NodeEvent) {
        let time = chrono::Local::now().format("%H:%M:%S");
        let line = match event {
            NodeEvent::ChatReceived {
                from, name, text, ..
            } => format!("[{time}] {} ({from}): {}", visible(&name), visible(&text)),
            NodeEvent::Delivered { to, id, text } => {
                self.sent.remove(&id);
                format!("[{time}] delivered to {to}: {}", visible(&text))
            }
            NodeEvent::DeliveryDelayed {
                to,
                waiting,
                reason,
                retry_in,
            } => format!(
                "[{time}] {to} unreachable ({}): {waiting} message(s) waiting, retrying in {:.1}s",
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
                format!(
                    "[{time}] failed to deliver to {to} ({}): {}",
                    visible(&text),
                    visible(&reason)
                )
            }
            NodeEvent::PeerConnected { peer, name, .. } => {
                format!("[{time}] connected to {} ({peer})", visible(&name))
            }
            NodeEvent::PeerDisconnected { peer, name, reason } => format!(
                "[{time}] disconnected from {} ({peer}): {}",
                visible(&name),
                visible(&reason)
            ),
            NodeEvent::PeerDiscovered { peer, name } => {
                format!("[{time}] learned of peer {} ({peer})", visible(&name))
            }
            NodeEvent::ConnectionRefused { remote, reason } => format!(
                "[{time}] refused a connection from {remote}: {}",
                visible(&reason)
            ),
            NodeEvent::Supervision { actor, step } => {
                format!("[{time}] supervisor: {actor} {}", supervision_text(&step))
            }
        };
        self.say(&line);
    }
}

impl Actor for Console {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.add_stream(self.node.events());
        if let Some(input) = self.input.take() {
            ctx.add_stream(input);
        }
        self.show_menu();
    }
}

impl StreamHandler<InputLine> for Console {
    fn handle(&mut self, line: InputLine, ctx: &mut Context<Self>) {
        self.on_line(line.0, ctx);
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        // End of input quits, once the commands already typed have run.
        self.input_open = false;
        if !self.busy {
            self.drain_queue(ctx);
        }
    }
}

impl StreamHandler<NodeEvent> for Console {
    fn handle(&mut self, event: NodeEvent, _: &mut Context<Self>) {
        self.on_event(event);
    }

    fn finished(&mut self, _: &mut Context<Self>) {}
}

impl Handler<Notice> for Console {
    type Result = ();

    fn handle(&mut self, msg: Notice, _: &mut Context<Self>) {
        self.say(&msg.0);
    }
}

impl Handler<Quit> for Console {
    type Result = ();

    fn handle(&mut self, msg: Quit, ctx: &mut Context<Self>) {
        self.quit(msg.why, ctx);
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

fn peer_listing(peers: &[PeerInfo], numbered_connected_only: bool) -> String {
    if peers.is_empty() {
        return "No known peers yet.".into();
    }
    let mut text = String::from(if numbered_connected_only {
        "Connected peers:"
    } else {
        "Known peers:"
    });
    for (n, peer) in peers.iter().enumerate() {
        let name = peer
            .name
            .as_deref()
            .map(visible)
            .unwrap_or_else(|| "?".into());
        let state = if peer.connected {
            "connected"
        } else {
            "not connected"
        };
        let waiting = match peer.waiting {
            0 => String::new(),
            n => format!(", {n} message(s) waiting"),
        };
        text.push_str(&format!(
            "\n  {}. {}  {}  {state}{waiting}",
            n + 1,
            peer.addr,
            name
        ));
    }
    text
}

fn connect_all_listing(report: &ConnectAllReport) -> String {
    if report.attempts.is_empty() && report.already_connected.is_empty() {
        return "No known peers to connect to.".into();
    }
    let mut lines = Vec::new();
    for (peer, result) in &report.attempts {
        lines.push(match result {
            Ok(ConnectOutcome::Connected) => format!("  {peer}: connected"),
            Ok(ConnectOutcome::AlreadyConnected) => format!("  {peer}: already connected"),
            Err(err) => format!("  {peer}: failed: {err}"),
        });
    }
    for peer in &report.already_connected {
        lines.push(format!("  {peer}: already connected"));
    }
    format!("Connect to active peers:\n{}", lines.join("\n"))
}

/// Makes text safe to print: control characters (escape sequences, carriage returns, bells)
/// and bidirectional overrides are shown as `\u{..}` escapes instead of acting on the
/// terminal. Everything else, any script or emoji, is shown as it is.
pub fn visible(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || bidi {
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
    use super::visible;

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(visible("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(visible("x\ry\n\t\u{7}"), "x\\ry\\n\\t\\u{7}");
        assert_eq!(visible("\u{202e}evil"), "\\u{202e}evil");
        assert_eq!(visible("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(visible("नमस्ते 👋 ünï"), "नमस्ते 👋 ünï");
    }
}
