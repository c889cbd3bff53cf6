//! Which policy decides for which StatefulSet. A team policy says in its
//! header which objects it is for, so a team's pull request is one file:
//!
//! ```text
//! //! Database team: fit requests to the LimitRange instead of rolling back.
//! //! @namespaces databases analytics
//! //! @selector team=db
//! ```
//!
//! An annotation on the StatefulSet naming a policy wins over headers; with
//! neither, the default ladder decides.

use std::collections::BTreeMap;

use serde::Serialize;

use super::error::{ErrorKind, PolicyError};
use crate::selector::{NO_LABELS, Selector};

/// What a policy's `//!` header says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Header {
    /// The `//!` lines that are not directives.
    pub description: String,
    /// `@namespaces`: only StatefulSets in these namespaces.
    pub namespaces: Vec<String>,
    /// `@selector`: only StatefulSets whose labels match.
    pub selector: Option<Selector>,
}

impl Header {
    /// Whether the header selects anything at all; a policy without
    /// directives is chosen only by annotation.
    pub fn selects(&self) -> bool {
        !self.namespaces.is_empty() || self.selector.is_some()
    }

    /// Why the header selects this StatefulSet, or `None` when it does not.
    pub fn matches(
        &self,
        namespace: &str,
        labels: Option<&BTreeMap<String, String>>,
    ) -> Option<String> {
        if !self.selects() {
            return None;
        }
        let mut why = Vec::new();
        if !self.namespaces.is_empty() {
            if !self.namespaces.iter().any(|n| n == namespace) {
                return None;
            }
            why.push(format!("namespace {namespace}"));
        }
        if let Some(sel) = &self.selector {
            if !sel.matches(labels.unwrap_or(&NO_LABELS)) {
                return None;
            }
            why.push(format!("selector {}", sel.as_query()));
        }
        Some(why.join(" and "))
    }

    /// Reads the header: the comment lines before the first line of code.
    pub fn parse(file: &str, text: &str) -> Result<Self, PolicyError> {
        let mut header = Header::default();
        let mut description: Vec<&str> = Vec::new();
        let bad = |line: usize, message: String| {
            PolicyError::new(file, ErrorKind::Header, message).at_line(line)
        };
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            if !line.starts_with("//") {
                break;
            }
            let Some(doc) = line.strip_prefix("//!") else {
                continue;
            };
            let doc = doc.trim();
            let Some(directive) = doc.strip_prefix('@') else {
                description.push(doc);
                continue;
            };
            let (name, rest) = directive
                .split_once(char::is_whitespace)
                .map_or((directive, ""), |(n, r)| (n, r.trim()));
            match name {
                "namespaces" => {
                    if !header.namespaces.is_empty() {
                        return Err(bad(i + 1, "@namespaces is given twice".into()));
                    }
                    header.namespaces = rest
                        .split([',', ' ', '\t'])
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect();
                    if header.namespaces.is_empty() {
                        return Err(bad(
                            i + 1,
                            "@namespaces needs at least one namespace".into(),
                        ));
                    }
                    if let Some(n) = header.namespaces.iter().find(|n| !is_dns_label(n)) {
                        return Err(bad(
                            i + 1,
                            format!("@namespaces: {n:?} is not a namespace name"),
                        ));
                    }
                }
                "selector" => {
                    if header.selector.is_some() {
                        return Err(bad(i + 1, "@selector is given twice".into()));
                    }
                    if rest.is_empty() {
                        return Err(bad(
                            i + 1,
                            "@selector needs a label selector, e.g. team=db".into(),
                        ));
                    }
                    header.selector = Some(
                        Selector::parse(rest).map_err(|e| bad(i + 1, format!("@selector: {e}")))?,
                    );
                }
                other => {
                    return Err(bad(
                        i + 1,
                        format!("unknown directive @{other} (known: @namespaces, @selector)"),
                    ));
                }
            }
        }
        header.description = description
            .split(|l| l.is_empty())
            .next()
            .unwrap_or_default()
            .join(" ");
        Ok(header)
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A loaded policy as the report lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyInfo {
    pub name: String,
    pub file: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Set when the policy could not be loaded; StatefulSets it would
    /// decide for get no actions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<super::error::PolicyError>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_directives_and_description() {
        let h = Header::parse(
            "t.rhai",
            "// licence\n//! Database team: fit requests.\n//! Second line.\n//!\n//! More.\n//! @namespaces databases, analytics\n//! @selector team=db\n\nlet x = 1;\n//! @selector ignored=after-code\n",
        )
        .unwrap();
        assert_eq!(h.description, "Database team: fit requests. Second line.");
        assert_eq!(h.namespaces, ["databases", "analytics"]);
        assert_eq!(
            h.matches("databases", Some(&labels(&[("team", "db")]))),
            Some("namespace databases and selector team=db".into())
        );
        assert_eq!(h.matches("shop", Some(&labels(&[("team", "db")]))), None);
        assert_eq!(
            h.matches("databases", Some(&labels(&[("team", "web")]))),
            None
        );
    }

    #[test]
    fn no_directive_selects_nothing() {
        let h = Header::parse("t.rhai", "//! Only by annotation.\n[]").unwrap();
        assert!(!h.selects());
        assert_eq!(h.matches("any", None), None);
    }

    #[test]
    fn bad_directives_name_their_line() {
        for (text, needle) in [
            (
                "//! ok\n//! @namespace db\n",
                "unknown directive @namespace",
            ),
            ("//! @selector app in db\n", "@selector"),
            ("//! @namespaces\n", "at least one"),
            ("//! @namespaces Bad_Name\n", "not a namespace"),
        ] {
            let e = Header::parse("t.rhai", text).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Header);
            assert!(e.line.is_some(), "{e}");
            assert!(e.to_string().contains(needle), "{e}");
            assert!(e.to_string().starts_with("t.rhai:"), "{e}");
        }
    }
}
