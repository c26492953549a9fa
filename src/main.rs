//! peerchat: a peer-to-peer terminal chat. This file is the command line: it parses options,
//! asks for what is missing, starts a node and its Console, and turns the end into an exit code.

use std::io::{self, Write};
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use actix::prelude::*;
use clap::Parser;
use futures::channel::oneshot;
use futures::StreamExt;

use peerchat_actors::config::RetryPolicy;
use peerchat_actors::console::{stdin_lines, Console, InputLine, Notice, Quit};
use peerchat_actors::supervisor::RestartPolicy;
use peerchat_actors::{Node, NodeConfig, PeerAddr, Timeouts};

/// Peer-to-peer terminal chat: every peer runs its own TCP server and talks to others
/// directly by IP and port. Driven by a numbered menu on standard input.
#[derive(Parser, Debug)]
#[command(name = "peerchat", version, about, long_about = None)]
struct Cli {
    /// Name shown to other peers (asked on stdin if missing).
    #[arg(short, long)]
    name: Option<String>,

    /// Port to listen on; 0 picks a free one (asked on stdin if missing).
    #[arg(short, long)]
    port: Option<u16>,

    /// Interface to listen on. The default, all interfaces, lets peers on the LAN reach you.
    #[arg(short, long, default_value = "0.0.0.0")]
    bind: IpAddr,

    /// A peer to connect to at start-up (repeat for several).
    #[arg(long = "peer", value_name = "IP:PORT")]
    peers: Vec<PeerAddr>,

    /// A new connection must say hello within this.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    hello_timeout: Duration,

    /// Ping a peer after this much silence.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    ping_interval: Duration,

    /// Drop a connection after this much silence.
    #[arg(long, value_name = "DURATION", default_value = "6s", value_parser = parse_duration)]
    idle_timeout: Duration,

    /// Give up connecting to a peer after this.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = parse_duration)]
    connect_timeout: Duration,

    /// Send a message again when no ack comes within this.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    ack_timeout: Duration,

    /// Keep the outbox, the node id and the chat history in this directory, so that
    /// messages survive a restart or a crash (see docs/storage.md).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<std::path::PathBuf>,

    /// Report a message as failed once it has waited this long for its peer.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_duration)]
    give_up_after: Duration,

    /// Longest pause between two attempts to reach a peer that has messages waiting.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    max_backoff: Duration,

    /// More than this many actor restarts within --restart-window and the node gives up.
    #[arg(long, value_name = "N", default_value_t = 10)]
    max_restarts: usize,

    /// The window of --max-restarts.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    restart_window: Duration,

    /// More log output on stderr (-v: info, -vv: debug). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

/// "500ms", "5s", "2m", or a plain number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration like 500ms, 5s or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("'{text}': unknown unit '{unit}' (use ms, s or m)")),
    };
    if !(seconds.is_finite() && seconds > 0.0 && seconds < 86400.0) {
        return Err(format!("'{text}' must be more than 0 and less than a day"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let system = actix_rt::System::new();
    let code = system.block_on(run(cli));
    // The stdin thread may still be blocked reading; the process ends anyway.
    code
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
        .init();
}

async fn run(cli: Cli) -> ExitCode {
    let mut input = stdin_lines();
    let name = match cli.name.clone() {
        Some(name) => match check_name(&name) {
            Ok(name) => name,
            Err(why) => return fail(&why),
        },
        None => match ask(&mut input, "Your name: ", check_name).await {
            Some(name) => name,
            None => return fail("standard input ended before a name was given (use --name)"),
        },
    };
    let port = match cli.port {
        Some(port) => port,
        None => match ask(&mut input, "Port to listen on (0 = any free port): ", |t| {
            t.trim()
                .parse::<u16>()
                .map_err(|_| format!("'{}' is not a port number (0-65535)", t.trim()))
        })
        .await
        {
            Some(port) => port,
            None => return fail("standard input ended before a port was given (use --port)"),
        },
    };
    let config = NodeConfig {
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
        data_dir: cli.data_dir.clone(),
        ..NodeConfig::local("")
    };
    let node = match Node::start(config).await {
        Ok(node) => node,
        Err(err) => return fail(&err.to_string()),
    };
    for warning in node.warnings() {
        let _ = writeln!(io::stderr(), "warning: {warning}");
    }
    say(&format!(
        "{} listening on {} (node id {:016x})",
        node.name(),
        node.listen_addr(),
        node.node_id()
    ));

    let (quit_tx, quit_rx) = oneshot::channel();
    let console = Console::new(
        node.clone(),
        Box::pin(input),
        Box::new(io::LineWriter::new(io::stdout())),
        quit_tx,
    )
    .start();

    for peer in cli.peers {
        let node = node.clone();
        let console = console.clone();
        actix_rt::spawn(async move {
            if let Err(err) = node.connect(peer).await {
                console.do_send(Notice(format!("Cannot connect to {peer}: {err}")));
            }
        });
    }

    let signals = console.clone();
    actix_rt::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            signals.do_send(Quit {
                why: "interrupted".into(),
            });
            // A second Ctrl-C does not wait for the goodbyes.
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    #[cfg(unix)]
    {
        let terminate = console.clone();
        actix_rt::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            if let Ok(mut term) = signal(SignalKind::terminate()) {
                if term.recv().await.is_some() {
                    terminate.do_send(Quit {
                        why: "terminated".into(),
                    });
                }
            }
        });
    }

    let _ = quit_rx.await;
    ExitCode::SUCCESS
}

/// Asks until the answer is valid; `None` at end of input.
async fn ask<T>(
    input: &mut futures::channel::mpsc::UnboundedReceiver<InputLine>,
    question: &str,
    check: impl Fn(&str) -> Result<T, String>,
) -> Option<T> {
    loop {
        print_flush(question);
        let InputLine(line) = input.next().await?;
        match check(&line) {
            Ok(value) => return Some(value),
            Err(why) => say(&why),
        }
    }
}

fn check_name(text: &str) -> Result<String, String> {
    let name = text.trim();
    if name.is_empty() {
        return Err("The name cannot be empty.".into());
    }
    if name.chars().count() > 64 {
        return Err("The name is too long (64 characters at most).".into());
    }
    if name.chars().any(char::is_control) {
        return Err("The name cannot contain control characters.".into());
    }
    Ok(name.to_string())
}

fn say(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn print_flush(text: &str) {
    let mut out = io::stdout().lock();
    let _ = write!(out, "{text}");
    let _ = out.flush();
}

fn fail(why: &str) -> ExitCode {
    let _ = writeln!(io::stderr(), "error: {why}");
    ExitCode::from(2)
}
