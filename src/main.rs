//! peerchat: a peer-to-peer terminal chat. This file is the command line: it parses options,
//! asks for what is missing, starts a node and its Console (with the line editor of
//! terminal.rs on a terminal, plain lines on a pipe), runs the one-shot `send` command, and
//! turns the end into an exit code.

mod send_lines;
mod terminal;

/// mimalloc rather than the system's allocator: a chat passes through a few actors, each
/// message and chat text an allocation, and glibc's malloc and free cost a fifth of a
/// receiving node's instructions (docs/performance.md, fan-out eighth round).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{self, IsTerminal, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;
use clap::{Parser, Subcommand, ValueEnum};
use futures::channel::{mpsc, oneshot};
use futures::future::{select, Either};
use futures::StreamExt;

use peerchat_actors::classic::ClassicConfig;
use peerchat_actors::config::RestartPolicy;
use peerchat_actors::config::RetryPolicy;
use peerchat_actors::console::{
    cannot_listen, joined_addrs, plain_reason, reachable_addrs, stdin_lines, Console, InputLine,
    Look, Notice, PlainScreen, Quit, QuitReport, Screen,
};
use peerchat_actors::faults::parse_duration;
use peerchat_actors::identity::{default_data_dir, SEND_KEY_FILE};
use peerchat_actors::limits::{Limits, Rate, MAX_NAME_BYTES};
use peerchat_actors::sanitize::visible;
use peerchat_actors::trace::{self, Role};
use peerchat_actors::{Node, NodeConfig, NodeEvent, PeerAddr, StartError, Timeouts};

