//! The hidden subcommands: what a child process of the bench runs. Each prints
//! `READY <port>...` once listening, then obeys one command per stdin line:
//!
//! - `rss`: answers `RSS <KiB>` (this process's resident set);
//! - `stats`: answers `STATS <connected> <disconnected> <refused> <chats>`;
//! - `wait-ended <n>`: answers `DONE` once `disconnected + refused` reaches n;
//! - `quit`, or the end of stdin: exits.

use std::io::{BufRead, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use futures::StreamExt;
use peerchat_actors::{EventStream, Node, NodeConfig, NodeEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::baseline::{self, BaseNode, Identity, Stats};
use crate::sys::{fail, rss_kib, Res};

/// stdin lines, read by a thread and handed to the runtime.
fn stdin_lines() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn say(line: &str) -> Res<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

pub(crate) fn ready(ports: &[u16]) -> Res<()> {
    let ports: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
    say(&format!("READY {}", ports.join(" ")))
}

/// Answers the parent's commands until it says `quit` or closes stdin.
pub(crate) async fn control(stats: Rc<Stats>) -> Res<()> {
    let mut lines = stdin_lines();
    while let Some(line) = lines.recv().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["rss"] => say(&format!("RSS {}", rss_kib()?))?,
            ["stats"] => say(&format!(
                "STATS {} {} {} {}",
                stats.connected.get(),
                stats.disconnected.get(),
                stats.refused.get(),
                stats.chats.get()
            ))?,
            ["wait-ended", n] => {
                let n: u64 = n.parse()?;
                let Some(mut ended) = stats.watch_ended() else {
                    return fail("no counter to watch");
                };
                if ended.wait_for(|v| *v >= n).await.is_err() {
                    return fail("counter gone");
                }
                say("DONE")?;
            }
            ["quit"] => break,
            _ => say(&format!("ERROR unknown command {line:?}"))?,
        }
    }
    Ok(())
}

/// `serve-peerchat --nodes N`: N peerchat nodes (real actors) on 127.0.0.1 in one actix
/// system. Each node's events are consumed, as a console would.
pub fn serve_peerchat(nodes: usize) -> Res<()> {
    let system = actix_rt::System::new();
    system.block_on(async move {
        let stats = Stats::new();
        let mut ports = Vec::with_capacity(nodes);
        let mut running = Vec::with_capacity(nodes);
        // One stream and one consumer for every node's events, as the baseline's nodes share
        // one console channel and task. A stream per node, merged with `select_all`, cost
        // the receiving process a wake-up and a poll of the merge per batch, which the
        // baseline does not pay: in a fan-out to 1000, about 1,600 instructions and 14
        // simulated cache misses per chat with the streams' own polls (callgrind,
        // docs/performance.md).
        let (sink, mut events) = EventStream::shared();
        for i in 0..nodes {
            let node = Node::start(bench_config(&format!("peer{i}"))).await?;
            ports.push(node.listen_addr().port());
            node.events_to(&sink);
            running.push(node);
        }
        drop(sink);
        let consumer = stats.clone();
        actix_rt::spawn(async move {
            while let Some(event) = events.next().await {
                match event {
                    NodeEvent::PeerConnected { .. } => consumer.bump(&consumer.connected),
                    NodeEvent::PeerDisconnected { .. } => consumer.bump(&consumer.disconnected),
                    NodeEvent::ConnectionRefused { .. } => consumer.bump(&consumer.refused),
                    NodeEvent::ChatReceived { .. } => consumer.chats.set(consumer.chats.get() + 1),
                    _ => {}
                }
            }
        });
        ready(&ports)?;
        control(stats).await?;
        // A thousand nodes need not be taken down one by one.
        std::process::exit(0)
    })
}

/// A node as the bench runs it: `NodeConfig::local` with the limits against floods lifted
/// (sessions per IP, chats per second per peer; docs/limits.md), because every load here
/// comes from one host, and the stream scenario is one peer sending as fast as it can.
pub fn bench_config(name: &str) -> NodeConfig {
    let mut config = NodeConfig::local(name);
    config.limits.max_sessions = 1_000_000;
    config.limits.max_sessions_per_ip = 1_000_000;
    config.limits.chats = peerchat_actors::limits::Rate {
        per_second: 1e12,
        burst: 1e12,
    };
    config
}

