//! Sanitising names and texts from peers before they reach a terminal: characters that would act
//! on it or hide from the reader are shown as `\u{..}` escapes, and names that mix scripts (a
//! Cyrillic `о` in `bоb`) are flagged. Plain functions with no state; the Console calls them.
//!
//! The Unicode data comes from crates that follow Unicode releases (`unicode-general-category`
//! for category Cf, `unicode-security` for UTS #39 script sets), not from a hand list.

use std::borrow::Cow;

use unicode_general_category::{get_general_category, GeneralCategory};
use unicode_security::mixed_script::AugmentedScriptSet;
use unicode_security::MixedScript;

/// Shown after a name that mixes scripts ([`mixes_scripts`]).
pub const MIXED_SCRIPTS_MARK: &str = "[mixed scripts]";

/// Hangul fillers: letters (category Lo) that draw nothing, used to fake an empty or blank name.
const FILLERS: [char; 4] = ['\u{115F}', '\u{1160}', '\u{3164}', '\u{FFA0}'];

const ZERO_WIDTH_JOINER: char = '\u{200D}';
const VARIATION_SELECTOR_16: char = '\u{FE0F}';
const BLACK_FLAG: char = '\u{1F3F4}';
const CANCEL_TAG: char = '\u{E007F}';

/// Makes text safe to print: control characters (escape sequences, carriage returns, bells),
/// invisible format characters (category Cf: zero-width spaces and joiners, bidirectional
/// overrides, soft hyphens, byte order marks, tag characters), fillers and line separators are
/// shown as `\u{..}` escapes (`\n`, `\t`, `\r` as such) instead of acting on the terminal or
/// hiding in the text. Everything else, any script or emoji, is shown as it is; so are the two
/// uses of format characters that draw something: a joiner between two emoji (`👩‍💻`) and the
/// tags of a subdivision flag (🏴 + tags + cancel tag).
///
/// Text with nothing to escape (the usual case) comes back borrowed, without a copy.
pub fn visible(text: &str) -> Cow<'_, str> {
    if nothing_to_escape(text) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(escaped(text))
    }
}

/// Appends `text` made [`visible`] to `out`, without an allocation when it has nothing to
/// escape.
pub fn push_visible(out: &mut String, text: &str) {
    if nothing_to_escape(text) {
        out.push_str(text);
    } else {
        out.push_str(&escaped(text));
    }
}

/// Printable ASCII is checked 16 bytes at a time; other text a character at a time.
fn nothing_to_escape(text: &str) -> bool {
    printable_ascii(text.as_bytes()) || !text.chars().any(is_hidden)
}

/// Every byte in `0x20..0x7f`. Each block of 16 is checked without a branch per byte, which
/// the compiler turns into a few vector instructions: this runs for every chat shown, and a
/// byte at a time it was most of the cost of a chat's line (docs/performance.md).
fn printable_ascii(bytes: &[u8]) -> bool {
    let printable = |b: u8| b.wrapping_sub(0x20) < 0x5f;
    let mut blocks = bytes.chunks_exact(16);
    for block in &mut blocks {
        if !block.iter().fold(true, |all, &b| all & printable(b)) {
            return false;
        }
    }
    blocks.remainder().iter().all(|&b| printable(b))
}

fn escaped(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while at < chars.len() {
        let c = chars[at];
        if c == BLACK_FLAG {
            if let Some(end) = flag_tags_end(&chars[at + 1..]) {
                out.extend(&chars[at..=at + end + 1]);
                at += end + 2;
                continue;
            }
        }
        let joins_emoji = c == ZERO_WIDTH_JOINER
            && at > 0
            && (is_emoji(chars[at - 1]) || chars[at - 1] == VARIATION_SELECTOR_16)
            && chars.get(at + 1).is_some_and(|&next| is_emoji(next));
        if is_hidden(c) && !joins_emoji {
            match c {
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                _ => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            }
        } else {
            out.push(c);
        }
        at += 1;
    }
    out
}

