//! Dialer: the dials under way (with whoever waits for their outcome) and the redials planned
//! for peers that have chats waiting, spaced by `backoff`. A plain struct owned by the
//! Registry, which opens the TCP connections and runs the timers (`T` is its timer handle).

use std::collections::HashMap;
use std::time::Duration;

use actix::SpawnHandle;
use futures::channel::oneshot;

use crate::config::RetryPolicy;
use crate::peer::PeerAddr;
use crate::registry::connections::{ConnectError, ConnectOutcome};

/// Whoever waits for a dial's outcome (a `Connect` or `ConnectAll`).
pub(crate) type DialWaiter = oneshot::Sender<Result<ConnectOutcome, ConnectError>>;

/// The pause before reconnect attempt `attempt` (0 = first): from `first_backoff`, doubling,
/// spread by ±20 % so that many nodes that lost the same peer do not call it together, and
/// never above `max_backoff` nor under a millisecond.
pub fn backoff(policy: &RetryPolicy, attempt: u32, jitter_seed: u64) -> Duration {
    let floor = Duration::from_millis(1);
    let ceiling = policy.max_backoff.max(floor);
    let doubled = policy
        .first_backoff
        .saturating_mul(1u32 << attempt.min(20))
        .min(ceiling);
    // seed -> factor in [0.8, 1.2]
    let spread = (jitter_seed % 4001) as f64 / 10000.0 + 0.8;
    Duration::try_from_secs_f64(doubled.as_secs_f64() * spread)
        .unwrap_or(ceiling)
        .clamp(floor, ceiling)
}

/// Reconnect state of one peer that has chats waiting.
struct Redial<T> {
    attempt: u32,
    timer: T,
}

/// Dials and redials (see the module docs).
pub(crate) struct Dialer<T = SpawnHandle> {
    retry: RetryPolicy,
    dials: HashMap<PeerAddr, Vec<DialWaiter>>,
    redials: HashMap<PeerAddr, Redial<T>>,
}

impl<T> Dialer<T> {
    pub(crate) fn new(retry: RetryPolicy) -> Self {
        Dialer {
            retry,
            dials: HashMap::new(),
            redials: HashMap::new(),
        }
    }

    /// Adds `waiter` to the dial to `to`; true if there was none under way (start one).
    pub(crate) fn begin(&mut self, to: PeerAddr, waiter: Option<DialWaiter>) -> bool {
        let first = !self.dials.contains_key(&to);
        self.dials.entry(to).or_default().extend(waiter);
        first
    }

    pub(crate) fn is_dialing(&self, to: &PeerAddr) -> bool {
        self.dials.contains_key(to)
    }

    /// Someone (a connect asked for by the user) waits for the dial to `to` to end.
    pub(crate) fn has_waiters(&self, to: &PeerAddr) -> bool {
        self.dials
            .get(to)
            .is_some_and(|waiters| !waiters.is_empty())
    }

    /// The dials under way.
    pub(crate) fn dialing(&self) -> Vec<PeerAddr> {
        self.dials.keys().copied().collect()
    }

    /// The dial to `to` has ended: each waiter learns `outcome`. False if none was under way.
    pub(crate) fn finish(
        &mut self,
        to: &PeerAddr,
        outcome: Result<ConnectOutcome, ConnectError>,
    ) -> bool {
        let Some(waiters) = self.dials.remove(to) else {
            return false;
        };
        for waiter in waiters {
            let _ = waiter.send(outcome.clone());
        }
        true
    }

    pub(crate) fn redial_planned(&self, to: &PeerAddr) -> bool {
        self.redials.contains_key(to)
    }

    /// Plans the next reconnect to `to`: `schedule` starts a timer for the pause. Answers the
    /// pause and the timer of the previous plan, to cancel.
    pub(crate) fn plan_redial(
        &mut self,
        to: PeerAddr,
        jitter_seed: u64,
        schedule: impl FnOnce(Duration) -> T,
    ) -> (Duration, Option<T>) {
        let previous = self.redials.remove(&to);
        let attempt = previous.as_ref().map_or(0, |r| r.attempt.saturating_add(1));
        let pause = backoff(&self.retry, attempt, jitter_seed);
        let timer = schedule(pause);
        self.redials.insert(to, Redial { attempt, timer });
        (pause, previous.map(|r| r.timer))
    }

    /// Forgets every planned redial (their timers died with a restarted Registry's context);
    /// answers the peers they were for.
    pub(crate) fn forget_redials(&mut self) -> Vec<PeerAddr> {
        self.redials.drain().map(|(to, _)| to).collect()
    }

