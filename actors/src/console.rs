//! Console: owns what the user sees and types (the open question, lines typed while a command
//! runs, the chats it sent, who wrote last); asks the Registry through its [`Node`] handle and
//! prints the node's events on a [`Screen`]. A line goes command.rs → apply.rs → render.rs.

mod apply;
mod classic;
mod command;
mod look;
mod nearby;
mod render;
mod screen;

use std::collections::{HashMap, VecDeque};

use actix::prelude::*;
use futures::channel::oneshot;
use futures::StreamExt;

use crate::child::ChildName;
use crate::classic::ClassicEvent;
use crate::events::NodeEvent;
use crate::guarded_handler;
use crate::node::Node;
use crate::peer::{MessageId, PeerAddr};
use crate::supervision::{SupervisedChild, SupervisorLink};
use crate::trace::{Role, Traced};
use command::{parse, Back, Known, Prompt};

pub use look::{wrap, Look};
pub use render::{MENU, SHORTCUTS};
pub use screen::{stdin_lines, InputStream, PlainScreen, Screen};

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
        }
    }

    /// Accepts the `!` fault commands (see [`crate::faults::parse_fault`]).
    pub fn with_faults(mut self, enabled: bool) -> Self {
        self.known.faults = enabled;
        self
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
        self.ask_menu_status(ctx);
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
                    if let Some(line) = render::undelivered(report.undelivered, report.kept, &look)
                    {
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
    .on_line(line.0, ctx));

impl Console {
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

guarded_handler!(Console, NodeEvent, |console, event, _| console
    .on_event(event));

impl Console {
    /// An event: remembered where it answers something (who wrote last, which chat an ack
    /// is for), then printed above the prompt.
    fn on_event(&mut self, event: NodeEvent) {
        match &event {
            NodeEvent::ChatReceived { from, .. } => self.known.last_sender = Some(*from),
            NodeEvent::Classic(ClassicEvent::Chat { from, .. }) => {
                self.known.last_sender = Some(*from)
            }
            NodeEvent::Delivered { id, .. } | NodeEvent::DeliveryFailed { id, .. } => {
                self.sent.remove(id);
            }
            _ => {}
        }
        let time = chrono::Local::now().format("%H:%M:%S").to_string();
        let line = render::event(&event, &self.look, &time);
        self.say_long(&line);
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
