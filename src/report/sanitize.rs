//! One sanitizer for the human-readable formats (text, `explain`,
//! Markdown). Every byte they quote from the cluster, a snapshot or a
//! policy is untrusted: an Event message, a termination message, a log
//! line, a name in a hand-written snapshot. In a terminal or a CronJob's
//! log it must not move the cursor, recolour, reorder (bidi) or forge a
//! line of the report; in a pull-request comment it must not become a
//! link, an image, HTML, a mention or a fence. JSON, JUnit and SARIF keep
//! the text as it is, escaped by their encoders.

/// Characters of one quoted text a human report shows; the rest is said to
/// be cut, and the JSON report has it whole.
pub const QUOTE_MAX: usize = 2000;

/// Characters that reorder or hide text without showing themselves
/// (bidirectional controls and zero-width characters), or that some
/// viewers take for a line break (the line and paragraph separators).
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{2029}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// `text` for one line of a terminal or log: line breaks and tabs become
/// spaces (a message cannot start a line of its own), other control
/// characters (ESC of an ANSI sequence, BEL, NUL) and invisible ones are
/// shown as `\u{..}`, and it is cut at [`QUOTE_MAX`] characters.
pub fn line(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(QUOTE_MAX + 64));
    let mut chars = text.chars();
    for (shown, c) in chars.by_ref().enumerate() {
        if shown == QUOTE_MAX {
            let rest = 1 + chars.count();
            out.push_str(&format!(" [cut: {rest} more characters]"));
            break;
        }
        match c {
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() || invisible(c) => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// `text` as GitHub-flavoured Markdown that renders as the text itself, on
/// one line and fit for a table cell: [`line`], then every character that
/// could start markup or HTML escaped, and a zero-width space where
/// GitHub would otherwise make a mention, an e-mail address or a link.
pub fn markdown(text: &str) -> String {
    let one = line(text);
    let mut out = String::with_capacity(one.len() + 16);
    let mut rest = one.as_str();
    while let Some(c) = rest.chars().next() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '|' | '~' | '!' | '#' | '$' => {
                out.push('\\');
                out.push(c);
            }
            '@' => out.push_str("@\u{200B}"),
            ':' if rest.starts_with("://") => out.push_str(":\u{200B}"),
            'w' | 'W'
                if rest
                    .get(..4)
                    .is_some_and(|w| w.eq_ignore_ascii_case("www.")) =>
            {
                out.push_str(&rest[..3]);
                out.push('\u{200B}');
                rest = &rest[3..];
                continue;
            }
            c => out.push(c),
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// `text` as a Markdown code span: literal, so only a backtick (which
/// would close it) and a pipe (which would end a table cell) are changed.
pub fn code(text: &str) -> String {
    format!("`{}`", line(text).replace('`', "'").replace('|', "\\|"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_cannot_move_the_cursor_or_start_a_line() {
        let forged = "ok\u{1b}[2K\rFAILING kube-system/forged\n  guards: admitted\u{7}\u{0}\u{202e}txt.exe\u{200b}";
        let l = line(forged);
        assert!(!l.chars().any(|c| c.is_control() || invisible(c)), "{l:?}");
        assert_eq!(
            l,
            "ok\\u{1b}[2K FAILING kube-system/forged   guards: admitted\\u{7}\\u{0}\\u{202e}txt.exe\\u{200b}"
        );
    }

    #[test]
    fn a_long_quote_is_cut_with_a_marker() {
        let l = line(&"é".repeat(QUOTE_MAX + 5));
        assert!(l.ends_with(" [cut: 5 more characters]"), "{l}");
        assert_eq!(l.chars().filter(|c| *c == 'é').count(), QUOTE_MAX);
        assert_eq!(line(&"x".repeat(QUOTE_MAX)), "x".repeat(QUOTE_MAX));
    }

    #[test]
    fn markdown_renders_as_the_text_itself() {
        let hostile = "![x](https://evil.example/p.png) [click](http://evil) <img src=x onerror=alert(1)></table><details> @octocat ```fence``` <!-- hide | www.evil.example a@b.example";
        let m = markdown(hostile);
        for gone in [
            "![",
            "](",
            "<img",
            "</table>",
            "<details>",
            "<!--",
            "@octocat",
            "```",
            "https://",
            "http://",
            "www.evil",
            " | ",
        ] {
            assert!(!m.contains(gone), "{gone:?} survives in {m}");
        }
        assert!(m.contains("&lt;img"), "{m}");
        assert!(m.contains("\\|"), "{m}");
        assert_eq!(
            markdown("db-2 crash loops: exit 1 (3 restarts)"),
            "db-2 crash loops: exit 1 \\(3 restarts\\)"
        );
    }

    /// Any text: a few hostile pieces mixed with arbitrary characters.
    fn hostile() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            Just("\u{1b}[2K".to_string()),
            Just("\r\n".to_string()),
            Just("](https://evil.example)".to_string()),
            Just("<img src=x>".to_string()),
            Just("@octocat".to_string()),
            Just("```".to_string()),
            Just("www.evil.example".to_string()),
            Just("|".to_string()),
            Just("\u{202e}".to_string()),
            any::<String>(),
            "\\PC{0,3000}",
        ];
        proptest::collection::vec(piece, 0..8).prop_map(|v| v.concat())
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config { cases: 256, ..Default::default() })]

        #[test]
        fn no_text_leaves_a_line_or_shows_a_control(text in hostile()) {
            let l = line(&text);
            proptest::prop_assert!(!l.chars().any(|c| c.is_control() || invisible(c)), "{:?}", l);
            // At most QUOTE_MAX characters shown, each at most `\u{10ffff}`.
            proptest::prop_assert!(l.chars().count() <= QUOTE_MAX * 10 + 40);
            let separated = l.contains('\u{2028}') || l.contains('\u{2029}');
            proptest::prop_assert!(!separated, "a line separator in {:?}", l);
        }

        #[test]
        fn no_text_becomes_markup(text in hostile()) {
            let m = markdown(&text);
            proptest::prop_assert!(!m.chars().any(|c| c.is_control() || c == '<' || c == '>'), "{:?}", m);
            proptest::prop_assert!(!m.contains("](") && !m.contains("://") && !m.contains("```"), "{:?}", m);
            let chars: Vec<char> = m.chars().collect();
            for (i, c) in chars.iter().enumerate() {
                match c {
                    '|' | '[' | '`' | '!' => proptest::prop_assert!(i > 0 && chars[i - 1] == '\\', "{:?} at {} of {:?}", c, i, m),
                    '@' => proptest::prop_assert!(chars.get(i + 1) == Some(&'\u{200B}'), "{:?}", m),
                    _ => {}
                }
            }
            let c = code(&text);
            proptest::prop_assert!(c.starts_with('`') && c.ends_with('`') && c.len() >= 2);
            proptest::prop_assert!(!c[1..c.len() - 1].contains('`'), "{:?}", c);
            proptest::prop_assert!(!c.chars().any(char::is_control), "{:?}", c);
        }
    }

    #[test]
    fn a_code_span_stays_one() {
        assert_eq!(code("shop/db`x|y\nz"), "`shop/db'x\\|y z`");
    }
}
