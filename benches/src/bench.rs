//! peerchat-bench: how close peerchat's actors get to a plain-tokio program speaking the same
//! protocol, and to the raw TCP limit, scenario by scenario (issue #4).
//!
//! ```text
//! cargo run --release -p peerchat-bench              # every scenario, full counts
//! cargo run --release -p peerchat-bench -- --quick   # smaller counts, under a minute (CI)
//! ```
//!
//! Every peer is its own OS process: the measuring process re-runs this executable with a
//! hidden `serve-*` subcommand for the other side. See docs/performance.md.

/// The allocator the peerchat binary uses (src/main.rs), for every side alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod baseline;
mod binary;
mod child;
mod floor;
mod report;
mod scenarios;
mod serve;
mod supervision;
mod sys;
mod trace_cost;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use report::{median, percentile, Figure, Row, Target};
use scenarios::Settings;
use sys::Res;

const USAGE: &str = "\
usage: peerchat-bench [--quick] [--only LIST] [--peerchat-bin PATH]

  --quick              smaller counts (under a minute); what CI runs
  --only LIST          comma-separated scenarios: stream,rr,fanout,idle,churn,supervision,trace,startup,
                       binary,peers (the peerchat binary as the receiver; see binary.rs)
  --peerchat-bin PATH  the peerchat binary for the start-up scenario (default: built now)
  --text-bytes N       chat text size (default 100)
  --window N           chats in flight in the stream scenario (default 1024)
  --side SIDE          peerchat, baseline or floor: run one side only (for profiling);
                       floor (the baseline with the design's actor hops, floor.rs) runs
                       in the fan-out only
  --fanout-rounds N    rounds of the fan-out after the first (default 20 quick, 150 full);
                       two runs' difference in a profile leaves out the set-up
  --fanout-send HOW    each: a send_chat per peer, in turn (default); all: one
                       send_chat_to_each per round, as the console's /all
  --fanout-peers LIST  comma-separated peer counts of the fan-out (default 100 quick,
                       100,1000 full)";

const SCENARIOS: [&str; 10] = [
    "stream",
    "rr",
    "fanout",
    "idle",
    "churn",
    "supervision",
    "trace",
    "startup",
    "binary",
    "peers",
];

fn main() -> ExitCode {
    sys::raise_fd_limit();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let served = match args.first().map(String::as_str) {
        Some("serve-peerchat") => Some(serve::serve_peerchat(nodes_arg(&args))),
        Some("serve-baseline") => Some(serve::serve_baseline(nodes_arg(&args))),
        Some("serve-floor") => Some(floor::serve_floor(nodes_arg(&args))),
        Some("serve-raw") => Some(serve::serve_raw()),
        Some("startup-baseline") => Some(serve::startup_baseline()),
        Some("serve-printer") => Some(binary::serve_printer(true)),
        Some("serve-acker") => Some(binary::serve_printer(false)),
        _ => None,
    };
    if let Some(result) = served {
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("peerchat-bench {}: {err}", args[0]);
                ExitCode::FAILURE
            }
        };
    }
    match parse(&args) {
        Ok((settings, only)) => run(settings, &only),
        Err(err) => {
            eprintln!("{err}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn nodes_arg(args: &[String]) -> usize {
    args.windows(2)
        .find(|w| w[0] == "--nodes")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(1)
}

fn parse(args: &[String]) -> Res<(Settings, Vec<String>)> {
    let quick = args.iter().any(|a| a == "--quick");
    let mut settings = Settings::new(quick);
    let mut only: Vec<String> = SCENARIOS.iter().map(|s| s.to_string()).collect();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let mut value = || {
            rest.next()
                .cloned()
                .ok_or_else(|| format!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--quick" => {}
            "--only" => {
                only = value()?.split(',').map(|s| s.trim().to_string()).collect();
                if let Some(bad) = only.iter().find(|s| !SCENARIOS.contains(&s.as_str())) {
                    return Err(format!("unknown scenario {bad:?}").into());
                }
            }
            "--peerchat-bin" => settings.peerchat_bin = Some(PathBuf::from(value()?)),
            "--text-bytes" => settings.text_bytes = value()?.parse()?,
            "--fanout-rounds" => settings.fanout_rounds = value()?.parse::<usize>()?.max(1),
            "--fanout-send" => {
                settings.fanout_all = match value()?.as_str() {
                    "each" => false,
                    "all" => true,
                    other => {
                        return Err(format!("--fanout-send: each or all, not {other:?}").into())
                    }
                }
            }
            "--fanout-peers" => {
                settings.fanout = value()?
                    .split(',')
                    .map(|n| n.trim().parse::<usize>().map(|n| n.max(1)))
                    .collect::<Result<_, _>>()?
            }
            "--window" => settings.window = value()?.parse::<usize>()?.max(1),
            "--side" => match value()?.as_str() {
                "peerchat" => (settings.run_baseline, settings.run_floor) = (false, false),
                "baseline" => (settings.run_peerchat, settings.run_floor) = (false, false),
                "floor" => (settings.run_peerchat, settings.run_baseline) = (false, false),
                other => {
                    return Err(
                        format!("--side: {other:?} is not peerchat, baseline or floor").into(),
                    )
                }
            },
            "-h" | "--help" => return Err("peerchat-bench: benchmarks of peerchat".into()),
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    Ok((settings, only))
}

fn header(s: &Settings) {
    println!(
        "peerchat-bench, {} mode",
        if s.quick { "quick" } else { "full" }
    );
    println!(
        "machine: {} cores available, {}, {}; RLIMIT_NOFILE {}",
        sys::cores(),
        sys::cpu_model(),
        sys::kernel(),
        sys::raise_fd_limit()
    );
    println!(
        "load average (1 min) at start: {} — other work on this machine disturbs the figures",
        load_average()
    );
    println!(
        "build: {}; every peer is its own OS process; each node process runs one \
         single-threaded runtime (actix system / tokio current_thread), over 127.0.0.1",
        if cfg!(debug_assertions) {
            "DEBUG (figures meaningless: use --release)"
        } else {
            "release"
        }
    );
    println!(
        "settings: chat text {} B (chat frame {} B on the wire); stream {} msgs × {} trials \
         (interleaved), \
         window {}; raw {} frames; request-response {} round trips; fan-out {:?} peers × {} \
         rounds ({}); idle sessions {:?}; churn {} cycles over {} peers by {} workers; start-up {} runs",
        s.text_bytes,
        s.chat_frame_bytes(),
        s.stream_msgs,
        s.trials,
        s.window,
        s.raw_frames,
        s.round_trips,
        s.fanout,
        s.fanout_rounds,
        if s.fanout_all {
            "one send_chat_to_each per round"
        } else {
            "a send_chat per peer"
        },
        s.idle,
        s.churn_ops,
        s.churn_peers,
        s.churn_workers,
        s.startup_runs,
    );
    println!();
}

/// Runs the scenarios; exit code 1 if any could not be measured (targets missed are not
/// errors: they are reported in the table).
fn run(s: Settings, only: &[String]) -> ExitCode {
    progress("start");
    header(&s);
    let started = Instant::now();
    let wanted = |name: &str| only.iter().any(|o| o == name);
    let mut rows = Vec::new();
    let mut errors = 0;
    let mut measured = |what: &str, result: Res<Figure>| -> Result<Figure, String> {
        result.map_err(|err| {
            if err.is::<Skipped>() {
                return "skipped".to_string();
            }
            errors += 1;
            eprintln!("error: {what}: {err}");
            "error".to_string()
        })
    };
    let mut notes: Vec<String> = Vec::new();

    if wanted("stream") {
        progress("stream");
        // Trials interleaved (peerchat, baseline, raw, peerchat, ...), each on fresh
        // processes, so that a change in the machine's speed hits every side alike.
        let mut one = s.clone();
        one.trials = 1;
        let (mut ours, mut base, mut raw) = (Ok(Vec::new()), Ok(Vec::new()), Ok(Vec::new()));
        for _ in 0..s.trials {
            gather(
                &mut ours,
                side(s.run_peerchat, || scenarios::stream_peerchat(&one)).map(|r| r.all),
            );
            gather(
                &mut base,
                side(s.run_baseline, || scenarios::stream_baseline(&one)).map(|r| r.all),
            );
            gather(
                &mut raw,
                side(s.run_baseline, || scenarios::stream_raw(&one)).map(|r| r.all),
            );
        }
        let summary = |all: Res<Vec<f64>>| {
            all.map(|all| scenarios::StreamResult {
                per_second: report::median(&mut all.clone()),
                all,
            })
        };
        let (ours, base, raw) = (summary(ours), summary(base), summary(raw));
        for (who, r) in [("peerchat", &ours), ("baseline", &base), ("raw", &raw)] {
            if let Ok(r) = r {
                let all: Vec<String> = r.all.iter().map(|v| format!("{v:.0}")).collect();
                notes.push(format!("stream trials, {who}: [{}] msg/s", all.join(", ")));
            }
        }
        rows.push(Row::new(
            format!("stream, pipelined, acked ({} in flight)", s.window),
            measured(
                "stream (peerchat)",
                ours.map(|r| Figure::PerSecond(r.per_second, "msg")),
            ),
            measured(
                "stream (baseline)",
                base.map(|r| Figure::PerSecond(r.per_second, "msg")),
            ),
            Target::RatioAtLeast(0.5),
        ));
        let raw = measured(
            "raw limit",
            raw.map(|r| Figure::PerSecond(r.per_second, "msg")),
        );
        rows.push(Row::new(
            "  raw TCP limit (same frame size, no encoding)",
            Err("-".into()),
            raw,
            Target::None,
        ));
    }
    if wanted("rr") {
        progress("request-response");
        let ours = side(s.run_peerchat, || scenarios::request_response_peerchat(&s));
        let base = side(s.run_baseline, || scenarios::request_response_baseline(&s));
        let pick = |r: &Res<scenarios::RoundTrips>, p99: bool| -> Res<Figure> {
            match r {
                Ok(r) => Ok(Figure::Micros(if p99 { r.p99 } else { r.p50 })),
                Err(err) if err.is::<Skipped>() => Err(Box::new(Skipped)),
                Err(err) => Err(err.to_string().into()),
            }
        };
        let (o50, o99, b50, b99) = (
            pick(&ours, false),
            pick(&ours, true),
            pick(&base, false),
            pick(&base, true),
        );
        rows.push(Row::new(
            "request-response round trip p50",
            measured("rr p50 (peerchat)", o50),
            measured("rr p50 (baseline)", b50),
            Target::None,
        ));
        rows.push(Row::new(
            "request-response round trip p99",
            measured("rr p99 (peerchat)", o99),
            measured("rr p99 (baseline)", b99),
            Target::RatioAtMost(2.0),
        ));
    }
    // The idle sessions before the fan-out: the fan-out's children bind thousands of
    // listening ports, whose connections end in TIME_WAIT on those ports for a minute, and
    // ten thousand connections to one port right after ran out of local ports (connect:
    // "Cannot assign requested address") in a full run.
    if wanted("idle") {
        for &n in &s.idle {
            progress(&format!("{n} idle sessions"));
            let mut figure = |kind: &'static str| {
                scenarios::idle_sessions(kind, n).map(|r| {
                    notes.push(format!(
                        "idle {n}, {kind}: RSS {} KiB before, {} KiB after; {} descriptors open \
                         before, {} after; opening them took {:.1} s",
                        r.before_kib,
                        r.after_kib,
                        r.fds_before,
                        r.fds_after,
                        r.opening.as_secs_f64()
                    ));
                    Figure::KiB(r.per_session_kib())
                })
            };
            let ours = side(s.run_peerchat, || figure("peerchat"));
            let base = side(s.run_baseline, || figure("baseline"));
            let target = if n >= 10_000 {
                Target::AtMost(16.0)
            } else {
                Target::None
            };
            rows.push(Row::new(
                format!("{n} idle sessions: RSS per session"),
                measured(&format!("idle {n} (peerchat)"), ours),
                measured(&format!("idle {n} (baseline)"), base),
                target,
            ));
        }
    }
    if wanted("fanout") {
        for &peers in &s.fanout {
            progress(&format!("fan-out to {peers}"));
            // Trials interleaved too (peerchat, baseline, floor, peerchat, ...), on fresh processes,
            // with the rounds shared out between them: the machine's speed drifts between
            // one side's rounds and the other's.
            let trials = s.trials.clamp(1, 3);
            let mut one = s.clone();
            one.fanout_rounds = (s.fanout_rounds / trials).max(1);
            let (mut ours, mut base, mut floor) = (Ok(Vec::new()), Ok(Vec::new()), Ok(Vec::new()));
            for _ in 0..trials {
                gather(
                    &mut ours,
                    side(s.run_peerchat, || scenarios::fanout_peerchat(&one, peers))
                        .map(|m| vec![m]),
                );
                gather(
                    &mut base,
                    side(s.run_baseline, || scenarios::fanout_baseline(&one, peers))
                        .map(|m| vec![m]),
                );
                // The floor: the baseline with the hops the design requires (floor.rs).
                gather(
                    &mut floor,
                    side(s.run_floor, || scenarios::fanout_floor(&one, peers)).map(|m| vec![m]),
                );
            }
            for (who, all) in [("peerchat", &ours), ("baseline", &base), ("floor", &floor)] {
                if let Ok(all) = all {
                    let rounds: Vec<String> =
                        all.iter().map(|f| format!("{:.2}", f.round_ms)).collect();
                    let cpu = |pick: fn(&scenarios::Fanout) -> (f64, f64)| {
                        let user =
                            report::median(&mut all.iter().map(|f| pick(f).0).collect::<Vec<_>>());
                        let system =
                            report::median(&mut all.iter().map(|f| pick(f).1).collect::<Vec<_>>());
                        format!(
                            "{:.1} µs (user {user:.1}, system {system:.1})",
                            user + system
                        )
                    };
                    notes.push(format!(
                        "fan-out to {peers}, median per trial, {who}: [{}] ms; CPU per chat \
                         (medians of trials): sender {}, receiver {}",
                        rounds.join(", "),
                        cpu(|f| f.sender_cpu_us),
                        cpu(|f| f.receiver_cpu_us),
                    ));
                }
            }
            let round_ms = |all: &Res<Vec<scenarios::Fanout>>| -> Option<f64> {
                let all = all.as_ref().ok()?;
                Some(report::median(
                    &mut all.iter().map(|f| f.round_ms).collect::<Vec<_>>(),
                ))
            };
            if let (Some(p), Some(b), Some(f)) =
                (round_ms(&ours), round_ms(&base), round_ms(&floor))
            {
                // The floor sends a request per chat, as peerchat's default loop does; with
                // `--fanout-send all` peerchat sends one per round, and the two differ in more
                // than what peerchat adds.
                let adds = if s.fanout_all {
                    "peerchat sent one request per round, the floor one per chat"
                } else {
                    "what peerchat adds on top"
                };
                notes.push(format!(
                    "fan-out to {peers}, medians of trials: peerchat {p:.2} ms, baseline {b:.2} ms, \
                     floor {f:.2} ms; floor/baseline {:.2}× (what the design's actor hops cost \
                     at least, with a request per chat sent), peerchat/floor {:.2}× ({adds})",
                    f / b,
                    p / f
                ));
            }
            let figure = |all: Res<Vec<scenarios::Fanout>>| {
                all.map(|all| {
                    Figure::Millis(report::median(
                        &mut all.iter().map(|f| f.round_ms).collect::<Vec<_>>(),
                    ))
                })
            };
            // A floor that was not asked for has no row; one that failed has its error in
            // the row (counted, so the bench exits 1), as any other scenario.
            let floor_row = match (&floor, &base) {
                (Err(e), _) if e.is::<Skipped>() => None,
                (Err(_), Ok(b)) => Some((figure(floor), figure(Ok(b.clone())))),
                (Err(_), Err(_)) => Some((figure(floor), side(false, || Ok(Figure::Millis(0.0))))),
                (Ok(_), Ok(b)) => Some((figure(floor), figure(Ok(b.clone())))),
                (Ok(_), Err(_)) => Some((figure(floor), side(false, || Ok(Figure::Millis(0.0))))),
            };
            rows.push(Row::new(
                format!("fan-out to {peers} peers: time until all acked"),
                measured(&format!("fan-out {peers} (peerchat)"), figure(ours)),
                measured(&format!("fan-out {peers} (baseline)"), figure(base)),
                Target::RatioAtMost(2.0),
            ));
            if let Some((f, b)) = floor_row {
                rows.push(Row::new(
                    format!("fan-out to {peers} peers: floor (baseline + the design's hops)"),
                    measured(&format!("fan-out {peers} (floor)"), f),
                    measured(&format!("fan-out {peers} (baseline, floor row)"), b),
                    Target::None,
                ));
            }
        }
    }
    if wanted("churn") {
        progress("churn");
        let mut figure = |who: &str, result: Res<scenarios::ChurnResult>| {
            result.map(|r| {
                if r.failed > 0 {
                    notes.push(format!(
                        "churn, {who}: {} cycles failed (first: {})",
                        r.failed,
                        r.first_error.unwrap_or_default()
                    ));
                }
                Figure::PerSecond(r.per_second, "handshake")
            })
        };
        let ours = figure(
            "peerchat",
            side(s.run_peerchat, || scenarios::churn_peerchat(&s)),
        );
        let base = figure(
            "baseline",
            side(s.run_baseline, || scenarios::churn_baseline(&s)),
        );
        rows.push(Row::new(
            "churn: connect + handshake + bye",
            measured("churn (peerchat)", ours),
            measured("churn (baseline)", base),
            Target::RatioAtLeast(0.5),
        ));
    }
    if wanted("supervision") {
        progress("supervision");
        let rounds = if s.quick { 50 } else { 500 };
        let mut restart = |actor: &str, target_ms: f64, samples: Res<Vec<f64>>| {
            let figure = samples.map(|mut micros| {
                let p50 = median(&mut micros);
                let p99 = percentile(&mut micros, 99.0);
                notes.push(format!(
                    "supervision, {actor}: crash until serving again over {rounds} restarts: \
                     p50 {p50:.0} µs, p99 {p99:.0} µs (no actor-less baseline: nothing restarts)"
                ));
                Figure::Micros(p50)
            });
            rows.push(Row::new(
                format!("supervision: {actor} restart until serving (p50)"),
                measured(&format!("supervision ({actor})"), figure),
                Err("-".into()),
                Target::Below(target_ms),
            ));
        };
        // Targets in µs: Registry < 1 ms, Listener < 10 ms.
        restart("Registry", 1000.0, supervision::registry_restart(rounds));
        restart("Listener", 10_000.0, supervision::listener_restart(rounds));
    }
    if wanted("trace") {
        progress("trace off");
        let (messages, rounds) = if s.quick {
            (200_000, 5)
        } else {
            (2_000_000, 9)
        };
        let timed = trace_cost::tell_vs_do_send(messages, rounds);
        let (ours, base) = match timed {
            Ok((traced, plain)) => {
                notes.push(format!(
                    "trace off: {messages} no-op messages per round, median of {rounds} \
                     alternating rounds: {traced:.1} ns through trace::tell, {plain:.1} ns \
                     through do_send"
                ));
                (Ok(Figure::Nanos(traced)), Ok(Figure::Nanos(plain)))
            }
            Err(err) => (Err(err), Err(sys::BoxError::from("see above"))),
        };
        rows.push(Row::new(
            "trace off: a no-op message, trace::tell vs do_send",
            measured("trace off", ours),
            base.map_err(|_| "-".to_string()),
            // Informational: the difference is a few ns, against microseconds per chat.
            Target::None,
        ));
    }
    if wanted("startup") {
        progress("start-up");
        let timed = scenarios::peerchat_binary(s.peerchat_bin.as_deref())
            .and_then(|bin| scenarios::startup(&s, bin));
        let (ours, base) = match timed {
            Ok((o, b)) => (Ok(Figure::Millis(o)), Ok(Figure::Millis(b))),
            Err(err) => (Err(err), Err(sys::BoxError::from("see above"))),
        };
        rows.push(Row::new(
            format!("start-up until listening (median of {})", s.startup_runs),
            measured("start-up (peerchat)", ours),
            base.map_err(|_| "-".to_string()),
            Target::Below(20.0),
        ));
    }

    let binary: Vec<&str> = ["binary", "peers"]
        .into_iter()
        .filter(|w| wanted(w))
        .collect();
    if !binary.is_empty() {
        let (more, more_notes, failed) = binary::run(&s, &binary);
        rows.extend(more);
        notes.extend(more_notes);
        errors += failed;
    }

    println!("{}", report::table(&rows));
    for note in notes {
        println!("- {note}");
    }
    println!(
        "- ratio = peerchat / baseline. Targets from issue #4; targets in ms/µs/KiB are \
         peerchat's own figure."
    );
    println!(
        "total time {:.1} s; load average (1 min) at the end: {}",
        started.elapsed().as_secs_f64(),
        load_average()
    );
    if errors > 0 {
        eprintln!("{errors} measurement(s) failed");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Adds one trial's figures to the others; the first failure is kept.
fn gather<T>(all: &mut Res<Vec<T>>, trial: Res<Vec<T>>) {
    match (all.as_mut(), trial) {
        (Ok(all), Ok(trial)) => all.extend(trial),
        (Ok(_), Err(err)) => *all = Err(err),
        (Err(_), _) => {}
    }
}

/// The 1-minute load average, to judge how quiet the machine was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(String::from))
        .unwrap_or_else(|| "?".into())
}

/// A side left out with `--side`.
#[derive(Debug)]
struct Skipped;

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("skipped")
    }
}

impl std::error::Error for Skipped {}

fn side<T>(wanted: bool, run: impl FnOnce() -> Res<T>) -> Res<T> {
    if wanted {
        run()
    } else {
        Err(Box::new(Skipped))
    }
}

/// Says which scenario starts, and when (seconds since the bench started), so that a slow
/// run shows where its time went.
fn progress(what: &str) {
    static STARTED: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let since = STARTED.get_or_init(Instant::now).elapsed().as_secs_f64();
    eprintln!("... {what} (at {since:.1} s)");
}