/// Peer-to-peer terminal chat: every peer runs its own TCP server and talks to others
/// directly by IP and port. Driven by a numbered menu and /shortcuts on standard input.
#[derive(Parser, Debug)]
#[command(name = "peerchat", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Name shown to other peers (asked on stdin if missing).
    #[arg(short, long)]
    name: Option<String>,

    /// Port to listen on; 0 picks a free one (asked on stdin if missing).
    #[arg(short, long)]
    port: Option<u16>,

    /// Interface to listen on. The default, all interfaces, lets peers on the LAN reach you.
    #[arg(short, long, default_value = "0.0.0.0", global = true)]
    bind: IpAddr,

    /// A peer to connect to at start-up (repeat for several).
    #[arg(long = "peer", value_name = "IP:PORT")]
    peers: Vec<PeerAddr>,

    /// A new connection must complete its handshake (both hellos) within this.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration, global = true)]
    hello_timeout: Duration,

    /// Ping a peer after this much silence.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration, global = true)]
    ping_interval: Duration,

    /// Drop a connection after this much silence.
    #[arg(long, value_name = "DURATION", default_value = "6s", value_parser = parse_duration, global = true)]
    idle_timeout: Duration,

    /// Give up connecting to a peer after this.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = parse_duration, global = true)]
    connect_timeout: Duration,

    /// Send a message again when no ack comes within this.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, global = true)]
    ack_timeout: Duration,

    /// Keep the node's key (who it is to its peers), the outbox and the chat history in this
    /// directory, so that identity and messages survive a restart or a crash (see
    /// docs/storage.md). Default: $XDG_DATA_HOME/peerchat/NAME (else
    /// ~/.local/share/peerchat/NAME).
    #[arg(long, value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,

    /// Keep nothing on disk: a new key (a new identity) every run, the outbox and history
    /// in memory only.
    #[arg(long, global = true, conflicts_with = "data_dir")]
    ephemeral: bool,

    /// Report a message as failed once it has waited this long for its peer.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_duration, global = true)]
    give_up_after: Duration,

    /// Longest pause between two attempts to reach a peer that has messages waiting.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, global = true)]
    max_backoff: Duration,

    /// More than this many actor restarts within --restart-window and the node gives up.
    #[arg(long, value_name = "N", default_value_t = 10, global = true)]
    max_restarts: usize,

    /// The window of --max-restarts.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, global = true)]
    restart_window: Duration,

    /// Colour names, addresses and statuses: auto (when stdout is a terminal and NO_COLOR
    /// is not set), always, never.
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = ColorChoice::Auto, global = true)]
    color: ColorChoice,

    /// Keep the line editor's history in this file too (on a terminal; off by default, as
    /// the history holds the messages you typed).
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,

    /// Do not announce this node on the LAN nor look for peers there (mDNS/DNS-SD). Discovery
    /// is on by default when listening on a non-loopback interface, never on loopback.
    #[arg(long)]
    no_discovery: bool,

    /// Refuse classic peers: connections in the class assignment's plain-text protocol are
    /// closed unread (see the README, "Chatting with classic peers").
    #[arg(long)]
    no_classic: bool,

    /// How to answer a classic peer's CONNECT_REQUEST: yes (CONNECTED) or no (REJECTED).
    #[arg(long, value_name = "yes|no", default_value = "yes", value_parser = parse_yes_no, action = clap::ArgAction::Set)]
    classic_accept: bool,

    /// At most this many inbound connections at once; more are closed at once, before any
    /// handshake.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_sessions, global = true)]
    max_sessions: usize,

    /// At most this many inbound connections at once from one IP address.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_sessions_per_ip, global = true)]
    max_sessions_per_ip: usize,

    /// Bytes queued for all peers together (K, M, G suffixes: 64M); past it, the peers with
    /// the biggest queues are disconnected as too slow.
    #[arg(long, value_name = "BYTES", default_value = "64M", value_parser = parse_bytes, global = true)]
    max_write_buffers: usize,

    /// Chats per second a peer may send (bursts of five times as many); past it, that peer
    /// is read more slowly.
    #[arg(long, value_name = "N", default_value_t = Limits::default().chats.per_second, global = true)]
    chat_rate: f64,

    /// Accept fault commands at the menu prompt (`!crash registry`, `!panic listener`,
    /// `!reset IP:PORT`, ...; `!help` lists them), to watch supervision heal the node.
    #[arg(long)]
    faults: bool,

    /// Print every message passing between actors, one line each, to stderr (or
    /// --trace-file). Optionally only those from or to some actors: node, console,
    /// registry, listener, session, supervisor, discovery (comma-separated), or all.
    #[arg(long, value_name = "ACTORS", num_args = 0..=1, default_missing_value = "all", value_parser = parse_trace_roles, global = true)]
    trace: Option<TraceRoles>,

    /// Write the trace to this file instead of stderr.
    #[arg(long, value_name = "FILE", global = true)]
    trace_file: Option<PathBuf>,

    /// More log output on stderr (-v: info, -vv: debug). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Send one message and exit: 0 once the peer acknowledged it, 1 if it was not
    /// delivered, 2 for a usage error. With `-` for the text, every line of standard input
    /// is a message: 0 once all are acknowledged.
    Send {
        /// Name shown to the peer (default: $USER).
        #[arg(short, long)]
        name: Option<String>,
        /// Port the sending node binds while it runs (default: any free one). Peers are
        /// told it does not listen: nobody dials it back or passes it on.
        #[arg(short, long)]
        port: Option<u16>,
        /// The peer to send to.
        #[arg(value_name = "IP:PORT")]
        to: PeerAddr,
        /// The text; several words are joined with spaces. `-`: one message per line of
        /// standard input, in order.
        #[arg(value_name = "TEXT", required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
        text: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    fn look(self) -> Look {
        // NO_COLOR (no-color.org): set and not empty means no colour, unless asked for.
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let colour = match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => !no_color && io::stdout().is_terminal(),
        };
        if colour {
            Look::coloured()
        } else {
            Look::plain()
        }
    }
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    init_logging(cli.verbose);
    // A panic in an actor is caught and becomes a supervised restart: one log line, not a
    // backtrace across the chat.
    std::panic::set_hook(Box::new(|info| tracing::error!("{info}")));
    if let Err(why) = init_trace(&cli) {
        return fail(&why);
    }
    let system = actix_rt::System::new();
    // The input threads may still be blocked reading; the process ends anyway.
    let code = match cli.command.take() {
        Some(Command::Send {
            to,
            text,
            name,
            port,
        }) => {
            // Given after `send` or before it, alike.
            cli.name = name.or(cli.name);
            cli.port = port.or(cli.port);
            system.block_on(send(cli, to, text.join(" ")))
        }
        None => system.block_on(chat(cli)),
    };
    // The trace is written by a thread of its own: let it finish the last lines.
    trace::flush(TRACE_FLUSH_LIMIT);
    code
}