/// A single-threaded tokio runtime with a LocalSet: what an actix system runs on, too.
pub fn local_runtime<T>(fut: impl std::future::Future<Output = T>) -> Res<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    Ok(local.block_on(&runtime, fut))
}

/// Starts `nodes` baseline nodes on 127.0.0.1, each with a key of its own (as each peerchat
/// node has), their chats to `console`; `serving(node)` makes what serves each connection
/// accepted by that node. Answers their ports. (The floor's child starts its nodes this way
/// too, floor.rs.)
pub(crate) async fn start_baseline_nodes<S, F>(
    nodes: usize,
    stats: &Rc<Stats>,
    console: &mpsc::UnboundedSender<(SocketAddr, u64, String)>,
    mut serving: impl FnMut(Rc<BaseNode>) -> S,
) -> Res<Vec<u16>>
where
    S: Fn(TcpStream) -> F + 'static,
    F: std::future::Future<Output = ()> + 'static,
{
    let mut ports = Vec::with_capacity(nodes);
    for i in 0..nodes {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let port = listener.local_addr()?.port();
        ports.push(port);
        let node = BaseNode::new(
            Identity::new(format!("peer{i}"), port)?,
            stats.clone(),
            console.clone(),
        );
        let serve = serving(node);
        tokio::task::spawn_local(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        tokio::task::spawn_local(serve(stream));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
    }
    Ok(ports)
}

/// `serve-baseline --nodes N`: N baseline nodes (plain tokio) on 127.0.0.1.
pub fn serve_baseline(nodes: usize) -> Res<()> {
    local_runtime(async move {
        let stats = Stats::new();
        let (chats_tx, chats_rx) = mpsc::unbounded_channel();
        tokio::task::spawn_local(baseline::console(chats_rx, stats.clone()));
        let ports = start_baseline_nodes(nodes, &stats, &chats_tx, |node| {
            move |stream| baseline::serve_conn(stream, node.clone())
        })
        .await?;
        ready(&ports)?;
        control(stats).await?;
        std::process::exit(0)
    })?
}

/// `serve-raw`: the raw-TCP limit's receiver. Per connection: an 8-byte count N, then N
/// length-prefixed frames, which it parses (lengths only) and answers with one byte.
pub fn serve_raw() -> Res<()> {
    local_runtime(async move {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        ready(&[listener.local_addr()?.port()])?;
        tokio::task::spawn_local(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::task::spawn_local(async move {
                    let _ = raw_sink(stream).await;
                });
            }
        });
        control(Stats::new()).await?;
        std::process::exit(0)
    })?
}

async fn raw_sink(mut stream: TcpStream) -> Res<()> {
    stream.set_nodelay(true)?;
    let count = stream.read_u64().await?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut have = 0;
    let mut frames = 0u64;
    while frames < count {
        let n = stream.read(&mut buf[have..]).await?;
        if n == 0 {
            return fail("raw sender closed early");
        }
        have += n;
        let mut at = 0;
        while frames < count && have - at >= 4 {
            let mut prefix = [0u8; 4];
            prefix.copy_from_slice(&buf[at..at + 4]);
            let len = u32::from_be_bytes(prefix) as usize;
            if have - at < 4 + len {
                break;
            }
            at += 4 + len;
            frames += 1;
        }
        buf.copy_within(at..have, 0);
        have -= at;
    }
    stream.write_all(&[1]).await?;
    Ok(())
}

/// `startup-baseline`: the smallest tokio program that listens and says so, for the start-up
/// scenario. Prints the same kind of line as peerchat, then waits for the end of stdin.
pub fn startup_baseline() -> Res<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let addr = runtime.block_on(async {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let addr = listener.local_addr()?;
        Ok::<_, std::io::Error>((listener, addr))
    })?;
    say(&format!("b listening on {} (baseline)", addr.1))?;
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(addr.0);
    Ok(())
}
