//! Console: owns what the user sees and types (the open question, lines typed while a command
//! runs, the chats it sent, who wrote last); asks the Registry through its [`Node`] handle and
//! prints the node's events on a [`Screen`]. A line goes command.rs → apply.rs → render.rs.

mod addresses;
mod apply;
mod batch;
mod classic;
mod command;
mod identity;
mod look;
mod names;
mod nearby;
mod render;
mod screen;
mod talk;

use std::collections::{HashMap, VecDeque};

use actix::prelude::*;
use futures::channel::oneshot;
use futures::StreamExt;

use crate::child::ChildName;
use crate::classic::ClassicEvent;
use crate::events::{NodeEvent, NodeEvents, WhenShown};
use crate::guarded_handler;
use crate::node::Node;
use crate::peer::{MessageId, PeerAddr};
use crate::supervision::{SupervisedChild, SupervisorLink};
use crate::trace::{Role, Traced};
use batch::{ChatBatch, KnownNames};
use command::{parse, Back, Known, Prompt, Talk};

pub use crate::reasons::{cannot_listen, plain as plain_reason};
pub use addresses::{joined as joined_addrs, reachable as reachable_addrs};
pub use look::{display_width, push_wrapped, wrap, Look};
pub use render::{MENU, SHORTCUTS};
pub use screen::{stdin_lines, InputStream, PlainScreen, Screen, Written};

/// How long a quitting Console waits for its last lines to be written before the process
/// ends anyway.
const QUIT_WRITE_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How the console ended, for the process's exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuitReport {
    /// Chats still without an ack when the node stopped.
    pub undelivered: usize,
}

