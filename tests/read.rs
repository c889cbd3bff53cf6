//! The live source's requests, against a scripted server: what a v1.20
//! control plane cannot be made to do on demand (page a list served from its
//! watch cache, lack `policy/v1`) and what must hold whatever it does (what
//! may be large is paged, the rest read from the watch cache; events not
//! about a suspect, healthy StatefulSets' templates and managed fields are
//! not kept). The same reads
//! against a real API server are the end-to-end suite's (tests/e2e).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

mod support;
use stsmend::cluster::read::{Keep, read};
use stsmend::scope::Scope;

/// Answers by path; records "path?query" of each request.
#[derive(Clone, Default)]
struct Server {
    seen: Arc<Mutex<Vec<String>>>,
}

fn list(kind: &str, items: Value, cont: Option<&str>) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": format!("{kind}List"),
        "metadata": {"resourceVersion": "100", "continue": cont.unwrap_or("")},
        "items": items,
    })
}

fn managed() -> Value {
    json!([{"manager": "kubectl", "operation": "Update", "apiVersion": "apps/v1",
            "time": "2026-11-25T10:00:00Z", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:template": {}}}}])
}

fn stateful_set(ns: &str, name: &str, generation: i64, observed: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"namespace": ns, "name": name, "uid": format!("uid-{ns}-{name}"),
                     "generation": generation, "managedFields": managed(),
                     "creationTimestamp": "2026-11-25T09:00:00Z"},
        "spec": {"replicas": 1, "serviceName": name,
                 "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "app", "image": "app:1"}],
                                       "priorityClassName": format!("{name}-priority")}}},
        "status": {"replicas": 1, "readyReplicas": 1, "updatedReplicas": 1,
                   "currentReplicas": 1, "observedGeneration": observed,
                   "currentRevision": format!("{name}-1"), "updateRevision": format!("{name}-1")},
    })
}

fn event(ns: &str, uid: &str, kind: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"namespace": ns, "name": format!("{name}.{uid}"), "uid": uid,
                     "managedFields": managed()},
        "involvedObject": {"kind": kind, "name": name, "namespace": ns},
        "reason": "BackOff", "type": "Warning", "message": "m",
        "lastTimestamp": "2026-11-25T10:00:00Z",
    })
}

fn not_found() -> (u16, Value) {
    (
        404,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404, "reason": "NotFound"}),
    )
}

impl Server {
    fn answer(path: &str, query: &BTreeMap<String, String>) -> (u16, Value) {
        let cont = query.get("continue").map(String::as_str);
        match (path, cont) {
            // Two pages: namespace a (a suspect and a healthy set), then b.
            ("/apis/apps/v1/statefulsets", None) => (
                200,
                list(
                    "StatefulSet",
                    json!([
                        stateful_set("a", "web", 2, 1),
                        stateful_set("a", "ok", 1, 1)
                    ]),
                    Some("page-2"),
                ),
            ),
            ("/apis/apps/v1/statefulsets", Some("page-2")) => (
                200,
                list("StatefulSet", json!([stateful_set("b", "db", 3, 2)]), None),
            ),
            // A server that pages a cached list.
            ("/api/v1/namespaces/a/pods", None) => (
                200,
                list(
                    "Pod",
                    json!([{"apiVersion": "v1", "kind": "Pod",
                            "metadata": {"namespace": "a", "name": "web-0", "uid": "p0",
                                         "labels": {"app": "web"}, "managedFields": managed()}}]),
                    Some("pods-2"),
                ),
            ),
            ("/api/v1/namespaces/a/pods", Some("pods-2")) => (
                200,
                list(
                    "Pod",
                    json!([{"apiVersion": "v1", "kind": "Pod",
                            "metadata": {"namespace": "a", "name": "web-1", "uid": "p1",
                                         "labels": {"app": "web"}}}]),
                    None,
                ),
            ),
            ("/api/v1/namespaces/a/events", None) => (
                200,
                list(
                    "Event",
                    json!([
                        event("a", "e1", "Pod", "web-0"),
                        event("a", "e2", "Pod", "ok-0"),
                        event("a", "e3", "StatefulSet", "web"),
                        event("a", "e4", "StatefulSet", "ok"),
                    ]),
                    None,
                ),
            ),
            // A pre-1.21 server: no policy/v1.
            ("/apis/policy/v1", _) => not_found(),
            (p, None) if p.starts_with("/apis/policy/v1/") => {
                panic!("policy/v1 listed after discovery said it is absent: {p}")
            }
            // Every other LIST is empty; every GET finds nothing.
            (p, None) if p.ends_with('s') && !p.contains("/configmaps/") => {
                (200, list("", json!([]), None))
            }
            _ => not_found(),
        }
    }

