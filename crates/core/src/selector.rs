//! Label selectors: the `-l` syntax kubectl accepts and the `LabelSelector`
//! objects carry, matched in memory so the file source can filter like the API
//! server does.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed selector; an empty one matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
    text: String,
}

impl Selector {
    /// Parses `a=b,c!=d,e in (x,y),f notin (z),g,!h`.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |message: &str| Error::invalid("label selector", text, message);
        let mut requirements = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let requirement = if let Some(key) = part.strip_prefix('!') {
                Requirement::DoesNotExist(key_of(key.trim()).map_err(|m| bad(&m))?)
            } else if let Some((key, values)) = split_set(part, " notin ") {
                Requirement::NotIn(
                    key_of(key).map_err(|m| bad(&m))?,
                    values.map_err(|m| bad(&m))?,
                )
            } else if let Some((key, values)) = split_set(part, " in ") {
                Requirement::In(
                    key_of(key).map_err(|m| bad(&m))?,
                    values.map_err(|m| bad(&m))?,
                )
            } else if let Some((key, value)) = part.split_once("!=") {
                Requirement::NotEquals(key_of(key).map_err(|m| bad(&m))?, value.trim().to_string())
            } else if let Some((key, value)) =
                part.split_once("==").or_else(|| part.split_once('='))
            {
                Requirement::Equals(key_of(key).map_err(|m| bad(&m))?, value.trim().to_string())
            } else {
                Requirement::Exists(key_of(part).map_err(|m| bad(&m))?)
            };
            requirements.push(requirement);
        }
        Ok(Self {
            requirements,
            text: text.trim().to_string(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The selector as the API server's `labelSelector` parameter takes it.
    pub fn as_query(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let empty = BTreeMap::new();
        let labels = labels.unwrap_or(&empty);
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Converts an object's `LabelSelector`. An absent selector selects nothing,
    /// as for a StatefulSet or PodDisruptionBudget.
    pub fn from_label_selector(selector: &LabelSelector) -> Result<Self> {
        let mut requirements = Vec::new();
        for (k, v) in selector.match_labels.iter().flatten() {
            requirements.push(Requirement::Equals(k.clone(), v.clone()));
        }
        for expr in selector.match_expressions.iter().flatten() {
            let values = expr.values.clone().unwrap_or_default();
            requirements.push(match expr.operator.as_str() {
                "In" => Requirement::In(expr.key.clone(), values),
                "NotIn" => Requirement::NotIn(expr.key.clone(), values),
                "Exists" => Requirement::Exists(expr.key.clone()),
                "DoesNotExist" => Requirement::DoesNotExist(expr.key.clone()),
                other => {
                    return Err(Error::invalid(
                        "label selector operator",
                        other,
                        "expected In, NotIn, Exists or DoesNotExist",
                    ));
                }
            });
        }
        Ok(Self {
            requirements,
            text: String::new(),
        })
    }
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        }
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

type SetValues = std::result::Result<Vec<String>, String>;

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
        assert!(s.matches(Some(&labels(&[
            ("app", "db"),
            ("tier", "a"),
            ("team", "x")
        ]))));
        assert!(!s.matches(Some(&labels(&[
            ("app", "db"),
            ("tier", "c"),
            ("team", "x")
        ]))));
        assert!(!s.matches(Some(&labels(&[
            ("app", "db"),
            ("tier", "a"),
            ("team", "x"),
            ("legacy", "")
        ]))));
        assert!(!s.matches(Some(&labels(&[("app", "db"), ("tier", "a")]))));
        assert!(!s.matches(Some(&labels(&[
            ("app", "db"),
            ("tier", "a"),
            ("team", "x"),
            ("env", "prod")
        ]))));
    }

    #[test]
    fn notin_matches_missing_keys() {
        let s = Selector::parse("env notin (prod)").unwrap();
        assert!(s.matches(None));
        assert!(!s.matches(Some(&labels(&[("env", "prod")]))));
    }

    #[test]
    fn malformed_selectors_are_rejected_with_the_text() {
        let err = Selector::parse("app in db").unwrap_err().to_string();
        assert!(err.contains("\"app in db\""), "{err}");
        assert!(Selector::parse("a b=c").is_err());
    }
}