/// The Console actor (see the module docs).
pub struct Console {
    node: Node,
    /// Where its failures and restarts are reported (the node's supervisor).
    supervisor: SupervisorLink,
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
    /// What the parser needs besides the line: who wrote to us last (for `/r`), whether
    /// `!` fault commands are on.
    known: Known,
    /// A command is waiting for the node; lines typed meanwhile wait their turn.
    busy: bool,
    queued: VecDeque<String>,
    /// What we sent, to say which message an ack is for.
    sent: HashMap<MessageId, (PeerAddr, String)>,
    quitting: bool,
    on_quit: Option<oneshot::Sender<QuitReport>>,
    /// Chat lines received in this mailbox turn, printed together at its end.
    batch: ChatBatch,
    /// The current conversation (`/talk`): plain lines go to this peer.
    talking: Option<Talk>,
    /// Peers' names as last heard, for prompts and short lines (`bob> `), and how a chat
    /// line shows each sender.
    names: KnownNames,
    /// Messages sent with `/all`, to sum up who got them (talk.rs).
    everyone: talk::Everyone,
    /// Chats from others since your last input, while in a conversation (talk.rs).
    unread: talk::Unread,
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
            supervisor: SupervisorLink::to(&node.supervisor()),
            failure: None,
            incarnation: 0,
            screen,
            look,
            input: Some(input),
            input_open: true,
            prompt: Prompt::Menu,
            known: Known::default(),
            busy: false,
            queued: VecDeque::new(),
            sent: HashMap::new(),
            quitting: false,
            on_quit: Some(on_quit),
            batch: ChatBatch::default(),
            talking: None,
            names: KnownNames::default(),
            everyone: talk::Everyone::default(),
            unread: talk::Unread::default(),
        }
    }

    /// Accepts the `!` fault commands (see [`crate::faults::parse_fault`]).
    pub fn with_faults(mut self, enabled: bool) -> Self {
        self.known.faults = enabled;
        self
    }

    /// Prints text above the prompt; chat lines waiting in this turn's batch go first.
    fn print(&mut self, text: &str) {
        self.print_batch();
        self.screen.print(text);
    }

    /// Prints one line above the prompt, keeping the prompt below it: one piece of output.
    fn say(&mut self, line: &str) {
        self.print_batch();
        let prompt = (!self.busy && !self.quitting).then(|| self.prompt.text());
        self.screen.print_lines(line, prompt);
    }

    /// A chat's line joins this turn's batch; the first one schedules the batch's printing
    /// for when the mailbox has no more messages ready (or 256 were handled).
    fn queue_chat(&mut self, from: &PeerAddr, name: &str, text: &str, ctx: &mut Context<Self>) {
        if !self.batch.scheduled {
            self.batch.scheduled = true;
            self.batch.width = self.screen.width();
            self.batch.refresh_stamp(&self.look);
            ctx.spawn(fut::ready(()).map(|_, console: &mut Self, _| console.print_batch()));
        }
        self.batch
            .add(&mut self.names, from, name, text, &self.look);
    }

    /// Prints the chat lines waiting, and the prompt after them: one write on a pipe.
    fn print_batch(&mut self) {
        self.batch.scheduled = false;
        if self.batch.lines.is_empty() {
            return;
        }
        let prompt = (!self.busy && !self.quitting).then(|| self.prompt.text());
        self.screen.print_lines(&self.batch.lines, prompt);
        self.batch.lines.clear();
        if self.batch.lines.capacity() > 1 << 20 {
            self.batch.lines = String::new();
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
            self.print(MENU);
            return self.show_prompt();
        }
        // On a terminal the status line comes first; it needs the Registry's peer list.
        self.ask_menu_status(ctx);
    }

    fn ask(&mut self, prompt: Prompt) {
        self.prompt = prompt;
        self.show_prompt();
    }

    /// Prints a line and goes back to the menu, or only to its prompt (the conversation's,
    /// if one is open). On a terminal a numbered choice brings back a one-line hint, not the
    /// whole menu: that comes at start, after `?`, `/menu` or an empty line.
    fn done(&mut self, back: Back, line: &str, ctx: &mut Context<Self>) {
        if !line.is_empty() {
            self.print(line);
        }
        match back {
            Back::Menu if self.talking.is_none() && !self.screen.interactive() => {
                self.show_menu(ctx)
            }
            Back::Menu if self.talking.is_none() => {
                let hint = self.look.dim(render::MENU_HINT);
                self.print(&hint);
                self.prompt = Prompt::Menu;
                self.show_prompt();
            }
            _ => {
                self.prompt = self.home();
                self.show_prompt();
            }
        }
    }

    /// The question open between commands: the conversation's line, or the menu's.
    fn home(&self) -> Prompt {
        match &self.talking {
            Some(talk) => Prompt::Talk(talk.clone()),
            None => Prompt::Menu,
        }
    }

    /// Runs the lines typed while a command was under way; quits once input has ended and
    /// all of them ran.
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

    /// Says goodbye: waits for the node to shut down (acks in flight get the node's quit
    /// grace), then fires `on_quit`.
    fn quit(&mut self, why: String, ctx: &mut Context<Self>) {
        if self.quitting {
            return;
        }
        self.print_batch();
        self.quitting = true;
        self.screen.close();
        self.screen.print(&render::quitting(&why, self.sent.len()));
        let node = self.node.clone();
        let grace = self.node.quit_grace();
        ctx.spawn(
            async move { node.shutdown(grace).await }
                .into_actor(self)
                .map(|report, console, _| {
                    let look = console.look;
                    let line = render::undelivered(
                        report.undelivered,
                        report.kept,
                        report.not_saved,
                        &look,
                    );
                    if let Some(line) = line {
                        console.print(&line);
                    }
                    console.print("Goodbye.");
                    // The process ends once `on_quit` is heard: everything is written first.
                    let written = console.screen.written();
                    let on_quit = console.on_quit.take();
                    actix_rt::spawn(async move {
                        // Bounded: a stdout nobody reads (or a terminal printer that is
                        // stuck) must not keep the process from ending.
                        let _ = actix_rt::time::timeout(QUIT_WRITE_LIMIT, written).await;
                        if let Some(on_quit) = on_quit {
                            let _ = on_quit.send(QuitReport {
                                undelivered: report.undelivered,
                            });
                        }
                    });
                    // Not stopped: to its Supervisor a stop is a failure to restart from.
                    // The process ends once `on_quit` is heard.
                }),
        );
    }
}

impl Actor for Console {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.incarnation == 0 {
            // Input and events come through the mailbox, not streams of this context: a
            // restart clears a context's streams, the mailbox survives it. Chats are acked
            // only once this Console says they are shown (`WhenShown`).
            self.node
                .subscribe_display(ctx.address().recipient(), ctx.address().recipient());
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
            self.report_restart();
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
        // The scheduled printing died with the old context: what it would print goes now.
        self.print_batch();
        self.incarnation += 1;
        self.report_failure();
        self.prompt = Prompt::Menu;
        self.busy = false;
    }
}

impl SupervisedChild for Console {
    const NAME: ChildName = ChildName::Console;

    fn failure(&mut self) -> &mut Option<String> {
        &mut self.failure
    }

    fn supervisor(&self) -> &SupervisorLink {
        &self.supervisor
    }
}

impl Traced for Console {
    const ROLE: Role = Role::Console;
}

// ---- the messages it handles ----

/// One line the user typed (without its line end).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct InputLine(pub String);

guarded_handler!(Console, InputLine, |console, line, ctx| console
    .input_line(line.0, ctx));

impl Console {
    /// A line the user typed: what came before it counts as read, even if the line waits
    /// for a command under way.
    fn input_line(&mut self, line: String, ctx: &mut Context<Self>) {
        if self.unread.typed() {
            self.screen.note(&[]);
        }
        self.on_line(line, ctx);
    }

