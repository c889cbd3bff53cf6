//! Label selectors: the `-l` syntax kubectl accepts and the `LabelSelector`
//! objects carry, matched in memory so the file source can filter like the API
//! server does.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use kube_core::{Expression, SelectorExt as _};

use crate::error::{Error, Result};

/// The labels of an object that has none.
pub static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// A parsed selector; an empty one matches everything. The expressions and
/// their matching are kube's; the text is kept as written, for reports and
/// the API server's `labelSelector` parameter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    expressions: kube_core::Selector,
    text: String,
}

impl Selector {
    /// Parses `a=b,c!=d,e in (x,y),f notin (z),g,!h`: kube has the
    /// expressions but no parser for kubectl's `-l` text.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |message: &str| Error::invalid("label selector", text, message);
        let mut expressions = kube_core::Selector::default();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let expression = if let Some(key) = part.strip_prefix('!') {
                Expression::DoesNotExist(key_of(key.trim()).map_err(|m| bad(&m))?)
            } else if let Some((key, values)) = split_set(part, " notin ") {
                Expression::NotIn(
                    key_of(key).map_err(|m| bad(&m))?,
                    values.map_err(|m| bad(&m))?,
                )
            } else if let Some((key, values)) = split_set(part, " in ") {
                Expression::In(
                    key_of(key).map_err(|m| bad(&m))?,
                    values.map_err(|m| bad(&m))?,
                )
            } else if let Some((key, value)) = part.split_once("!=") {
                Expression::NotEqual(key_of(key).map_err(|m| bad(&m))?, value.trim().to_string())
            } else if let Some((key, value)) =
                part.split_once("==").or_else(|| part.split_once('='))
            {
                Expression::Equal(key_of(key).map_err(|m| bad(&m))?, value.trim().to_string())
            } else {
                Expression::Exists(key_of(part).map_err(|m| bad(&m))?)
            };
            expressions.extend(expression);
        }
        Ok(Self {
            expressions,
            text: text.trim().to_string(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.expressions.selects_all()
    }

    /// The selector as the API server's `labelSelector` parameter takes it.
    pub fn as_query(&self) -> &str {
        &self.text
    }

    /// Whether the labels match; an object without labels has the empty
    /// map (`ResourceExt::labels`).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.expressions.matches(labels)
    }

    /// Converts an object's `LabelSelector`; an operator the API does not
    /// define is an error, never a different selector. An absent selector
    /// selects nothing, as for a StatefulSet or PodDisruptionBudget.
    pub fn from_label_selector(selector: &LabelSelector) -> Result<Self> {
        let expressions = kube_core::Selector::try_from(selector.clone()).map_err(|e| {
            Error::invalid("label selector", format!("{selector:?}"), e.to_string())
        })?;
        Ok(Self {
            text: expressions.to_string(),
            expressions,
        })
    }
}

fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

type SetValues = std::result::Result<std::collections::BTreeSet<String>, String>;

fn split_set<'a>(part: &'a str, op: &str) -> Option<(&'a str, SetValues)> {
    let (key, rest) = part.split_once(op)?;
    let rest = rest.trim();
    let values = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .map(|inner| {
            inner
                .split(',')
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect()
        })
        .ok_or_else(|| format!("values after `{}` must be in parentheses", op.trim()));
    Some((key, values))
}

fn key_of(key: &str) -> std::result::Result<String, String> {
    let key = key.trim();
    let valid = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if valid {
        Ok(key.to_string())
    } else {
        Err(format!("invalid label key {key:?}"))
    }
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
    fn equality_and_set_based_requirements() {
        let s = Selector::parse("app=db, tier in (a, b),env!=prod,!legacy,team").unwrap();
        assert!(s.matches(&labels(&[("app", "db"), ("tier", "a"), ("team", "x")])));
        assert!(!s.matches(&labels(&[("app", "db"), ("tier", "c"), ("team", "x")])));
        assert!(!s.matches(&labels(&[
            ("app", "db"),
            ("tier", "a"),
            ("team", "x"),
            ("legacy", "")
        ])));
        assert!(!s.matches(&labels(&[("app", "db"), ("tier", "a")])));
        assert!(!s.matches(&labels(&[
            ("app", "db"),
            ("tier", "a"),
            ("team", "x"),
            ("env", "prod")
        ])));
    }

    #[test]
    fn notin_matches_missing_keys() {
        let s = Selector::parse("env notin (prod)").unwrap();
        assert!(s.matches(&BTreeMap::new()));
        assert!(!s.matches(&labels(&[("env", "prod")])));
    }

    #[test]
    fn malformed_selectors_are_rejected_with_the_text() {
        let err = Selector::parse("app in db").unwrap_err().to_string();
        assert!(err.contains("\"app in db\""), "{err}");
        assert!(Selector::parse("a b=c").is_err());
    }
}

#[cfg(test)]
mod object_tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    #[test]
    fn an_unknown_operator_is_an_error_not_a_different_selector() {
        let sel = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "Contains".into(),
                values: Some(vec!["db".into()]),
            }]),
            ..Default::default()
        };
        assert!(Selector::from_label_selector(&sel).is_err());
    }

    #[test]
    fn an_object_selector_matches_and_renders_as_a_query() {
        let sel = LabelSelector {
            match_labels: Some([("app".to_string(), "db".to_string())].into()),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "NotIn".into(),
                values: Some(vec!["cache".into()]),
            }]),
        };
        let s = Selector::from_label_selector(&sel).unwrap();
        assert_eq!(s.as_query(), "app=db,tier notin (cache)");
        let labels: BTreeMap<String, String> = [("app".to_string(), "db".to_string())].into();
        assert!(s.matches(&labels));
    }
}
