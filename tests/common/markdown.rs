//! What a Markdown report shows as markup: its text outside code spans
//! (literal when rendered), escaped characters taken as text.

/// The text of `md` outside code spans; panics on a code span left open,
/// which would make the rest of its line literal.
pub fn outside_code(md: &str) -> String {
    let mut outside = String::new();
    for l in md.lines() {
        let mut code = false;
        let mut chars = l.chars();
        while let Some(c) = chars.next() {
            if c == '\\' && !code {
                chars.next();
            } else if c == '`' {
                code = !code;
            } else if !code {
                outside.push(c);
            }
        }
        assert!(!code, "a code span left open: {l}");
        outside.push('\n');
    }
    outside
}