    fn client(&self) -> kube::Client {
        let s = self.clone();
        support::scripted_client(move |req| {
            let path = req.uri().path();
            let query_text = req.uri().query().unwrap_or_default();
            let query: BTreeMap<String, String> = query_text
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            s.seen.lock().unwrap().push(format!("{path}?{query_text}"));
            Server::answer(path, &query)
        })
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn names<K: kube::Resource>(v: &[K]) -> Vec<String> {
    v.iter()
        .map(|o| o.meta().name.clone().unwrap_or_default())
        .collect()
}

async fn read_with(keep: Keep) -> (stsmend::inventory::Inventory, Vec<String>) {
    let server = Server::default();
    let inv = read(
        &server.client(),
        &Scope::default(),
        ("stsmend", "stsmend-state"),
        keep,
    )
    .await
    .unwrap();
    (inv, server.seen())
}

#[tokio::test]
async fn keeps_what_the_facts_of_suspects_need() {
    let (inv, _) = read_with(Keep::Facts).await;
    assert_eq!(names(&inv.stateful_sets), ["web", "ok", "db"]);
    let web = &inv.stateful_sets[0];
    assert!(
        web.metadata.managed_fields.is_some(),
        "a suspect is kept whole: detection reads when its spec was written"
    );
    let ok = &inv.stateful_sets[1];
    assert!(ok.metadata.managed_fields.is_none());
    assert!(ok.spec.template.spec.is_none());
    // Both pages of pods; of the events only those about suspect `web`.
    assert_eq!(names(&inv.pods), ["web-0", "web-1"]);
    assert!(inv.pods[0].metadata.managed_fields.is_none());
    let mut events: Vec<_> = inv
        .events
        .iter()
        .map(|e| e.metadata.uid.clone().unwrap())
        .collect();
    events.sort();
    assert_eq!(events, ["e1", "e3"]);
    assert!(
        inv.events
            .iter()
            .all(|e| e.metadata.managed_fields.is_none())
    );
}

#[tokio::test]
async fn a_snapshot_keeps_objects_whole() {
    let (inv, _) = read_with(Keep::Whole).await;
    let ok = &inv.stateful_sets[1];
    assert!(ok.metadata.managed_fields.is_some());
    assert!(ok.spec.template.spec.is_some());
    assert!(inv.pods[0].metadata.managed_fields.is_some());
    // Events are facts: only those about suspects, snapshot or not.
    assert_eq!(inv.events.len(), 2);
}

#[tokio::test]
async fn lists_that_may_be_large_are_paged_the_rest_come_from_the_cache() {
    let (_, seen) = read_with(Keep::Facts).await;
    let paged = ["/statefulsets?", "/events?", "/nodes?", "/storageclasses?"];
    for r in &seen {
        let cached = r.contains("resourceVersion=0&resourceVersionMatch=NotOlderThan");
        let continued = r.contains("continue=");
        if paged.iter().any(|p| r.contains(p)) {
            assert!(
                r.contains("limit=500") && !r.contains("resourceVersion"),
                "{r}"
            );
        } else if r.contains("/namespaces/a/") || r.contains("/namespaces/b/") {
            // A continued page carries the token and no resource version:
            // the server refuses both.
            assert!(cached != continued, "{r}");
            assert!(!r.contains("limit="), "the watch cache does not page: {r}");
        }
    }
    assert_eq!(
        seen.iter()
            .filter(|r| r.starts_with("/apis/apps/v1/statefulsets"))
            .count(),
        2
    );
    assert!(
        seen.iter()
            .any(|r| r.starts_with("/api/v1/namespaces/a/pods") && r.contains("continue=pods-2")),
        "{seen:#?}"
    );
    // Which PodDisruptionBudget version to read is asked once, not once a
    // namespace.
    assert_eq!(
        seen.iter()
            .filter(|r| r.starts_with("/apis/policy/v1?"))
            .count(),
        1
    );
    for ns in ["a", "b"] {
        assert!(
            seen.iter().any(|r| r.starts_with(&format!(
                "/apis/policy/v1beta1/namespaces/{ns}/poddisruptionbudgets"
            ))),
            "{seen:#?}"
        );
    }
    // No PriorityClass is read, though the suspects name some: a missing
    // one shows in the controller's events (tests/e2e/rbac.rs).
    assert!(
        !seen.iter().any(|r| r.contains("priorityclasses")),
        "{seen:#?}"
    );
    // Nothing is read for the healthy StatefulSet.
    assert!(
        !seen
            .iter()
            .any(|r| r.contains("app%3Dok") || r.contains("app=ok"))
    );
}
