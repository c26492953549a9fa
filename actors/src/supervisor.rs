//! NodeSupervisor: the root of a node's supervision tree. It owns the restart budget (at most
//! N restarts within T, as in Erlang/OTP), hears from its children (Registry, Listener, Console)
//! when they fail and come back, publishes each step as an event, and when the budget runs out
//! escalates: it retires the node and tells whoever waits on `Node::failed`.
//!
//! actix's `Supervisor` restarts an actor that *stops*, keeping its address and mailbox. A
//! handler that *panics* would kill the actor for good, so supervised actors run every handler
//! through [`guarded`], which turns a panic into a stop, and so into a restart.

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::channel::oneshot;

use crate::events::{NodeEvent, SupervisionStep};
use crate::faults::ActorFault;
use crate::listener::Listener;
use crate::registry::{Publish, Registry, Retire};
use crate::trace::{tell, Role, Traced};

/// The supervised children of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChildName {
    /// The Registry.
    Registry,
    /// The Listener.
    Listener,
    /// The Console (in the binary).
    Console,
}

impl fmt::Display for ChildName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChildName::Registry => "registry",
            ChildName::Listener => "listener",
            ChildName::Console => "console",
        })
    }
}

impl std::str::FromStr for ChildName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "registry" => Ok(ChildName::Registry),
            "listener" => Ok(ChildName::Listener),
            "console" => Ok(ChildName::Console),
            other => Err(format!(
                "'{other}' is not an actor: registry, listener or console"
            )),
        }
    }
}

/// Restart intensity: more than `max_restarts` within `window` escalates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Restarts allowed within `window`.
    pub max_restarts: usize,
    /// The window restarts are counted in.
    pub window: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            max_restarts: 10,
            window: Duration::from_secs(10),
        }
    }
}

/// Why a node gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFailure {
    /// What went wrong, for the user.
    pub reason: String,
}

impl fmt::Display for NodeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for NodeFailure {}

// ---- messages the NodeSupervisor handles ----

/// From a child's `restarting` hook: it failed and is being restarted.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ChildFailed {
    /// Which child.
    pub child: ChildName,
    /// Why it failed.
    pub reason: String,
}

/// From a child's `started` hook after a restart: it serves again.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ChildRestarted {
    /// Which child.
    pub child: ChildName,
}

/// Tell the supervisor its children: the Registry publishes supervision events, and both
/// are retired when the node gives up.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Adopt {
    /// The Registry.
    pub registry: Addr<Registry>,
    /// The Listener.
    pub listener: Addr<Listener>,
}

impl fmt::Debug for Adopt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Adopt { registry, listener }")
    }
}

/// Resolves when the node gives up (restart budget exhausted).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct WatchFailure(pub oneshot::Sender<NodeFailure>);

// ---- the actor ----

/// The NodeSupervisor actor (see the module docs).
pub struct NodeSupervisor {
    policy: RestartPolicy,
    restarts: VecDeque<Instant>,
    registry: Option<Addr<Registry>>,
    listener: Option<Addr<Listener>>,
    failure: Option<NodeFailure>,
    watchers: Vec<oneshot::Sender<NodeFailure>>,
}

impl NodeSupervisor {
    /// A supervisor with this restart budget.
    pub fn new(policy: RestartPolicy) -> Self {
        NodeSupervisor {
            policy,
            restarts: VecDeque::new(),
            registry: None,
            listener: None,
            failure: None,
            watchers: Vec::new(),
        }
    }

    fn publish(&self, actor: ChildName, step: SupervisionStep) {
        if let Some(registry) = &self.registry {
            tell(
                Role::Supervisor,
                registry,
                Publish(NodeEvent::Supervision { actor, step }),
            );
        }
    }
}

impl Traced for NodeSupervisor {
    const ROLE: Role = Role::Supervisor;
}

impl Actor for NodeSupervisor {
    type Context = Context<Self>;
}

impl Handler<Adopt> for NodeSupervisor {
    type Result = ();

    fn handle(&mut self, msg: Adopt, _: &mut Context<Self>) {
        self.registry = Some(msg.registry);
        self.listener = Some(msg.listener);
    }
}

impl Handler<ChildFailed> for NodeSupervisor {
    type Result = ();

