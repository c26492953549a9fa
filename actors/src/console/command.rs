//! What the user typed, understood: [`parse`] turns one line, read at one [`Prompt`], into a
//! [`Command`] to run, the next question to ask, or the reason it was not understood. Pure:
//! no actor, no node, no output; the Console applies the result (apply.rs).

use std::net::IpAddr;

use super::names::Listed;
use crate::faults::{parse_fault, Fault};
use crate::peer::{parse_port, PeerAddr};
use crate::sanitize::visible;

/// What the next input line answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// "Choose an option": a menu number, a `/` shortcut or a `!` fault command.
    Menu,
    /// Menu 1, first question: the recipient's IP, or IP:PORT.
    SendTo,
    /// Menu 1, when only an IP was given: its port.
    SendPort {
        /// The IP given.
        ip: IpAddr,
    },
    /// Menu 1, last question: the text to send.
    SendText {
        /// The recipient.
        to: PeerAddr,
    },
    /// Menu 1, last question, for a recipient named `classic:IP:PORT`.
    SendClassicText {
        /// The classic peer.
        to: PeerAddr,
    },
    /// Menu 5: which connected peer to disconnect, named as anywhere else (its number in the
    /// one list, its name, IP:PORT, ...).
    DisconnectWhich,
    /// A name meant several peers: which one (the candidates' numbers in the one list).
    WhichPeer {
        /// The peers the name meant.
        candidates: Vec<Listed>,
        /// What to do with the one chosen.
        action: PeerAction,
    },
    /// A conversation (`/talk PEER`): a plain line is a message to this peer.
    Talk(Talk),
}

/// The current conversation: who, and the prompt that shows it (`bob> `).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Talk {
    /// The peer.
    pub to: PeerAddr,
    /// Whether it is a classic peer (`classic:IP:PORT`).
    pub classic: bool,
    /// The prompt: the peer's name (or address) and `> `.
    pub prompt: String,
}

/// What to do with a peer once its name is resolved (names.rs) to one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAction {
    /// Menu 1: ask for the text next.
    AskText,
    /// Send this text (`/msg`).
    Send(String),
    /// Make it the current conversation (`/talk`).
    Talk,
    /// Connect to it (`/connect PEER`).
    Connect,
    /// Disconnect from it (menu 5).
    Disconnect,
    /// Cancel the messages waiting for it and forget it (`/forget`).
    Forget,
    /// Cancel the messages waiting for it (`/cancel`).
    Cancel,
}

impl Prompt {
    /// The question, as the user sees it.
    pub fn text(&self) -> &str {
        match self {
            Prompt::Menu => "Choose an option: ",
            Prompt::SendTo => "Recipient IP (or IP:PORT): ",
            Prompt::SendPort { .. } => "Recipient port: ",
            Prompt::SendText { .. } | Prompt::SendClassicText { .. } => "Message: ",
            Prompt::DisconnectWhich => "Peer to disconnect (number or IP:PORT): ",
            Prompt::WhichPeer { .. } => "Which one (number, empty to cancel): ",
            Prompt::Talk(talk) => &talk.prompt,
        }
    }
}

/// Where a command returns when it is done: menu choices show the menu again, shortcuts
/// (for people who chat a lot) only the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Back {
    /// The whole menu, then its prompt.
    Menu,
    /// Only the menu's prompt.
    Prompt,
}

