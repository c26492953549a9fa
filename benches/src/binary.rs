//! The product, not the library (issue 17): the receiving peer is the release `peerchat`
//! binary, whose Console prints every chat, driven over TCP by a load generator in this
//! process; the baseline is `serve-printer` (printer.rs), which prints the same line per chat
//! and acks it. The receiver's stdout goes to a file, or to a pipe this process drains; either
//! way every line is read back and counted: every chat must be acked once and shown once.
//!
//! - stream: window 1 (request-response: ack p50/p99) and windows 256 and 1024 (msgs/s, ack
//!   p99), the generator refilling its whole free window with one write;
//! - peers: thousands of sessions, each a few chats per second (ack p50/p99/p999, time to
//!   open them all, RSS per session);
//! - the generator against `serve-acker` (only acks), to show it is not the bottleneck.

mod printer;
mod proto;

pub use printer::serve as serve_printer;

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use proto::{chat_number, ChatTemplate, Conn, Incoming, FIRST_ID};

use crate::baseline::Identity;
use crate::report::{median, percentile, Figure, Row, Target};
use crate::scenarios::{peerchat_binary, Settings};
use crate::serve::local_runtime;
use crate::sys::{fail, process_cpu, thread_cpu, Res};

/// No progress for this long fails a run.
const STALL: Duration = Duration::from_secs(30);

/// Which process receives.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Receiver {
    Peerchat,
    Printer,
    Acker,
}

/// Where the receiver's stdout goes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Sink {
    File,
    Pipe,
}

impl Sink {
    fn name(self) -> &'static str {
        match self {
            Sink::File => "file",
            Sink::Pipe => "pipe",
        }
    }
}

/// Runs the binary scenarios `which` ("binary", "peers"); the rows, notes and the number of
/// measurements that failed.
pub fn run(s: &Settings, which: &[&str]) -> (Vec<Row>, Vec<String>, usize) {
    let mut out = Output::default();
    let bin = match peerchat_binary(s.peerchat_bin.as_deref()) {
        Ok(bin) => bin,
        Err(err) => {
            eprintln!("error: binary scenarios: {err}");
            return (Vec::new(), Vec::new(), 1);
        }
    };
    if which.contains(&"binary") {
        stream_rows(s, &bin, &mut out);
    }
    if which.contains(&"peers") {
        peers_rows(s, &bin, &mut out);
    }
    (out.rows, out.notes, out.errors)
}

#[derive(Default)]
struct Output {
    rows: Vec<Row>,
    notes: Vec<String>,
    errors: usize,
}

impl Output {
    fn figure(
        &mut self,
        what: &str,
        figure: Res<f64>,
        unit: fn(f64) -> Figure,
    ) -> Result<Figure, String> {
        figure.map(unit).map_err(|err| {
            if err.is::<crate::Skipped>() {
                return "skipped".to_string();
            }
            self.errors += 1;
            eprintln!("error: {what}: {err}");
            "error".to_string()
        })
    }

    fn row(
        &mut self,
        name: String,
        ours: Res<f64>,
        base: Res<f64>,
        unit: fn(f64) -> Figure,
        target: Target,
    ) {
        let ours = self.figure(&format!("{name} (peerchat)"), ours, unit);
        let base = self.figure(&format!("{name} (baseline)"), base, unit);
        self.rows.push(Row::new(name, ours, base, target));
    }
}

fn per_second(v: f64) -> Figure {
    Figure::PerSecond(v, "msg")
}

// ---- the receiving process ----

/// A receiver process, its port, and the thread reading back its output.
struct Running {
    child: Child,
    port: u16,
    shown: Arc<Shown>,
    stop: Arc<AtomicBool>,
    file: Option<PathBuf>,
}

/// What the receiver printed, as read back: chat lines (by their number), repeats, the port.
#[derive(Default)]
struct Shown {
    lines: AtomicU64,
    repeats: AtomicU64,
}

