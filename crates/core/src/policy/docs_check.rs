//! The documentation of what a policy sees, checked against the types: the
//! scope names and object properties in docs/policies.md ("What a policy
//! sees") and every finding kind with its `data` keys in
//! docs/report-schema.md. A kind or key added, renamed or dropped fails here
//! until the docs say so.

use std::collections::{BTreeMap, BTreeSet};

use super::view::{FINDING_FIELDS, POD_FIELDS, SCOPE_NAMES, STS_FIELDS};
use crate::diagnose::Kind;

fn doc(name: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/");
    std::fs::read_to_string(format!("{path}{name}")).expect("the docs")
}

/// The text of a `## ` section, up to the next one.
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let start = text
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("no section {heading:?}"));
    let rest = &text[start + heading.len() + 5..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

/// The names a piece of prose lists: its `code` spans outside parentheses
/// (which explain them). A span right after "as " stands for another
/// entry's list, returned apart.
fn listed(text: &str) -> (Vec<String>, Vec<String>) {
    let (mut names, mut like) = (Vec::new(), Vec::new());
    let mut depth = 0usize;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        match c {
            '`' => {
                let end = rest[1..].find('`').expect("closed `code`") + 1;
                let name = rest[1..end].to_string();
                let before = &text[..text.len() - rest.len()];
                if depth == 0 {
                    if before.ends_with("as ") {
                        like.push(name);
                    } else {
                        names.push(name);
                    }
                }
                rest = &rest[end + 1..];
                continue;
            }
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        rest = &rest[c.len_utf8()..];
    }
    (names, like)
}

/// The first sentence of the paragraph that starts with `start`.
fn first_sentence<'a>(text: &'a str, start: &str) -> &'a str {
    let at = text
        .find(start)
        .unwrap_or_else(|| panic!("no paragraph {start:?}"));
    let para = &text[at + start.len()..];
    let para = &para[..para.find("\n\n").unwrap_or(para.len())];
    // Sentences end outside code spans.
    let mut in_code = false;
    for (i, c) in para.char_indices() {
        match c {
            '`' => in_code = !in_code,
            '.' if !in_code
                && (para[i + 1..].is_empty() || para[i + 1..].starts_with([' ', '\n'])) =>
            {
                return &para[..i];
            }
            _ => {}
        }
    }
    para
}

fn set<'a>(names: impl IntoIterator<Item = &'a str>) -> BTreeSet<&'a str> {
    names.into_iter().collect()
}

#[test]
fn policies_md_lists_what_a_policy_sees() {
    let text = doc("policies.md");
    let sees = section(&text, "What a policy sees");
    let scope: Vec<&str> = sees
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| l[3..].split('`').next().unwrap_or_default())
        .collect();
    assert_eq!(scope, SCOPE_NAMES, "the scope table");
    for (start, fields) in [
        ("**StatefulSet** (`sts`) properties:", STS_FIELDS),
        ("**Pod** properties:", POD_FIELDS),
        ("**Finding** properties:", FINDING_FIELDS),
    ] {
        let (names, like) = listed(first_sentence(sees, start));
        assert!(like.is_empty(), "{start} {like:?}");
        assert_eq!(
            set(names.iter().map(String::as_str)),
            set(fields.iter().copied()),
            "{start}"
        );
    }
}

#[test]
fn report_schema_lists_every_kind_and_its_data_keys() {
    let text = doc("report-schema.md");
    let finding = section(&text, "Finding");
    let table = finding
        .split("| kind | meaning | `data` keys |")
        .nth(1)
        .expect("the kinds table");
    let mut documented: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for row in table.lines().skip(2).take_while(|l| l.starts_with('|')) {
        let cells: Vec<&str> = row.split('|').collect();
        assert_eq!(cells.len(), 5, "one kind per row, three cells: {row}");
        let (kinds, _) = listed(cells[1]);
        assert_eq!(kinds.len(), 1, "one kind per row: {row}");
        let keys = listed(cells[3]);
        assert!(
            documented.insert(kinds[0].clone(), keys).is_none(),
            "{} twice",
            kinds[0]
        );
    }
    let names: BTreeSet<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(
        set(documented.keys().map(String::as_str)),
        names,
        "the kinds documented"
    );
    for kind in Kind::ALL {
        let (keys, like) = &documented[kind.as_str()];
        let mut listed: BTreeSet<&str> = set(keys.iter().map(String::as_str));
        for other in like {
            let (more, _) = documented
                .get(other)
                .unwrap_or_else(|| panic!("{}: as {other}, not a kind", kind.as_str()));
            listed.extend(more.iter().map(String::as_str));
        }
        assert_eq!(
            listed,
            set(kind.fields()),
            "the data keys of {}",
            kind.as_str()
        );
    }
}