/// Something the user asked the Console to do, addresses already checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Show the menu again (an empty line at the menu).
    Menu,
    /// Send a chat (menu 1, `/msg`, `/r`); the text as typed.
    Send {
        /// The recipient.
        to: PeerAddr,
        /// The text, spaces kept.
        text: String,
    },
    /// Send a chat in the classic protocol (`classic:IP:PORT` in menu 1 or `/msg`).
    SendClassic {
        /// The classic peer.
        to: PeerAddr,
        /// The text, spaces kept.
        text: String,
    },
    /// List the known peers (menu 2, `/peers`).
    ListPeers,
    /// Ask for peers' peers and connect to all (menu 3, `/connect`).
    ConnectAll,
    /// Connect to one peer (`/connect IP:PORT`).
    Connect(PeerAddr),
    /// Disconnect from every peer (menu 4).
    DisconnectAll,
    /// List the connected peers and ask which one to disconnect (menu 5).
    ChooseDisconnect,
    /// Disconnect from one peer (menu 5's answer).
    Disconnect(PeerAddr),
    /// Do something with a peer named as the user named it (resolved by names.rs).
    ToPeer {
        /// The name, number, fingerprint or address as typed.
        name: String,
        /// What to do with it.
        action: PeerAction,
    },
    /// Do something with the peer chosen among several (its address).
    AtPeer {
        /// The peer.
        to: PeerAddr,
        /// What to do with it.
        action: PeerAction,
    },
    /// Leave the conversation for the numbered menu (`/menu`, `/leave`).
    Leave,
    /// Send a text to every connected peer (`/all`).
    All(String),
    /// The last N messages (`/history [N]`).
    History(usize),
    /// Name, address, peers, messages waiting (`/status`).
    Status,
    /// A peer's key, addresses and pin (`/whois PEER`).
    Whois(String),
    /// Accept a peer's changed key (`/trust PEER`).
    Trust(String),
    /// The list of shortcuts (`/help`).
    Help,
    /// A fault to inject (`!crash registry`, ...; needs `--faults`).
    Fault(Fault),
    /// Quit (menu 0, `/quit`).
    Quit,
}

/// What one line leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Run this command, then go back.
    Run(Command, Back),
    /// Ask this next: the following line answers it.
    Ask(Prompt),
    /// Not understood: say why (shown as an error), then go back.
    Wrong(String, Back),
    /// Understood, but there is nothing to do: say so, then go back.
    Cancelled(&'static str, Back),
    /// A wrong answer: say why, then ask the same question again.
    Retry(String, Prompt),
}

/// What the parser needs to know besides the line.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// Who wrote to us last, for `/r`.
    pub last_sender: Option<PeerAddr>,
    /// Whether `!` fault commands are accepted (`--faults`).
    pub faults: bool,
}

/// What `line` means as the answer to `prompt`.
pub fn parse(prompt: Prompt, line: &str, known: &Known) -> Parsed {
    let answer = line.trim();
    match prompt {
        Prompt::Menu if answer.starts_with('/') => shortcut(answer, known),
        Prompt::Menu if answer.starts_with('!') => fault(answer, known),
        Prompt::Menu => menu_choice(answer),
        Prompt::SendTo => recipient(answer),
        Prompt::SendPort { .. } if answer.is_empty() => {
            Parsed::Cancelled("Nothing sent.", Back::Menu)
        }
        Prompt::SendPort { ip } => match parse_port(answer) {
            Ok(port) => Parsed::Ask(Prompt::SendText {
                to: PeerAddr::from_ip_port(ip, port),
            }),
            Err(err) => Parsed::Retry(
                visible(&err.to_string()).into_owned(),
                Prompt::SendPort { ip },
            ),
        },
        Prompt::SendText { to } | Prompt::SendClassicText { to } => {
            // Keep the text as typed (spaces included), minus the line end.
            let text = line.trim_end_matches(['\r', '\n']);
            if text.trim().is_empty() {
                return Parsed::Cancelled("Empty message, nothing sent.", Back::Menu);
            }
            let text = text.to_string();
            let command = match prompt {
                Prompt::SendClassicText { .. } => Command::SendClassic { to, text },
                _ => Command::Send { to, text },
            };
            Parsed::Run(command, Back::Menu)
        }
        Prompt::DisconnectWhich => peer_to_disconnect(answer),
        Prompt::WhichPeer { .. } if answer.is_empty() => {
            Parsed::Cancelled("Cancelled.", Back::Prompt)
        }
        Prompt::WhichPeer { candidates, action } => {
            match super::names::choose(answer, &candidates) {
                Ok(to) => Parsed::Run(Command::AtPeer { to, action }, Back::Prompt),
                Err(why) => Parsed::Retry(why, Prompt::WhichPeer { candidates, action }),
            }
        }
        Prompt::Talk(talk) => talking(talk, line, known),
    }
}

