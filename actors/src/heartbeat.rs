//! The heartbeat: one task per node, holding every Session of the node weakly, that tells
//! each of them [`Beat`] once per tick; a Session then pings a quiet peer, or gives up on a
//! silent one (`Session::heartbeat`). It is not an actor: it owns no state anyone asks
//! about, only the list of whom to wake, which Sessions join by a channel.
//!
//! Why not a timer in each Session: actix polls every item an actor holds at every turn of
//! that actor, so a Session's own interval was polled at every frame and every message it
//! handled, about 450 instructions and 5 cache misses per chat received in a fan-out
//! (docs/performance.md, fan-out eighth round). A task per Session instead would cost each
//! of thousands of idle Sessions a few hundred bytes (docs/limits.md). Nor the Registry's
//! tick: a Registry stalled by a fault would silence every Session's pings.

use std::time::Duration;

use actix::prelude::*;
use actix::WeakRecipient;
use tokio::sync::mpsc;

use crate::config::Timeouts;

/// Check the peer's silence now: sent to every Session of the node once per tick.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Beat;

/// A node's heartbeat: Sessions [`join`](Heartbeat::join) it as they start. Cloned into every
/// Session's template; the task ends once no clone is left (no Session, Listener or
/// Registry of the node).
#[derive(Clone, Debug)]
pub struct Heartbeat {
    joins: mpsc::UnboundedSender<WeakRecipient<Beat>>,
}

impl Heartbeat {
    /// Starts the task, beating every [`Heartbeat::tick`] of `timeouts`. Must run inside an
    /// actix system (it spawns on the current one).
    pub fn start(timeouts: &Timeouts) -> Self {
        let period = Self::tick(timeouts);
        let (joins, mut joined) = mpsc::unbounded_channel::<WeakRecipient<Beat>>();
        actix::spawn(async move {
            let mut sessions = Vec::new();
            let start = tokio::time::Instant::now() + period;
            let mut ticks = tokio::time::interval_at(start, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    session = joined.recv() => match session {
                        Some(session) => sessions.push(session),
                        // Every Session holds a clone of the sender: none is left.
                        None => return,
                    },
                    _ = ticks.tick() => beat(&mut sessions),
                }
            }
        });
        Heartbeat { joins }
    }

    /// How often Sessions are told to check: half the shorter of the ping interval and the
    /// idle timeout, so that neither is overshot by more than half, and at least 10 ms.
    pub fn tick(timeouts: &Timeouts) -> Duration {
        (timeouts.ping_interval.min(timeouts.idle) / 2).max(Duration::from_millis(10))
    }

    /// `session` is told [`Beat`] at every tick from now on, until it has stopped.
    pub fn join(&self, session: WeakRecipient<Beat>) {
        // The task ends only when no sender is left, and the caller holds one.
        let _ = self.joins.send(session);
    }
}

/// Tells every Session still running to check; forgets those that have stopped. (`do_send`:
/// a beat goes into a busy Session's mailbox as well, without parking this task on it.)
fn beat(sessions: &mut Vec<WeakRecipient<Beat>>) {
    sessions.retain(|session| match session.upgrade() {
        Some(session) => {
            session.do_send(Beat);
            session.connected()
        }
        None => false,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Says its name on `beats` at every beat; stops on `Stop`.
    struct Named(&'static str, mpsc::UnboundedSender<&'static str>);

    impl Actor for Named {
        type Context = Context<Self>;
    }

    impl Handler<Beat> for Named {
        type Result = ();

        fn handle(&mut self, _: Beat, _: &mut Context<Self>) {
            let _ = self.1.send(self.0);
        }
    }

    #[derive(Message)]
    #[rtype(result = "()")]
    struct Stop;

    impl Handler<Stop> for Named {
        type Result = ();

        fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
            ctx.stop();
        }
    }

    fn fast() -> Timeouts {
        Timeouts {
            ping_interval: Duration::from_millis(20),
            idle: Duration::from_millis(60),
            ..Timeouts::default()
        }
    }

    #[test]
    fn the_tick_is_half_the_shorter_timeout_and_at_least_10_ms() {
        assert_eq!(Heartbeat::tick(&fast()), Duration::from_millis(10));
        let slow = Timeouts {
            ping_interval: Duration::from_secs(8),
            idle: Duration::from_secs(6),
            ..Timeouts::default()
        };
        assert_eq!(Heartbeat::tick(&slow), Duration::from_secs(3));
        let tiny = Timeouts {
            ping_interval: Duration::from_millis(2),
            ..Timeouts::default()
        };
        assert_eq!(Heartbeat::tick(&tiny), Duration::from_millis(10));
    }

    /// The names of the next `count` beats, each within a second.
    async fn next_beats(
        beats: &mut mpsc::UnboundedReceiver<&'static str>,
        count: usize,
    ) -> Vec<&'static str> {
        let mut names = Vec::new();
        for _ in 0..count {
            match tokio::time::timeout(Duration::from_secs(1), beats.recv()).await {
                Ok(Some(name)) => names.push(name),
                _ => panic!("no beat within a second; got {names:?}"),
            }
        }
        names
    }

    #[actix_rt::test]
    async fn every_joined_actor_is_beaten_until_it_stops() {
        let heartbeat = Heartbeat::start(&fast());
        let (tx, mut beats) = mpsc::unbounded_channel();
        let first = Named("first", tx.clone()).start();
        let second = Named("second", tx).start();
        heartbeat.join(first.downgrade().into());
        heartbeat.join(second.downgrade().into());
        let seen = next_beats(&mut beats, 10).await;
        assert!(
            seen.contains(&"first") && seen.contains(&"second"),
            "{seen:?}"
        );
        // The second stops: the first goes on being beaten, the second is not.
        // (A beat already in its mailbox as it stopped may still be told: one at most.)
        second.send(Stop).await.unwrap();
        while beats.try_recv().is_ok() {}
        let mut seen = Vec::new();
        while seen.iter().filter(|name| **name == "first").count() < 5 {
            seen.extend(next_beats(&mut beats, 1).await);
        }
        let second_beats = seen.iter().filter(|name| **name == "second").count();
        assert!(second_beats <= 1, "a stopped actor was beaten: {seen:?}");
    }
}
