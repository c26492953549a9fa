//! The baseline for the binary scenarios (`serve-printer`): no actors, one tokio task per
//! connection, that decodes each chat, prints the line the peerchat binary prints for it
//! (`[HH:MM:SS] name (address): text`, the text made `visible`) to its stdout, and acks it
//! once printed. `serve-acker` is the same without printing: a receiver that only acks, to
//! show how fast the load generator is.
//!
//! It is written the way a careful program would be: everything read in one go is handled
//! before one write of the lines (stdout) and one write of the acks (socket); the time is
//! formatted once per second and the `name (address): ` prefix once per connection.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use peerchat_actors::sanitize::visible;
use tokio::net::{TcpListener, TcpStream};

use super::proto::{Conn, Incoming};
use crate::baseline::{BaseNode, Identity, Seen, Stats};
use crate::serve::local_runtime;
use crate::sys::Res;

/// `serve-printer` (`print`) or `serve-acker`: listens on 127.0.0.1, says where on stdout, and
/// serves until killed.
pub fn serve(print: bool) -> Res<()> {
    local_runtime(async move {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let port = listener.local_addr()?.port();
        let me = Identity::new("printer", port)?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "printer listening on 127.0.0.1:{port}")?;
            out.flush()?;
        }
        let (console, _unused) = tokio::sync::mpsc::unbounded_channel();
        let node = BaseNode::new(me, Stats::new(), console);
        loop {
            let (stream, _) = listener.accept().await?;
            let node = node.clone();
            tokio::task::spawn_local(async move {
                let _ = serve_conn(stream, node, print).await;
            });
        }
    })?
}

async fn serve_conn(stream: TcpStream, node: Rc<BaseNode>, print: bool) -> Res<()> {
    let remote = stream.peer_addr()?;
    let (mut conn, theirs) = Conn::accept(stream, &node.me).await?;
    let peer = SocketAddr::new(remote.ip(), theirs.listen_port);
    conn.queue_peers(node.register(peer, &theirs.name, theirs.key));
    conn.write().await?;
    let prefix = format!("{} ({peer}): ", visible(&theirs.name));
    let mut seen = Seen::default();
    let mut clock = Clock::default();
    let mut lines: Vec<u8> = Vec::new();
    let mut open = true;
    while open {
        let mut acks = Vec::new();
        let mut pongs = Vec::new();
        let more = conn
            .read_frames(|frame| match frame {
                Incoming::Chat { id, text } => {
                    if seen.first_time(id) && print {
                        lines.extend_from_slice(clock.stamp().as_bytes());
                        lines.extend_from_slice(prefix.as_bytes());
                        lines.extend_from_slice(visible(&text).as_bytes());
                        lines.push(b'\n');
                    }
                    acks.push(id);
                }
                Incoming::Ping(nonce) => pongs.push(nonce),
                Incoming::Bye => open = false,
                Incoming::Ack(_) | Incoming::Other => {}
            })
            .await?;
        open &= more;
        if !lines.is_empty() {
            // Shown before acked: one write for every line of this read.
            let mut out = std::io::stdout().lock();
            out.write_all(&lines)?;
            out.flush()?;
            lines.clear();
        }
        for id in acks {
            conn.queue_ack(id);
        }
        for nonce in pongs {
            conn.queue_pong(nonce);
        }
        if !conn.out.is_empty() {
            conn.write().await?;
        }
    }
    Ok(())
}

/// `[HH:MM:SS] ` in local time, formatted once per second.
#[derive(Default)]
struct Clock {
    second: u64,
    text: String,
}

impl Clock {
    fn stamp(&mut self) -> &str {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if now != self.second || self.text.is_empty() {
            self.second = now;
            self.text = format!("[{}] ", chrono::Local::now().format("%H:%M:%S"));
        }
        &self.text
    }
}
