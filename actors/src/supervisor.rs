//! NodeSupervisor: the root of a node's supervision tree. It owns the restart budget (at most
//! N restarts within T, as in Erlang/OTP), hears from its children (Registry, Listener, Console)
//! when they fail and come back, publishes each step as an event, and when the budget runs out
//! escalates: it retires the node and tells whoever waits on `Node::failed`.
//!
//! It sits at the top, with `Node`: what its children share (the reports, `Retire`,
//! `guarded`) is in [`crate::supervision`], below the actors, and the supervisor reaches its
//! children through `Recipient`s, so no child depends on it.

use std::collections::VecDeque;
use std::fmt;
use std::time::Instant;

use actix::prelude::*;
use futures::channel::oneshot;

use crate::child::ChildName;
use crate::config::RestartPolicy;
use crate::events::{NodeEvent, SupervisionStep};
use crate::registry::Publish;
use crate::supervision::{ChildFailed, ChildRestarted, Retire};
use crate::trace::{tell_recipient, Role, Traced};

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

/// Tell the supervisor its children: where supervision events are published (the
/// Registry), and whom to retire when the node gives up (the Registry and the Listener).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Adopt {
    /// Publishes supervision events to the node's subscribers.
    pub events: Recipient<Publish>,
    /// Each child that is retired when the node gives up, with its role for the trace.
    pub retire: Vec<(Role, Recipient<Retire>)>,
}

impl fmt::Debug for Adopt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let roles: Vec<&str> = self.retire.iter().map(|(role, _)| role.name()).collect();
        write!(f, "Adopt {{ events, retire: {roles:?} }}")
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
    events: Option<Recipient<Publish>>,
    retire: Vec<(Role, Recipient<Retire>)>,
    failure: Option<NodeFailure>,
    watchers: Vec<oneshot::Sender<NodeFailure>>,
}

impl NodeSupervisor {
    /// A supervisor with this restart budget.
    pub fn new(policy: RestartPolicy) -> Self {
        NodeSupervisor {
            policy,
            restarts: VecDeque::new(),
            events: None,
            retire: Vec::new(),
            failure: None,
            watchers: Vec::new(),
        }
    }

    fn publish(&self, actor: ChildName, step: SupervisionStep) {
        if let Some(events) = &self.events {
            let event = Publish(NodeEvent::Supervision { actor, step });
            tell_recipient(Role::Supervisor, Role::Registry, events, event);
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
        self.events = Some(msg.events);
        self.retire = msg.retire;
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
            for (role, child) in &self.retire {
                let retire = Retire {
                    reason: "node failed".into(),
                };
                tell_recipient(Role::Supervisor, *role, child, retire);
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
