//! How fast one source IP may have classic texts handled. A classic sender opens a connection
//! per text and nothing authenticates it, so without a rate one host could fill the console
//! and push the history out as fast as it can connect. Past the rate a text waits its turn
//! before the Registry sees it (its sender waits for its `[ACK]`), as a peerchat Session stops
//! reading a peer past its chat rate: slowed, not dropped. Plain data, owned by the Registry.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::limits::Rate;

/// Most source IPs with a schedule at once. Past it, the IPs owed nothing (quiet long enough)
/// are dropped; if none is, a text from a new IP is refused: the table stays bounded whatever
/// the number of addresses a flood comes from.
pub const MAX_CLASSIC_SOURCES: usize = 4096;

/// Each source IP's turns for classic texts. Texts from one IP arrive at once on connections
/// of their own, so each needs its own turn, not a share of one pause: per IP the moment its
/// next text would be on time if there were no burst (a "theoretical arrival time", as in
/// GCRA). `burst` texts may be that far ahead; each text moves it on by one interval.
#[derive(Debug, Default)]
pub struct ClassicRates {
    next_due: HashMap<IpAddr, Instant>,
}

impl ClassicRates {
    /// No source seen yet.
    pub fn new() -> Self {
        ClassicRates::default()
    }

    /// How long a text from `ip` waits before it is handled: zero within `rate` and its burst,
    /// else until its turn. `None` (close without a reply; nothing is counted) when that
    /// would be longer than `longest`, or when the table is full of IPs still owed a wait.
    pub fn turn(
        &mut self,
        ip: IpAddr,
        rate: Rate,
        now: Instant,
        longest: Duration,
    ) -> Option<Duration> {
        if !self.next_due.contains_key(&ip) && self.next_due.len() >= MAX_CLASSIC_SOURCES {
            self.next_due.retain(|_, due| *due > now);
            if self.next_due.len() >= MAX_CLASSIC_SOURCES {
                return None;
            }
        }
        let interval = Duration::from_secs_f64(1.0 / rate.per_second.max(1e-3));
        let ahead = interval.mul_f64((rate.burst.max(1.0) - 1.0).min(1e6));
        let due = self.next_due.get(&ip).copied().unwrap_or(now).max(now);
        // Its turn: `ahead` before it is due (the burst), and not before now.
        let wait = due.saturating_duration_since(now).saturating_sub(ahead);
        if wait > longest {
            return None;
        }
        self.next_due.insert(ip, due + interval);
        Some(wait)
    }

    /// Source IPs with a schedule.
    pub fn len(&self) -> usize {
        self.next_due.len()
    }

    /// No source IP has a schedule.
    pub fn is_empty(&self) -> bool {
        self.next_due.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate {
        per_second: 10.0,
        burst: 3.0,
    };
    const LONGEST: Duration = Duration::from_secs(5);

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 168, 1, last])
    }

    #[test]
    fn a_burst_goes_at_once_then_each_text_waits_its_own_turn() {
        let mut rates = ClassicRates::new();
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(rates.turn(ip(1), RATE, now, LONGEST), Some(Duration::ZERO));
        }
        // Past the burst, all at the same moment: a tenth of a second apart, each its own.
        let waits: Vec<Duration> = (0..4)
            .map(|_| rates.turn(ip(1), RATE, now, LONGEST).unwrap())
            .collect();
        let tenths: Vec<u128> = waits.iter().map(|w| (w.as_millis() + 50) / 100).collect();
        assert_eq!(tenths, [1, 2, 3, 4], "{waits:?}");
        // Another IP is not slowed by the first.
        assert_eq!(rates.turn(ip(2), RATE, now, LONGEST), Some(Duration::ZERO));
        // Once the first's texts are past, it has its burst back.
        let later = now + Duration::from_secs(2);
        for _ in 0..3 {
            assert_eq!(
                rates.turn(ip(1), RATE, later, LONGEST),
                Some(Duration::ZERO)
            );
        }
    }

    #[test]
    fn a_text_that_would_wait_too_long_is_refused_and_not_counted() {
        let mut rates = ClassicRates::new();
        let now = Instant::now();
        let short = Duration::from_millis(250);
        let turns: Vec<Option<Duration>> = (0..7)
            .map(|_| rates.turn(ip(1), RATE, now, short))
            .collect();
        assert_eq!(&turns[..3], &[Some(Duration::ZERO); 3]);
        assert!(turns[3].is_some() && turns[4].is_some(), "{turns:?}");
        assert_eq!(&turns[5..], &[None, None], "{turns:?}");
        // The refused ones took no turn: a tenth of a second on, the next one's wait is
        // what the sixth's was less that tenth.
        let soon = now + Duration::from_millis(100);
        let wait = rates.turn(ip(1), RATE, soon, short).unwrap();
        assert_eq!((wait.as_millis() + 50) / 100, 2, "{wait:?}");
    }

    #[test]
    fn the_table_stays_bounded_and_forgets_quiet_ips_first() {
        let mut rates = ClassicRates::new();
        let now = Instant::now();
        let ip_n = |n: usize| IpAddr::from([10, (n >> 16) as u8, (n >> 8) as u8, n as u8]);
        for n in 0..MAX_CLASSIC_SOURCES {
            assert!(rates.turn(ip_n(n), RATE, now, LONGEST).is_some());
        }
        // Every IP is owed a wait (each took a turn): a new IP is refused, nothing grows.
        assert_eq!(
            rates.turn(ip_n(MAX_CLASSIC_SOURCES), RATE, now, LONGEST),
            None
        );
        assert_eq!(rates.len(), MAX_CLASSIC_SOURCES);
        // Once they are owed nothing, they make room.
        let later = now + Duration::from_secs(1);
        assert_eq!(
            rates.turn(ip_n(MAX_CLASSIC_SOURCES), RATE, later, LONGEST),
            Some(Duration::ZERO)
        );
        assert_eq!(rates.len(), 1);
    }
}
