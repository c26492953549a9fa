//! The measuring side of each scenario, once for peerchat (a real `Node` in an actix system,
//! driving a child process of real nodes) and once for the baseline (plain tokio, driving a
//! child process of baseline nodes). Every figure comes from a run made now.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use peerchat_actors::wire::{encode_frame, encode_frame_into, Frame};
use peerchat_actors::{ConnectOutcome, EventStream, Node, NodeEvent, PeerAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::baseline::{connect, dial, now_ms, BaseNode, ClientConn, Identity, Stats};
use crate::child::ChildProc;
use crate::report::{median, percentile};
use crate::serve::local_runtime;
use crate::sys::{cpu_micros, fail, BoxError, CpuMicros, Res};

/// How long a child may take to start listening (a thousand nodes take a while).
const READY_WAIT: Duration = Duration::from_secs(120);
/// Bound on any single wait inside a measurement.
const STEP_LIMIT: Duration = Duration::from_secs(120);
/// Connections opened at once when a scenario sets up many.
const CONNECT_CONCURRENCY: usize = 64;

/// What to run and how much of it.
#[derive(Clone, Debug)]
pub struct Settings {
    pub quick: bool,
    /// Bytes of chat text per message.
    pub text_bytes: usize,
    pub stream_msgs: usize,
    /// Chats in flight (sent, not yet acked) in the stream scenario.
    pub window: usize,
    pub raw_frames: usize,
    /// Measured runs of the stream scenario; the median is reported.
    pub trials: usize,
    pub round_trips: usize,
    pub fanout: Vec<usize>,
    pub fanout_rounds: usize,
    /// The fan-out sends each round as one `send_chat_to_each` (what `/all` does) instead
    /// of a `send_chat` per peer in turn.
    pub fanout_all: bool,
    pub idle: Vec<usize>,
    pub churn_ops: usize,
    pub churn_peers: usize,
    pub churn_workers: usize,
    pub startup_runs: usize,
    pub peerchat_bin: Option<PathBuf>,
    /// Which sides to run (both unless profiling one).
    pub run_peerchat: bool,
    pub run_baseline: bool,
    /// The fan-out's third side, the floor (floor.rs).
    pub run_floor: bool,
}

impl Settings {
    pub fn new(quick: bool) -> Settings {
        if quick {
            Settings {
                quick,
                text_bytes: 100,
                stream_msgs: 20_000,
                window: 1024,
                raw_frames: 1_000_000,
                trials: 1,
                round_trips: 2_000,
                fanout: vec![100],
                fanout_rounds: 20,
                fanout_all: false,
                idle: vec![1_000],
                churn_ops: 1_000,
                churn_peers: 64,
                churn_workers: 8,
                startup_runs: 10,
                peerchat_bin: None,
                run_peerchat: true,
                run_baseline: true,
                run_floor: true,
            }
        } else {
            Settings {
                quick,
                text_bytes: 100,
                stream_msgs: 200_000,
                window: 1024,
                raw_frames: 5_000_000,
                trials: 5,
                round_trips: 20_000,
                fanout: vec![100, 1_000],
                fanout_rounds: 150,
                fanout_all: false,
                idle: vec![1_000, 10_000],
                churn_ops: 5_000,
                churn_peers: 128,
                churn_workers: 8,
                startup_runs: 30,
                peerchat_bin: None,
                run_peerchat: true,
                run_baseline: true,
                run_floor: true,
            }
        }
    }

    pub fn text(&self) -> String {
        let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789 ";
        (0..self.text_bytes)
            .map(|i| char::from(alphabet[i % alphabet.len()]))
            .collect()
    }

    /// Size of the chat frame this text makes (length prefix included).
    pub fn chat_frame_bytes(&self) -> usize {
        let frame = Frame::Chat {
            id: now_ms() * 1000,
            text: self.text(),
            sent_at_ms: now_ms(),
        };
        encode_frame(&frame).map(|b| b.len()).unwrap_or(0)
    }
}

// ---- running a measurement on its own thread and runtime ----

/// Runs `make()`'s future in a new actix system on a new thread (as a peerchat process does).
fn on_actix<T, F, Fut>(make: F) -> Res<T>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Res<T>> + 'static,
{
    let thread = std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            match actix_rt::spawn(make()).await {
                Ok(result) => result,
                Err(_) => fail("the measuring task panicked"),
            }
        })
    });
    match thread.join() {
        Ok(result) => result,
        Err(_) => fail("the measuring thread panicked"),
    }
}

/// Runs `make()`'s future on a new single-threaded tokio runtime on a new thread.
fn on_tokio<T, F, Fut>(make: F) -> Res<T>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Res<T>> + 'static,
{
    let thread = std::thread::spawn(move || {
        local_runtime(async move {
            match tokio::task::spawn_local(make()).await {
                Ok(result) => result,
                Err(_) => fail("the measuring task panicked"),
            }
        })
        .and_then(|r| r)
    });
    match thread.join() {
        Ok(result) => result,
        Err(_) => fail("the measuring thread panicked"),
    }
}

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

fn serve_args(kind: &str, nodes: usize) -> Vec<String> {
    vec![format!("serve-{kind}"), "--nodes".into(), nodes.to_string()]
}

/// Message ids like peerchat's (milliseconds × 1000), so frames have the same size.
fn first_id() -> u64 {
    now_ms().saturating_mul(1000)
}