/// How long an exiting process waits for the trace writer.
const TRACE_FLUSH_LIMIT: Duration = Duration::from_secs(2);

/// The actors `--trace` follows (one value, so that clap keeps the list whole).
#[derive(Debug, Clone)]
struct TraceRoles(Vec<Role>);

fn parse_trace_roles(text: &str) -> Result<TraceRoles, String> {
    trace::parse_roles(text).map(TraceRoles)
}

/// `--trace`: every message between actors, to stderr or `--trace-file`.
fn init_trace(cli: &Cli) -> Result<(), String> {
    let Some(TraceRoles(roles)) = &cli.trace else {
        if cli.trace_file.is_some() {
            return Err("--trace-file needs --trace".into());
        }
        return Ok(());
    };
    let out: Box<dyn Write + Send> = match &cli.trace_file {
        Some(path) => Box::new(io::LineWriter::new(std::fs::File::create(path).map_err(
            |err| format!("cannot write the trace to {}: {err}", path.display()),
        )?)),
        None => Box::new(io::stderr()),
    };
    trace::enable(roles, out);
    Ok(())
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .init();
}

/// What the chat reads and writes: plain lines on pipes, the line editor on a terminal.
struct Io {
    screen: Box<dyn Screen>,
    input: mpsc::UnboundedReceiver<InputLine>,
    /// Ctrl-C typed at the editor's prompt (and, once the Console runs, SIGINT).
    interrupts: mpsc::UnboundedReceiver<()>,
    interrupt_tx: mpsc::UnboundedSender<()>,
}

impl Io {
    /// The line editor when stdin and stdout are both a terminal (it draws on stdout what
    /// stdin types) and it can run there; plain lines otherwise.
    fn open(history: Option<PathBuf>) -> (Io, Option<terminal::TerminalGuard>) {
        let (interrupt_tx, interrupts) = mpsc::unbounded();
        if io::stdin().is_terminal() && io::stdout().is_terminal() {
            match terminal::start(history, interrupt_tx.clone()) {
                Ok(term) => {
                    let io = Io {
                        screen: Box::new(term.screen),
                        input: term.lines,
                        interrupts,
                        interrupt_tx,
                    };
                    return (io, Some(term.guard));
                }
                Err(why) => tracing::info!("no line editor ({why}); reading plain lines"),
            }
        }
        // Written by a thread: a stdout nobody reads must not stop the node. What can be
        // written without waiting is written at once, in the Console's turn.
        let screen = match PlainScreen::on_thread_or_now(unbuffered_stdout(), stdout_now()) {
            Ok(screen) => screen,
            Err(err) => {
                tracing::warn!("no thread for stdout ({err}); writing it from the node's");
                PlainScreen::new(unbuffered_stdout())
            }
        };
        let io = Io {
            screen: Box::new(screen),
            input: stdin_lines(),
            interrupts,
            interrupt_tx,
        };
        (io, None)
    }
}

/// Standard output without std's line buffer: the plain screen assembles each batch of lines
/// (and the prompt after them) itself, to write it with one `write`; through a LineWriter the
/// prompt after the last line end would be a second one.
fn unbuffered_stdout() -> Box<dyn Write + Send> {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        if let Ok(fd) = io::stdout().as_fd().try_clone_to_owned() {
            return Box::new(std::fs::File::from(fd));
        }
    }
    Box::new(io::stdout())
}

/// Standard output for writes that never wait, if it has such a form: a regular file as it
/// is (no reader to wait for), a pipe opened again non-blocking (Linux's /proc/self/fd: its
/// own file description, so the O_NONBLOCK is not shared with whoever else holds the pipe).
/// Anything else (a terminal, a socket) is left to the stdout thread alone.
fn stdout_now() -> Option<Box<dyn Write>> {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
        let file = std::fs::File::from(io::stdout().as_fd().try_clone_to_owned().ok()?);
        let kind = file.metadata().ok()?.file_type();
        if kind.is_file() {
            return Some(Box::new(file));
        }
        if kind.is_fifo() {
            let pipe = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(nix::libc::O_NONBLOCK)
                .open("/proc/self/fd/1")
                .ok()?;
            return Some(Box::new(pipe));
        }
    }
    None
}