/// Whether a character acts on the terminal or shows nothing: it is escaped by [`visible`].
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || FILLERS.contains(&c)
        || matches!(
            get_general_category(c),
            GeneralCategory::Format
                | GeneralCategory::LineSeparator
                | GeneralCategory::ParagraphSeparator
        )
}

/// Whether a name uses letters of more than one script, in a way no single writing system does
/// (UTS #39 "highly restrictive" is allowed: Latin with Han and kana, with Han and Bopomofo, or
/// with Hangul). Digits, spaces, punctuation and emoji belong to every script.
pub fn mixes_scripts(name: &str) -> bool {
    if name.is_single_script() {
        return false;
    }
    // Japanese, Chinese and Korean names may add Latin letters.
    let mut without_latin = AugmentedScriptSet::default();
    for c in name.chars() {
        let set = AugmentedScriptSet::for_char(c);
        if !set.base.contains_script(unicode_script::Script::Latin) {
            without_latin.intersect_with(set);
        }
    }
    !(without_latin.jpan || without_latin.kore || without_latin.hanb)
}

/// A peer's name as shown: [`visible`], followed by [`MIXED_SCRIPTS_MARK`] if it mixes scripts.
pub fn name(name: &str) -> String {
    let shown = visible(name);
    if mixes_scripts(name) {
        format!("{shown} {MIXED_SCRIPTS_MARK}")
    } else {
        shown.into_owned()
    }
}

/// Pictographs that emoji ZWJ sequences join (a close superset of Extended_Pictographic's
/// blocks, plus skin tones and the regional indicators).
fn is_emoji(c: char) -> bool {
    matches!(c as u32,
        0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0x2300..=0x23FF | 0x2B00..=0x2BFF | 0x2190..=0x21FF)
}