// ---- peerchat's side ----

/// The sending node in this process and the child process with the receiving nodes.
struct PeerchatRig {
    node: Node,
    events: EventStream,
    peers: Vec<PeerAddr>,
    child: ChildProc,
}

async fn peerchat_rig(nodes: usize) -> Res<PeerchatRig> {
    let mut child = ChildProc::spawn_self(&serve_args("peerchat", nodes))?;
    let ports = child.ready_ports(READY_WAIT).await?;
    let node = Node::start(crate::serve::bench_config("sender")).await?;
    let events = node.events();
    let peers = ports
        .iter()
        .map(|p| PeerAddr::from_ip_port(IpAddr::V4(Ipv4Addr::LOCALHOST), *p))
        .collect();
    Ok(PeerchatRig {
        node,
        events,
        peers,
        child,
    })
}

async fn connect_all(node: &Node, peers: &[PeerAddr]) -> Res<()> {
    let results: Vec<_> = futures::stream::iter(peers.iter().copied())
        .map(|peer| {
            let node = node.clone();
            async move { (peer, node.connect(peer).await) }
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    for (peer, result) in results {
        if let Err(err) = result {
            return fail(format!("peerchat could not connect to {peer}: {err}"));
        }
    }
    Ok(())
}

/// 1 for a `Delivered`, an error for a `DeliveryFailed`, 0 for anything else.
fn delivered(event: NodeEvent) -> Res<usize> {
    match event {
        NodeEvent::Delivered { .. } => Ok(1),
        NodeEvent::DeliveryFailed { id, reason, .. } => {
            fail(format!("peerchat failed to deliver {id}: {reason}"))
        }
        _ => Ok(0),
    }
}

/// Sends `n` chats with at most `window` unacked; returns when all are acked.
async fn peerchat_pipeline(
    rig: &mut PeerchatRig,
    text: &str,
    n: usize,
    window: usize,
) -> Res<Duration> {
    let peer = rig.peers[0];
    let start = Instant::now();
    let (mut sent, mut done) = (0, 0);
    while done < n {
        // Every free slot of the window, as the baseline's writer fills it: at most 256
        // chats per request to the Registry (`Node::send_chats`), as the baseline writes at
        // most 256 per write, and on to the next 256 while slots are free. (One request per
        // ack event left the rest of the window empty until the next ack came back.)
        loop {
            let batch = (n - sent).min(window - (sent - done)).min(256);
            if batch == 0 {
                break;
            }
            rig.node.send_chats(peer, (0..batch).map(|_| text)).await?;
            sent += batch;
        }
        let Some(event) = rig.events.next_within(STEP_LIMIT).await else {
            return fail(format!(
                "peerchat: no ack within {STEP_LIMIT:?} ({done}/{n} acked)"
            ));
        };
        done += delivered(event)?;
        while let Some(Some(event)) = rig.events.next().now_or_never() {
            done += delivered(event)?;
        }
    }
    Ok(start.elapsed())
}

/// Checks that the child handed over as many chats as were sent. Its console may still be
/// taking the last ones (acks are sent once a chat is handed over, not once it is shown).
async fn check_chats(child: &mut ChildProc, expected: u64) -> Res<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = child.ask("stats", "STATS", STEP_LIMIT).await?;
        let chats: u64 = stats
            .split_whitespace()
            .nth(3)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        if chats == expected {
            return Ok(());
        }
        if chats > expected || Instant::now() > deadline {
            return fail(format!(
                "the receiver handed over {chats} chats, {expected} were sent"
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---- the baseline's side ----

/// The baseline's pipelined stream on one connection: a writer that keeps `window` chats in
/// flight and a reader that takes the acks, joined in one task.
async fn baseline_pipeline(
    conn: &mut ClientConn,
    next_id: &mut u64,
    text: &str,
    n: usize,
    window: usize,
) -> Res<Duration> {
    let start = Instant::now();
    let window_left = Semaphore::new(window);
    let outbox: RefCell<HashMap<u64, String>> = RefCell::new(HashMap::with_capacity(window));
    let ClientConn {
        reader,
        writer,
        out,
        ..
    } = conn;
    let write = async {
        let mut sent = 0;
        while sent < n {
            window_left.acquire().await?.forget();
            let mut batch = 1;
            while sent + batch < n && batch < 256 {
                match window_left.try_acquire() {
                    Ok(permit) => {
                        permit.forget();
                        batch += 1;
                    }
                    Err(_) => break,
                }
            }
            for _ in 0..batch {
                *next_id += 1;
                let chat = Frame::Chat {
                    id: *next_id,
                    text: text.to_string(),
                    sent_at_ms: now_ms(),
                };
                encode_frame_into(&chat, out)?;
                if let Frame::Chat { id, text, .. } = chat {
                    outbox.borrow_mut().insert(id, text);
                }
            }
            sent += batch;
            // One seal for the whole refill, as peerchat's writer seals what it took.
            writer.write(out).await?;
        }
        Ok::<(), BoxError>(())
    };
    let read = async {
        let mut acked = 0;
        while acked < n {
            match reader.next().await {
                Some(Ok(Frame::Ack { id })) => {
                    if outbox.borrow_mut().remove(&id).is_some() {
                        acked += 1;
                        window_left.add_permits(1);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => return fail(format!("baseline: bad frame: {err}")),
                None => return fail("baseline: connection closed during the stream"),
            }
        }
        Ok::<(), BoxError>(())
    };
    match tokio::time::timeout(STEP_LIMIT, async { tokio::join!(write, read) }).await {
        Ok((w, r)) => {
            w?;
            r?;
        }
        Err(_) => return fail(format!("baseline stream took over {STEP_LIMIT:?}")),
    }
    Ok(start.elapsed())
}

/// The baseline client: a fresh key. It does not listen; it announces a port as a peer does.
fn sender_identity() -> Res<Identity> {
    Identity::new("sender", 9)
}

// ---- scenario: one-to-one stream ----

/// Messages per second, median of the trials.
pub struct StreamResult {
    pub per_second: f64,
    pub all: Vec<f64>,
}

pub fn stream_peerchat(s: &Settings) -> Res<StreamResult> {
    let s = s.clone();
    on_actix(move || async move {
        let mut rig = peerchat_rig(1).await?;
        connect_all(&rig.node, &rig.peers.clone()).await?;
        let text = s.text();
        let warmup = (s.stream_msgs / 10).max(1000);
        peerchat_pipeline(&mut rig, &text, warmup, s.window).await?;
        let mut all = Vec::new();
        for _ in 0..s.trials {
            let took = peerchat_pipeline(&mut rig, &text, s.stream_msgs, s.window).await?;
            all.push(s.stream_msgs as f64 / took.as_secs_f64());
        }
        check_chats(&mut rig.child, (warmup + s.stream_msgs * s.trials) as u64).await?;
        rig.child.finish(Duration::from_secs(2));
        Ok(StreamResult {
            per_second: median(&mut all.clone()),
            all,
        })
    })
}

pub fn stream_baseline(s: &Settings) -> Res<StreamResult> {
    let s = s.clone();
    on_tokio(move || async move {
        let mut child = ChildProc::spawn_self(&serve_args("baseline", 1))?;
        let port = child.ready_ports(READY_WAIT).await?[0];
        let mut conn = dial(localhost(port), &sender_identity()?, Vec::new()).await?;
        let text = s.text();
        let mut next_id = first_id();
        let warmup = (s.stream_msgs / 10).max(1000);
        baseline_pipeline(&mut conn, &mut next_id, &text, warmup, s.window).await?;
        let mut all = Vec::new();
        for _ in 0..s.trials {
            let took =
                baseline_pipeline(&mut conn, &mut next_id, &text, s.stream_msgs, s.window).await?;
            all.push(s.stream_msgs as f64 / took.as_secs_f64());
        }
        check_chats(&mut child, (warmup + s.stream_msgs * s.trials) as u64).await?;
        child.finish(Duration::from_secs(2));
        Ok(StreamResult {
            per_second: median(&mut all.clone()),
            all,
        })
    })
}

/// The raw TCP limit: frames of the chat frame's size, length prefix only, no encoding, one
/// ack at the end. Frames per second, median of the trials.
pub fn stream_raw(s: &Settings) -> Res<StreamResult> {
    let s = s.clone();
    on_tokio(move || async move {
        let mut child = ChildProc::spawn_self(&["serve-raw".to_string()])?;
        let port = child.ready_ports(READY_WAIT).await?[0];
        let frame_bytes = s.chat_frame_bytes();
        let mut frame = vec![0x61u8; frame_bytes];
        frame[..4].copy_from_slice(&((frame_bytes - 4) as u32).to_be_bytes());
        let per_chunk = (64 * 1024 / frame_bytes).max(1);
        let chunk: Vec<u8> = frame.repeat(per_chunk);
        let mut all = Vec::new();
        for trial in 0..=s.trials {
            let n = if trial == 0 {
                s.raw_frames / 10
            } else {
                s.raw_frames
            };
            let stream = tokio::net::TcpStream::connect(localhost(port)).await?;
            stream.set_nodelay(true)?;
            let (mut rd, mut wr) = stream.into_split();
            let start = Instant::now();
            wr.write_u64(n as u64).await?;
            let mut left = n;
            while left > 0 {
                let frames = left.min(per_chunk);
                wr.write_all(&chunk[..frames * frame_bytes]).await?;
                left -= frames;
            }
            let mut ack = [0u8; 1];
            tokio::time::timeout(STEP_LIMIT, rd.read_exact(&mut ack)).await??;
            if trial > 0 {
                all.push(n as f64 / start.elapsed().as_secs_f64());
            }
        }
        child.finish(Duration::from_secs(2));
        Ok(StreamResult {
            per_second: median(&mut all.clone()),
            all,
        })
    })
}

// ---- scenario: request-response ----

/// Round-trip times in microseconds.
pub struct RoundTrips {
    pub p50: f64,
    pub p99: f64,
}

fn round_trips(mut rtts: Vec<f64>) -> RoundTrips {
    RoundTrips {
        p50: percentile(&mut rtts, 50.0),
        p99: percentile(&mut rtts, 99.0),
    }
}

pub fn request_response_peerchat(s: &Settings) -> Res<RoundTrips> {
    let s = s.clone();
    on_actix(move || async move {
        let mut rig = peerchat_rig(1).await?;
        connect_all(&rig.node, &rig.peers.clone()).await?;
        let peer = rig.peers[0];
        let text = s.text();
        let warmup = (s.round_trips / 10).max(100);
        let mut rtts = Vec::with_capacity(s.round_trips);
        for i in 0..warmup + s.round_trips {
            let start = Instant::now();
            let id = rig.node.send_chat(peer, text.as_str()).await?;
            let outcome = rig
                .events
                .wait_for(STEP_LIMIT, |e| match e {
                    NodeEvent::Delivered { id: i, .. } if *i == id => Some(Ok(())),
                    NodeEvent::DeliveryFailed { id: i, reason, .. } if *i == id => {
                        Some(Err(reason.clone()))
                    }
                    _ => None,
                })
                .await?;
            if let Err(reason) = outcome {
                return fail(format!("peerchat failed to deliver: {reason}"));
            }
            if i >= warmup {
                rtts.push(start.elapsed().as_secs_f64() * 1e6);
            }
        }
        check_chats(&mut rig.child, (warmup + s.round_trips) as u64).await?;
        rig.child.finish(Duration::from_secs(2));
        Ok(round_trips(rtts))
    })
}

pub fn request_response_baseline(s: &Settings) -> Res<RoundTrips> {
    let s = s.clone();
    on_tokio(move || async move {
        let mut child = ChildProc::spawn_self(&serve_args("baseline", 1))?;
        let port = child.ready_ports(READY_WAIT).await?[0];
        let mut conn = dial(localhost(port), &sender_identity()?, Vec::new()).await?;
        let text = s.text();
        let first = first_id();
        let mut outbox = HashMap::new();
        let warmup = (s.round_trips / 10).max(100);
        let mut rtts = Vec::with_capacity(s.round_trips);
        for i in 0..warmup + s.round_trips {
            let start = Instant::now();
            let id = first + 1 + i as u64;
            let chat = Frame::Chat {
                id,
                text: text.clone(),
                sent_at_ms: now_ms(),
            };
            conn.queue(&chat)?;
            outbox.insert(id, chat);
            conn.flush().await?;
            loop {
                match tokio::time::timeout(STEP_LIMIT, conn.next()).await {
                    Ok(Ok(Frame::Ack { id: acked })) if acked == id => break,
                    Ok(Ok(_)) => {}
                    Ok(Err(err)) => return Err(err),
                    Err(_) => return fail("baseline: no ack in time"),
                }
            }
            outbox.remove(&id);
            if i >= warmup {
                rtts.push(start.elapsed().as_secs_f64() * 1e6);
            }
        }
        check_chats(&mut child, (warmup + s.round_trips) as u64).await?;
        child.finish(Duration::from_secs(2));
        Ok(round_trips(rtts))
    })
}

// ---- scenario: fan-out ----

/// One side's fan-out: the median round, and the CPU time each process spent per chat over
/// the measured rounds (the first round is a warm-up), which says which side limits a round.
#[derive(Clone, Copy, Debug)]
pub struct Fanout {
    /// Milliseconds from the first send until every peer acked, median of the rounds.
    pub round_ms: f64,
    /// CPU microseconds per chat of the sending process (this one): user, system.
    pub sender_cpu_us: (f64, f64),
    /// CPU microseconds per chat of the receiving process (the child with the peers).
    pub receiver_cpu_us: (f64, f64),
}

/// CPU time of this process and of `child` now.
fn cpu_now(child: &ChildProc) -> Res<(CpuMicros, CpuMicros)> {
    Ok((cpu_micros(None)?, cpu_micros(Some(child.pid()))?))
}

impl Fanout {
    fn new(
        mut rounds: Vec<f64>,
        chats: usize,
        before: (CpuMicros, CpuMicros),
        after: (CpuMicros, CpuMicros),
    ) -> Fanout {
        let per_chat = |from: CpuMicros, to: CpuMicros| {
            let chats = chats.max(1) as f64;
            (
                to.user.saturating_sub(from.user) as f64 / chats,
                to.system.saturating_sub(from.system) as f64 / chats,
            )
        };
        Fanout {
            round_ms: median(&mut rounds),
            sender_cpu_us: per_chat(before.0, after.0),
            receiver_cpu_us: per_chat(before.1, after.1),
        }
    }
}

/// Every peer is sent one chat per round; the round ends when every peer acked it.
pub fn fanout_peerchat(s: &Settings, peers: usize) -> Res<Fanout> {
    let s = s.clone();
    on_actix(move || async move {
        let mut rig = peerchat_rig(peers).await?;
        connect_all(&rig.node, &rig.peers.clone()).await?;
        let text = s.text();
        let mut rounds = Rounds::default();
        for round in 0..=s.fanout_rounds {
            let start = rounds.start(round, &rig.child)?;
            // One chat to every peer, in turn. (Issuing them all at once, or as one
            // `send_chat_to_each`, was slower with 1000 peers on a quiet machine: the
            // receiving process, which a round waits for, gets them in one burst after the
            // Registry took them all; docs/performance.md, fan-out fourth round.)
            // The round's ids, in the order the node gave them (rising), and which are
            // acked: a binary search per ack where a SipHash set cost about 400
            // instructions per chat of the process measured (docs/performance.md).
            let mut sent = Vec::with_capacity(peers);
            if s.fanout_all {
                let each = rig
                    .node
                    .send_chat_to_each(rig.peers.iter().copied(), text.as_str())
                    .await?;
                for id in each {
                    sent.push(id?);
                }
                if sent.windows(2).any(|pair| pair[0] >= pair[1]) {
                    return fail("peerchat fan-out: chat ids not rising");
                }
            } else {
                for peer in &rig.peers {
                    let id = rig.node.send_chat(*peer, text.as_str()).await?;
                    if sent.last().is_some_and(|last| *last >= id) {
                        return fail("peerchat fan-out: chat ids not rising");
                    }
                    sent.push(id);
                }
            }
            let mut acked = vec![false; sent.len()];
            let mut waiting = sent.len();
            while waiting > 0 {
                let Some(event) = rig.events.next_within(STEP_LIMIT).await else {
                    return fail(format!("peerchat fan-out: {waiting} acks missing"));
                };
                match event {
                    NodeEvent::Delivered { id, .. } => {
                        if let Ok(at) = sent.binary_search(&id) {
                            if !std::mem::replace(&mut acked[at], true) {
                                waiting -= 1;
                            }
                        }
                    }
                    NodeEvent::DeliveryFailed { id, reason, .. }
                        if sent.binary_search(&id).is_ok() =>
                    {
                        return fail(format!("peerchat fan-out: delivery failed: {reason}"));
                    }
                    _ => {}
                }
            }
            rounds.end(round, start);
        }
        fanout_done(rig.child, &s, peers, rounds).await
    })
}

/// One baseline connection of the fan-out: sends the chat ids it is given, reports acks.
async fn fanout_conn(
    mut conn: ClientConn,
    mut sends: mpsc::UnboundedReceiver<u64>,
    acks: mpsc::UnboundedSender<u64>,
    text: Rc<str>,
) {
    let mut outbox = HashMap::new();
    loop {
        tokio::select! {
            send = sends.recv() => {
                let Some(id) = send else { return };
                let chat = Frame::Chat { id, text: text.to_string(), sent_at_ms: now_ms() };
                if conn.queue(&chat).is_err() || conn.flush().await.is_err() {
                    return;
                }
                outbox.insert(id, chat);
            }
            frame = conn.reader.next() => match frame {
                Some(Ok(Frame::Ack { id })) => {
                    if outbox.remove(&id).is_some() && acks.send(id).is_err() {
                        return;
                    }
                }
                Some(Ok(Frame::Ping { nonce })) => {
                    if conn.queue(&Frame::Pong { nonce }).is_err() || conn.flush().await.is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                _ => return,
            }
        }
    }
}

/// A child of `kind` serving `peers` nodes, and a connection of ours to each (the baseline's
/// dialer, as the baseline and floor sides use).
async fn fanout_child(kind: &str, peers: usize) -> Res<(ChildProc, Vec<ClientConn>)> {
    let mut child = ChildProc::spawn_self(&serve_args(kind, peers))?;
    let ports = child.ready_ports(READY_WAIT).await?;
    let me = sender_identity()?;
    let conns: Vec<Res<ClientConn>> = futures::stream::iter(ports.iter().copied())
        .map(|port| dial(localhost(port), &me, Vec::new()))
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    let conns = conns.into_iter().collect::<Res<Vec<_>>>()?;
    Ok((child, conns))
}

/// Waits for a round's `peers` acks, each within the step limit.
async fn round_acks(acks: &mut mpsc::UnboundedReceiver<u64>, peers: usize, side: &str) -> Res<()> {
    for _ in 0..peers {
        match tokio::time::timeout(STEP_LIMIT, acks.recv()).await {
            Ok(Some(_)) => {}
            _ => return fail(format!("{side} fan-out: acks missing")),
        }
    }
    Ok(())
}

/// A fan-out side's round times and the child's CPU as they began: round 0 warms up and is
/// not counted; the CPU is read as round 1 starts.
#[derive(Default)]
struct Rounds {
    ms: Vec<f64>,
    cpu_before: (CpuMicros, CpuMicros),
}

impl Rounds {
    /// Round `round` starts now.
    fn start(&mut self, round: usize, child: &ChildProc) -> Res<Instant> {
        if round == 1 {
            self.cpu_before = cpu_now(child)?;
        }
        Ok(Instant::now())
    }

    /// Round `round`, started at `start`, has ended.
    fn end(&mut self, round: usize, start: Instant) {
        if round > 0 {
            self.ms.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
}

/// A fan-out side's end: its figures, then every chat counted by the child, which stops.
async fn fanout_done(
    mut child: ChildProc,
    s: &Settings,
    peers: usize,
    rounds: Rounds,
) -> Res<Fanout> {
    let cpu_after = cpu_now(&child)?;
    let measured = Fanout::new(
        rounds.ms,
        peers * s.fanout_rounds,
        rounds.cpu_before,
        cpu_after,
    );
    check_chats(&mut child, (peers * (s.fanout_rounds + 1)) as u64).await?;
    child.finish(Duration::from_secs(5));
    Ok(measured)
}

pub fn fanout_baseline(s: &Settings, peers: usize) -> Res<Fanout> {
    let s = s.clone();
    on_tokio(move || async move {
        let (child, conns) = fanout_child("baseline", peers).await?;
        let text: Rc<str> = s.text().into();
        let (acks_tx, mut acks) = mpsc::unbounded_channel();
        let mut sends = Vec::with_capacity(peers);
        for conn in conns {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::task::spawn_local(fanout_conn(conn, rx, acks_tx.clone(), text.clone()));
            sends.push(tx);
        }
        let mut next_id = first_id();
        let mut rounds = Rounds::default();
        for round in 0..=s.fanout_rounds {
            let start = rounds.start(round, &child)?;
            for tx in &sends {
                next_id += 1;
                if tx.send(next_id).is_err() {
                    return fail("baseline fan-out: a connection ended");
                }
            }
            round_acks(&mut acks, peers, "baseline").await?;
            rounds.end(round, start);
        }
        let measured = fanout_done(child, &s, peers, rounds).await;
        drop(sends);
        measured
    })
}

/// The floor (floor.rs): the baseline's connections as actors behind a Registry stand-in,
/// each chat a request to it (`addr.send`, awaited in turn, as `fanout_peerchat` awaits
/// `send_chat`), each ack a message to it and then an event on a channel.
pub fn fanout_floor(s: &Settings, peers: usize) -> Res<Fanout> {
    let s = s.clone();
    // A text the wire refuses fails here, not after a round's time limit.
    let probe = Frame::Chat {
        id: 1,
        text: s.text(),
        sent_at_ms: 0,
    };
    encode_frame_into(&probe, &mut bytes::BytesMut::new())?;
    on_actix(move || async move {
        let (child, conns) = fanout_child("floor", peers).await?;
        let (registry, mut acks) = crate::floor::sender(conns, first_id());
        let text = s.text();
        let mut rounds = Rounds::default();
        for round in 0..=s.fanout_rounds {
            let start = rounds.start(round, &child)?;
            for peer in 0..peers {
                let text = text.clone();
                match registry.send(crate::floor::SendChat { peer, text }).await {
                    Ok(Ok(_id)) => {}
                    Ok(Err(err)) => return fail(format!("floor fan-out: {err}")),
                    Err(err) => return fail(format!("floor fan-out: the registry: {err}")),
                }
            }
            round_acks(&mut acks, peers, "floor").await?;
            rounds.end(round, start);
        }
        fanout_done(child, &s, peers, rounds).await
    })
}

// ---- scenario: many idle sessions ----

/// Resident memory of the serving process before and after `sessions` idle connections.
pub struct IdleResult {
    pub before_kib: u64,
    pub after_kib: u64,
    /// Descriptors the serving process had open before and after.
    pub fds_before: usize,
    pub fds_after: usize,
    pub sessions: usize,
    /// How long opening them all took.
    pub opening: Duration,
}

impl IdleResult {
    pub fn per_session_kib(&self) -> f64 {
        (self.after_kib as f64 - self.before_kib as f64) / self.sessions as f64
    }
}

/// `kind` is "peerchat" or "baseline"; the connections are opened by this process with plain
/// tokio sockets, each a distinct peer that answers pings.
pub fn idle_sessions(kind: &'static str, sessions: usize) -> Res<IdleResult> {
    on_tokio(move || async move {
        let mut child = ChildProc::spawn_self(&serve_args(kind, 1))?;
        let port = child.ready_ports(READY_WAIT).await?[0];
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before_kib: u64 = child.ask("rss", "RSS", STEP_LIMIT).await?.parse()?;
        let fds_before = child.open_fds();
        let (done_tx, mut done) = mpsc::unbounded_channel::<Res<()>>();
        let (stop_tx, stop) = watch::channel(false);
        let gate = Rc::new(Semaphore::new(256));
        let start = Instant::now();
        for i in 0..sessions {
            tokio::task::spawn_local(idle_client(
                localhost(port),
                i,
                gate.clone(),
                done_tx.clone(),
                stop.clone(),
            ));
        }
        for opened in 0..sessions {
            let why = match tokio::time::timeout(STEP_LIMIT, done.recv()).await {
                Ok(Some(Ok(()))) => continue,
                Ok(Some(Err(err))) => err.to_string(),
                _ => "handshakes did not finish in time".to_string(),
            };
            let fds = child.open_fds();
            return fail(format!(
                "{why} (after {opened} of {sessions} sessions; the {kind} process has {fds} \
                 descriptors open, limit {})",
                crate::sys::fd_limit()
            ));
        }
        let opening = start.elapsed();
        // Let the last handshakes' transient buffers go.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let after_kib: u64 = child.ask("rss", "RSS", STEP_LIMIT).await?.parse()?;
        let fds_after = child.open_fds();
        let stats = child.ask("stats", "STATS", STEP_LIMIT).await?;
        let connected: usize = stats
            .split_whitespace()
            .next()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        if connected < sessions {
            return fail(format!(
                "{kind}: {connected} of {sessions} sessions registered"
            ));
        }
        let _ = stop_tx.send(true);
        child.finish(Duration::from_secs(5));
        Ok(IdleResult {
            before_kib,
            after_kib,
            fds_before,
            fds_after,
            sessions,
            opening,
        })
    })
}

async fn idle_client(
    addr: SocketAddr,
    i: usize,
    gate: Rc<Semaphore>,
    done: mpsc::UnboundedSender<Res<()>>,
    mut stop: watch::Receiver<bool>,
) {
    let permit = gate.acquire().await;
    let handshake = idle_handshake(addr, i).await;
    drop(permit);
    let mut conn = match handshake {
        Ok(conn) => conn,
        Err(err) => {
            let _ = done.send(Err(err));
            return;
        }
    };
    let _ = done.send(Ok(()));
    loop {
        tokio::select! {
            frame = conn.reader.next() => match frame {
                Some(Ok(Frame::Ping { nonce })) => {
                    if conn.queue(&Frame::Pong { nonce }).is_err() || conn.flush().await.is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                _ => return,
            },
            _ = stop.changed() => return,
        }
    }
}

/// A peer's side of the handshake (each with a key of its own), then a ping: its pong means
/// the node registered us.
async fn idle_handshake(addr: SocketAddr, i: usize) -> Res<ClientConn> {
    // Distinct peers: each announces its own port.
    let me = Identity::new(format!("idle{i}"), (i % 65535 + 1) as u16)?;
    let mut conn = connect(addr, &me).await?;
    conn.queue(&Frame::Peers { peers: Vec::new() })?;
    conn.queue(&Frame::Ping { nonce: 1 })?;
    conn.flush().await?;
    // The figure is memory, not time: a node slow to answer is waited for.
    loop {
        match tokio::time::timeout(STEP_LIMIT, conn.next()).await {
            Ok(Ok(Frame::Pong { .. })) => return Ok(conn),
            Ok(Ok(Frame::Bye { reason })) => return fail(format!("refused: {reason}")),
            Ok(Ok(_)) => {}
            Ok(Err(err)) => return Err(err),
            Err(_) => return fail("no pong after the handshake"),
        }
    }
}

// ---- scenario: connection churn ----

/// Completed connect + handshake + bye cycles per second.
pub struct ChurnResult {
    pub per_second: f64,
    pub failed: usize,
    pub first_error: Option<String>,
}

/// Which peers worker `w` of `workers` cycles through.
fn peers_of<T: Copy>(all: &[T], w: usize, workers: usize) -> Vec<T> {
    all.iter().copied().skip(w).step_by(workers).collect()
}

async fn ended_so_far(child: &mut ChildProc) -> Res<u64> {
    let stats = child.ask("stats", "STATS", STEP_LIMIT).await?;
    let words: Vec<u64> = stats
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    match words.as_slice() {
        [_, disconnected, refused, _] => Ok(disconnected + refused),
        _ => fail(format!("bad stats line {stats:?}")),
    }
}

pub fn churn_peerchat(s: &Settings) -> Res<ChurnResult> {
    let s = s.clone();
    on_actix(move || async move {
        let mut rig = peerchat_rig(s.churn_peers).await?;
        let node = rig.node.clone();
        let cycle = |node: Node, peers: Vec<PeerAddr>, ops: usize| async move {
            let (mut ok, mut failed, mut first_error) = (0usize, 0usize, None);
            for j in 0..ops {
                let peer = peers[j % peers.len()];
                match node.connect(peer).await {
                    Ok(ConnectOutcome::Connected) => ok += 1,
                    Ok(ConnectOutcome::AlreadyConnected) => {
                        failed += 1;
                        first_error.get_or_insert_with(|| "already connected".to_string());
                    }
                    Err(err) => {
                        failed += 1;
                        first_error.get_or_insert_with(|| err.to_string());
                    }
                }
                let _ = node.disconnect(peer).await;
            }
            (ok, failed, first_error)
        };
        // Warm-up: every peer once.
        let ended = ended_so_far(&mut rig.child).await?;
        let warm = cycle(node.clone(), rig.peers.clone(), rig.peers.len()).await;
        let target = ended as usize + warm.0;
        rig.child
            .ask(&format!("wait-ended {target}"), "DONE", STEP_LIMIT)
            .await?;
        let before = ended_so_far(&mut rig.child).await?;
        let per_worker = s.churn_ops / s.churn_workers;
        let start = Instant::now();
        let runs = (0..s.churn_workers).map(|w| {
            cycle(
                node.clone(),
                peers_of(&rig.peers, w, s.churn_workers),
                per_worker,
            )
        });
        let results = futures::future::join_all(runs).await;
        let ok: usize = results.iter().map(|r| r.0).sum();
        let failed: usize = results.iter().map(|r| r.1).sum();
        let first_error = results.into_iter().find_map(|r| r.2);
        rig.child
            .ask(
                &format!("wait-ended {}", before as usize + ok),
                "DONE",
                STEP_LIMIT,
            )
            .await?;
        let took = start.elapsed();
        drop(rig.events);
        rig.child.finish(Duration::from_secs(5));
        Ok(ChurnResult {
            per_second: ok as f64 / took.as_secs_f64(),
            failed,
            first_error,
        })
    })
}

/// One baseline cycle: dial (the handshake, then our peers), bye, and let the connection
/// linger in the background until the peer closes, as peerchat's Session does; the peer
/// dialed is known with its proven key from then on, and a `peers` map read meanwhile is
/// learned, as the protocol asks.
async fn baseline_cycle(addr: SocketAddr, me: &Rc<BaseNode>) -> Res<()> {
    let mut conn = connect(addr, &me.me).await?;
    let known = me.register(addr, &conn.remote_name, conn.remote_key);
    conn.queue(&Frame::Peers { peers: known })?;
    conn.queue(&Frame::Bye {
        reason: "disconnected by user".into(),
    })?;
    conn.flush().await?;
    conn.writer.shutdown().await?;
    let me = me.clone();
    tokio::task::spawn_local(async move {
        let linger = async {
            while let Some(Ok(frame)) = conn.reader.next().await {
                if let Frame::Peers { peers } = frame {
                    me.learn(peers);
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), linger).await;
    });
    Ok(())
}

pub fn churn_baseline(s: &Settings) -> Res<ChurnResult> {
    let s = s.clone();
    on_tokio(move || async move {
        let mut child = ChildProc::spawn_self(&serve_args("baseline", s.churn_peers))?;
        let ports = child.ready_ports(READY_WAIT).await?;
        // The measuring side is a baseline node too: it knows the peers it dialed, with the
        // keys they proved (and what they tell it).
        let (console, _) = mpsc::unbounded_channel();
        let me = BaseNode::new(sender_identity()?, Stats::new(), console);
        let cycle = |ports: Vec<u16>, ops: usize| {
            let me = me.clone();
            async move {
                let (mut ok, mut failed, mut first_error) = (0usize, 0usize, None);
                for j in 0..ops {
                    let addr = localhost(ports[j % ports.len()]);
                    match baseline_cycle(addr, &me).await {
                        Ok(()) => ok += 1,
                        Err(err) => {
                            failed += 1;
                            first_error.get_or_insert_with(|| err.to_string());
                        }
                    }
                }
                (ok, failed, first_error)
            }
        };
        let ended = ended_so_far(&mut child).await?;
        let warm = cycle(ports.clone(), ports.len()).await;
        child
            .ask(
                &format!("wait-ended {}", ended as usize + warm.0),
                "DONE",
                STEP_LIMIT,
            )
            .await?;
        let before = ended_so_far(&mut child).await?;
        let per_worker = s.churn_ops / s.churn_workers;
        let start = Instant::now();
        let runs =
            (0..s.churn_workers).map(|w| cycle(peers_of(&ports, w, s.churn_workers), per_worker));
        let results = futures::future::join_all(runs).await;
        let ok: usize = results.iter().map(|r| r.0).sum();
        let failed: usize = results.iter().map(|r| r.1).sum();
        let first_error = results.into_iter().find_map(|r| r.2);
        child
            .ask(
                &format!("wait-ended {}", before as usize + ok),
                "DONE",
                STEP_LIMIT,
            )
            .await?;
        let took = start.elapsed();
        child.finish(Duration::from_secs(5));
        Ok(ChurnResult {
            per_second: ok as f64 / took.as_secs_f64(),
            failed,
            first_error,
        })
    })
}

// ---- scenario: start-up ----

/// The `peerchat` binary: `--peerchat-bin`, or built now next to this executable (release
/// for a release bench) so that it is never stale.
pub fn peerchat_binary(explicit: Option<&Path>) -> Res<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let exe = std::env::current_exe()?;
    let Some(dir) = exe.parent() else {
        return fail("the bench executable has no directory");
    };
    let release = dir.file_name().is_some_and(|n| n == "release");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "--quiet", "-p", "peerchat", "--bin", "peerchat"])
        .arg("--manifest-path")
        .arg(&manifest);
    // Into the target directory this executable is in (<target>/release/peerchat-bench).
    if let Some(target) = dir.parent() {
        build.arg("--target-dir").arg(target);
    }
    if release {
        build.arg("--release");
    }
    let built = build.status();
    let candidate = dir.join("peerchat");
    match built {
        Ok(status) if status.success() && candidate.exists() => Ok(candidate),
        _ if candidate.exists() => {
            eprintln!(
                "note: could not build peerchat; using {}",
                candidate.display()
            );
            Ok(candidate)
        }
        _ => fail(format!(
            "no peerchat binary at {} (build it with cargo build --release)",
            candidate.display()
        )),
    }
}

/// Milliseconds from spawning `command` until it prints a line containing "listening on".
async fn time_startup(command: &mut Command, what: &str) -> Res<f64> {
    let start = Instant::now();
    let mut child = ChildProc::spawn(command, what)?;
    loop {
        let line = child.line(Duration::from_secs(10)).await?;
        if line.contains("listening on") {
            break;
        }
    }
    let took = start.elapsed().as_secs_f64() * 1e3;
    child.finish(Duration::from_secs(5));
    Ok(took)
}

/// Median start-up of peerchat and of the baseline, runs interleaved, a first run of each
/// discarded (it warms the page cache).
pub fn startup(s: &Settings, peerchat: PathBuf) -> Res<(f64, f64)> {
    let runs = s.startup_runs;
    on_tokio(move || async move {
        let me = std::env::current_exe()?;
        let (mut ours, mut base) = (Vec::new(), Vec::new());
        for run in 0..=runs {
            let mut peer = Command::new(&peerchat);
            peer.args([
                "--name",
                "b",
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--ephemeral",
            ]);
            let p = time_startup(&mut peer, "peerchat").await?;
            let mut minimal = Command::new(&me);
            minimal.arg("startup-baseline");
            let b = time_startup(&mut minimal, "startup-baseline").await?;
            if run > 0 {
                ours.push(p);
                base.push(b);
            }
        }
        Ok((median(&mut ours), median(&mut base)))
    })
}
