//! A node start that fails (its port is taken) inside an actix system, after other nodes were
//! started there, and the system then dropped, as the bench's `serve-peerchat` child does when
//! it runs out of ports: nothing may panic on the way down.
//!
//! Why it could: a start never yields, so the actors of the nodes started before have not run
//! yet when the error leaves `block_on`. Dropping the system drops the LocalSet they are
//! spawned on before the Tokio runtime, and actix polls an actor's future once as it drops
//! it: a `started` that never ran runs then, with no runtime entered, and a timer made there
//! panics "there is no reactor running". The Registry's `started` did that with its outbox
//! tick (`run_interval`) until the tick moved to a task of its own (commit 0e4c947); put back,
//! this test fails with exactly that panic.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use peerchat_actors::store::{QueuedChat, Store};
use peerchat_actors::{Node, NodeConfig, StartError};

/// Every panic message from now on, on any thread: Tokio catches a panic in a task it drops,
/// so only the hook sees it.
fn record_panics() -> Arc<Mutex<Vec<String>>> {
    let panics = Arc::new(Mutex::new(Vec::new()));
    let seen = panics.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Ok(mut seen) = seen.lock() {
            seen.push(info.to_string());
        }
        previous(info);
    }));
    panics
}

/// The panics recorded so far (copied out: a failed assertion panics, and the hook locks).
fn recorded(panics: &Mutex<Vec<String>>) -> Vec<String> {
    panics.lock().unwrap().clone()
}

/// Starts `first` and then a node on the port `first` took, in a system dropped at once.
fn start_then_fail_on_a_taken_port(first: NodeConfig) {
    let system = actix_rt::System::new();
    let started = system.block_on(async move {
        let first = Node::start(first).await?;
        let mut taken = NodeConfig::local("second");
        taken.port = first.listen_addr().port();
        Node::start(taken).await.map(|_| ())
    });
    assert!(
        matches!(started, Err(StartError::Bind { .. })),
        "{started:?}"
    );
    drop(system);
}

fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "peerchat-start-failure-{tag}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

// One test per scenario would share the process-wide panic hook: one test, in order.
#[test]
fn a_start_that_fails_after_started_nodes_lets_the_system_drop_without_a_panic() {
    let panics = record_panics();

    // A node with nothing to do.
    start_then_fail_on_a_taken_port(NodeConfig::local("first"));
    assert_eq!(recorded(&panics), Vec::<String>::new());

    // A node whose data directory holds a chat waiting for its peer: its Registry dials at
    // once, with a connect timeout.
    let dir = temp_dir("pending");
    {
        let (mut store, _) = Store::open(&dir).unwrap();
        let waiting = QueuedChat {
            id: 1,
            to: "127.0.0.1:9".into(),
            text: "waiting".into(),
            sent_at_ms: 1,
        };
        store.queued(&waiting).unwrap();
    }
    let mut first = NodeConfig::local("first");
    first.data_dir = Some(dir.clone());
    start_then_fail_on_a_taken_port(first);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(recorded(&panics), Vec::<String>::new());
}
