//! Small helpers shared by the actors and the binary, kept out of any one actor's file: text
//! made safe to print.

/// Makes text safe to print: control characters (escape sequences, carriage returns, bells),
/// bidirectional overrides and line separators are shown as `\u{..}` escapes instead of
/// acting on the terminal. Everything else, any script or emoji, is shown as it is.
pub fn visible(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
        let separator = matches!(c, '\u{2028}' | '\u{2029}');
        if c.is_control() || bidi || separator {
            match c {
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                _ => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::visible;

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
}