async fn chat(cli: Cli) -> ExitCode {
    let (io, terminal) = Io::open(cli.history.clone());
    let restore = terminal.as_ref().map(|t| t.restorer());
    let code = run_chat(cli, io, restore).await;
    if let Some(terminal) = &terminal {
        terminal.finish();
    }
    code
}

async fn run_chat(cli: Cli, mut io: Io, restore: Option<impl Fn() + 'static>) -> ExitCode {
    let (name, port) = match ask_name_and_port(&cli, &mut io).await {
        Ok(answers) => answers,
        Err(code) => return code,
    };
    let data_dir = match data_dir(&cli, &name) {
        Ok(dir) => dir,
        Err(why) => return fail(&why),
    };
    let node = match start_node(&cli, &mut io, name, port, data_dir).await {
        Ok(node) => node,
        Err(code) => return code,
    };
    for warning in node.warnings() {
        let _ = writeln!(io::stderr(), "warning: {}", visible(warning));
    }
    let Io {
        screen,
        input,
        interrupts,
        interrupt_tx,
    } = io;
    let (quit_tx, quit_rx) = oneshot::channel();
    let console = start_console(&cli, &node, screen, input, quit_tx);
    connect_at_start(&node, &console, cli.peers);
    // Restoring the terminal is needed both on a second Ctrl-C and on a node failure.
    let restore: Option<Rc<dyn Fn()>> = restore.map(|restore| Rc::new(restore) as Rc<dyn Fn()>);
    forward_sigint(interrupt_tx);
    quit_on_interrupts(&console, interrupts, restore.clone());
    quit_on_sigterm(&console);
    wait_for_the_end(&node, quit_rx, restore).await
}

/// Starts the node. A port in use asks for another when a person is at the keyboard
/// (stdin is a terminal); for a script it stays an error (exit 2).
async fn start_node(
    cli: &Cli,
    io: &mut Io,
    name: String,
    mut port: u16,
    data_dir: Option<PathBuf>,
) -> Result<Node, ExitCode> {
    loop {
        let mut config = node_config(cli, name.clone(), port);
        config.data_dir = data_dir.clone();
        match Node::start(config).await {
            Ok(node) => return Ok(node),
            Err(StartError::Bind { source, .. })
                if source.kind() == io::ErrorKind::AddrInUse && io::stdin().is_terminal() =>
            {
                io.screen.print(&format!(
                    "Port {port} is already in use (another program, or another peerchat, \
                     listens there)."
                ));
                port = ask(
                    io,
                    "Another port to listen on (0 = any free port): ",
                    check_port,
                )
                .await
                .map_err(|why| unanswered(why, "a free port was given (use --port)"))?;
            }
            Err(StartError::Bind { addr, source }) => {
                return Err(fail(&cannot_listen(addr, &source)))
            }
            Err(err) => return Err(fail(&err.to_string())),
        }
    }
}

/// The name and port from the command line, or else asked on standard input.
async fn ask_name_and_port(cli: &Cli, io: &mut Io) -> Result<(String, u16), ExitCode> {
    let name = match cli.name.as_deref() {
        Some(name) => check_name(name).map_err(|why| fail(&why))?,
        None => ask(io, "Your name: ", check_name)
            .await
            .map_err(|why| unanswered(why, "a name was given (use --name)"))?,
    };
    let port = match cli.port {
        Some(port) => port,
        None => ask(io, "Port to listen on (0 = any free port): ", check_port)
            .await
            .map_err(|why| unanswered(why, "a port was given (use --port)"))?,
    };
    Ok((name, port))
}