impl Running {
    fn start(who: Receiver, sink: Sink, bin: &Path) -> Res<Running> {
        let mut command = match who {
            Receiver::Peerchat => {
                let mut c = Command::new(bin);
                // --ephemeral: nothing kept on disk (no data directory of the user's touched).
                c.args(["--name", "recv", "--port", "0", "--bind", "127.0.0.1"])
                    .args(["--color", "never", "--ephemeral"])
                    // Every load comes from this host, and the stream is one peer as fast as
                    // it can: the limits against floods (docs/limits.md) are lifted.
                    .args([
                        "--max-sessions",
                        "1000000",
                        "--max-sessions-per-ip",
                        "1000000",
                    ])
                    .args(["--chat-rate", "1000000000000"])
                    // The many-peers scenario opens thousands of sessions before any of them
                    // sends (and so before any answers a ping): under load that takes longer
                    // than the default 6 s of silence after which the binary drops a session,
                    // which ended some runs with "the receiver closed a session". The printer
                    // drops no silent session at all.
                    .args(["--idle-timeout", "60s"]);
                c
            }
            Receiver::Printer | Receiver::Acker => {
                let mut c = Command::new(std::env::current_exe()?);
                c.arg(if who == Receiver::Printer {
                    "serve-printer"
                } else {
                    "serve-acker"
                });
                c
            }
        };
        static RUN: AtomicU64 = AtomicU64::new(0);
        let file = match sink {
            Sink::File => Some(std::env::temp_dir().join(format!(
                "peerchat-bench-{}-{}.out",
                std::process::id(),
                RUN.fetch_add(1, Ordering::Relaxed)
            ))),
            Sink::Pipe => None,
        };
        let stdout = match &file {
            Some(path) => Stdio::from(File::create(path)?),
            None => Stdio::piped(),
        };
        // stdin stays open: its end would make peerchat quit.
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {who:?}: {e}"))?;
        let source: Box<dyn Read + Send> = match (&file, child.stdout.take()) {
            (Some(path), _) => Box::new(File::open(path)?),
            (None, Some(pipe)) => Box::new(pipe),
            (None, None) => return fail("no stdout pipe"),
        };
        let shown = Arc::new(Shown::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (port_tx, port_rx) = std_mpsc::channel();
        {
            let (shown, stop) = (shown.clone(), stop.clone());
            std::thread::spawn(move || read_back(source, shown, stop, port_tx));
        }
        let port = match port_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return fail(format!("{who:?} did not say where it listens"));
            }
        };
        Ok(Running {
            child,
            port,
            shown,
            stop,
            file,
        })
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), self.port)
    }

    /// The receiver's resident set, read from outside.
    fn rss_kib(&self) -> Res<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| "no VmRSS".into())
    }

    /// CPU time the receiver used so far.
    fn cpu(&self) -> Duration {
        process_cpu(self.child.id()).unwrap_or_default()
    }

    /// Write-family system calls the receiver made so far (`syscw` of /proc/PID/io).
    fn writes(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/io", self.child.id()))
            .ok()
            .and_then(|io| {
                io.lines()
                    .find_map(|l| l.strip_prefix("syscw:"))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// Waits until `expected` chat lines were read back; fails if fewer come or any repeats.
    async fn expect_shown(&self, expected: u64) -> Res<()> {
        let deadline = Instant::now() + STALL;
        loop {
            let lines = self.shown.lines.load(Ordering::Relaxed);
            let repeats = self.shown.repeats.load(Ordering::Relaxed);
            if repeats > 0 {
                return fail(format!("{repeats} chat(s) shown twice"));
            }
            if lines >= expected {
                return Ok(());
            }
            if Instant::now() > deadline {
                return fail(format!("{lines} of {expected} chats shown"));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // SIGTERM first, so that a profiler wrapping the receiver (--peerchat-bin a script
        // running it under strace or perf) can write its report; SIGKILL if it lingers.
        // SAFETY: kill(2) on our own child's pid, which has not been waited for yet.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stop.store(true, Ordering::Relaxed);
        if let Some(file) = &self.file {
            let _ = std::fs::remove_file(file);
        }
    }
}

/// Reads the receiver's output (a pipe, or a file being written: at its end, waits and reads
/// on) and counts the chat lines by number; the first "listening on" line gives the port.
fn read_back(
    source: Box<dyn Read + Send>,
    shown: Arc<Shown>,
    stop: Arc<AtomicBool>,
    port: std_mpsc::Sender<u16>,
) {
    let mut reader = BufReader::with_capacity(256 * 1024, source);
    let mut seen: Vec<bool> = Vec::new();
    let mut line = String::new();
    let mut port = Some(port);
    while !stop.load(Ordering::Relaxed) {
        match reader.read_line(&mut line) {
            Ok(0) => std::thread::sleep(Duration::from_millis(1)),
            Ok(_) if !line.ends_with('\n') => continue, // a file's last line, still being written
            Ok(_) => {
                if let Some(n) = chat_number(&line) {
                    let n = n as usize;
                    if n >= seen.len() {
                        seen.resize((n + 1).max(seen.len() * 2), false);
                    }
                    if seen[n] {
                        shown.repeats.fetch_add(1, Ordering::Relaxed);
                    } else {
                        seen[n] = true;
                        shown.lines.fetch_add(1, Ordering::Relaxed);
                    }
                } else if port.is_some() {
                    let found = line
                        .split_once("listening on ")
                        .and_then(|(_, rest)| rest.split_whitespace().next())
                        .and_then(|addr| addr.parse::<SocketAddr>().ok());
                    if let (Some(addr), Some(tx)) = (found, port.take()) {
                        let _ = tx.send(addr.port());
                    }
                }
                line.clear();
            }
            Err(_) => return,
        }
    }
}

// ---- the stream: one connection, a window of chats in flight ----

/// One stream run: the rate, the ack latencies (µs) and the chats counted.
struct Stream {
    per_second: f64,
    micros: Vec<f64>,
    /// The receiver's write-family system calls per chat (stdout and socket).
    writes_per_chat: f64,
    /// CPU time per chat (µs) of the load generator (this thread: encoding, sealing,
    /// opening the acks) and of the receiving process, over the run.
    generator_cpu_us: f64,
    receiver_cpu_us: f64,
}

/// `chats` chats with `window` in flight, from a generator that refills the free window with
/// one write, to a fresh receiver.
fn stream(
    who: Receiver,
    sink: Sink,
    bin: &Path,
    chats: u64,
    window: u64,
    text_bytes: usize,
) -> Res<Stream> {
    let bin = bin.to_path_buf();
    local_runtime(async move {
        let receiver = Running::start(who, sink, &bin)?;
        let me = Identity::new("gen", 9)?;
        let mut conn = Conn::dial(receiver.addr(), &me).await?;
        let writes_before = receiver.writes();
        let receiver_cpu_before = receiver.cpu();
        let generator_cpu_before = thread_cpu();
        let template = ChatTemplate::new(text_bytes)?;
        let mut sent_at = vec![Instant::now(); chats as usize];
        let mut acked = vec![false; chats as usize];
        let mut micros = Vec::with_capacity(chats as usize);
        let (mut next, mut in_flight, mut done, mut repeats) = (0u64, 0u64, 0u64, 0u64);
        let mut pongs = Vec::new();
        let start = Instant::now();
        while done < chats {
            let now = Instant::now();
            while in_flight < window && next < chats {
                template.put(next, &mut conn.out);
                sent_at[next as usize] = now;
                next += 1;
                in_flight += 1;
            }
            for nonce in pongs.drain(..) {
                conn.queue_pong(nonce);
            }
            if !conn.out.is_empty() {
                conn.write().await?;
            }
            let mut acks: Vec<u64> = Vec::new();
            let read = conn.read_frames(|frame| match frame {
                Incoming::Ack(id) => acks.push(id),
                Incoming::Ping(nonce) => pongs.push(nonce),
                _ => {}
            });
            match tokio::time::timeout(STALL, read).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => return fail(format!("closed after {done} acks")),
                Ok(Err(err)) => return Err(err),
                Err(_) => return fail(format!("no ack for {STALL:?} after {done} acks")),
            }
            let now = Instant::now();
            for id in acks {
                let n = id.wrapping_sub(FIRST_ID) as usize;
                match acked.get_mut(n) {
                    Some(seen) if !*seen => {
                        *seen = true;
                        done += 1;
                        in_flight -= 1;
                        micros.push((now - sent_at[n]).as_secs_f64() * 1e6);
                    }
                    _ => repeats += 1,
                }
            }
        }
        let elapsed = start.elapsed().as_secs_f64();
        let generator_cpu = thread_cpu().saturating_sub(generator_cpu_before);
        let receiver_cpu = receiver.cpu().saturating_sub(receiver_cpu_before);
        if repeats > 0 {
            return fail(format!("{repeats} acks repeated or for no chat of ours"));
        }
        if who != Receiver::Acker {
            receiver.expect_shown(chats).await?;
        }
        Ok(Stream {
            per_second: chats as f64 / elapsed,
            micros,
            writes_per_chat: receiver.writes().saturating_sub(writes_before) as f64 / chats as f64,
            generator_cpu_us: generator_cpu.as_secs_f64() * 1e6 / chats as f64,
            receiver_cpu_us: receiver_cpu.as_secs_f64() * 1e6 / chats as f64,
        })
    })?
}

fn stream_rows(s: &Settings, bin: &Path, out: &mut Output) {
    let trials = if s.quick { 1 } else { 3 };
    let (rr_chats, stream_chats) = if s.quick {
        (2_000u64, 20_000u64)
    } else {
        (20_000, 200_000)
    };
    let text = s.text_bytes.max(proto::DIGITS + 1);
    // Quick mode (CI: that every path runs and every count checks out, not how fast) keeps
    // one stream per sink and window 1; full mode adds window 256 to a file and to a pipe.
    let cases: Vec<(u64, Sink)> = if s.quick {
        vec![(1, Sink::File), (1024, Sink::File), (1024, Sink::Pipe)]
    } else {
        vec![
            (1, Sink::File),
            (256, Sink::File),
            (1024, Sink::File),
            (256, Sink::Pipe),
            (1024, Sink::Pipe),
        ]
    };
    for (window, sink) in cases {
        crate::progress(&format!(
            "binary stream, window {window}, stdout to a {}",
            sink.name()
        ));
        let chats = if window == 1 { rr_chats } else { stream_chats };
        let (mut ours, mut base): (Res<Vec<Stream>>, Res<Vec<Stream>>) = (Ok(vec![]), Ok(vec![]));
        // Interleaved, each on a fresh process.
        for _ in 0..trials {
            let run = |who| stream(who, sink, bin, chats, window, text);
            push(
                &mut ours,
                crate::side(s.run_peerchat, || run(Receiver::Peerchat)),
            );
            push(
                &mut base,
                crate::side(s.run_baseline, || run(Receiver::Printer)),
            );
        }
        for (who, runs) in [("peerchat", &ours), ("baseline", &base)] {
            if let Ok(runs) = runs {
                let all: Vec<String> = runs
                    .iter()
                    .map(|r| {
                        let mut m = r.micros.clone();
                        format!(
                            "{:.0} msg/s (p50 {:.0} µs, p99 {:.0} µs, {:.2} writes/chat, CPU \
                             per chat: receiver {:.2} µs, generator {:.2} µs)",
                            r.per_second,
                            median(&mut m),
                            percentile(&mut m, 99.0),
                            r.writes_per_chat,
                            r.receiver_cpu_us,
                            r.generator_cpu_us
                        )
                    })
                    .collect();
                out.notes.push(format!(
                    "binary stream, window {window}, {} chats to a {}, {who}: {}",
                    chats,
                    sink.name(),
                    all.join(" · ")
                ));
            }
        }
        let rate = |r: &Res<Vec<Stream>>| -> Res<f64> {
            let runs = r.as_ref().map_err(|e| e.to_string())?;
            Ok(median(
                &mut runs.iter().map(|r| r.per_second).collect::<Vec<_>>(),
            ))
        };
        let latency = |r: &Res<Vec<Stream>>, p: f64| -> Res<f64> {
            let runs = r.as_ref().map_err(|e| e.to_string())?;
            Ok(median(
                &mut runs
                    .iter()
                    .map(|r| percentile(&mut r.micros.clone(), p))
                    .collect::<Vec<_>>(),
            ))
        };
        let skipped = |r: &Res<Vec<Stream>>, f: Res<f64>| -> Res<f64> {
            match r {
                Err(err) if err.is::<crate::Skipped>() => Err(Box::new(crate::Skipped)),
                _ => f,
            }
        };
        let name = format!("binary: window {window}, stdout to a {}", sink.name());
        if window == 1 {
            for (p, label) in [(50.0, "p50"), (99.0, "p99")] {
                out.row(
                    format!("{name}: ack {label}"),
                    skipped(&ours, latency(&ours, p)),
                    skipped(&base, latency(&base, p)),
                    Figure::Micros,
                    Target::None,
                );
            }
        } else {
            out.row(
                name.clone(),
                skipped(&ours, rate(&ours)),
                skipped(&base, rate(&base)),
                per_second,
                Target::RatioAtLeast(0.5),
            );
            out.row(
                format!("{name}: ack p99"),
                skipped(&ours, latency(&ours, 99.0)),
                skipped(&base, latency(&base, 99.0)),
                Figure::Micros,
                Target::RatioAtMost(2.0),
            );
        }
    }
    // The generator's own speed: against a receiver that only acks.
    crate::progress("binary stream, window 1024, to a receiver that only acks");
    match stream(Receiver::Acker, Sink::File, bin, stream_chats, 1024, text) {
        Ok(r) => out.notes.push(format!(
            "load generator, window 1024, against a receiver that only acks (opens, decodes, \
             no printing): {:.0} msg/s — the ceiling of what the generator can show; CPU per \
             chat: generator {:.2} µs (busy {:.0}% of the run), acker {:.2} µs",
            r.per_second,
            r.generator_cpu_us,
            r.generator_cpu_us * r.per_second / 1e4,
            r.receiver_cpu_us
        )),
        Err(err) => out
            .notes
            .push(format!("load generator check failed: {err}")),
    }
}

fn push(all: &mut Res<Vec<Stream>>, one: Res<Stream>) {
    match (all.as_mut(), one) {
        (Ok(all), Ok(one)) => all.push(one),
        (Ok(_), Err(err)) => *all = Err(err),
        (Err(_), _) => {}
    }
}

// ---- many peers: thousands of sessions, a few chats per second each ----

struct Crowd {
    micros: Vec<f64>,
    open_ms: f64,
    rss_per_session_kib: f64,
    chats: u64,
}

fn crowd(
    who: Receiver,
    bin: &Path,
    peers: usize,
    rate: f64,
    seconds: f64,
    text_bytes: usize,
) -> Res<Crowd> {
    let bin = bin.to_path_buf();
    local_runtime(async move {
        let receiver = Running::start(who, Sink::File, &bin)?;
        let addr = receiver.addr();
        let rss_before = receiver.rss_kib()?;
        let started = Instant::now();
        let mut conns: Vec<Conn> = Vec::with_capacity(peers);
        // 64 handshakes at a time, as the other many-session scenarios do.
        let mut pending = futures::stream::FuturesOrdered::new();
        let mut next = 0;
        use futures::StreamExt;
        while conns.len() < peers {
            while next < peers && pending.len() < 64 {
                // A key of its own per peer.
                let me = Identity::new(format!("gen{next}"), 10_000 + next as u16)?;
                pending.push_back(async move { Conn::dial(addr, &me).await });
                next += 1;
            }
            match pending.next().await {
                Some(conn) => conns.push(conn?),
                None => break,
            }
        }
        let open_ms = started.elapsed().as_secs_f64() * 1e3;
        let template = Rc::new(ChatTemplate::new(text_bytes)?);
        let numbers = Rc::new(Cell::new(0u64));
        let micros = Rc::new(RefCell::new(Vec::new()));
        let failure: Rc<RefCell<Option<String>>> = Rc::new(RefCell::new(None));
        let period = Duration::from_secs_f64(1.0 / rate);
        let load_start = tokio::time::Instant::now();
        let stop_at = load_start + Duration::from_secs_f64(seconds);
        let mut tasks = Vec::with_capacity(peers);
        for (i, conn) in conns.into_iter().enumerate() {
            let phase = period.mul_f64(i as f64 / peers as f64);
            let (template, numbers, micros, failure) = (
                template.clone(),
                numbers.clone(),
                micros.clone(),
                failure.clone(),
            );
            tasks.push(tokio::task::spawn_local(async move {
                let result = one_peer(
                    conn,
                    load_start + phase,
                    period,
                    stop_at,
                    &template,
                    &numbers,
                    &micros,
                )
                .await;
                if let Err(err) = result {
                    failure.borrow_mut().get_or_insert(err.to_string());
                }
            }));
        }
        let mut rss_after = 0;
        let halfway = load_start + Duration::from_secs_f64(seconds * 0.75);
        tokio::time::sleep_until(halfway).await;
        if let Ok(rss) = receiver.rss_kib() {
            rss_after = rss;
        }
        for task in tasks {
            let _ = task.await;
        }
        if let Some(err) = failure.borrow().clone() {
            return fail(err);
        }
        let chats = numbers.get();
        if micros.borrow().len() as u64 != chats {
            return fail(format!("{} acks for {chats} chats", micros.borrow().len()));
        }
        receiver.expect_shown(chats).await?;
        let micros = std::mem::take(&mut *micros.borrow_mut());
        Ok(Crowd {
            micros,
            open_ms,
            rss_per_session_kib: rss_after.saturating_sub(rss_before) as f64 / peers as f64,
            chats,
        })
    })?
}

/// One generator peer: a chat every `period` from `first` until `stop_at`, each ack's latency
/// recorded; then waits for the last acks.
async fn one_peer(
    mut conn: Conn,
    first: tokio::time::Instant,
    period: Duration,
    stop_at: tokio::time::Instant,
    template: &ChatTemplate,
    numbers: &Cell<u64>,
    micros: &RefCell<Vec<f64>>,
) -> Res<()> {
    let mut tick = tokio::time::interval_at(first, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut waiting: std::collections::VecDeque<(u64, Instant)> = Default::default();
    let mut sending = true;
    let mut out = BytesMut::new();
    loop {
        if !sending && waiting.is_empty() {
            return Ok(());
        }
        let mut acks = Vec::new();
        let mut pongs = Vec::new();
        tokio::select! {
            at = tick.tick(), if sending => {
                if at >= stop_at {
                    sending = false;
                    continue;
                }
                let n = numbers.get();
                numbers.set(n + 1);
                template.put(n, &mut out);
                conn.out.extend_from_slice(&out);
                out.clear();
                waiting.push_back((FIRST_ID + n, Instant::now()));
                conn.write().await?;
            }
            read = tokio::time::timeout(STALL, conn.read_frames(|frame| match frame {
                Incoming::Ack(id) => acks.push(id),
                Incoming::Ping(nonce) => pongs.push(nonce),
                _ => {}
            })) => {
                match read {
                    Ok(Ok(true)) => {}
                    Ok(Ok(false)) => return fail("the receiver closed a session"),
                    Ok(Err(err)) => return Err(err),
                    Err(_) => return fail("no ack within the stall limit"),
                }
            }
        }
        let now = Instant::now();
        for id in acks {
            match waiting.front() {
                Some(&(expected, at)) if expected == id => {
                    waiting.pop_front();
                    micros.borrow_mut().push((now - at).as_secs_f64() * 1e6);
                }
                _ => return fail(format!("ack {id} out of order or repeated")),
            }
        }
        for nonce in pongs {
            conn.queue_pong(nonce);
        }
        if !conn.out.is_empty() {
            conn.write().await?;
        }
    }
}

fn peers_rows(s: &Settings, bin: &Path, out: &mut Output) {
    let (peers, rate, seconds) = if s.quick {
        (500, 2.0, 2.0)
    } else {
        (5_000, 1.0, 10.0)
    };
    let text = s.text_bytes.max(proto::DIGITS + 1);
    crate::progress(&format!("binary: {peers} peers × {rate} chat/s"));
    let ours = crate::side(s.run_peerchat, || {
        crowd(Receiver::Peerchat, bin, peers, rate, seconds, text)
    });
    let base = crate::side(s.run_baseline, || {
        crowd(Receiver::Printer, bin, peers, rate, seconds, text)
    });
    for (who, r) in [("peerchat", &ours), ("baseline", &base)] {
        if let Ok(r) = r {
            out.notes.push(format!(
                "binary, {peers} peers × {rate} chat/s for {seconds} s, {who}: {} chats, each \
                 acked and shown once; {} sessions opened in {:.0} ms",
                r.chats, peers, r.open_ms
            ));
        }
    }
    let pick = |r: &Res<Crowd>, f: &dyn Fn(&Crowd) -> f64| -> Res<f64> {
        match r {
            Ok(c) => Ok(f(c)),
            Err(err) if err.is::<crate::Skipped>() => Err(Box::new(crate::Skipped)),
            Err(err) => Err(err.to_string().into()),
        }
    };
    let name = format!("binary: {peers} peers × {rate} chat/s");
    for (p, label, target) in [
        (50.0, "p50", Target::None),
        (99.0, "p99", Target::RatioAtMost(1.5)),
        (99.9, "p999", Target::RatioAtMost(2.0)),
    ] {
        let f = move |c: &Crowd| percentile(&mut c.micros.clone(), p);
        out.row(
            format!("{name}: ack {label}"),
            pick(&ours, &f),
            pick(&base, &f),
            Figure::Micros,
            target,
        );
    }
    out.row(
        format!("{name}: time to open all sessions"),
        pick(&ours, &|c| c.open_ms),
        pick(&base, &|c| c.open_ms),
        Figure::Millis,
        Target::None,
    );
    out.row(
        format!("{name}: RSS per session under load"),
        pick(&ours, &|c| c.rss_per_session_kib),
        pick(&base, &|c| c.rss_per_session_kib),
        Figure::KiB,
        Target::AtMost(4.0),
    );
}