    fn handle(&mut self, msg: ChildFailed, _: &mut Context<Self>) {
        tracing::warn!(actor = %msg.child, "actor failed: {}; restarting", msg.reason);
        self.publish(
            msg.child,
            SupervisionStep::Failed {
                reason: msg.reason.clone(),
            },
        );
        if self.failure.is_some() {
            return;
        }
        let now = Instant::now();
        self.restarts.push_back(now);
        while self
            .restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.policy.window)
        {
            self.restarts.pop_front();
        }
        if self.restarts.len() > self.policy.max_restarts {
            let reason = format!(
                "{} restarts within {:?} (limit {}); last: {} failed: {}",
                self.restarts.len(),
                self.policy.window,
                self.policy.max_restarts,
                msg.child,
                msg.reason
            );
            tracing::error!("escalating: {reason}");
            self.publish(
                msg.child,
                SupervisionStep::Escalated {
                    reason: reason.clone(),
                },
            );
            let failure = NodeFailure { reason };
            let retire = || Retire {
                reason: "node failed".into(),
            };
            if let Some(registry) = &self.registry {
                tell(Role::Supervisor, registry, retire());
            }
            if let Some(listener) = &self.listener {
                tell(Role::Supervisor, listener, retire());
            }
            for watcher in self.watchers.drain(..) {
                let _ = watcher.send(failure.clone());
            }
            self.failure = Some(failure);
        } else {
            self.publish(
                msg.child,
                SupervisionStep::Restarting {
                    restarts_in_window: self.restarts.len(),
                },
            );
        }
    }
}

impl Handler<ChildRestarted> for NodeSupervisor {
    type Result = ();

    fn handle(&mut self, msg: ChildRestarted, _: &mut Context<Self>) {
        tracing::info!(actor = %msg.child, "actor restarted");
        self.publish(msg.child, SupervisionStep::Restarted);
    }
}

impl Handler<WatchFailure> for NodeSupervisor {
    type Result = ();

    fn handle(&mut self, msg: WatchFailure, _: &mut Context<Self>) {
        match &self.failure {
            Some(failure) => {
                let _ = msg.0.send(failure.clone());
            }
            None => self.watchers.push(msg.0),
        }
    }
}

// ---- what supervised children share ----

/// A child of the NodeSupervisor: it remembers why it failed until its `restarting` hook
/// reports it.
pub trait SupervisedChild: Actor<Context = Context<Self>> + Supervised {
    /// Which child this is, in reports.
    const NAME: ChildName;

    /// Where the reason of the current failure is kept.
    fn failure(&mut self) -> &mut Option<String>;
}

/// Runs one handler body. A panic inside it becomes a failure: the actor stops, its
/// Supervisor restarts it with the same address and mailbox, and this message's sender gets
/// `on_panic()` instead of a dead mailbox.
pub fn guarded<A: SupervisedChild, R>(
    act: &mut A,
    ctx: &mut Context<A>,
    on_panic: impl FnOnce() -> R,
    body: impl FnOnce(&mut A, &mut Context<A>) -> R,
) -> R {
    match catch_unwind(AssertUnwindSafe(|| body(act, ctx))) {
        Ok(result) => result,
        Err(payload) => {
            fail(act, ctx, format!("panic: {}", panic_message(&*payload)));
            on_panic()
        }
    }
}

/// Applies an injected fault to a supervised actor (call it inside [`guarded`]).
pub fn suffer<A: SupervisedChild>(act: &mut A, ctx: &mut Context<A>, fault: ActorFault) {
    match fault {
        ActorFault::Crash => fail(act, ctx, "crash (injected)".into()),
        ActorFault::Panic => panic!("panic (injected)"),
        // `wait` holds back every other message of this actor, as a stuck handler would.
        ActorFault::Stall(how_long) => {
            ctx.wait(actix_rt::time::sleep(how_long).into_actor(act));
        }
    }
}

/// Stops the actor as a failure (its Supervisor restarts it).
pub fn fail<A: SupervisedChild>(act: &mut A, ctx: &mut Context<A>, reason: String) {
    if act.failure().is_none() {
        *act.failure() = Some(reason);
    }
    ctx.stop();
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text.to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "unknown panic".into()
    }
}
