//! Several hosts on one machine: Linux network namespaces joined by bridges, each running the
//! real `peerchat` binary, driven through its stdin and stdout (process.rs). Needs root and
//! `ip`; elsewhere a lab is not built and the test returns after a printed note.
//!
//! Everything of a lab lives in namespaces of its own, the bridges too (in a "switch"
//! namespace), so nothing touches the machine's own network and two labs may use the same
//! subnets. Namespaces are named `pcmh-PID-N-ROLE`: a lab's `Drop` deletes its own (also when
//! the test panics), and the first lab of a test process deletes those left by processes that
//! are gone (a crashed run), with anything still running in them.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};
use std::time::Duration;

use super::process::Peerchat;

/// Every namespace a lab makes starts with this.
const PREFIX: &str = "pcmh-";

/// The first subnet (10.231.1.0/24) and the second one, for a host with two interfaces.
pub const SUBNET_1: [u8; 3] = [10, 231, 1];
pub const SUBNET_2: [u8; 3] = [10, 231, 2];

/// Timeouts short enough for a test to see a dead link and a give-up within seconds: a ping
/// after 200 ms of silence, a link silent for 1.2 s is dead, an unacked chat is resent after
/// 2 s, redials back off up to 500 ms.
pub const FAST: &[&str] = &[
    "--ping-interval",
    "200ms",
    "--idle-timeout",
    "1200ms",
    "--connect-timeout",
    "1s",
    "--ack-timeout",
    "2s",
    "--max-backoff",
    "500ms",
];

/// Runs `ip ARGS`; panics with its stderr if it fails (a lab that cannot be built is a
/// failed test once the machine said it can build labs).
fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("ip {args:?}: {err}"));
    assert!(
        out.status.success(),
        "ip {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ip_output(args: &[&str]) -> String {
    Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default()
}

/// Why labs cannot be built here, if they cannot (found out once per test process).
fn unavailable() -> Option<String> {
    static ANSWER: OnceLock<Option<String>> = OnceLock::new();
    ANSWER.get_or_init(probe).clone()
}

fn probe() -> Option<String> {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_default();
    if uid != "0" {
        return Some(format!("not root (uid {uid:?})"));
    }
    match Command::new("ip").arg("-V").output() {
        Ok(out) if out.status.success() => {}
        _ => return Some("no `ip` command (iproute2)".into()),
    }
    // Root in a container without CAP_NET_ADMIN cannot make namespaces.
    let probe = format!("{PREFIX}{}-probe", std::process::id());
    let made = Command::new("ip")
        .args(["netns", "add", &probe])
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false);
    if !made {
        return Some("`ip netns add` is not allowed here".into());
    }
    let _ = Command::new("ip").args(["netns", "del", &probe]).output();
    None
}

/// Deletes namespaces of ours whose test process is gone, killing what still runs there.
fn remove_stale() {
    let mine = std::process::id();
    for line in ip_output(&["netns", "list"]).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid == mine || std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        for pid in ip_output(&["netns", "pids", name]).split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
        let _ = Command::new("ip").args(["netns", "del", name]).status();
    }
}

/// One host: a namespace with its interfaces.
#[derive(Debug, Clone)]
pub struct Host {
    pub ns: String,
    /// Its address on each interface, `eth0` first.
    pub ips: Vec<Ipv4Addr>,
    /// The switch-side end of each interface's cable, for cutting it.
    ports: Vec<String>,
}

impl Host {
    /// Its first address.
    pub fn ip(&self) -> Ipv4Addr {
        self.ips[0]
    }
}

/// A set of namespaces, removed when dropped.
pub struct Lab {
    id: String,
    switch: String,
    namespaces: Vec<String>,
    data_dirs: Vec<PathBuf>,
}

static NEXT_LAB: AtomicUsize = AtomicUsize::new(0);
static STALE_REMOVED: Once = Once::new();

