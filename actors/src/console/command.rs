//! What the user typed, understood: [`parse`] turns one line, read at one [`Prompt`], into a
//! [`Command`] to run, the next question to ask, or the reason it was not understood. Pure:
//! no actor, no node, no output; the Console applies the result (apply.rs).

use std::net::IpAddr;

use super::names::{Listed, Named};
use crate::faults::{parse_fault, Fault};
use crate::key::PeerKey;
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
        /// For a nearby peer, the key it announced and its name: it is connected to first,
        /// and must prove that key.
        announced: Option<(PeerKey, String)>,
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
                Ok(Named::Announced { addr, key, name }) => {
                    let announced = Some((key, name));
                    let command = Command::AtPeer {
                        to: addr,
                        announced,
                        action,
                    };
                    Parsed::Run(command, Back::Prompt)
                }
                Ok(Named::Peer(to)) => {
                    let command = Command::AtPeer {
                        to,
                        announced: None,
                        action,
                    };
                    Parsed::Run(command, Back::Prompt)
                }
                Ok(_) => Parsed::Retry(
                    "Answer with one of the numbers.".into(),
                    Prompt::WhichPeer { candidates, action },
                ),
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
    let command = match name {
        "/msg" | "/m" => msg(rest),
        "/r" | "/reply" => reply(rest, known),
        "/all" => all(rest),
        "/talk" | "/t" => to_named_peer(rest, PeerAction::Talk, TALK_USAGE),
        "/forget" => to_named_peer(rest, PeerAction::Forget, FORGET_USAGE),
        "/cancel" => to_named_peer(rest, PeerAction::Cancel, CANCEL_USAGE),
        "/connect" => Ok(connect(rest)),
        "/whois" | "/trust" => super::identity::command(name, rest),
        // `/history 0` is not wrong, only pointless: it is answered like a cancelled question.
        "/history" => return history(rest),
        "/menu" | "/leave" => Ok(Command::Leave),
        "/peers" => Ok(Command::ListPeers),
        "/status" => Ok(Command::Status),
        "/help" | "/?" | "/h" => Ok(Command::Help),
        "/quit" | "/q" | "/exit" => Ok(Command::Quit),
        other => Err(format!(
            "'{}' is not a shortcut: type /help for the list.",
            visible(other)
        )),
    };
    match command {
        Ok(command) => Parsed::Run(command, Back::Prompt),
        Err(why) => Parsed::Wrong(why, Back::Prompt),
    }
}

const TALK_USAGE: &str = "Usage: /talk PEER (a name, a number from /peers, IP:PORT)";
const FORGET_USAGE: &str = "Usage: /forget PEER (cancels its waiting messages, forgets it)";
const CANCEL_USAGE: &str = "Usage: /cancel PEER (cancels the messages waiting for it)";

/// `/msg PEER text`: to a `classic:` peer, to an address as typed, or to a peer by name.
fn msg(rest: &str) -> Result<Command, String> {
    let (to, text) = split_word(rest);
    if to.is_empty() || text.trim().is_empty() {
        return Err(MSG_USAGE.to_string());
    }
    let text = text.to_string();
    if let Some(classic) = classic_peer(to) {
        return classic.map(|to| Command::SendClassic { to, text });
    }
    Ok(match to.parse::<PeerAddr>() {
        Ok(to) if !to.ip().is_unspecified() => Command::Send { to, text },
        _ => Command::ToPeer {
            name: to.to_string(),
            action: PeerAction::Send(text),
        },
    })
}

/// `/r text`: to whoever wrote last.
fn reply(rest: &str, known: &Known) -> Result<Command, String> {
    match known.last_sender {
        None => Err("No one has written to you yet: use /msg PEER text or /talk PEER.".into()),
        Some(to) if rest.trim().is_empty() => Err(format!("Usage: /r text (replies to {to})")),
        Some(to) => Ok(Command::Send {
            to,
            text: rest.to_string(),
        }),
    }
}

/// `/all text`: to every connected peer.
fn all(rest: &str) -> Result<Command, String> {
    match rest.trim() {
        "" => Err("Usage: /all text (sends it to every connected peer)".into()),
        _ => Ok(Command::All(rest.to_string())),
    }
}

/// A shortcut whose one argument names a peer (`/talk`, `/forget`, `/cancel`); the name is
/// resolved later, against the peers the Console knows of.
fn to_named_peer(rest: &str, action: PeerAction, usage: &str) -> Result<Command, String> {
    match rest.trim() {
        "" => Err(usage.to_string()),
        name => Ok(Command::ToPeer {
            name: name.to_string(),
            action,
        }),
    }
}

/// `/connect` alone dials every known peer; with an address it dials that one, otherwise the
/// argument names a peer.
fn connect(rest: &str) -> Command {
    if rest.is_empty() {
        return Command::ConnectAll;
    }
    match rest.parse::<PeerAddr>() {
        Ok(peer) if !peer.ip().is_unspecified() => Command::Connect(peer),
        _ => Command::ToPeer {
            name: rest.trim().to_string(),
            action: PeerAction::Connect,
        },
    }
}

/// `/history [N]`: the last N messages, 20 when N is not given.
fn history(rest: &str) -> Parsed {
    let limit = match rest.trim() {
        "" => 20,
        n => match n.parse::<usize>() {
            Ok(0) => return Parsed::Cancelled(HISTORY_ZERO, Back::Prompt),
            Ok(limit) => limit,
            Err(_) => {
                let why = format!("Usage: /history [N] ('{}' is not a number)", visible(n));
                return Parsed::Wrong(why, Back::Prompt);
            }
        },
    };
    Parsed::Run(Command::History(limit), Back::Prompt)
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
mod tests;
