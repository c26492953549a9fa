//! The terminal as a person sees it: the real binary runs in tmux, keys are typed with
//! send-keys and the screen is read with capture-pane. Every wait polls the screen with a
//! bound. Where tmux is not installed, each test says so and passes.

mod common;

use std::io::Write;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::process::Peerchat;
use peerchat_actors::wire::Frame;

const WAIT: Duration = Duration::from_secs(15);
/// Screen polling interval: only a pace for polling, never a synchronisation.
const POLL: Duration = Duration::from_millis(40);
const WIDTH: usize = 120;
const PROMPT: &str = "Choose an option:";
/// What the wrapping shell prints when peerchat ends, before its exit status.
const EXITED: &str = "[peerchat exited with status ";

/// One tmux server (its own socket) with one session running peerchat; killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts `env ENV... peerchat ARGS...` in a detached 120x40 session; `None` (after a
    /// note) when tmux is not installed.
    fn start(test: &str, env: &[&str], args: &[&str]) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            // Straight to stderr, past the test harness's capture, so a run shows it.
            let _ = writeln!(std::io::stderr(), "skipped: tmux not installed ({test})");
            return None;
        }
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let socket = format!(
            "peerchat-{}-{}-{test}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::SeqCst)
        );
        let tmux = Tmux { socket };
        let mut command: Vec<String> = ["-f", "/dev/null", "new-session", "-d", "-s", "t"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        command.extend(["-x".into(), WIDTH.to_string(), "-y".into(), "40".into()]);
        // The shell reports the exit status on screen: tmux's own #{pane_dead_status} is
        // sometimes never filled in (it misses the child's exit now and then).
        command.extend([
            "sh".into(),
            "-c".into(),
            format!("\"$@\"; echo \"{EXITED}$?]\""),
            "sh".into(),
        ]);
        command.push("env".into());
        command.extend(env.iter().map(|s| s.to_string()));
        command.push(env!("CARGO_BIN_EXE_peerchat").into());
        // Nothing kept in the user's data directory, no lock shared with another test.
        command.push("--ephemeral".into());
        command.extend(args.iter().map(|s| s.to_string()));
        // In the same tmux command, so the pane and its last screen stay however soon
        // peerchat ends.
        command.extend(
            [";", "set-option", "-w", "-t", "t", "remain-on-exit", "on"]
                .iter()
                .map(|s| s.to_string()),
        );
        let out = tmux.run(&command.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(out.status.success(), "tmux new-session failed: {out:?}");
        Some(tmux)
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux runs")
    }

    /// Keys by name: "Enter", "Up", "Left", "C-c", "C-d".
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        assert!(self.run(&args).status.success());
    }

    /// Text typed as it is, without Enter.
    fn type_text(&self, text: &str) {
        assert!(self
            .run(&["send-keys", "-t", "t", "-l", text])
            .status
            .success());
    }

    fn screen(&self) -> String {
        let out = self.run(&["capture-pane", "-p", "-t", "t"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The screen with its colours, as SGR escapes.
    fn screen_with_colours(&self) -> String {
        let out = self.run(&["capture-pane", "-p", "-e", "-t", "t"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls the screen until `done` holds; panics with the screen after [`WAIT`].
    fn wait_until(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + WAIT;
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            if Instant::now() > until {
                panic!("{what}: not on screen within {WAIT:?}; screen:\n{screen}");
            }
            std::thread::sleep(POLL);
        }
    }

    fn wait_for(&self, needle: &str) -> String {
        self.wait_until(needle, |screen| screen.contains(needle))
    }

    /// Waits until the last line on screen is exactly `line` (trailing spaces aside).
    fn wait_for_last_line(&self, line: &str) -> String {
        self.wait_until(&format!("last line '{line}'"), |screen| {
            last_line(screen) == line
        })
    }

    /// The port peerchat printed in "NAME listening on IP:PORT".
    fn port(&self) -> u16 {
        let screen = self.wait_for("listening on ");
        let after = screen
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_default();
        after
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port on screen:\n{screen}"))
    }

    /// Waits for peerchat to end and returns its exit status.
    fn wait_for_exit(&self) -> i32 {
        let screen = self.wait_for(EXITED);
        screen
            .split(EXITED)
            .nth(1)
            .and_then(|rest| rest.split(']').next())
            .and_then(|code| code.trim().parse().ok())
            .unwrap_or_else(|| panic!("no exit status on screen:\n{screen}"))
    }

    /// The column of the cursor (0-based).
    fn cursor_x(&self) -> usize {
        let out = self.run(&["display-message", "-p", "-t", "t", "#{cursor_x}"]);
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("no cursor position: {text:?}"))
    }

    fn alive(&self) -> bool {
        !self.screen().contains(EXITED)
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let path = self.run(&["display-message", "-p", "#{socket_path}"]);
        let _ = self.run(&["kill-server"]);
        // kill-server leaves the socket file behind.
        let path = String::from_utf8_lossy(&path.stdout).trim().to_string();
        if !path.is_empty() {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn last_line(screen: &str) -> &str {
    screen
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim_end()
}

fn alice(test: &str, extra: &[&str]) -> Option<Tmux> {
    let mut args = vec![
        "--name",
        "alice",
        "--port",
        "0",
        "--bind",
        "127.0.0.1",
        // The raw test peers never answer pings.
        "--idle-timeout",
        "60s",
    ];
    args.extend_from_slice(extra);
    let tmux = Tmux::start(test, &["-u", "NO_COLOR"], &args)?;
    tmux.wait_for_last_line(PROMPT);
    Some(tmux)
}

#[test]
fn messages_arrive_above_the_line_being_typed() {
    let Some(alice) = alice("arrive", &[]) else {
        return;
    };
    let alice_addr = format!("127.0.0.1:{}", alice.port());
    let (mut bob, bob_port) = Peerchat::start_named("bob", &["--idle-timeout", "60s"]);
    let bob_addr = format!("127.0.0.1:{bob_port}");

    // Half a reply typed, no Enter.
    let draft = "/r thanks bob, I was typ";
    alice.type_text(draft);
    alice.wait_for_last_line(&format!("{PROMPT} {draft}"));

    for text in ["first from bob", "second from bob", "third from bob"] {
        bob.type_lines(&["1", &alice_addr, text]);
        bob.expect(&format!("delivered to {alice_addr}: {text}"));
    }
    let screen = alice.wait_until("bob's three messages", |s| {
        s.contains(&format!("bob ({bob_addr}): third from bob"))
    });
    assert!(screen.contains(&format!("connected to bob ({bob_addr})")));
    assert!(screen.contains(&format!("bob ({bob_addr}): first from bob")));
    assert!(screen.contains(&format!("bob ({bob_addr}): second from bob")));
    // The draft is whole, on the last line, below the messages.
    assert_eq!(last_line(&screen), format!("{PROMPT} {draft}"), "{screen}");
    assert_eq!(
        screen.matches(draft).count(),
        1,
        "draft drawn twice:\n{screen}"
    );

    // Finish the line: it is taken as typed, a reply to the last sender.
    alice.type_text("ing");
    alice.keys(&["Enter"]);
    bob.expect("alice (");
    bob.expect("): thanks bob, I was typing");
    // Shown once, then marked delivered without repeating the text.
    let screen = alice.wait_for("] delivered to bob");
    assert!(screen.contains("/r thanks bob, I was typing"), "{screen}");
    assert_eq!(
        screen.matches("thanks bob, I was typing").count(),
        1,
        "{screen}"
    );
    // A reply on a terminal makes bob the conversation.
    alice.wait_for_last_line("bob>");
}

#[test]
fn a_hostile_peers_escape_sequences_stay_inert_on_screen() {
    let Some(alice) = Tmux::start(
        "hostile",
        &[],
        &[
            "--name",
            "alice",
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--idle-timeout",
            "60s",
            "--color",
            "never",
        ],
    ) else {
        return;
    };
    alice.wait_for_last_line(PROMPT);
    let port = alice.port();
    alice.type_text("draft");
    alice.keys(&["Left", "Left"]);
    alice.wait_for_last_line(&format!("{PROMPT} draft"));

    let mut raw = common::BlockingPeer::connect(port, "\u{1b}]0;pwned\u{7}evil", 1234);
    let chat = Frame::Chat {
        id: 1,
        text: "\u{1b}[2J\u{1b}[31mred\r\u{202e}txt\u{1b}[H".into(),
        sent_at_ms: 0,
    };
    raw.send(&[chat]);
    let shown = "\\u{1b}]0;pwned\\u{7}evil (127.0.0.1:1234): \\u{1b}[2J\\u{1b}[31mred\\r\\u{202e}txt\\u{1b}[H";
    let screen = alice.wait_for(shown);
    // Not cleared, not moved: the first lines are still the banner and the menu.
    let first = screen.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("alice listening on 127.0.0.1:"),
        "{screen}"
    );
    assert!(screen.contains("***** Menu *****"), "{screen}");
    assert_eq!(last_line(&screen), format!("{PROMPT} draft"), "{screen}");
    // The cursor stayed where it was in the line (two left of the end).
    alice.type_text("X");
    alice.wait_for_last_line(&format!("{PROMPT} draXft"));
    // Not coloured red, and the window title was not set.
    let coloured = alice.screen_with_colours();
    assert!(
        !coloured.contains('\u{1b}'),
        "the peer's styling reached the terminal:\n{coloured:?}"
    );
    let title = alice.run(&["display-message", "-p", "-t", "t", "#{pane_title}"]);
    assert!(
        !String::from_utf8_lossy(&title.stdout).contains("pwned"),
        "the peer set the window title"
    );
}

#[test]
fn up_arrow_recalls_earlier_lines_and_the_line_can_be_edited() {
    let Some(alice) = alice("history", &[]) else {
        return;
    };
    alice.type_text("2");
    alice.keys(&["Enter"]);
    alice.wait_for("No known peers yet.");
    alice.wait_for_last_line(PROMPT);

    alice.keys(&["Up"]);
    alice.wait_for_last_line(&format!("{PROMPT} 2"));
    alice.keys(&["Enter"]);
    alice.wait_until("a second listing", |s| {
        s.matches("No known peers yet.").count() == 2
    });
    alice.wait_for_last_line(PROMPT);

    // A typo mended in the middle of the line: "/hlp", two left, "e".
    alice.type_text("/hlp");
    alice.keys(&["Left", "Left"]);
    alice.type_text("e");
    alice.wait_for_last_line(&format!("{PROMPT} /help"));
    alice.keys(&["Enter"]);
    alice.wait_for("/msg PEER text");
    alice.wait_for_last_line(PROMPT);
}

#[test]
fn ctrl_c_clears_a_line_with_text_and_quits_on_an_empty_one() {
    let (mut bob, bob_port) = Peerchat::start_named("bob", &[]);
    let bob_addr = format!("127.0.0.1:{bob_port}");
    let Some(alice) = alice("ctrl-c", &["--peer", &bob_addr]) else {
        return;
    };
    alice.wait_for(&format!("connected to bob ({bob_addr})"));
    // Ctrl-C on a line with text clears the line, as in a shell.
    alice.type_text("half a thought");
    alice.wait_for_last_line(&format!("{PROMPT} half a thought"));
    alice.keys(&["C-c"]);
    alice.wait_for_last_line(PROMPT);
    assert!(alice.alive());
    alice.type_text("2");
    alice.wait_for_last_line(&format!("{PROMPT} 2"));
    // On an empty line it quits.
    alice.keys(&["BSpace"]);
    alice.wait_for_last_line(PROMPT);
    alice.keys(&["C-c"]);
    assert_eq!(alice.wait_for_exit(), 0);
    let screen = alice.screen();
    assert!(screen.contains("Quitting (interrupted)..."), "{screen}");
    assert!(screen.contains("Goodbye."), "{screen}");
    bob.expect("disconnected from alice");
    bob.expect("peer said bye: quit");
}

#[test]
fn ctrl_d_quits_on_an_empty_line_only() {
    let Some(alice) = alice("ctrl-d", &[]) else {
        return;
    };
    // On a line with text Ctrl-D deletes the character under the cursor, as in a shell.
    alice.type_text("x");
    alice.keys(&["Left", "C-d"]);
    alice.type_text("y");
    alice.wait_for_last_line(&format!("{PROMPT} y"));
    assert!(alice.alive());
    alice.keys(&["BSpace", "C-d"]);
    assert_eq!(alice.wait_for_exit(), 0);
    let screen = alice.screen();
    assert!(screen.contains("Quitting (end of input)..."), "{screen}");
    assert!(screen.contains("Goodbye."), "{screen}");
}

#[test]
fn long_messages_are_wrapped_with_a_hanging_indent_not_cut() {
    let Some(alice) = alice("wrap", &[]) else {
        return;
    };
    let alice_addr = format!("127.0.0.1:{}", alice.port());
    let words: Vec<String> = (1..=80).map(|i| format!("word{i:02}")).collect();
    let text = words.join(" ");
    let (mut bob, _) = Peerchat::start_named("bob", &["--idle-timeout", "60s"]);
    bob.type_lines(&["1", &alice_addr, &text]);
    bob.expect("delivered to");
    let screen = alice.wait_for("word80");
    let lines: Vec<&str> = screen.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.contains("word01"))
        .expect("first line of the message");
    let end = lines
        .iter()
        .position(|l| l.contains("word80"))
        .expect("last line of the message");
    assert!(end > start + 1, "not wrapped:\n{screen}");
    for line in &lines[start + 1..=end] {
        assert!(
            line.starts_with(&" ".repeat(11)),
            "no hanging indent: {line:?}"
        );
    }
    for line in &lines {
        assert!(line.chars().count() <= WIDTH, "too wide: {line:?}");
    }
    let shown: Vec<&str> = lines[start..=end]
        .iter()
        .flat_map(|l| l.split_whitespace())
        .filter(|w| w.starts_with("word"))
        .collect();
    assert_eq!(shown, words, "words lost or reordered:\n{screen}");
}

#[test]
fn shortcuts_status_and_colours_on_a_terminal() {
    let (mut bob, bob_port) = Peerchat::start_named("bob", &[]);
    let bob_addr = format!("127.0.0.1:{bob_port}");
    let Some(alice) = alice("shortcuts", &["--peer", &bob_addr]) else {
        return;
    };
    alice.wait_for(&format!("connected to bob ({bob_addr})"));
    // The status line comes with the menu; /status asks for it.
    alice.type_text("/status");
    alice.keys(&["Enter"]);
    alice.wait_for("connected peers: 1 (1 known) | messages waiting: 0");

    alice.type_text(&format!("/msg {bob_addr} hi from a shortcut"));
    alice.keys(&["Enter"]);
    alice.wait_for("] delivered to bob");
    bob.expect("): hi from a shortcut");

    alice.type_text("/nope");
    alice.keys(&["Enter"]);
    alice.wait_for("'/nope' is not a shortcut: type /help for the list.");
    alice.wait_for_last_line("bob>");

    // Names, addresses and statuses are coloured (the pane's NO_COLOR is unset).
    let coloured = alice.screen_with_colours();
    let line = coloured
        .lines()
        .find(|l| l.contains("delivered") && l.contains("bob"))
        .expect("the delivered line");
    assert!(line.contains('\u{1b}'), "no colour in {line:?}");
    alice.type_text("/quit");
    alice.keys(&["Enter"]);
    assert_eq!(alice.wait_for_exit(), 0);
}

#[test]
fn no_color_turns_colour_off() {
    let Some(alice) = Tmux::start(
        "no-color",
        &["NO_COLOR=1"],
        &["--name", "alice", "--port", "0", "--bind", "127.0.0.1"],
    ) else {
        return;
    };
    alice.wait_for_last_line(PROMPT);
    let screen = alice.screen_with_colours();
    assert!(
        !screen.contains('\u{1b}'),
        "coloured despite NO_COLOR:\n{screen}"
    );
}

#[test]
fn a_conversation_sends_plain_lines_and_keeps_a_half_typed_line() {
    let Some(alice) = alice("talk", &[]) else {
        return;
    };
    let alice_addr = format!("127.0.0.1:{}", alice.port());
    let (mut bob, bob_port) = Peerchat::start_named("bob", &["--idle-timeout", "60s"]);
    let bob_addr = format!("127.0.0.1:{bob_port}");
    alice.type_text(&format!("/talk {bob_addr}"));
    alice.keys(&["Enter"]);
    alice.wait_for(&format!("Talking to {bob_addr} ({bob_addr})"));
    alice.wait_for_last_line(&format!("{bob_addr}>"));

    // A plain line is a message to the current peer.
    alice.type_text("hello everyone");
    alice.keys(&["Enter"]);
    bob.expect("): hello everyone");
    alice.wait_for("] delivered to bob");
    // Once bob is named, the prompt says so.
    alice.type_text("/talk bob");
    alice.keys(&["Enter"]);
    alice.wait_for_last_line("bob>");

    // A half-typed line survives bob's messages.
    alice.type_text("half a rep");
    alice.wait_for_last_line("bob> half a rep");
    bob.type_lines(&["/msg alice one from bob", "/msg alice two from bob"]);
    let screen = alice.wait_for(&format!("bob ({bob_addr}): two from bob"));
    assert!(screen.contains(&format!("bob ({bob_addr}): one from bob")));
    assert_eq!(last_line(&screen), "bob> half a rep", "{screen}");
    alice.type_text("ly");
    alice.keys(&["Enter"]);
    bob.expect(&format!("alice ({alice_addr}): half a reply"));

    // /menu goes back to the numbered menu; a number is a menu choice again.
    alice.type_text("/menu");
    alice.keys(&["Enter"]);
    alice.wait_for_last_line(PROMPT);
    alice.type_text("2");
    alice.keys(&["Enter"]);
    alice.wait_for(&format!("1. {bob_addr}  bob  connected"));
    // Quieter: a numbered choice brings back a one-line hint, not the whole menu.
    let screen = alice.wait_for("(Enter or ? shows the menu");
    assert_eq!(screen.matches("***** Menu *****").count(), 2, "{screen}");
}

#[test]
fn chats_from_others_show_as_unread_beside_the_half_typed_line_until_you_type() {
    let Some(alice) = alice("unread", &[]) else {
        return;
    };
    let alice_addr = format!("127.0.0.1:{}", alice.port());
    let (mut bob, bob_port) = Peerchat::start_named("bob", &["--idle-timeout", "60s"]);
    let (mut carol, _) = Peerchat::start_named("carol", &["--idle-timeout", "60s"]);
    alice.type_text(&format!("/talk 127.0.0.1:{bob_port}"));
    alice.keys(&["Enter"]);
    alice.wait_for_last_line(&format!("127.0.0.1:{bob_port}>"));
    bob.type_lines(&[&format!("/msg {alice_addr} hi alice")]);
    alice.wait_for("): hi alice");
    alice.type_text("/talk bob");
    alice.keys(&["Enter"]);
    alice.wait_for_last_line("bob>");

    // A message from bob, the peer you are talking to, is read as it comes: no note.
    alice.type_text("half a rep");
    alice.wait_for_last_line("bob> half a rep");
    bob.type_lines(&["/msg alice from bob"]);
    let screen = alice.wait_for("): from bob");
    assert_eq!(last_line(&screen), "bob> half a rep", "{screen}");

    // Two from carol: counted on the line being typed, which is left as it was.
    carol.type_lines(&[
        &format!("/msg {alice_addr} one from carol"),
        &format!("/msg {alice_addr} two from carol"),
    ]);
    let screen = alice.wait_until("the unread note", |screen| {
        last_line(screen).ends_with("2 unread: carol")
    });
    assert!(screen.contains("): one from carol"), "{screen}");
    assert!(screen.contains("): two from carol"), "{screen}");
    let line = last_line(&screen);
    assert!(line.starts_with("bob> half a rep  "), "{screen}");
    // At the right edge of the 120 columns, the last kept free.
    assert_eq!(line.chars().count(), WIDTH - 1, "{screen}");
    // The cursor is still where the typing stopped, and typing goes on from there.
    assert_eq!(alice.cursor_x(), "bob> half a rep".len(), "{screen}");
    alice.type_text("ly");
    let screen = alice.wait_until("typing beside the note", |screen| {
        let line = last_line(screen);
        line.starts_with("bob> half a reply  ") && line.ends_with("2 unread: carol")
    });
    assert_eq!(alice.cursor_x(), "bob> half a reply".len(), "{screen}");

    // A line longer than the row: the note goes beside its end, on the row the cursor is on
    // (it used to be hidden), and what is typed stays whole on the rows above.
    let more = format!(" {}", "y".repeat(130));
    alice.type_text(&more);
    let typed = format!("bob> half a reply{more}");
    let screen = alice.wait_until("the note beside the wrapped line", |screen| {
        let line = last_line(screen);
        line.starts_with(&format!("{}  ", &typed[WIDTH..])) && line.ends_with("2 unread: carol")
    });
    let rows: Vec<&str> = screen
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(rows[rows.len() - 2], &typed[..WIDTH], "{screen}");
    assert_eq!(rows[rows.len() - 1].chars().count(), WIDTH - 1, "{screen}");
    assert_eq!(alice.cursor_x(), typed.len() - WIDTH, "{screen}");
    // Taken back (Ctrl-U, then typed again): one row, the note beside it as before.
    alice.keys(&["C-u"]);
    alice.type_text("half a reply");
    alice.wait_until("the line typed again", |screen| {
        let line = last_line(screen);
        !screen.contains("yyy")
            && line.starts_with("bob> half a reply  ")
            && line.ends_with("2 unread: carol")
    });

    // Enter: the line goes to bob, is left on screen as typed, and the count starts again.
    alice.keys(&["Enter"]);
    bob.expect(&format!("alice ({alice_addr}): half a reply"));
    let screen = alice.wait_for("] delivered to bob");
    assert!(
        screen.lines().any(|l| l.trim_end() == "bob> half a reply"),
        "the note stayed on the sent line:\n{screen}"
    );
    assert!(!screen.contains("unread"), "{screen}");
    assert_eq!(last_line(&screen), "bob>", "{screen}");

    // Switching conversations is input too: it clears the count.
    carol.type_lines(&[&format!("/msg {alice_addr} three from carol")]);
    alice.wait_until("the unread note again", |screen| {
        last_line(screen).starts_with("bob>") && last_line(screen).ends_with("1 unread: carol")
    });
    alice.type_text("/talk carol");
    alice.keys(&["Enter"]);
    let screen = alice.wait_for_last_line("carol>");
    assert!(screen.contains("Talking to carol"), "{screen}");
}

#[test]
fn menu_2_and_menu_5_number_peers_the_same_way() {
    let (_bob, bob_port) = Peerchat::start_named("bob", &[]);
    let (_carol, carol_port) = Peerchat::start_named("carol", &[]);
    let refusing = common::RefusingPort::new();
    let (bob_addr, carol_addr) = (
        format!("127.0.0.1:{bob_port}"),
        format!("127.0.0.1:{carol_port}"),
    );
    let Some(alice) = alice("numbers", &["--peer", &bob_addr, "--peer", &carol_addr]) else {
        return;
    };
    alice.wait_for(&format!("connected to bob ({bob_addr})"));
    alice.wait_for(&format!("connected to carol ({carol_addr})"));
    // A peer that is known but not connected takes a number in the list too.
    alice.type_text(&format!("/msg 127.0.0.1:{} waiting", refusing.port));
    alice.keys(&["Enter"]);
    alice.wait_for("unreachable");
    alice.type_text("/menu");
    alice.keys(&["Enter"]);
    alice.wait_for_last_line(PROMPT);
    alice.type_text("2");
    alice.keys(&["Enter"]);
    let screen = alice.wait_for("Known peers:");
    let numbered = |screen: &str, addr: &str| -> String {
        screen
            .lines()
            .rev()
            .find(|l| l.contains(addr) && l.trim_start().starts_with(char::is_numeric))
            .map(|l| l.trim().to_string())
            .unwrap_or_else(|| panic!("{addr} not numbered:\n{screen}"))
    };
    let carol_in_2 = numbered(&screen, &carol_addr);
    alice.type_text("5");
    alice.keys(&["Enter"]);
    let screen = alice.wait_for("Peer to disconnect");
    let carol_in_5 = numbered(&screen, &carol_addr);
    let number = |line: &str| line.split('.').next().unwrap_or_default().to_string();
    assert_eq!(number(&carol_in_2), number(&carol_in_5), "{screen}");
    alice.type_text(&number(&carol_in_5));
    alice.keys(&["Enter"]);
    alice.wait_for(&format!("Disconnected from {carol_addr}."));
}

#[test]
fn a_port_in_use_at_start_up_asks_for_another() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let Some(alice) = Tmux::start(
        "port-in-use",
        &["-u", "NO_COLOR"],
        &["--name", "alice", "--port", &port, "--bind", "127.0.0.1"],
    ) else {
        return;
    };
    alice.wait_for(&format!("Port {port} is already in use"));
    alice.wait_for_last_line("Another port to listen on (0 = any free port):");
    alice.type_text(&port);
    alice.keys(&["Enter"]);
    // Still taken: asked again.
    alice.wait_until("asked twice", |s| {
        s.matches("is already in use").count() == 2
    });
    alice.type_text("0");
    alice.keys(&["Enter"]);
    alice.wait_for("alice listening on 127.0.0.1:");
    alice.wait_for_last_line(PROMPT);
    assert!(alice.alive());
}