/// A line in a conversation: a shortcut, or a message to the peer (`//` sends a text that
/// starts with `/`).
fn talking(talk: Talk, line: &str, known: &Known) -> Parsed {
    let answer = line.trim();
    if answer.is_empty() {
        return Parsed::Cancelled(TALK_HINT, Back::Prompt);
    }
    if answer.starts_with('/') && !answer.starts_with("//") {
        return shortcut(answer, known);
    }
    let text = line.trim_end_matches(['\r', '\n']);
    let text = match text.trim_start().strip_prefix("//") {
        Some(rest) => format!("/{rest}"),
        None => text.to_string(),
    };
    let command = if talk.classic {
        Command::SendClassic { to: talk.to, text }
    } else {
        Command::Send { to: talk.to, text }
    };
    Parsed::Run(command, Back::Prompt)
}

/// What an empty line in a conversation says.
pub const TALK_HINT: &str =
    "A line you type goes to this peer (//text for one that starts with /); /menu for the menu, /help for shortcuts.";

/// A line at the menu prompt that is not a shortcut.
fn menu_choice(choice: &str) -> Parsed {
    let command = match choice {
        "" | "?" => Command::Menu,
        "1" => return Parsed::Ask(Prompt::SendTo),
        "2" => Command::ListPeers,
        "3" => Command::ConnectAll,
        "4" => Command::DisconnectAll,
        "5" => Command::ChooseDisconnect,
        "0" => Command::Quit,
        other => {
            let why = format!(
                "'{}' is not a menu option: type a number from 0 to 5.",
                visible(other)
            );
            return Parsed::Wrong(why, Back::Menu);
        }
    };
    Parsed::Run(command, Back::Menu)
}

/// Menu 1's first answer: an IP (or `localhost`) whose port is asked next, or a peer named
/// as anywhere else (resolved by the Console); empty cancels.
fn recipient(answer: &str) -> Parsed {
    if answer.is_empty() {
        return Parsed::Cancelled("Nothing sent.", Back::Menu);
    }
    if let Some(Err(why)) = classic_peer(answer) {
        return Parsed::Retry(why, Prompt::SendTo);
    }
    if answer.eq_ignore_ascii_case("localhost") {
        let ip = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
        return Parsed::Ask(Prompt::SendPort { ip });
    }
    if let Ok(ip) = answer.parse::<IpAddr>() {
        return Parsed::Ask(Prompt::SendPort { ip });
    }
    if answer.contains('.') && answer.chars().all(|c| c.is_ascii_digit() || c == '.') {
        let why = format!(
            "'{}' is not an IP address or IP:PORT (e.g. 127.0.0.1:9000)",
            visible(answer)
        );
        return Parsed::Retry(why, Prompt::SendTo);
    }
    let name = answer.to_string();
    Parsed::Run(
        Command::ToPeer {
            name,
            action: PeerAction::AskText,
        },
        Back::Menu,
    )
}

/// `classic:IP:PORT`, a peer that speaks the classic protocol (issue 15); `None` without
/// the prefix.
fn classic_peer(answer: &str) -> Option<Result<PeerAddr, String>> {
    let addr = answer.strip_prefix("classic:")?;
    Some(addr.parse::<PeerAddr>().map_err(|err| {
        format!(
            "classic:{} is not classic:IP:PORT ({})",
            visible(addr),
            visible(&err.to_string())
        )
    }))
}