/// Prints where the node listens and starts its Console, supervised like the Registry and
/// the Listener: a failure restarts it with the same mailbox.
fn start_console(
    cli: &Cli,
    node: &Node,
    mut screen: Box<dyn Screen>,
    input: mpsc::UnboundedReceiver<InputLine>,
    on_quit: oneshot::Sender<QuitReport>,
) -> Addr<Console> {
    let look = cli.color.look();
    // Where peers can reach us, never 0.0.0.0: each interface's address with the port.
    let reachable = reachable_addrs(node.listen_addr());
    screen.print(&format!(
        "{} listening on {} (key {})",
        look.name(&visible(node.name())),
        look.addr(joined_addrs(&reachable)),
        node.fingerprint()
    ));
    if node.discovers() {
        screen.print(
            "Announced on the LAN; peers found nearby show in menu 2 (--no-discovery: off).",
        );
    }
    let console =
        Console::new(node.clone(), Box::pin(input), screen, look, on_quit).with_faults(cli.faults);
    Supervisor::start(move |_| console)
}

/// `--peer`: dial each one; a failure is a line on the Console, not the end.
fn connect_at_start(node: &Node, console: &Addr<Console>, peers: Vec<PeerAddr>) {
    for peer in peers {
        let node = node.clone();
        let console = console.clone();
        actix_rt::spawn(async move {
            if let Err(err) = node.connect(peer).await {
                console.do_send(Notice(format!(
                    "Cannot connect to {peer}: {}",
                    visible(&plain_reason(&err.to_string()))
                )));
            }
        });
    }
}

/// SIGINT joins Ctrl-C typed at the editor's prompt.
fn forward_sigint(interrupt_tx: mpsc::UnboundedSender<()>) {
    actix_rt::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            if interrupt_tx.unbounded_send(()).is_err() {
                break;
            }
        }
    });
}

/// The first Ctrl-C quits like menu 0; a second one does not wait for the goodbyes.
fn quit_on_interrupts(
    console: &Addr<Console>,
    mut interrupts: mpsc::UnboundedReceiver<()>,
    restore: Option<Rc<dyn Fn()>>,
) {
    let console = console.clone();
    actix_rt::spawn(async move {
        if interrupts.next().await.is_some() {
            console.do_send(Quit {
                why: "interrupted".into(),
            });
            if interrupts.next().await.is_some() {
                if let Some(restore) = restore {
                    restore();
                }
                trace::flush(TRACE_FLUSH_LIMIT);
                std::process::exit(130);
            }
        }
    });
}

/// SIGTERM quits like menu 0.
fn quit_on_sigterm(console: &Addr<Console>) {
    #[cfg(unix)]
    {
        let console = console.clone();
        actix_rt::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            if let Ok(mut term) = signal(SignalKind::terminate()) {
                if term.recv().await.is_some() {
                    console.do_send(Quit {
                        why: "terminated".into(),
                    });
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = console;
}

/// The end: the user quits (exit 0), or the node gives up, its restart budget spent (exit 3).
async fn wait_for_the_end(
    node: &Node,
    quit: oneshot::Receiver<QuitReport>,
    restore: Option<Rc<dyn Fn()>>,
) -> ExitCode {
    let failed = {
        let node = node.clone();
        async move { node.failed().await }
    };
    match select(quit, Box::pin(failed)).await {
        Either::Left(_) => ExitCode::SUCCESS,
        Either::Right((failure, _)) => {
            // The Registry was retired and said bye to every peer; let those byes leave
            // before the process does (bounded: the node is failing).
            let goodbyes = node.shutdown(Duration::ZERO);
            let _ = actix_rt::time::timeout(Duration::from_secs(2), goodbyes).await;
            if let Some(restore) = restore {
                restore();
            }
            let _ = writeln!(
                io::stderr(),
                "error: node failed: {}",
                visible(&failure.reason)
            );
            ExitCode::from(3)
        }
    }
}

/// Why a start-up question got no answer.
enum Unanswered {
    Ended,
    Interrupted,
}

/// The exit for a start-up question left unanswered: 130 for Ctrl-C, a usage error for the
/// end of input before `what`.
fn unanswered(why: Unanswered, what: &str) -> ExitCode {
    match why {
        Unanswered::Interrupted => ExitCode::from(130),
        Unanswered::Ended => fail(&format!("standard input ended before {what}")),
    }
}

/// Asks until the answer is valid.
async fn ask<T>(
    io: &mut Io,
    question: &str,
    check: impl Fn(&str) -> Result<T, String>,
) -> Result<T, Unanswered> {
    loop {
        io.screen.prompt(question);
        let line = match select(io.input.next(), io.interrupts.next()).await {
            Either::Left((Some(InputLine(line)), _)) => line,
            Either::Left((None, _)) => return Err(Unanswered::Ended),
            Either::Right((Some(()), _)) => return Err(Unanswered::Interrupted),
            // No one can interrupt any more: wait for the line alone.
            Either::Right((None, pending)) => match pending.await {
                Some(InputLine(line)) => line,
                None => return Err(Unanswered::Ended),
            },
        };
        io.screen.answered();
        match check(&line) {
            Ok(value) => return Ok(value),
            Err(why) => io.screen.print(&why),
        }
    }
}

fn check_name(text: &str) -> Result<String, String> {
    let name = text.trim();
    if name.is_empty() {
        return Err("The name cannot be empty.".into());
    }
    // Peers refuse a longer name in a hello (docs/limits.md).
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "The name is too long ({} bytes; {MAX_NAME_BYTES} at most).",
            name.len()
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("The name cannot contain control characters.".into());
    }
    Ok(name.to_string())
}

/// A byte count with an optional K, M or G suffix (powers of 1024): `--max-write-buffers`.
fn parse_bytes(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, ""),
    };
    let shift = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches(['B', 'I'])
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => return Err(format!("{text:?}: a number of bytes, e.g. 64M")),
    };
    let number: usize = digits
        .parse()
        .map_err(|_| format!("{text:?}: a number of bytes, e.g. 64M"))?;
    number
        .checked_mul(1 << shift)
        .filter(|bytes| *bytes > 0)
        .ok_or_else(|| format!("{text:?}: out of range"))
}

