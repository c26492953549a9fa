//! A small TCP relay for fault tests: it sits between two nodes and, on command, adds latency,
//! cuts every connection, black-holes the traffic, or truncates what flows toward the target.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use peerchat_actors::PeerAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyMode {
    /// Delay for every chunk, each direction.
    pub latency: Duration,
    /// Read and discard everything, keep the connections open.
    pub black_hole: bool,
    /// Discard only what flows back from the target (its acks).
    pub black_hole_toward_client: bool,
    /// Bumped to cut every open connection (with a reset).
    pub cut_generation: u64,
    /// When set, forward at most this many more bytes toward the target, then cut.
    pub truncate_after: Option<usize>,
}

pub struct Proxy {
    addr: PeerAddr,
    mode: watch::Sender<ProxyMode>,
    accepted: Arc<AtomicUsize>,
}

impl Proxy {
    pub async fn start(target: PeerAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().into();
        let (mode, watcher) = watch::channel(ProxyMode {
            latency: Duration::ZERO,
            black_hole: false,
            black_hole_toward_client: false,
            cut_generation: 0,
            truncate_after: None,
        });
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        actix_rt::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let watcher = watcher.clone();
                actix_rt::spawn(async move {
                    if let Ok(outbound) = TcpStream::connect(target.socket_addr()).await {
                        relay(inbound, outbound, watcher).await;
                    }
                });
            }
        });
        Proxy {
            addr,
            mode,
            accepted,
        }
    }

    /// Where nodes should connect to reach the target through the proxy.
    pub fn addr(&self) -> PeerAddr {
        self.addr
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn set_latency(&self, latency: Duration) {
        self.mode.send_modify(|m| m.latency = latency);
    }

    pub fn set_black_hole(&self, on: bool) {
        self.mode.send_modify(|m| m.black_hole = on);
    }

    pub fn set_black_hole_toward_client(&self, on: bool) {
        self.mode.send_modify(|m| m.black_hole_toward_client = on);
    }

    pub fn cut_all(&self) {
        self.mode.send_modify(|m| m.cut_generation += 1);
    }

    pub fn truncate_after(&self, bytes: usize) {
        self.mode.send_modify(|m| m.truncate_after = Some(bytes));
    }

    pub fn heal(&self) {
        self.mode.send_modify(|m| {
            m.latency = Duration::ZERO;
            m.black_hole = false;
            m.black_hole_toward_client = false;
            m.truncate_after = None;
        });
    }
}

async fn relay(inbound: TcpStream, outbound: TcpStream, mode: watch::Receiver<ProxyMode>) {
    let generation = mode.borrow().cut_generation;
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    // Each direction ends on its own (a clean close is passed on as a half-close); a cut
    // ends both, since both watch the mode.
    tokio::join!(
        pump(in_read, out_write, mode.clone(), generation, true),
        pump(out_read, in_write, mode, generation, false),
    );
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<ProxyMode>,
    generation: u64,
    toward_target: bool,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut forwarded_since_truncate = 0usize;
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => { let _ = to.shutdown().await; return }
                Ok(n) => n,
            },
            changed = mode.changed() => {
                if changed.is_err() || mode.borrow().cut_generation != generation {
                    return reset(to);
                }
                continue;
            }
        };
        let current = *mode.borrow();
        if current.cut_generation != generation {
            return reset(to);
        }
        if current.black_hole || (current.black_hole_toward_client && !toward_target) {
            continue;
        }
        if !current.latency.is_zero() {
            tokio::time::sleep(current.latency).await;
        }
        let mut chunk = &buf[..n];
        if toward_target {
            if let Some(limit) = current.truncate_after {
                let room = limit.saturating_sub(forwarded_since_truncate);
                if chunk.len() >= room {
                    chunk = &chunk[..room];
                    let _ = to.write_all(chunk).await;
                    return reset(to);
                }
                forwarded_since_truncate += chunk.len();
            }
        }
        if to.write_all(chunk).await.is_err() {
            return;
        }
    }
}

/// Ends a direction the way a broken link looks: the socket is reset, not closed cleanly,
/// once both of its halves are dropped.
#[allow(deprecated)] // SO_LINGER 0 is exactly the point: a reset, not a graceful close.
fn reset(to: tokio::net::tcp::OwnedWriteHalf) {
    let _ = to.as_ref().set_linger(Some(Duration::ZERO));
}
