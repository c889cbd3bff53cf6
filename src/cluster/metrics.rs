//! Counts the agent's API requests by verb and resource, from a layer on the
//! client, so runs (and the scale benchmark) can show what they cost the API
//! server.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Method, Request};
use serde::Serialize;

/// Requests by `verb resource`, e.g. `list statefulsets`, `create pods/eviction`.
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<Mutex<BTreeMap<String, u64>>>);

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub total: u64,
    pub by_request: BTreeMap<String, u64>,
}

impl Counter {
    pub fn record<B>(&self, req: &Request<B>) {
        let key = classify(req.method(), req.uri().path());
        if let Ok(mut map) = self.0.lock() {
            *map.entry(key).or_default() += 1;
        }
    }

    pub fn snapshot(&self) -> Counts {
        let by_request = self.0.lock().map(|m| m.clone()).unwrap_or_default();
        Counts {
            total: by_request.values().sum(),
            by_request,
        }
    }
}

/// `verb resource` for an API path such as
/// `/apis/apps/v1/namespaces/shop/statefulsets` or `/api/v1/nodes/n1`.
pub fn classify(method: &Method, path: &str) -> String {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    // Skip the prefix: ["api", v] or ["apis", group, v].
    let rest: &[&str] = match segments.first() {
        Some(&"api") if segments.len() >= 2 => &segments[2..],
        Some(&"apis") if segments.len() >= 3 => &segments[3..],
        _ => return format!("{} {path}", method.as_str().to_ascii_lowercase()),
    };
    let rest = match rest {
        ["namespaces", _ns, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    let (resource, named) = match rest {
        [res] => (res.to_string(), false),
        [res, _name] => (res.to_string(), true),
        [res, _name, sub, ..] => (format!("{res}/{sub}"), true),
        // Discovery of a group version names no resource; it goes by its
        // path, as the audit log has it.
        [] => (path.to_string(), true),
    };
    let verb = match *method {
        Method::GET if named => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "other",
    };
    format!("{verb} {resource}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_paths() {
        assert_eq!(
            classify(&Method::GET, "/apis/apps/v1/statefulsets"),
            "list statefulsets"
        );
        assert_eq!(
            classify(&Method::GET, "/apis/apps/v1/namespaces/shop/statefulsets"),
            "list statefulsets"
        );
        assert_eq!(
            classify(&Method::GET, "/api/v1/namespaces/shop"),
            "get namespaces"
        );
        assert_eq!(classify(&Method::GET, "/api/v1/nodes"), "list nodes");
        assert_eq!(
            classify(&Method::POST, "/api/v1/namespaces/shop/pods/db-2/eviction"),
            "create pods/eviction"
        );
        assert_eq!(
            classify(
                &Method::PATCH,
                "/apis/apps/v1/namespaces/shop/statefulsets/db"
            ),
            "patch statefulsets"
        );
        assert_eq!(
            classify(
                &Method::GET,
                "/apis/x.io/v1/namespaces/capi/machinedeployments/gpu/scale"
            ),
            "get machinedeployments/scale"
        );
        assert_eq!(
            classify(&Method::GET, "/apis/policy/v1"),
            "get /apis/policy/v1"
        );
    }
}