impl Lab {
    /// An empty lab with its switch, or `None` (after a note) where labs cannot be built.
    fn new(test: &str) -> Option<Lab> {
        if let Some(why) = unavailable() {
            println!("skipped {test}: multi-host tests need root and `ip netns` ({why})");
            return None;
        }
        STALE_REMOVED.call_once(remove_stale);
        let id = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            NEXT_LAB.fetch_add(1, Ordering::SeqCst)
        );
        let mut lab = Lab {
            switch: format!("{id}-sw"),
            id,
            namespaces: Vec::new(),
            data_dirs: Vec::new(),
        };
        let switch = lab.switch.clone();
        lab.add_namespace(&switch);
        Some(lab)
    }

    fn add_namespace(&mut self, ns: &str) {
        ip(&["netns", "add", ns]);
        self.namespaces.push(ns.to_string());
        ip(&["-n", ns, "link", "set", "lo", "up"]);
    }

    fn add_bridge(&mut self, bridge: &str) {
        ip(&["-n", &self.switch, "link", "add", bridge, "type", "bridge"]);
        ip(&["-n", &self.switch, "link", "set", bridge, "up"]);
    }

    /// A host `role` with one interface per (bridge, address) pair: eth0, eth1, ...
    fn add_host(&mut self, role: &str, links: &[(&str, Ipv4Addr)]) -> Host {
        let ns = format!("{}-{role}", self.id);
        self.add_namespace(&ns);
        let mut host = Host {
            ns: ns.clone(),
            ips: Vec::new(),
            ports: Vec::new(),
        };
        for (index, (bridge, addr)) in links.iter().enumerate() {
            let dev = format!("eth{index}");
            // Interface names are per namespace: short ones suffice in the switch too.
            let port = format!("{role}-{index}");
            ip(&[
                "link",
                "add",
                &dev,
                "netns",
                &ns,
                "type",
                "veth",
                "peer",
                "name",
                &port,
                "netns",
                &self.switch,
            ]);
            ip(&["-n", &self.switch, "link", "set", &port, "master", bridge]);
            ip(&["-n", &self.switch, "link", "set", &port, "up"]);
            ip(&["-n", &ns, "addr", "add", &format!("{addr}/24"), "dev", &dev]);
            ip(&["-n", &ns, "link", "set", &dev, "up"]);
            host.ips.push(*addr);
            host.ports.push(port);
        }
        host
    }

    /// Three hosts on one bridge: 10.231.1.1, .2 and .3.
    pub fn three_hosts(test: &str) -> Option<(Lab, [Host; 3])> {
        let mut lab = Lab::new(test)?;
        lab.add_bridge("br1");
        let a = lab.add_host("a", &[("br1", addr(SUBNET_1, 1))]);
        let b = lab.add_host("b", &[("br1", addr(SUBNET_1, 2))]);
        let c = lab.add_host("c", &[("br1", addr(SUBNET_1, 3))]);
        Some((lab, [a, b, c]))
    }

    /// Two subnets that nothing routes between, `multi` on both (10.231.1.1 on eth0,
    /// 10.231.2.1 on eth1), `left` (10.231.1.2) and `right` (10.231.2.2) on one each, and
    /// `wide` on both too (10.231.1.4, 10.231.2.4): it can reach either address of `multi`.
    pub fn two_subnets(test: &str) -> Option<(Lab, TwoSubnets)> {
        let mut lab = Lab::new(test)?;
        lab.add_bridge("br1");
        lab.add_bridge("br2");
        let multi = lab.add_host(
            "m",
            &[("br1", addr(SUBNET_1, 1)), ("br2", addr(SUBNET_2, 1))],
        );
        let left = lab.add_host("l", &[("br1", addr(SUBNET_1, 2))]);
        let right = lab.add_host("r", &[("br2", addr(SUBNET_2, 2))]);
        let wide = lab.add_host(
            "w",
            &[("br1", addr(SUBNET_1, 4)), ("br2", addr(SUBNET_2, 4))],
        );
        Some((
            lab,
            TwoSubnets {
                multi,
                left,
                right,
                wide,
            },
        ))
    }

    /// Pulls the cable of `host`'s interface `index`: its switch port goes down, so the
    /// host's packets vanish without any error, as on a real cut.
    pub fn cut(&self, host: &Host, index: usize) {
        ip(&[
            "-n",
            &self.switch,
            "link",
            "set",
            &host.ports[index],
            "down",
        ]);
    }

    /// Plugs the cable back in.
    pub fn mend(&self, host: &Host, index: usize) {
        ip(&["-n", &self.switch, "link", "set", &host.ports[index], "up"]);
    }

    /// Starts `peerchat` as `name` on `host`, listening on `bind` port 0, with `extra`
    /// options; waits for its menu.
    pub fn start(&mut self, host: &Host, name: &str, bind: &str, extra: &[&str]) -> Node {
        let dir = std::env::temp_dir().join(format!("{}-{name}", self.id));
        let _ = std::fs::remove_dir_all(&dir);
        self.data_dirs.push(dir.clone());
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &host.ns, env!("CARGO_BIN_EXE_peerchat")])
            .args([
                "--name", name, "--port", "0", "--bind", bind, "--color", "never",
            ])
            .args(isolation_args(&dir))
            .args(extra);
        let mut process = Peerchat::spawn(command);
        let port = process.listening_port();
        process.expect("Choose an option: ");
        Node {
            process,
            name: name.to_string(),
            port,
        }
    }
}