/// Menu 5's answer: a peer named as anywhere else (its number in the list shown, ...);
/// empty cancels.
fn peer_to_disconnect(answer: &str) -> Parsed {
    if answer.is_empty() {
        return Parsed::Cancelled("Nobody disconnected.", Back::Menu);
    }
    Parsed::Run(
        Command::ToPeer {
            name: answer.to_string(),
            action: PeerAction::Disconnect,
        },
        Back::Menu,
    )
}

/// What `/history 0` says.
pub const HISTORY_ZERO: &str =
    "/history 0 shows no message: N is how many of the last ones to show (20 by default).";

/// How `/msg` is used.
pub const MSG_USAGE: &str =
    "Usage: /msg PEER text (PEER: a name, a number from /peers, IP:PORT or HOST:PORT)";

/// A line starting with `/` at the menu prompt.
fn shortcut(line: &str, known: &Known) -> Parsed {
    let (name, rest) = split_word(line);
    let usage = |why: &str| Parsed::Wrong(why.to_string(), Back::Prompt);
    let command = match name {
        "/msg" | "/m" => {
            let (to, text) = split_word(rest);
            if to.is_empty() || text.trim().is_empty() {
                return usage(MSG_USAGE);
            }
            match classic_peer(to) {
                Some(Ok(to)) => Command::SendClassic {
                    to,
                    text: text.to_string(),
                },
                Some(Err(why)) => return usage(&why),
                None => match to.parse::<PeerAddr>() {
                    Ok(to) if !to.ip().is_unspecified() => Command::Send {
                        to,
                        text: text.to_string(),
                    },
                    _ => Command::ToPeer {
                        name: to.to_string(),
                        action: PeerAction::Send(text.to_string()),
                    },
                },
            }
        }
        "/talk" | "/t" => match rest.trim() {
            "" => return usage("Usage: /talk PEER (a name, a number from /peers, IP:PORT)"),
            name => Command::ToPeer {
                name: name.to_string(),
                action: PeerAction::Talk,
            },
        },
        "/menu" | "/leave" => Command::Leave,
        "/all" => match rest.trim() {
            "" => return usage("Usage: /all text (sends it to every connected peer)"),
            _ => Command::All(rest.to_string()),
        },
        "/forget" => match rest.trim() {
            "" => return usage("Usage: /forget PEER (cancels its waiting messages, forgets it)"),
            name => Command::ToPeer {
                name: name.to_string(),
                action: PeerAction::Forget,
            },
        },
        "/cancel" => match rest.trim() {
            "" => return usage("Usage: /cancel PEER (cancels the messages waiting for it)"),
            name => Command::ToPeer {
                name: name.to_string(),
                action: PeerAction::Cancel,
            },
        },
        "/r" | "/reply" => match known.last_sender {
            None => {
                return usage("No one has written to you yet: use /msg PEER text or /talk PEER.")
            }
            Some(to) if rest.trim().is_empty() => {
                return usage(&format!("Usage: /r text (replies to {to})"))
            }
            Some(to) => Command::Send {
                to,
                text: rest.to_string(),
            },
        },
        "/peers" => Command::ListPeers,
        "/connect" if rest.is_empty() => Command::ConnectAll,
        "/connect" => match rest.parse::<PeerAddr>() {
            Ok(peer) if !peer.ip().is_unspecified() => Command::Connect(peer),
            _ => Command::ToPeer {
                name: rest.trim().to_string(),
                action: PeerAction::Connect,
            },
        },
        "/history" => match rest.trim() {
            "" => Command::History(20),
            n => match n.parse::<usize>() {
                Ok(0) => return Parsed::Cancelled(HISTORY_ZERO, Back::Prompt),
                Ok(limit) => Command::History(limit),
                Err(_) => {
                    let why = format!("Usage: /history [N] ('{}' is not a number)", visible(n));
                    return usage(&why);
                }
            },
        },
        "/status" => Command::Status,
        "/whois" | "/trust" => match super::identity::command(name, rest) {
            Ok(command) => command,
            Err(why) => return usage(&why),
        },
        "/help" | "/?" | "/h" => Command::Help,
        "/quit" | "/q" | "/exit" => Command::Quit,
        other => {
            let why = format!(
                "'{}' is not a shortcut: type /help for the list.",
                visible(other)
            );
            return usage(&why);
        }
    };
    Parsed::Run(command, Back::Prompt)
}