    /// `to` is connected: no more redials. Answers the timer to cancel.
    pub(crate) fn cancel_redial(&mut self, to: &PeerAddr) -> Option<T> {
        self.redials.remove(to).map(|r| r.timer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(first_ms: u64, max_ms: u64) -> RetryPolicy {
        RetryPolicy {
            first_backoff: Duration::from_millis(first_ms),
            max_backoff: Duration::from_millis(max_ms),
            give_up_after: Duration::from_secs(60),
        }
    }

    fn peer(port: u16) -> PeerAddr {
        PeerAddr::from_ip_port([127, 0, 0, 1].into(), port)
    }

    #[test]
    fn backoff_doubles_from_the_first_pause() {
        let policy = policy(250, 10_000);
        let no_spread = 2000; // factor 1.0
        let pauses: Vec<u128> = (0..4)
            .map(|attempt| backoff(&policy, attempt, no_spread).as_millis())
            .collect();
        assert_eq!(pauses, [250, 500, 1000, 2000]);
    }

    #[test]
    fn backoff_spreads_by_twenty_percent_either_way() {
        let policy = policy(1000, 10_000);
        assert_eq!(backoff(&policy, 0, 0), Duration::from_millis(800));
        assert_eq!(backoff(&policy, 0, 4000), Duration::from_millis(1200));
        for seed in 0..10_000 {
            let pause = backoff(&policy, 0, seed);
            assert!(pause >= Duration::from_millis(800) && pause <= Duration::from_millis(1200));
        }
    }

    #[test]
    fn backoff_is_never_above_the_maximum() {
        let policy = policy(250, 10_000);
        for attempt in [5, 6, 10, 20, 31, 32, 1000, u32::MAX] {
            for seed in [0, 2000, 4000, u64::MAX] {
                let pause = backoff(&policy, attempt, seed);
                assert!(pause <= policy.max_backoff, "{attempt}/{seed}: {pause:?}");
            }
        }
        // Even where the spread goes up from the cap.
        assert_eq!(backoff(&policy, 10, 4000), policy.max_backoff);
    }

    #[test]
    fn backoff_survives_absurd_settings() {
        let huge = RetryPolicy {
            first_backoff: Duration::MAX,
            max_backoff: Duration::MAX,
            give_up_after: Duration::MAX,
        };
        assert!(backoff(&huge, 3, 4000) <= Duration::MAX);
        let zero = policy(0, 0);
        assert_eq!(backoff(&zero, 0, 0), Duration::from_millis(1));
    }

    #[test]
    fn one_dial_per_peer_and_every_waiter_hears_the_end() {
        let mut dialer: Dialer<u32> = Dialer::new(policy(250, 10_000));
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        assert!(dialer.begin(peer(1), Some(tx1)));
        assert!(
            !dialer.begin(peer(1), Some(tx2)),
            "joins the dial under way"
        );
        assert!(dialer.is_dialing(&peer(1)));
        assert!(dialer.finish(&peer(1), Err(ConnectError::Refused)));
        assert_eq!(rx1.try_recv().unwrap(), Some(Err(ConnectError::Refused)));
        assert_eq!(rx2.try_recv().unwrap(), Some(Err(ConnectError::Refused)));
        assert!(!dialer.finish(&peer(1), Ok(ConnectOutcome::Connected)));
        assert!(dialer.dialing().is_empty());
    }

    #[test]
    fn a_dial_has_waiters_only_when_someone_asked_for_it() {
        let mut dialer: Dialer<u32> = Dialer::new(policy(250, 10_000));
        assert!(dialer.begin(peer(1), None));
        assert!(dialer.is_dialing(&peer(1)) && !dialer.has_waiters(&peer(1)));
        let (tx, _rx) = oneshot::channel();
        dialer.begin(peer(1), Some(tx));
        assert!(dialer.has_waiters(&peer(1)));
        assert!(!dialer.has_waiters(&peer(2)));
        dialer.finish(&peer(1), Err(ConnectError::Refused));
        assert!(!dialer.has_waiters(&peer(1)));
    }

    #[test]
    fn redials_back_off_and_hand_back_the_timer_they_replace() {
        let mut dialer: Dialer<u32> = Dialer::new(policy(100, 1000));
        let mut timers = 0;
        let mut next = |_: Duration| {
            timers += 1;
            timers
        };
        let (first, old) = dialer.plan_redial(peer(1), 2000, &mut next);
        assert_eq!((first, old), (Duration::from_millis(100), None));
        let (second, old) = dialer.plan_redial(peer(1), 2000, &mut next);
        assert_eq!((second, old), (Duration::from_millis(200), Some(1)));
        assert!(dialer.redial_planned(&peer(1)));
        assert!(!dialer.redial_planned(&peer(2)));
        assert_eq!(dialer.cancel_redial(&peer(1)), Some(2));
        // Connected, then lost again: the backoff starts over.
        let (again, old) = dialer.plan_redial(peer(1), 2000, &mut next);
        assert_eq!((again, old), (Duration::from_millis(100), None));
        assert_eq!(dialer.forget_redials(), vec![peer(1)]);
        assert!(!dialer.redial_planned(&peer(1)));
    }
}
