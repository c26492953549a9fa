//! What the bench asks the operating system: descriptor limits, memory use, the machine.

use std::error::Error;
use std::fmt;

/// Errors of the bench: a sentence saying what went wrong.
pub type BoxError = Box<dyn Error + Send + Sync>;
pub type Res<T> = Result<T, BoxError>;

/// A failure described by a sentence.
#[derive(Debug)]
pub struct Failed(pub String);

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for Failed {}

/// `Err(Failed(..))` from anything printable.
pub fn fail<T>(why: impl Into<String>) -> Res<T> {
    Err(Box::new(Failed(why.into())))
}

/// Raises the open-descriptor limit as far as allowed (the hard limit too when running as root,
/// up to 1 << 17). Returns the soft limit now in force.
pub fn raise_fd_limit() -> u64 {
    const WANT: libc::rlim_t = 1 << 17;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur >= WANT {
            return limit.rlim_cur;
        }
        let raised = libc::rlimit {
            rlim_cur: WANT.max(limit.rlim_cur),
            rlim_max: WANT.max(limit.rlim_max),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
            // Not root: the soft limit can still go up to the hard one.
            let soft = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &soft);
        }
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
    }
    limit.rlim_cur
}

/// This process's resident set size in KiB (`VmRSS` of /proc/self/status).
pub fn rss_kib() -> Res<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix("VmRSS:") {
            let number = rest.trim().trim_end_matches("kB").trim();
            return Ok(number.parse()?);
        }
    }
    fail("no VmRSS line in /proc/self/status")
}

/// The soft limit on open descriptors.
pub fn fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 0;
    }
    limit.rlim_cur
}

/// Cores this process may run on.
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// "AMD EPYC 7B13" from /proc/cpuinfo, or "unknown CPU".
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// "Linux 6.1.0" from /proc/sys/kernel/{ostype,osrelease}.
pub fn kernel() -> String {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    format!(
        "{} {}",
        read("/proc/sys/kernel/ostype"),
        read("/proc/sys/kernel/osrelease")
    )
}

/// CPU time the calling thread has used so far (user and system).
pub fn thread_cpu() -> std::time::Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the struct we pass.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } != 0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// CPU time process `pid` has used so far: the sum over its threads of the time the
/// scheduler ran them (`/proc/PID/task/*/schedstat`, in nanoseconds; /proc/PID/stat counts in
/// 10 ms ticks, too coarse for a run of a few tens of milliseconds).
pub fn process_cpu(pid: u32) -> Option<std::time::Duration> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut nanos = 0u64;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue; // a thread that just ended
        };
        nanos += stat
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(std::time::Duration::from_nanos(nanos))
}

/// CPU time a process has used so far, in microseconds: user and system, from
/// `/proc/PID/stat` (`None` for this process). Ticks are 10 ms, so measure spans of seconds.
pub fn cpu_micros(pid: Option<u32>) -> Res<CpuMicros> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(path)?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let Some(after_name) = stat.rfind(')').map(|at| &stat[at + 1..]) else {
        return fail("no ')' in /proc/PID/stat");
    };
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15; field 3 (state) is fields[0] here.
    let (Some(user), Some(system)) = (fields.get(11), fields.get(12)) else {
        return fail("/proc/PID/stat is too short");
    };
    // SAFETY: sysconf only reads a constant of the system.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let micros =
        |ticks: &str| -> Res<u64> { Ok(ticks.parse::<u64>()? * 1_000_000 / ticks_per_second) };
    Ok(CpuMicros {
        user: micros(user)?,
        system: micros(system)?,
    })
}

/// CPU time in user mode and in the kernel, in microseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuMicros {
    pub user: u64,
    pub system: u64,
}