    /// A chat from `from`: counted as unread if you are talking to someone else, and the
    /// note beside the line being typed says so (before the chat's line is printed).
    fn count_unread(&mut self, from: &PeerAddr) {
        if self
            .unread
            .received(from, self.talking.as_ref().map(|talk| &talk.to))
        {
            let forms = self.unread.note(|peer| self.who(peer));
            let forms: Vec<String> = forms.into_iter().map(|form| self.look.dim(form)).collect();
            self.screen.note(&forms);
        }
    }

    /// One line typed: understood at the open question, then applied. Lines typed while a
    /// command runs wait their turn.
    fn on_line(&mut self, line: String, ctx: &mut Context<Self>) {
        if self.quitting {
            return;
        }
        if self.busy {
            self.queued.push_back(line);
            return;
        }
        self.screen.answered();
        let prompt = std::mem::replace(&mut self.prompt, Prompt::Menu);
        let parsed = parse(prompt, &line, &self.known);
        self.apply(parsed, ctx);
    }
}

/// The input has ended (Ctrl-D, end of a pipe).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct InputEnded;

// End of input quits, once the commands already typed have run.
guarded_handler!(Console, InputEnded, |console, _, ctx| console
    .input_ended(ctx));

impl Console {
    fn input_ended(&mut self, ctx: &mut Context<Self>) {
        self.input_open = false;
        if !self.busy {
            self.drain_queue(ctx);
        }
    }
}

// The Registry's events, a batch of chats in one message (console flow control: its
// `WhenShown` comes after them).
guarded_handler!(Console, NodeEvents, |console, events, ctx| {
    for event in events.0 {
        console.on_event(event, ctx);
    }
});

impl Console {
    /// An event: remembered where it answers something (who wrote last, which chat an ack
    /// is for), then printed above the prompt.
    fn on_event(&mut self, event: NodeEvent, ctx: &mut Context<Self>) {
        match &event {
            NodeEvent::ChatReceived {
                from, name, text, ..
            } => {
                self.known.last_sender = Some(*from);
                self.note_name(from, name);
                self.count_unread(from);
                // The hot path: batched, no allocation per line.
                return self.queue_chat(from, name, text, ctx);
            }
            NodeEvent::Classic(ClassicEvent::Chat { from, .. }) => {
                self.known.last_sender = Some(*from);
                self.count_unread(from);
            }
            NodeEvent::PeerConnected { peer, name, .. } => self.note_name(peer, name),
            NodeEvent::Delivered { id, to, .. } | NodeEvent::DeliveryFailed { id, to, .. } => {
                let sent = self.sent.remove(id);
                let failed = match &event {
                    NodeEvent::DeliveryFailed { reason, .. } => Some(reason.as_str()),
                    _ => None,
                };
                // A chat you cancelled: the answer to /cancel or /forget said so.
                if failed == Some(crate::registry::CANCELLED) {
                    return;
                }
                let who = self.who(to);
                if let Some(summary) = self.everyone.settle(*id, &who, failed) {
                    if let Some(summary) = summary {
                        self.say_long(&summary);
                    }
                    return;
                }
                // On a terminal your text was shown once when sent: a short line now.
                if let (None, Some((_, shown)), true) = (failed, &sent, self.screen.interactive()) {
                    let time = chrono::Local::now().format("%H:%M:%S").to_string();
                    let mut line = format!(
                        "{} {} to {}",
                        render::stamp(&time, &self.look),
                        self.look.good("delivered"),
                        self.look.name(&who)
                    );
                    // Which one, when others to the same peer are still on their way.
                    if self.sent.values().any(|(other, _)| other == to) {
                        line.push_str(&format!(": {}", render::excerpt(shown)));
                    }
                    return self.say(&line);
                }
            }
            _ => {}
        }
        self.print_batch();
        let time = chrono::Local::now().format("%H:%M:%S").to_string();
        let line = render::event(&event, &self.look, &time);
        self.say_long(&line);
    }
}

impl Handler<WhenShown> for Console {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: WhenShown, _: &mut Context<Self>) -> Self::Result {
        // The chat lines of this turn go out now, not at its end: they are what is asked.
        self.print_batch();
        self.screen.written()
    }
}

impl Console {
    /// A peer's name as last heard, for prompts and short lines.
    fn note_name(&mut self, peer: &PeerAddr, name: &str) {
        self.names.note(peer, name);
    }
}

/// Print a line for the user, e.g. from start-up code.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Notice(pub String);

guarded_handler!(Console, Notice, |console, msg, _| console.say_long(&msg.0));

/// Quit as if the user chose 0 (Ctrl-C, SIGTERM).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Quit {
    /// Said in the quitting line (`Quitting (interrupted)...`).
    pub why: String,
}

guarded_handler!(Console, Quit, |console, msg, ctx| console
    .quit(msg.why, ctx));