/// `yes` or `no` (`--classic-accept`).
fn parse_yes_no(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "yes" | "y" => Ok(true),
        "no" | "n" => Ok(false),
        other => Err(format!("'{other}' is neither yes nor no")),
    }
}

fn check_port(text: &str) -> Result<u16, String> {
    text.trim()
        .parse::<u16>()
        .map_err(|_| format!("'{}' is not a port number (0-65535)", visible(text.trim())))
}

fn node_config(cli: &Cli, name: String, port: u16) -> NodeConfig {
    NodeConfig {
        name,
        bind: cli.bind,
        port,
        timeouts: Timeouts {
            hello: cli.hello_timeout,
            ping_interval: cli.ping_interval,
            idle: cli.idle_timeout,
            connect: cli.connect_timeout,
            ack: cli.ack_timeout,
            ..Timeouts::default()
        },
        retry: RetryPolicy {
            give_up_after: cli.give_up_after,
            max_backoff: cli.max_backoff,
            ..RetryPolicy::default()
        },
        restarts: RestartPolicy {
            max_restarts: cli.max_restarts,
            window: cli.restart_window,
        },
        discovery: !cli.no_discovery,
        limits: Limits {
            max_sessions: cli.max_sessions,
            max_sessions_per_ip: cli.max_sessions_per_ip,
            max_write_buffers: cli.max_write_buffers,
            chats: Rate {
                per_second: cli.chat_rate,
                burst: cli.chat_rate * 5.0,
            },
            ..Limits::default()
        },
        classic: ClassicConfig {
            enabled: !cli.no_classic,
            accept: cli.classic_accept,
            ..ClassicConfig::default()
        },
        ..NodeConfig::local("")
    }
}

/// The data directory: `--data-dir`, none with `--ephemeral`, else the default one for
/// `name` (`identity::default_data_dir`).
fn data_dir(cli: &Cli, name: &str) -> Result<Option<PathBuf>, String> {
    if cli.ephemeral {
        return Ok(None);
    }
    match &cli.data_dir {
        Some(dir) => Ok(Some(dir.clone())),
        None => default_data_dir(name)
            .map(Some)
            .map_err(|err| err.to_string()),
    }
}

