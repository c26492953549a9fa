//! One classic message on the wire: connect, send `OUR_IP:OUR_PORT TEAM TEXT`, read the
//! reply, close. The Registry runs it as a task per piece (registry/classic.rs) and learns
//! the outcome by a message; nothing here knows about actors.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::text::{is_ack, message, CLASSIC_READ_BYTES};
use crate::helpers::human;
use crate::peer::PeerAddr;
use crate::sanitize::visible;

/// Sends `text` to the classic peer at `to` as `team` listening on `listen_port`, on a
/// connection of its own; `Ok` once the peer replied `[ACK] ...`. `limit` bounds the connect
/// and, again, the wait for the reply.
pub async fn send_piece(
    to: SocketAddr,
    team: &str,
    listen_port: u16,
    text: &str,
    limit: Duration,
) -> Result<(), String> {
    let mut stream = match timeout(limit, TcpStream::connect(to)).await {
        Err(_) => return Err(format!("no connection within {}", human(limit))),
        Ok(Err(err)) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err("connection refused".into())
        }
        Ok(Err(err)) => return Err(format!("cannot connect: {err}")),
        Ok(Ok(stream)) => stream,
    };
    let ours = stream
        .local_addr()
        .map_err(|err| format!("no local address: {err}"))?;
    // Our IP as this connection shows it, and the port we listen on (not this one's).
    let wire = message(PeerAddr::from_ip_port(ours.ip(), listen_port), team, text);
    let exchange = async {
        stream.write_all(wire.as_bytes()).await?;
        // Our end of the text: a receiver that reads to the end need not wait for a pause.
        stream.shutdown().await?;
        let mut reply = Vec::with_capacity(64);
        let mut chunk = [0u8; 256];
        while reply.len() < CLASSIC_READ_BYTES {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&chunk[..n]);
            if is_ack(&reply) {
                break;
            }
        }
        Ok::<_, std::io::Error>(reply)
    };
    match timeout(limit, exchange).await {
        Err(_) => Err(format!("no [ACK] within {}", human(limit))),
        Ok(Err(err)) => Err(format!("connection failed: {err}")),
        Ok(Ok(reply)) if is_ack(&reply) => Ok(()),
        Ok(Ok(reply)) if reply.is_empty() => Err("closed without a reply".into()),
        Ok(Ok(reply)) => {
            let reply = String::from_utf8_lossy(&reply);
            let reply: String = reply.trim().chars().take(80).collect();
            Err(format!("replied '{}', not [ACK]", visible(&reply)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A classic receiver that reads once and replies `reply`; answers what it read.
    async fn receiver(reply: &'static str) -> (SocketAddr, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = actix_rt::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 1024];
            let n = conn.read(&mut buf).await.unwrap();
            conn.write_all(reply.as_bytes()).await.unwrap();
            String::from_utf8(buf[..n].to_vec()).unwrap()
        });
        (addr, task)
    }

    #[actix_rt::test]
    async fn an_ack_is_delivered() {
        let (addr, got) = receiver("[ACK] Message received from 5000").await;
        let sent = send_piece(addr, "T", 9000, "hello there", Duration::from_secs(5)).await;
        assert_eq!(sent, Ok(()));
        let got = got.await.unwrap();
        assert_eq!(got, "127.0.0.1:9000 T hello there");
    }

    #[actix_rt::test]
    async fn another_reply_or_none_is_an_error() {
        let (addr, _got) = receiver("what?").await;
        let sent = send_piece(addr, "T", 9000, "hi", Duration::from_secs(5)).await;
        assert_eq!(sent, Err("replied 'what?', not [ACK]".into()));
        // Accepts, never replies, never closes.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _hold = actix_rt::spawn(async move {
            let held = listener.accept().await;
            tokio::time::sleep(Duration::from_secs(10)).await;
            drop(held);
        });
        let sent = send_piece(addr, "T", 9000, "hi", Duration::from_millis(300)).await;
        assert_eq!(sent, Err("no [ACK] within 300ms".into()));
    }

    #[actix_rt::test]
    async fn nobody_listening_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let sent = send_piece(addr, "T", 9000, "hi", Duration::from_secs(5)).await;
        assert_eq!(sent, Err("connection refused".into()));
    }
}
