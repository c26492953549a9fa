//! What every supervised child shares, in one place: the reports it sends its supervisor
//! (`ChildFailed`, `ChildRestarted`), the order it obeys when the node gives up (`Retire`), the
//! [`SupervisedChild`] trait that sends those reports, and [`guarded`] with its
//! [`guarded_handler!`](crate::guarded_handler) macro, which turn a panic in a handler into a
//! supervised restart.
//!
//! actix's `Supervisor` restarts an actor that *stops*, keeping its address and mailbox. A
//! handler that *panics* would kill the actor for good, so supervised actors run every handler
//! through [`guarded`], which turns a panic into a stop, and so into a restart.
//!
//! This module sits below the actors: children hold a [`SupervisorLink`] (two `Recipient`s),
//! not the supervisor's address, so no child depends on the supervisor that starts it.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use actix::prelude::*;

use crate::child::ChildName;
use crate::faults::ActorFault;
use crate::trace::{tell_recipient, Role, Traced};

// ---- messages ----

/// To the NodeSupervisor, from a child's `restarting` hook: it failed and is being restarted.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ChildFailed {
    /// Which child.
    pub child: ChildName,
    /// Why it failed.
    pub reason: String,
}

/// To the NodeSupervisor, from a child's `started` hook after a restart: it serves again.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ChildRestarted {
    /// Which child.
    pub child: ChildName,
}

/// To the Registry and the Listener, from the NodeSupervisor when the node gives up: stop
/// serving (say `bye` to every peer, close the port) and stay stopped across restarts.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Retire {
    /// Said to peers in the `bye`.
    pub reason: String,
}

/// Where a child sends its reports: the supervisor, as two `Recipient`s.
#[derive(Clone)]
pub struct SupervisorLink {
    /// Receives [`ChildFailed`].
    pub failed: Recipient<ChildFailed>,
    /// Receives [`ChildRestarted`].
    pub restarted: Recipient<ChildRestarted>,
}

impl SupervisorLink {
    /// The link to a supervisor that handles both reports.
    pub fn to<S>(supervisor: &Addr<S>) -> Self
    where
        S: Actor + Handler<ChildFailed> + Handler<ChildRestarted>,
        S::Context:
            actix::dev::ToEnvelope<S, ChildFailed> + actix::dev::ToEnvelope<S, ChildRestarted>,
    {
        SupervisorLink {
            failed: supervisor.clone().recipient(),
            restarted: supervisor.clone().recipient(),
        }
    }
}

impl std::fmt::Debug for SupervisorLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SupervisorLink")
    }
}

// ---- the trait ----

/// A child of the NodeSupervisor. It remembers why it failed until its `restarting` hook calls
/// [`report_failure`](SupervisedChild::report_failure), and its `started` hook calls
/// [`report_restart`](SupervisedChild::report_restart) after a restart; both are written once,
/// here.
pub trait SupervisedChild: Actor<Context = Context<Self>> + Supervised + Traced {
    /// Which child this is, in reports.
    const NAME: ChildName;

    /// Where the reason of the current failure is kept.
    fn failure(&mut self) -> &mut Option<String>;

    /// Where reports go.
    fn supervisor(&self) -> &SupervisorLink;

    /// Tells the supervisor this child failed (call it from `Supervised::restarting`).
    fn report_failure(&mut self) {
        let reason = self
            .failure()
            .take()
            .unwrap_or_else(|| "stopped".to_string());
        let report = ChildFailed {
            child: Self::NAME,
            reason,
        };
        tell_recipient(
            Self::ROLE,
            Role::Supervisor,
            &self.supervisor().failed,
            report,
        );
    }

    /// Tells the supervisor this child serves again (call it from `Actor::started` after a
    /// restart).
    fn report_restart(&self) {
        let report = ChildRestarted { child: Self::NAME };
        tell_recipient(
            Self::ROLE,
            Role::Supervisor,
            &self.supervisor().restarted,
            report,
        );
    }
}

// ---- guarded handlers ----

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

/// Writes the `impl Handler<M>` of a supervised actor, its body run through [`guarded`]:
///
/// ```ignore
/// // `SendChat` is handled by `Registry::on_send_chat`; if that panics, the Registry
/// // restarts and the sender gets `Err(SendError::RegistryFailed)`.
/// guarded_handler!(
///     Registry,
///     SendChat,
///     |act, msg, ctx| act.on_send_chat(msg, ctx),
///     on_panic: Err(SendError::RegistryFailed),
/// );
/// // A handler returning `()` needs no `on_panic`.
/// guarded_handler!(Registry, SessionClosed, |act, msg, ctx| act.on_session_closed(msg, ctx));
/// // A result that is not itself a `MessageResponse` names its wrapper.
/// guarded_handler!(
///     Registry,
///     ListPeers as MessageResult<ListPeers>,
///     |act, _msg, _ctx| MessageResult(act.list_peers()),
///     on_panic: MessageResult(Vec::new()),
/// );
/// ```
///
/// It is the `impl Handler` one would write by hand, with the body in `guarded`. A handler
/// whose `on_panic` answer needs a part of the message is written by hand around
/// [`guarded`] (`Disconnect`, `InjectConnection`).
#[macro_export]
macro_rules! guarded_handler {
    ($actor:ty, $msg:ty $(as $result:ty)?, |$act:ident, $m:pat_param, $ctx:pat_param| $body:expr
        $(, on_panic: $on_panic:expr)? $(,)?) => {
        impl ::actix::Handler<$msg> for $actor {
            type Result = $crate::guarded_handler!(@result $msg $(, $result)?);

            fn handle(&mut self, msg: $msg, ctx: &mut ::actix::Context<Self>) -> Self::Result {
                $crate::supervision::guarded(
                    self,
                    ctx,
                    || -> Self::Result { $crate::guarded_handler!(@on_panic $($on_panic)?) },
                    |$act, $ctx| {
                        let $m = msg;
                        $body
                    },
                )
            }
        }
    };
    (@result $msg:ty) => { <$msg as ::actix::Message>::Result };
    (@result $msg:ty, $result:ty) => { $result };
    (@on_panic) => { () };
    (@on_panic $on_panic:expr) => { $on_panic };
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
