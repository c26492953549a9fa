//! Supervision scenario: how long a supervised actor takes to serve again after it crashed.
//! The node runs in this process, in an actix system of its own; every round injects a
//! crash and measures until the restarted actor has answered.

use std::time::{Duration, Instant};

use peerchat_actors::child::ChildName;
use peerchat_actors::config::RestartPolicy;
use peerchat_actors::events::SupervisionStep;
use peerchat_actors::faults::{ActorFault, Fault};
use peerchat_actors::noise::{Handshake, HandshakeCodec, HandshakeOptions, StaticKeypair};
use peerchat_actors::wire::Hello;
use peerchat_actors::{Node, NodeConfig, NodeEvent};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

use crate::sys::{fail, Res};

/// Every wait is bounded by this.
const PATIENCE: Duration = Duration::from_secs(10);

async fn node() -> Res<Node> {
    let mut config = NodeConfig::local("bench");
    // Crashing on purpose, again and again: the budget must not end the node.
    config.restarts = RestartPolicy {
        max_restarts: usize::MAX,
        window: Duration::from_millis(1),
    };
    Ok(Node::start(config).await?)
}

/// Registry: from the crash until the restarted Registry answers a request (the list of
/// peers), in microseconds, one sample per round.
pub fn registry_restart(rounds: usize) -> Res<Vec<f64>> {
    actix_rt::System::new().block_on(async move {
        let node = node().await?;
        let mut events = node.events();
        node.peers().await?;
        let mut samples = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let started = Instant::now();
            node.inject(Fault::Actor(ChildName::Registry, ActorFault::Crash))
                .await?;
            // Queued behind the crash: answered by the next incarnation.
            node.peers().await?;
            samples.push(started.elapsed().as_secs_f64() * 1e6);
        }
        // Each round really was a restart.
        let mut restarts = 0;
        while restarts < rounds {
            events
                .wait_for(PATIENCE, |e| match e {
                    NodeEvent::Supervision {
                        actor: ChildName::Registry,
                        step: SupervisionStep::Restarted,
                    } => Some(()),
                    _ => None,
                })
                .await?;
            restarts += 1;
        }
        Ok(samples)
    })
}

/// Listener: from the crash until a new connection gets the restarted Listener's Session's
/// `hello`, in microseconds, one sample per round.
pub fn listener_restart(rounds: usize) -> Res<Vec<f64>> {
    actix_rt::System::new().block_on(async move {
        let node = node().await?;
        let mut events = node.events();
        let addr = node.peer_addr().socket_addr();
        let mut samples = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let started = Instant::now();
            node.inject(Fault::Actor(ChildName::Listener, ActorFault::Crash))
                .await?;
            // Once the failure is reported the old socket is closed: what answers now is
            // the new incarnation.
            events
                .wait_for(PATIENCE, |e| match e {
                    NodeEvent::Supervision {
                        actor: ChildName::Listener,
                        step: SupervisionStep::Failed { .. },
                    } => Some(()),
                    _ => None,
                })
                .await?;
            loop {
                if started.elapsed() > PATIENCE {
                    return fail("the Listener did not serve again within 10 s");
                }
                if hello_from(addr).await {
                    break;
                }
                tokio::task::yield_now().await;
            }
            samples.push(started.elapsed().as_secs_f64() * 1e6);
        }
        Ok(samples)
    })
}

/// True if a connection to `addr` is accepted and answers the first handshake message with
/// the second (which carries its `hello`).
async fn hello_from(addr: std::net::SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return false;
    };
    let Ok(keys) = StaticKeypair::generate() else {
        return false;
    };
    let hello = Hello::new("probe", 0);
    let Ok((_, message_1)) = Handshake::initiator(&keys, &hello, HandshakeOptions::default())
    else {
        return false;
    };
    if tokio::io::AsyncWriteExt::write_all(&mut stream, &message_1)
        .await
        .is_err()
    {
        return false;
    }
    let mut buf = bytes::BytesMut::with_capacity(256);
    loop {
        match HandshakeCodec.decode(&mut buf) {
            Ok(Some(_)) => return true,
            Err(_) => return false,
            Ok(None) => {}
        }
        match tokio::time::timeout(PATIENCE, stream.read_buf(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return false,
        }
    }
}
