//! How the Console's lines look: colours for names, addresses and statuses, and wrapping of
//! long lines for a terminal. Text is sanitised (`visible`) before it gets here; this file
//! only adds styling around it (and the mixed-scripts mark after a name, from sanitize.rs), so
//! with colour off a line is byte for byte the plain one.

use std::fmt::Display;

use anstyle::{AnsiColor, Style};

/// Width of the `[HH:MM:SS] ` that starts an event line: wrapped lines are indented by it,
/// so a long text reads as one block beside the time.
pub const HANG: usize = 11;

/// Names get one of these, always the same for the same name. No red (errors) and no blue
/// (addresses, and dark blue is hard to read on dark backgrounds); bold sets names apart
/// from the green/yellow statuses.
const NAME_COLOURS: [AnsiColor; 8] = [
    AnsiColor::Cyan,
    AnsiColor::Green,
    AnsiColor::Yellow,
    AnsiColor::Magenta,
    AnsiColor::BrightCyan,
    AnsiColor::BrightGreen,
    AnsiColor::BrightYellow,
    AnsiColor::BrightMagenta,
];

/// Colour on or off; decided once at start-up from `--color` and `NO_COLOR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Look {
    colour: bool,
}

impl Look {
    /// No colour at all (pipes, `NO_COLOR`, `--color never`).
    pub const fn plain() -> Look {
        Look { colour: false }
    }

    /// ANSI colours (a terminal, `--color always`).
    pub const fn coloured() -> Look {
        Look { colour: true }
    }

    /// Whether this look colours anything.
    pub fn is_coloured(&self) -> bool {
        self.colour
    }

    fn paint(&self, style: Style, text: impl Display) -> String {
        if self.colour {
            format!("{}{text}{}", style.render(), style.render_reset())
        } else {
            text.to_string()
        }
    }

    /// A peer's name, in its own colour; escaped again (escaping is idempotent, so a name
    /// already passed through `visible` is unchanged) and marked if it mixes scripts.
    pub fn name(&self, name: &str) -> String {
        let shown = self.paint(name_style(name), crate::sanitize::visible(name));
        if crate::sanitize::mixes_scripts(name) {
            format!("{shown} {}", self.warn(crate::sanitize::MIXED_SCRIPTS_MARK))
        } else {
            shown
        }
    }

    /// An address, in the address colour.
    pub fn addr(&self, addr: impl Display) -> String {
        self.paint(AnsiColor::BrightBlue.on_default(), addr)
    }

    /// Timestamps and other secondary text.
    pub fn dim(&self, text: impl Display) -> String {
        self.paint(Style::new().dimmed(), text)
    }

    /// Things that went well: delivered, connected.
    pub fn good(&self, text: impl Display) -> String {
        self.paint(AnsiColor::Green.on_default(), text)
    }

    /// Things that need a look but are not errors: disconnected, refused connections.
    pub fn warn(&self, text: impl Display) -> String {
        self.paint(AnsiColor::Yellow.on_default(), text)
    }

    /// Failures: not delivered, cannot connect, wrong input.
    pub fn bad(&self, text: impl Display) -> String {
        self.paint(AnsiColor::Red.on_default().bold(), text)
    }

    /// A heading (the menu's title), in bold.
    pub fn heading(&self, text: impl Display) -> String {
        self.paint(Style::new().bold(), text)
    }
}

/// The same name always gets the same colour, in every run and on every machine: FNV-1a,
/// not std's hasher, whose keys are random per process.
fn name_style(name: &str) -> Style {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in name.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    let colour = NAME_COLOURS[(hash % NAME_COLOURS.len() as u32) as usize];
    colour.on_default().bold()
}

/// The columns `text` takes on a terminal: wide characters count two, ANSI styling none.
pub fn display_width(text: &str) -> usize {
    textwrap::core::display_width(text)
}

/// Wraps one line to `width` columns, continuation lines indented under the time stamp; nothing is
/// cut, over-long words are broken. ANSI styling does not count towards the width.
/// Multi-line text (a listing) and narrow terminals are left alone.
pub fn wrap(line: &str, width: Option<usize>) -> String {
    let mut out = String::new();
    push_wrapped(&mut out, line, width);
    out
}

/// [`wrap`], appended to `out`; a line that needs no wrapping is copied without allocating.
pub fn push_wrapped(out: &mut String, line: &str, width: Option<usize>) {
    let Some(width) = width else {
        return out.push_str(line);
    };
    if width < HANG + 20 || line.contains('\n') || textwrap::core::display_width(line) <= width {
        return out.push_str(line);
    }
    let indent = " ".repeat(HANG);
    let options = textwrap::Options::new(width).subsequent_indent(&indent);
    for (n, part) in textwrap::wrap(line, options).iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        out.push_str(part);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_keeps_its_colour_and_plain_stays_plain() {
        let look = Look::coloured();
        assert_eq!(look.name("alice"), look.name("alice"));
        assert!(look.name("alice").starts_with('\u{1b}'));
        assert!(look.name("alice").contains("alice"));
        assert_eq!(Look::plain().name("alice"), "alice");
        assert_eq!(Look::plain().bad("x"), "x");
        // Look-alike names are marked; hidden characters in a name are escaped.
        assert_eq!(Look::plain().name("bоb"), "bоb [mixed scripts]");
        assert_eq!(Look::plain().name("b\u{200b}ob"), "b\\u{200b}ob");
        // Not every name the same colour.
        let styles: std::collections::HashSet<String> = ["alice", "bob", "carol", "dave", "eve"]
            .iter()
            .map(|n| format!("{:?}", name_style(n)))
            .collect();
        assert!(styles.len() > 1);
    }

    #[test]
    fn long_lines_wrap_with_a_hanging_indent_and_lose_no_word() {
        let words: Vec<String> = (0..60).map(|i| format!("word{i}")).collect();
        let line = format!("[10:00:00] bob (127.0.0.1:9000): {}", words.join(" "));
        let wrapped = wrap(&line, Some(50));
        let lines: Vec<&str> = wrapped.lines().collect();
        assert!(lines.len() > 3, "{wrapped}");
        assert!(lines[0].starts_with("[10:00:00] bob"));
        for cont in &lines[1..] {
            assert!(cont.starts_with(&" ".repeat(HANG)), "{cont:?}");
            assert!(!cont[HANG..].starts_with(' '), "{cont:?}");
        }
        for l in &lines {
            assert!(textwrap::core::display_width(l) <= 50, "{l:?}");
        }
        let rejoined: Vec<&str> = wrapped.split_whitespace().collect();
        assert_eq!(rejoined.len(), line.split_whitespace().count());
        // A word longer than the line is broken, not cut.
        let long = format!("[10:00:00] x: {}", "y".repeat(200));
        let wrapped = wrap(&long, Some(60));
        assert_eq!(wrapped.matches('y').count(), 200);
        // Pipes (no width) keep the line whole.
        assert_eq!(wrap(&line, None), line);
    }

    #[test]
    fn colour_does_not_count_towards_the_width() {
        let look = Look::coloured();
        let line = format!("{} {}", look.name("bob"), "z ".repeat(30));
        let wrapped = wrap(&line, Some(200));
        assert_eq!(wrapped, line);
    }
}
