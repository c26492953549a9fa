//! An inbound connection until we know what it speaks, and a classic one to its end. The
//! Listener hands every accepted connection to [`route`]: its first byte says peerchat (a
//! Session starts) or classic ([`serve`]: read the text, ask the Registry, reply, close).
//!
//! A classic connection is a plain task, not an actor: it is one exchange (read, its turn
//! asked of the Registry (`ClassicTurn`, the source IP's rate), one `ClassicIncoming`, one
//! reply) that nobody sends messages to, bounded in time and bytes; a mailbox would add
//! nothing. Its end is not reported: no Session, no
//! peer state lives in it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at, Instant};

use crate::classic::text::{
    classify_first_byte, parse_inbound, FirstByte, MAX_INBOUND_BYTES, SENDER_PAUSE,
};
use crate::classic::ClassicConfig;
use crate::events::NodeEvent;
use crate::helpers::human;
use crate::limits::ConnectionSlot;
use crate::registry::{ClassicIncoming, ClassicTurn, Publish};
use crate::session::{Session, SessionTemplate};
use crate::trace::{ask, tell, Role};

/// The longest a classic text waits for its turn under its source's rate: well under the
/// seconds a classic sender waits for its `[ACK]` (`CLASSIC_TIMEOUT`, 5 s).
pub const MAX_CLASSIC_WAIT: Duration = Duration::from_secs(1);

/// What the first byte of a new connection said, or that none came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// A byte, classified.
    First(FirstByte),
    /// Nothing within the wait.
    Silent,
    /// Closed (or failed) before sending anything.
    Closed,
}

/// Looks at the first byte without taking it, waiting at most `wait`.
pub async fn sniff(stream: &TcpStream, wait: Duration) -> Sniffed {
    let mut first = [0u8; 1];
    match timeout(wait, stream.peek(&mut first)).await {
        Err(_) => Sniffed::Silent,
        Ok(Ok(0)) | Ok(Err(_)) => Sniffed::Closed,
        Ok(Ok(_)) => Sniffed::First(classify_first_byte(first[0])),
    }
}

/// An accepted connection, from the Listener: a Session if it speaks peerchat, [`serve`] if
/// classic (unless `--no-classic`), a quiet close otherwise.
pub async fn route(
    stream: TcpStream,
    remote: SocketAddr,
    template: Arc<SessionTemplate>,
    classic: ClassicConfig,
    slot: ConnectionSlot,
) {
    // The dialer speaks first in both protocols (Noise message 1, or a classic text), so a
    // connection that says nothing within the hello timeout is nobody we can serve.
    let sniffed = sniff(&stream, template.timeouts.hello).await;
    let session = |stream, slot| {
        if let Err(err) = Session::start_inbound(stream, template.clone(), slot) {
            tracing::info!(%remote, "connection lost before its session started: {err}");
        }
    };
    match sniffed {
        Sniffed::First(FirstByte::Peerchat) => session(stream, slot),
        Sniffed::First(FirstByte::Classic) if classic.enabled => {
            let deadline = Instant::now() + template.timeouts.hello;
            serve(stream, remote, &template, deadline).await;
            drop(slot);
        }
        Sniffed::First(FirstByte::Classic) => {
            tracing::info!(%remote, "classic connection closed: --no-classic");
        }
        Sniffed::Silent => {
            // Said as a Session says it when a peer stops half-way through the handshake.
            let reason = format!("no handshake within {}", human(template.timeouts.hello));
            let refused = NodeEvent::ConnectionRefused { remote, reason };
            tell(Role::Listener, &template.registry, Publish(refused));
        }
        other => tracing::info!(%remote, "connection closed quietly: {other:?}"),
    }
}

/// One classic connection: reads its text, hands it to the Registry, writes the reply, closes.
/// The text ends when the sender pauses, closes, has sent `MAX_INBOUND_BYTES`, or at
/// `deadline` (a sender that trickles forever).
pub async fn serve(
    mut stream: TcpStream,
    remote: SocketAddr,
    template: &SessionTemplate,
    deadline: Instant,
) {
    let (raw, cut) = read_text(&mut stream, deadline).await;
    // Parsed before any wait: a waiting text holds its exact size, not the read buffer.
    let inbound = parse_inbound(&raw, cut);
    drop(raw);
    // Past its source's rate the text waits its turn, and its sender for the `[ACK]`: at
    // most `MAX_CLASSIC_WAIT`, and never past this connection's time limit. A sender gives
    // up after some seconds (5 for the assignment's programs and ours) and sends again; a
    // text shown after that would be shown twice, so one that would wait longer is closed
    // without a reply at once, which its sender takes as a failure to retry.
    let longest = MAX_CLASSIC_WAIT.min(deadline.saturating_duration_since(Instant::now()));
    let turn = ask(
        Role::Listener,
        &template.registry,
        ClassicTurn {
            ip: remote.ip(),
            longest,
        },
    );
    // Asking is bounded (a stalled Registry), as the reply's write is: nothing is shown
    // yet, so giving up here shows nothing twice. (Not by `deadline`: a text cut at the
    // deadline is still shown, with its warning.)
    match timeout(template.timeouts.hello, turn).await {
        Ok(Ok(Some(wait))) if wait.is_zero() => {}
        Ok(Ok(Some(wait))) => tokio::time::sleep(wait).await,
        Ok(Ok(None)) => {
            tracing::info!(%remote, "classic text refused: over the classic rate of its IP");
            return;
        }
        Ok(Err(_)) | Err(_) => return,
    }
    let asked = ask(
        Role::Listener,
        &template.registry,
        ClassicIncoming {
            remote,
            inbound,
            cut,
        },
    );
    // Not bounded by the time limit: the Registry may be showing the text, and a sender
    // not answered sends it again (shown twice). Its stalls end (`ActorFault::Stall` has a
    // length); its failure answers `Err` at once.
    let Ok(Some(reply)) = asked.await else {
        return;
    };
    let write = async {
        stream.write_all(reply.as_bytes()).await?;
        stream.shutdown().await
    };
    if let Err(err) = timeout(template.timeouts.hello, write)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
    {
        tracing::info!(%remote, "classic reply not written: {err}");
    }
}

/// Reads until the sender pauses for `SENDER_PAUSE`, closes, reaches `MAX_INBOUND_BYTES`, or
/// `deadline` passes; answers the bytes and whether the sender had more to say.
async fn read_text(stream: &mut TcpStream, deadline: Instant) -> (Vec<u8>, bool) {
    let mut raw = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let pause = Instant::now() + SENDER_PAUSE;
        let room = MAX_INBOUND_BYTES - raw.len();
        let read = timeout_at(
            pause.min(deadline),
            stream.read(&mut chunk[..room.min(4096)]),
        );
        match read.await {
            Ok(Ok(0)) | Ok(Err(_)) => return (raw, false),
            Ok(Ok(n)) => {
                raw.extend_from_slice(&chunk[..n]);
                if raw.len() >= MAX_INBOUND_BYTES {
                    return (raw, true);
                }
            }
            // A pause once something came is the end; at the deadline the rest is dropped.
            Err(_) if Instant::now() >= deadline => return (raw, true),
            Err(_) if !raw.is_empty() => return (raw, false),
            Err(_) => {}
        }
    }
}