/// What keeps a node of a test from the user's files and from the other nodes: a data
/// directory of its own. (With protocol v2's `--ephemeral`, that flag would do; one place
/// to change.)
fn isolation_args(dir: &std::path::Path) -> Vec<String> {
    vec!["--data-dir".into(), dir.display().to_string()]
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Hosts first, then the switch; processes still inside are killed with their
        // namespace's last reference gone (their `Peerchat` guard kills them too).
        for ns in self.namespaces.iter().rev() {
            for pid in ip_output(&["netns", "pids", ns]).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        for dir in &self.data_dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The hosts of [`Lab::two_subnets`].
pub struct TwoSubnets {
    pub multi: Host,
    pub left: Host,
    pub right: Host,
    pub wide: Host,
}

pub fn addr(subnet: [u8; 3], host: u8) -> Ipv4Addr {
    Ipv4Addr::new(subnet[0], subnet[1], subnet[2], host)
}

/// A running `peerchat` in a lab.
pub struct Node {
    pub process: Peerchat,
    pub name: String,
    pub port: u16,
}

impl Node {
    /// Its address as `IP:PORT` for an IP of its host.
    pub fn at(&self, ip: Ipv4Addr) -> String {
        format!("{ip}:{}", self.port)
    }

    /// Sends `text` to `to` with `/msg` (no menu redrawn).
    pub fn send(&mut self, to: &str, text: &str) {
        self.process.type_lines(&[&format!("/msg {to} {text}")]);
    }

    /// Waits until `text` from `to` is reported delivered.
    pub fn delivered(&mut self, to: &str, text: &str, wait: Duration) {
        self.process
            .expect_within(&format!("delivered to {to}: {text}"), wait);
    }

    /// Waits until a chat `text` from `from` (`name (IP:PORT)`) is shown.
    pub fn received(&mut self, from: &str, text: &str, wait: Duration) {
        self.process.expect_within(&format!("{from}: {text}"), wait);
    }

    /// Asks for the peer list (`/peers`) and returns it, up to its prompt (prompts of
    /// earlier commands still unread are passed over).
    pub fn peer_list(&mut self) -> String {
        self.process.type_lines(&["/peers"]);
        loop {
            let listing = self.process.expect("Choose an option: ");
            let start = ["Known peers:", "No known peers yet."]
                .iter()
                .filter_map(|header| listing.rfind(header))
                .max();
            if let Some(start) = start {
                return listing[start..].to_string();
            }
        }
    }

    /// Quits with `/quit` and waits for the process to end.
    pub fn quit(&mut self) {
        self.process.type_lines(&["/quit"]);
        assert!(
            self.process.wait().success(),
            "{} did not quit cleanly",
            self.name
        );
    }
}

/// Every chat text in `output` received from `who`, in order (lines `... who (ADDR): TEXT`).
pub fn texts_from(output: &str, who: &str) -> Vec<String> {
    let marker = format!("{who} (");
    output
        .lines()
        .filter_map(|line| {
            let rest = &line[line.find(&marker)? + marker.len()..];
            let text = &rest[rest.find("): ")? + 3..];
            Some(text.to_string())
        })
        .collect()
}
