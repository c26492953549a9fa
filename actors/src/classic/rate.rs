//! How fast one source IP may have classic texts handled. A classic sender opens a connection
//! per text and nothing authenticates it, so without a rate one host could fill the console
//! and push the history out as fast as it can connect. Past the rate a text waits its turn
//! before the Registry sees it (its sender waits for its `[ACK]`), as a peerchat Session stops
//! reading a peer past its chat rate: slowed, not dropped. Plain data, owned by the Registry.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::limits::Rate;

/// Most sources with a schedule at once. Past it, the sources owed nothing (quiet long
/// enough) are dropped, and if none is, the one due soonest: the table stays bounded whatever
/// the number of addresses a flood comes from, and a new source is never locked out (a
/// source forgotten early only gets its burst back sooner).
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
    /// would be longer than `longest`. Texts are counted per source: an IPv4 address, or an
    /// IPv6 /64 (one host's usual share, which it could otherwise spread a flood over).
    pub fn turn(
        &mut self,
        ip: IpAddr,
        rate: Rate,
        now: Instant,
        longest: Duration,
    ) -> Option<Duration> {
        let ip = source(ip);
        if !self.next_due.contains_key(&ip) && self.next_due.len() >= MAX_CLASSIC_SOURCES {
            self.next_due.retain(|_, due| *due > now);
            let soonest = self.next_due.iter().min_by_key(|(_, due)| **due);
            if let Some(soonest) = soonest.map(|(ip, _)| *ip) {
                if self.next_due.len() >= MAX_CLASSIC_SOURCES {
                    self.next_due.remove(&soonest);
                }
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

    /// Sources with a schedule.
    pub fn len(&self) -> usize {
        self.next_due.len()
    }

    /// No source IP has a schedule.
    pub fn is_empty(&self) -> bool {
        self.next_due.is_empty()
    }
}

/// The source a text is counted for: an IPv4 address (also when written IPv4-mapped), or
/// the /64 an IPv6 address is in.
fn source(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !u128::from(u64::MAX);
                IpAddr::V6(prefix.into())
            }
        },
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
        // Every IP is owed a wait (each took a turn): a new one takes the place of the one
        // due soonest, nothing grows, and it is not locked out.
        assert_eq!(
            rates.turn(ip_n(MAX_CLASSIC_SOURCES), RATE, now, LONGEST),
            Some(Duration::ZERO)
        );
        assert_eq!(rates.len(), MAX_CLASSIC_SOURCES);
        // Once they are owed nothing, they make room.
        let later = now + Duration::from_secs(1);
        assert_eq!(
            rates.turn(ip_n(MAX_CLASSIC_SOURCES + 1), RATE, later, LONGEST),
            Some(Duration::ZERO)
        );
        assert_eq!(rates.len(), 1);
    }

    #[test]
    fn one_ipv6_host_is_one_source_and_mapped_ipv4_is_ipv4() {
        let mut rates = ClassicRates::new();
        let now = Instant::now();
        let in_one_64 = |n: u16| IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, n]);
        // Its burst of 3 across three addresses of one /64, then the fourth waits.
        for n in 1..=3 {
            assert_eq!(
                rates.turn(in_one_64(n), RATE, now, LONGEST),
                Some(Duration::ZERO)
            );
        }
        assert!(rates.turn(in_one_64(4), RATE, now, LONGEST).unwrap() > Duration::ZERO);
        // Another /64 is another source.
        let other = IpAddr::from([0x2001, 0xdb8, 0, 2, 0, 0, 0, 1]);
        assert_eq!(rates.turn(other, RATE, now, LONGEST), Some(Duration::ZERO));
        // ::ffff:192.168.1.1 is 192.168.1.1.
        for _ in 0..3 {
            assert_eq!(rates.turn(ip(1), RATE, now, LONGEST), Some(Duration::ZERO));
        }
        let mapped = IpAddr::from(std::net::Ipv4Addr::new(192, 168, 1, 1).to_ipv6_mapped());
        assert!(rates.turn(mapped, RATE, now, LONGEST).unwrap() > Duration::ZERO);
        assert_eq!(rates.len(), 3);
    }
}