/// After a black flag: the index of the cancel tag ending a subdivision flag's tags
/// (`🏴` + 1 to 7 tag letters or digits + U+E007F), if that is what follows.
fn flag_tags_end(after: &[char]) -> Option<usize> {
    let count = after
        .iter()
        .take(8)
        .take_while(|&&c| matches!(c, '\u{E0030}'..='\u{E0039}' | '\u{E0061}'..='\u{E007A}'))
        .count();
    ((1..=7).contains(&count) && after.get(count) == Some(&CANCEL_TAG)).then_some(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_with_nothing_to_escape_is_not_copied() {
        assert!(matches!(visible("plain ascii, 123"), Cow::Borrowed(_)));
        assert!(matches!(visible("नमस्ते 👋 ünï"), Cow::Borrowed(_)));
        assert!(matches!(visible("a\u{1b}b"), Cow::Owned(_)));
        let mut out = String::from("> ");
        push_visible(&mut out, "hi");
        push_visible(&mut out, "\u{7}");
        assert_eq!(out, "> hi\\u{7}");
    }

    #[test]
    fn printable_ascii_is_every_byte_from_space_to_tilde() {
        for len in [0, 1, 15, 16, 17, 31, 32, 33, 100] {
            let text: Vec<u8> = (0..len).map(|i| b' ' + (i % 95) as u8).collect();
            assert!(printable_ascii(&text), "len {len}");
            for at in 0..len {
                for bad in [0x00, 0x1f, 0x7f, 0x80, 0xff] {
                    let mut with_bad = text.clone();
                    with_bad[at] = bad;
                    assert!(!printable_ascii(&with_bad), "len {len}, {bad:#x} at {at}");
                }
            }
        }
    }

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(visible("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(visible("x\ry\n\t\u{7}"), "x\\ry\\n\\t\\u{7}");
        assert_eq!(visible("\u{202e}evil"), "\\u{202e}evil");
        assert_eq!(visible("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(visible("a\u{2028}b"), "a\\u{2028}b");
        assert_eq!(visible("नमस्ते 👋 ünï"), "नमस्ते 👋 ünï");
        // Emoji sequences joined by ZWJ stay whole.
        assert_eq!(visible("👩\u{200d}💻"), "👩\u{200d}💻");
    }

    #[test]
    fn control_characters_are_escaped_as_before() {
        assert_eq!(visible("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(visible("x\ry\n\t\u{7}"), "x\\ry\\n\\t\\u{7}");
        assert_eq!(visible("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(visible("a\u{2028}b\u{2029}"), "a\\u{2028}b\\u{2029}");
        assert_eq!(visible("नमस्ते 👋 ünï"), "नमस्ते 👋 ünï");
    }

    #[test]
    fn bidirectional_controls_are_escaped() {
        assert_eq!(visible("\u{202e}evil"), "\\u{202e}evil");
        assert_eq!(visible("a\u{2066}b\u{200f}"), "a\\u{2066}b\\u{200f}");
    }

    #[test]
    fn invisible_format_characters_are_escaped() {
        for (c, escaped) in [
            ('\u{200B}', "\\u{200b}"),
            ('\u{200D}', "\\u{200d}"),
            ('\u{FEFF}', "\\u{feff}"),
            ('\u{2060}', "\\u{2060}"),
            ('\u{00AD}', "\\u{ad}"),
            ('\u{180E}', "\\u{180e}"),
        ] {
            assert_eq!(visible(&format!("b{c}ob")), format!("b{escaped}ob"));
        }
    }

    #[test]
    fn tag_characters_are_escaped_outside_a_flag() {
        // "Hi" smuggled in tag characters after a visible word.
        assert_eq!(visible("ok\u{E0048}\u{E0069}"), "ok\\u{e0048}\\u{e0069}");
        assert_eq!(visible("\u{E007F}"), "\\u{e007f}");
        // A tag sequence that is not a well-formed flag is escaped too.
        assert_eq!(visible("🏴\u{E0041}"), "🏴\\u{e0041}");
        // Scotland's flag keeps its tags: they draw it.
        let scotland = "🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}";
        assert_eq!(visible(scotland), scotland);
    }

    #[test]
    fn fillers_are_escaped() {
        assert_eq!(visible("\u{3164}"), "\\u{3164}");
        assert_eq!(
            visible("a\u{115F}\u{1160}\u{FFA0}"),
            "a\\u{115f}\\u{1160}\\u{ffa0}"
        );
        // Real Hangul is not.
        assert_eq!(visible("한국어"), "한국어");
    }

    #[test]
    fn a_joiner_between_emoji_draws_one_emoji_and_stays() {
        assert_eq!(visible("👩\u{200d}💻"), "👩\u{200d}💻");
        assert_eq!(visible("🏳\u{fe0f}\u{200d}🌈"), "🏳\u{fe0f}\u{200d}🌈");
        assert_eq!(visible("👩\u{200d}"), "👩\\u{200d}");
        assert_eq!(visible("a\u{200d}💻"), "a\\u{200d}💻");
    }

    #[test]
    fn escaping_twice_changes_nothing_more() {
        let once = visible("b\u{200b}o\u{1b}b\u{E0041}");
        assert_eq!(visible(&once), once);
    }

    #[test]
    fn names_mixing_scripts_are_marked() {
        assert!(mixes_scripts("bоb")); // Cyrillic о
        assert!(mixes_scripts("аlice")); // Cyrillic а
        assert!(mixes_scripts("pаypal")); // Cyrillic а
        assert!(mixes_scripts("αlice")); // Greek
        assert_eq!(name("bоb"), format!("bоb {MIXED_SCRIPTS_MARK}"));
        assert_eq!(name("bob"), "bob");
    }

    #[test]
    fn names_in_one_writing_system_are_not_marked() {
        for ok in [
            "bob",
            "Bob Smith 2",
            "zoë 👋",
            "борис",
            "Ελένη",
            "山田太郎",
            "やまだ たろう",
            "山田タロウ",
            "Taro 山田",
            "김철수",
            "नमस्ते",
            "",
        ] {
            assert!(!mixes_scripts(ok), "{ok} is marked");
            assert_eq!(name(ok), visible(ok));
        }
    }
}