/// A line starting with `!` at the menu prompt: a fault to inject, if allowed.
fn fault(line: &str, known: &Known) -> Parsed {
    if !known.faults {
        let why = "Fault commands (!...) need peerchat to be started with --faults.";
        return Parsed::Wrong(why.into(), Back::Prompt);
    }
    match parse_fault(line.trim_start_matches('!')) {
        Ok(fault) => Parsed::Run(Command::Fault(fault), Back::Prompt),
        Err(why) => Parsed::Wrong(visible(&why).into_owned(), Back::Prompt),
    }
}

/// The first word of `text` and the rest after the spaces that follow it (kept as typed).
fn split_word(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    match text.find(char::is_whitespace) {
        Some(at) => (&text[..at], text[at..].trim_start()),
        None => (text, ""),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::child::ChildName;
    use crate::faults::ActorFault;

    fn addr(text: &str) -> PeerAddr {
        text.parse().unwrap()
    }

    fn at_menu(line: &str) -> Parsed {
        parse(Prompt::Menu, line, &Known::default())
    }

    fn run(command: Command, back: Back) -> Parsed {
        Parsed::Run(command, back)
    }

    fn wrong(why: &str, back: Back) -> Parsed {
        Parsed::Wrong(why.into(), back)
    }

    #[test]
    fn menu_numbers_run_commands_and_come_back_to_the_menu() {
        assert_eq!(at_menu(""), run(Command::Menu, Back::Menu));
        assert_eq!(at_menu("  "), run(Command::Menu, Back::Menu));
        assert_eq!(at_menu("1"), Parsed::Ask(Prompt::SendTo));
        assert_eq!(at_menu("2"), run(Command::ListPeers, Back::Menu));
        assert_eq!(at_menu(" 3 "), run(Command::ConnectAll, Back::Menu));
        assert_eq!(at_menu("4"), run(Command::DisconnectAll, Back::Menu));
        assert_eq!(at_menu("5"), run(Command::ChooseDisconnect, Back::Menu));
        assert_eq!(at_menu("0"), run(Command::Quit, Back::Menu));
    }

    #[test]
    fn a_wrong_menu_choice_is_explained_safely() {
        let why = "'6' is not a menu option: type a number from 0 to 5.";
        assert_eq!(at_menu("6"), wrong(why, Back::Menu));
        let why = "'hello everyone' is not a menu option: type a number from 0 to 5.";
        assert_eq!(at_menu("hello everyone"), wrong(why, Back::Menu));
        let why = "'\\u{1b}[2J' is not a menu option: type a number from 0 to 5.";
        assert_eq!(at_menu("\u{1b}[2J"), wrong(why, Back::Menu));
    }

    #[test]
    fn menu_1_asks_recipient_then_port_then_text() {
        let known = Known::default();
        let bob = addr("127.0.0.1:9001");
        assert_eq!(
            parse(Prompt::SendTo, "127.0.0.1:9001", &known),
            run(
                Command::ToPeer {
                    name: "127.0.0.1:9001".into(),
                    action: PeerAction::AskText
                },
                Back::Menu
            )
        );
        assert_eq!(
            parse(Prompt::SendTo, "localhost:9001", &known),
            run(
                Command::ToPeer {
                    name: "localhost:9001".into(),
                    action: PeerAction::AskText
                },
                Back::Menu
            )
        );
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            parse(Prompt::SendTo, " 127.0.0.1 ", &known),
            Parsed::Ask(Prompt::SendPort { ip })
        );
        assert_eq!(
            parse(Prompt::SendPort { ip }, "9001", &known),
            Parsed::Ask(Prompt::SendText { to: bob })
        );
        assert_eq!(
            parse(Prompt::SendText { to: bob }, "  hi  bob  \r", &known),
            run(
                Command::Send {
                    to: bob,
                    text: "  hi  bob  ".into()
                },
                Back::Menu
            )
        );
    }

    #[test]
    fn menu_1_wrong_answers_are_asked_again_and_empty_cancels() {
        let known = Known::default();
        assert_eq!(
            parse(Prompt::SendTo, "999.1.1.1", &known),
            Parsed::Retry(
                "'999.1.1.1' is not an IP address or IP:PORT (e.g. 127.0.0.1:9000)".into(),
                Prompt::SendTo
            )
        );
        assert_eq!(
            parse(Prompt::SendTo, "", &known),
            Parsed::Cancelled("Nothing sent.", Back::Menu)
        );
        // A name goes to the resolver (which re-asks if it names nobody).
        assert_eq!(
            parse(Prompt::SendTo, "bob", &known),
            run(
                Command::ToPeer {
                    name: "bob".into(),
                    action: PeerAction::AskText
                },
                Back::Menu
            )
        );
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            parse(Prompt::SendTo, "LocalHost", &known),
            Parsed::Ask(Prompt::SendPort { ip })
        );
        assert_eq!(
            parse(Prompt::SendPort { ip }, "x", &known),
            Parsed::Retry(
                "'x' is not a port number (1-65535)".into(),
                Prompt::SendPort { ip }
            )
        );
        assert_eq!(
            parse(Prompt::SendPort { ip }, "0", &known),
            Parsed::Retry(
                "port 0 is not a port a peer can listen on".into(),
                Prompt::SendPort { ip }
            )
        );
        assert_eq!(
            parse(Prompt::SendPort { ip }, "", &known),
            Parsed::Cancelled("Nothing sent.", Back::Menu)
        );
        let to = addr("127.0.0.1:9001");
        assert_eq!(
            parse(Prompt::SendText { to }, "   ", &known),
            Parsed::Cancelled("Empty message, nothing sent.", Back::Menu)
        );
    }

    #[test]
    fn menu_5_names_the_peer_as_anywhere_else_and_empty_cancels() {
        let known = Known::default();
        for answer in ["2", "127.0.0.1:9001", "bob"] {
            assert_eq!(
                parse(Prompt::DisconnectWhich, answer, &known),
                run(
                    Command::ToPeer {
                        name: answer.into(),
                        action: PeerAction::Disconnect
                    },
                    Back::Menu
                )
            );
        }
        assert_eq!(
            parse(Prompt::DisconnectWhich, " ", &known),
            Parsed::Cancelled("Nobody disconnected.", Back::Menu)
        );
    }

    #[test]
    fn a_conversation_sends_plain_lines_and_keeps_shortcuts() {
        let known = Known::default();
        let bob = addr("127.0.0.1:9001");
        let talk = || {
            Prompt::Talk(Talk {
                to: bob,
                classic: false,
                prompt: "bob> ".into(),
            })
        };
        assert_eq!(talk().text(), "bob> ");
        let send = |text: &str| {
            run(
                Command::Send {
                    to: bob,
                    text: text.into(),
                },
                Back::Prompt,
            )
        };
        assert_eq!(
            parse(talk(), "hello everyone", &known),
            send("hello everyone")
        );
        // Numbers are text in a conversation, not menu choices.
        assert_eq!(parse(talk(), "2", &known), send("2"));
        assert_eq!(
            parse(talk(), "//quit is a word", &known),
            send("/quit is a word")
        );
        assert_eq!(
            parse(talk(), "/peers", &known),
            run(Command::ListPeers, Back::Prompt)
        );
        assert_eq!(
            parse(talk(), "/menu", &known),
            run(Command::Leave, Back::Prompt)
        );
        assert_eq!(
            parse(talk(), "/leave", &known),
            run(Command::Leave, Back::Prompt)
        );
        assert_eq!(
            parse(talk(), "", &known),
            Parsed::Cancelled(TALK_HINT, Back::Prompt)
        );
    }

    #[test]
    fn peers_are_named_the_same_way_in_every_shortcut() {
        let to_peer = |name: &str, action: PeerAction| {
            run(
                Command::ToPeer {
                    name: name.into(),
                    action,
                },
                Back::Prompt,
            )
        };
        assert_eq!(
            at_menu("/msg bob hi there"),
            to_peer("bob", PeerAction::Send("hi there".into()))
        );
        assert_eq!(
            at_menu("/msg 2 hi"),
            to_peer("2", PeerAction::Send("hi".into()))
        );
        assert_eq!(
            at_menu("/msg LOCALHOST:9001 hi"),
            to_peer("LOCALHOST:9001", PeerAction::Send("hi".into()))
        );
        // An unspecified address goes to the resolver, which refuses it with a hint.
        assert_eq!(
            at_menu("/msg 0.0.0.0:9001 hi"),
            to_peer("0.0.0.0:9001", PeerAction::Send("hi".into()))
        );
        assert_eq!(at_menu("/talk bob"), to_peer("bob", PeerAction::Talk));
        assert_eq!(at_menu("/t 1"), to_peer("1", PeerAction::Talk));
        assert_eq!(
            at_menu("/connect carol"),
            to_peer("carol", PeerAction::Connect)
        );
        assert_eq!(at_menu("/forget 3"), to_peer("3", PeerAction::Forget));
        assert_eq!(
            at_menu("/cancel 127.0.0.1:9"),
            to_peer("127.0.0.1:9", PeerAction::Cancel)
        );
        assert_eq!(
            at_menu("/all hi  all"),
            run(Command::All("hi  all".into()), Back::Prompt)
        );
        assert_eq!(at_menu("?"), run(Command::Menu, Back::Menu));
        for bare in ["/talk", "/all", "/forget", "/cancel"] {
            assert!(
                matches!(at_menu(bare), Parsed::Wrong(_, Back::Prompt)),
                "{bare}"
            );
        }
    }

    #[test]
    fn choosing_among_several_peers_takes_their_list_numbers() {
        let known = Known::default();
        let candidates = vec![
            Listed {
                number: 2,
                addr: addr("127.0.0.1:9002"),
                name: Some("carol".into()),
                fingerprint: None,
                connected: true,
            },
            Listed {
                number: 5,
                addr: addr("127.0.0.1:9005"),
                name: Some("carol".into()),
                fingerprint: None,
                connected: false,
            },
        ];
        let which = || Prompt::WhichPeer {
            candidates: candidates.clone(),
            action: PeerAction::Talk,
        };
        assert_eq!(
            parse(which(), "5", &known),
            run(
                Command::AtPeer {
                    to: addr("127.0.0.1:9005"),
                    action: PeerAction::Talk
                },
                Back::Prompt
            )
        );
        assert_eq!(
            parse(which(), "1", &known),
            Parsed::Retry("'1' is not one of 2 or 5.".into(), which())
        );
        assert_eq!(
            parse(which(), "", &known),
            Parsed::Cancelled("Cancelled.", Back::Prompt)
        );
    }

    #[test]
    fn every_shortcut_runs_its_command_and_comes_back_to_the_prompt() {
        let bob = addr("127.0.0.1:9001");
        let send = |text: &str| Command::Send {
            to: bob,
            text: text.into(),
        };
        let cases = [
            ("/msg 127.0.0.1:9001  hi  there", send("hi  there")),
            ("/m 127.0.0.1:9001 hi", send("hi")),
            ("/msg 127.0.0.1:9001 /quit", send("/quit")),
            ("/peers", Command::ListPeers),
            ("/connect", Command::ConnectAll),
            ("/connect 127.0.0.1:9001", Command::Connect(bob)),
            ("/history", Command::History(20)),
            ("/history 5", Command::History(5)),
            ("/status", Command::Status),
            ("/whois bob", Command::Whois("bob".into())),
            ("/trust  2 ", Command::Trust("2".into())),
            ("/help", Command::Help),
            ("/?", Command::Help),
            ("/h", Command::Help),
            ("/quit", Command::Quit),
            ("/q", Command::Quit),
            ("/exit", Command::Quit),
        ];
        for (line, command) in cases {
            assert_eq!(at_menu(line), run(command, Back::Prompt), "{line}");
        }
    }

    #[test]
    fn reply_goes_to_whoever_wrote_last() {
        let alice = addr("127.0.0.1:9000");
        let known = Known {
            last_sender: Some(alice),
            faults: false,
        };
        let reply = Command::Send {
            to: alice,
            text: "hi  alice".into(),
        };
        assert_eq!(
            parse(Prompt::Menu, "/r hi  alice", &known),
            run(reply.clone(), Back::Prompt)
        );
        assert_eq!(
            parse(Prompt::Menu, "/reply hi  alice", &known),
            run(reply, Back::Prompt)
        );
        assert_eq!(
            parse(Prompt::Menu, "/r", &known),
            wrong("Usage: /r text (replies to 127.0.0.1:9000)", Back::Prompt)
        );
        assert_eq!(
            at_menu("/r hi"),
            wrong(
                "No one has written to you yet: use /msg PEER text or /talk PEER.",
                Back::Prompt
            )
        );
    }

    #[test]
    fn wrong_shortcuts_are_explained() {
        let cases = [
            (
                "/bogus",
                "'/bogus' is not a shortcut: type /help for the list.",
            ),
            (
                "/\u{1b}[2J",
                "'/\\u{1b}[2J' is not a shortcut: type /help for the list.",
            ),
            ("/msg", MSG_USAGE),
            ("/msg 127.0.0.1:9001", MSG_USAGE),
            ("/history x", "Usage: /history [N] ('x' is not a number)"),
            ("/history -1", "Usage: /history [N] ('-1' is not a number)"),
        ];
        for (line, why) in cases {
            assert_eq!(at_menu(line), wrong(why, Back::Prompt), "{line}");
        }
    }

    #[test]
    fn faults_need_the_flag_and_a_known_fault() {
        assert_eq!(
            at_menu("!crash registry"),
            wrong(
                "Fault commands (!...) need peerchat to be started with --faults.",
                Back::Prompt
            )
        );
        let known = Known {
            last_sender: None,
            faults: true,
        };
        assert_eq!(
            parse(Prompt::Menu, "!crash registry", &known),
            run(
                Command::Fault(Fault::Actor(ChildName::Registry, ActorFault::Crash)),
                Back::Prompt
            )
        );
        assert_eq!(
            parse(Prompt::Menu, "!stall listener 2s", &known),
            run(
                Command::Fault(Fault::Actor(
                    ChildName::Listener,
                    ActorFault::Stall(Duration::from_secs(2))
                )),
                Back::Prompt
            )
        );
        assert!(matches!(
            parse(Prompt::Menu, "!bogus", &known),
            Parsed::Wrong(_, Back::Prompt)
        ));
    }

    #[test]
    fn shortcuts_split_into_command_and_text_as_typed() {
        assert_eq!(
            split_word("/msg 1.2.3.4:5  hi  there "),
            ("/msg", "1.2.3.4:5  hi  there ")
        );
        assert_eq!(
            split_word("1.2.3.4:5  hi  there "),
            ("1.2.3.4:5", "hi  there ")
        );
        assert_eq!(split_word("/peers"), ("/peers", ""));
        assert_eq!(split_word(""), ("", ""));
    }
}