/// `peerchat send IP:PORT TEXT`: start a node, send, wait for the ack, say bye. Exit 0 once
/// delivered, 1 if not, 2 for a usage error.
async fn send(cli: Cli, to: PeerAddr, text: String) -> ExitCode {
    if !cli.peers.is_empty() {
        return fail("--peer is not used by send");
    }
    if text.trim().is_empty() {
        return fail("the message is empty");
    }
    let name = match &cli.name {
        Some(name) => match check_name(name) {
            Ok(name) => name,
            Err(why) => return fail(&why),
        },
        // Whoever runs the script, as the peer will see it.
        None => match std::env::var("USER").ok().map(|user| check_name(&user)) {
            Some(Ok(user)) => user,
            // Said, not silent: the peer will see this name.
            _ => {
                let _ = writeln!(
                    io::stderr(),
                    "note: $USER is empty or not a usable name: sending as 'peerchat' \
                     (give a name with --name NAME)"
                );
                "peerchat".into()
            }
        },
    };
    // A key of its own, not the node's (whose directory a running node holds locked): kept
    // beside the node's as `send.key` so that a receiver sees the same sender every time,
    // or a new one each run with --ephemeral. Nothing else is kept: a one-shot send waits
    // for its acks and has no outbox to carry over.
    let key_file = match data_dir(&cli, &name) {
        Ok(dir) => dir.map(|dir| dir.join(SEND_KEY_FILE)),
        Err(why) => return fail(&why),
    };
    let mut config = node_config(&cli, name, cli.port.unwrap_or(0));
    config.key_file = key_file;
    config.one_shot = true;
    // A one-shot sender is not a peer to be found.
    config.discovery = false;
    let node = match Node::start(config).await {
        Ok(node) => node,
        Err(StartError::Bind { addr, source }) => return fail(&cannot_listen(addr, &source)),
        Err(err) => return fail(&err.to_string()),
    };
    // Subscribed before sending, so the outcome cannot pass unseen.
    let mut events = node.events();
    // The node reports a failed attempt after the connect timeout, a lost message after the
    // ack timeout; this bound is only a safety net.
    let limit = cli.connect_timeout + cli.ack_timeout + Duration::from_secs(2);
    let (code, report) = if text == "-" {
        let outcome = send_lines::send_stdin_lines(&node, &mut events, to, limit).await;
        (outcome.code, outcome.report)
    } else {
        send_one(&node, &mut events, to, text, limit).await
    };
    let _ = writeln!(io::stderr(), "{report}");
    // Nothing waits for an ack any more: this only says bye and closes the port.
    node.shutdown(Duration::from_secs(1)).await;
    ExitCode::from(code)
}

/// One message: its exit code and report.
async fn send_one(
    node: &Node,
    events: &mut peerchat_actors::EventStream,
    to: PeerAddr,
    text: String,
    limit: Duration,
) -> (u8, String) {
    match node.send_chat(to, text).await {
        Err(err) => (
            1,
            format!("error: cannot send to {to}: {}", visible(&err.to_string())),
        ),
        Ok(id) => {
            let outcome = events
                .wait_for(limit, |event| match event {
                    NodeEvent::Delivered { id: i, .. } if *i == id => Some(Ok(())),
                    NodeEvent::DeliveryFailed { id: i, reason, .. } if *i == id => {
                        Some(Err(reason.clone()))
                    }
                    // A one-shot send does not wait out the retry budget: the first
                    // failed attempt is its answer.
                    NodeEvent::DeliveryDelayed {
                        to: peer, reason, ..
                    } if *peer == to => Some(Err(reason.clone())),
                    _ => None,
                })
                .await;
            match outcome {
                Ok(Ok(())) => (0, format!("delivered to {to}")),
                Ok(Err(reason)) => (
                    1,
                    format!(
                        "error: not delivered to {to}: {}",
                        visible(&plain_reason(&reason))
                    ),
                ),
                Err(_) => (
                    1,
                    format!(
                        "error: no acknowledgement from {to} within {}s",
                        limit.as_secs()
                    ),
                ),
            }
        }
    }
}

fn fail(why: &str) -> ExitCode {
    let _ = writeln!(io::stderr(), "error: {}", plain_reason(why));
    ExitCode::from(2)
}
