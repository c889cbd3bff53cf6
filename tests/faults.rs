//! API faults a real server cannot produce on demand (409, 403, 404, 429,
//! 5xx), injected with a scripted client: each is retried where a retry is
//! safe, reported otherwise, and never leaves an action half-applied and
//! unreported. Acting on the real server, restarts included, is proven by
//! the end-to-end scenarios.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod support;

use stsmend::cluster::act::Actor;
use stsmend::cluster::write::{Mode as WriteMode, Writer};
use stsmend::duration::Span;
use stsmend::execution::{Mode, Status};
use stsmend::guard::Limits;
use stsmend::pipeline::{self, Assessment, Gate, Options, Settings};
use stsmend::policy::Policies;

/// Answers requests in order from a script of (status, body); records
/// "METHOD path" of each request.
#[derive(Clone, Default)]
struct Script {
    answers: Arc<Mutex<VecDeque<(u16, serde_json::Value)>>>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Script {
    fn new(answers: &[(u16, serde_json::Value)]) -> Self {
        Self {
            answers: Arc::new(Mutex::new(answers.iter().cloned().collect())),
            seen: Default::default(),
        }
    }

    fn client(&self) -> kube::Client {
        let s = self.clone();
        support::scripted_client(move |req| {
            s.seen
                .lock()
                .unwrap()
                .push(format!("{} {}", req.method(), req.uri().path()));
            // An unscripted request is a test failure, answered as one.
            s.answers
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or((599, serde_json::json!({})))
        })
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn status(code: u16, reason: &str) -> (u16, serde_json::Value) {
    (
        code,
        serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": format!("injected {code}")}),
    )
}

fn ok(body: serde_json::Value) -> (u16, serde_json::Value) {
    (200, body)
}

/// The bad-image StatefulSet of the mixed capture, planned by the ladder
/// (a rollback) and admitted by the guards.
fn db() -> Assessment {
    let inv = stsmend::source::files::load(&[PathBuf::from("tests/fixtures/mixed.yaml")]).unwrap();
    let settings = Settings::with(Options::new(
        stsmend::snapshot::taken_at(&inv).unwrap().unwrap(),
        Span::minutes(0),
    ))
    .limits(Limits {
        storm_max_failing: 100,
        storm_max_share: 1.0,
        ..Default::default()
    });
    let o = pipeline::run(&inv, None, &settings, &Policies::builtin()).outcome;
    let mut a = o.failing.into_iter().find(|a| a.name == "db").unwrap();
    a.gate = Some(Gate {
        admitted: true,
        blocked: None,
        opted_in: true,
        seen_runs: 2,
    });
    assert_eq!(a.plan.as_ref().unwrap().actions[0].name(), "rollback");
    a
}

async fn carry_out(script: &Script, mode: Mode) -> Vec<(String, Status, String)> {
    carry_out_plan(script, mode, &db()).await
}

/// Carries out `a`'s plan through the scripted client: what became of each
/// action, as (action, status, detail).
async fn carry_out_plan(
    script: &Script,
    mode: Mode,
    a: &Assessment,
) -> Vec<(String, Status, String)> {
    carry_out_with(script.client(), mode, a).await
}

async fn carry_out_with(
    client: kube::Client,
    mode: Mode,
    a: &Assessment,
) -> Vec<(String, Status, String)> {
    let mut actor = Actor {
        mode,
        writer: Writer::new(client.clone(), WriteMode::Apply),
        own: Writer::new(client, WriteMode::Apply),
        node_groups: &[],
        state_namespace: "stsmend".into(),
        undo: Default::default(),
        undo_keep: stsmend::duration::Span::days(30),
        undo_max_records: 200,
        now: jiff::Timestamp::now(),
        retry_delay: Duration::ZERO,
    };
    actor
        .carry_out(a)
        .await
        .executed
        .into_iter()
        .map(|e| (e.action, e.status, e.detail))
        .collect()
}

/// Saving the undo ConfigMap: it is read, then patched conditionally on
/// the resourceVersion read (two runs at once merge, never overwrite).
const READ_UNDO: &str = "GET /api/v1/namespaces/stsmend/configmaps/stsmend-undo";
const UNDO: &str = "PATCH /api/v1/namespaces/stsmend/configmaps/stsmend-undo";

/// The undo ConfigMap as the save reads it.
fn undo_book() -> (u16, serde_json::Value) {
    ok(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "stsmend-undo", "namespace": "stsmend", "resourceVersion": "7"}}))
}
const STS: &str = "PATCH /apis/apps/v1/namespaces/shop/statefulsets/db";
const EVENT: &str = "POST /api/v1/namespaces/shop/events";

fn sts_after() -> serde_json::Value {
    serde_json::json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "shop", "generation": 3}})
}

#[tokio::test]
async fn a_rollback_saves_its_undo_record_first_then_records_an_event() {
    let s = Script::new(&[
        undo_book(),
        ok(serde_json::json!({})),
        ok(sts_after()),
        undo_book(),
        ok(serde_json::json!({})),
        ok(serde_json::json!({})),
    ]);
    let done = carry_out(&s, Mode::Apply).await;
    assert_eq!(done[0].1, Status::Done, "{done:?}");
    // The revert's own writes; what follows is the forced rollback's wait
    // for the controller (this script answers no more), which
    // tests/e2e/heal.rs shows on a real control plane.
    assert_eq!(
        s.seen()[..6],
        [READ_UNDO, UNDO, STS, READ_UNDO, UNDO, EVENT]
    );
}

#[tokio::test]
async fn server_errors_and_throttling_are_retried() {
    let s = Script::new(&[
        undo_book(),
        status(503, "ServiceUnavailable"),
        undo_book(),
        ok(serde_json::json!({})),
        status(500, "InternalError"),
        status(429, "TooManyRequests"),
        ok(sts_after()),
        undo_book(),
        ok(serde_json::json!({})),
        ok(serde_json::json!({})),
    ]);
    let done = carry_out(&s, Mode::Apply).await;
    assert_eq!(done[0].1, Status::Done, "{done:?} {:?}", s.seen());
    assert_eq!(
        s.seen()[..10],
        [
            READ_UNDO, UNDO, READ_UNDO, UNDO, STS, STS, STS, READ_UNDO, UNDO, EVENT
        ]
    );
}

#[tokio::test]
async fn a_conflict_or_a_vanished_object_is_deferred_never_forced() {
    for (code, reason) in [(409, "Conflict"), (404, "NotFound")] {
        let s = Script::new(&[
            undo_book(),
            ok(serde_json::json!({})),
            status(code, reason),
            undo_book(),
            ok(serde_json::json!({})),
            ok(serde_json::json!({})),
        ]);
        let done = carry_out(&s, Mode::Apply).await;
        assert_eq!(done[0].1, Status::Conflict, "{code}: {done:?}");
        assert!(done[0].2.contains(&format!("injected {code}")), "{done:?}");
        // One attempt at the StatefulSet; the undo record is withdrawn (it
        // would undo nothing) and the deferral is recorded as an Event.
        assert_eq!(
            s.seen(),
            [READ_UNDO, UNDO, STS, READ_UNDO, UNDO, EVENT],
            "{code}"
        );
    }
}

#[tokio::test]
async fn a_forbidden_write_fails_loudly_after_one_attempt() {
    let s = Script::new(&[
        undo_book(),
        ok(serde_json::json!({})),
        status(403, "Forbidden"),
        ok(serde_json::json!({})),
    ]);
    let done = carry_out(&s, Mode::Apply).await;
    assert_eq!(done[0].1, Status::Failed, "{done:?}");
    assert!(
        done[0].2.contains("403") || done[0].2.contains("injected"),
        "{done:?}"
    );
    assert_eq!(s.seen(), [READ_UNDO, UNDO, STS, EVENT]);
}

#[tokio::test]
async fn no_write_without_its_undo_record() {
    let s = Script::new(&[status(403, "Forbidden"), ok(serde_json::json!({}))]);
    let done = carry_out(&s, Mode::Apply).await;
    assert_eq!(done[0].1, Status::Failed, "{done:?}");
    assert!(!s.seen().contains(&STS.to_string()), "{:?}", s.seen());
}

#[tokio::test]
async fn a_server_that_stays_down_is_reported_not_retried_forever() {
    let s = Script::new(&[
        undo_book(),
        ok(serde_json::json!({})),
        status(503, "ServiceUnavailable"),
        status(503, "ServiceUnavailable"),
        status(503, "ServiceUnavailable"),
        status(503, "ServiceUnavailable"),
        status(503, "ServiceUnavailable"),
        status(503, "ServiceUnavailable"),
    ]);
    let done = carry_out(&s, Mode::Apply).await;
    assert_eq!(done[0].1, Status::Failed, "{done:?}");
    let attempts = s.seen().iter().filter(|r| *r == STS).count();
    assert_eq!(attempts, 3, "{:?}", s.seen());
}

#[tokio::test]
async fn a_dry_run_sends_nothing() {
    let s = Script::new(&[]);
    let done = carry_out(&s, Mode::DryRun).await;
    assert_eq!(done[0].1, Status::DryRun);
    assert!(s.seen().is_empty(), "{:?}", s.seen());
}

/// The same StatefulSet with a plan to delete db-2 (as a team policy may,
/// with `any_pod`): evictions go through the eviction API.
async fn evict(script: &Script) -> Vec<(String, Status, String)> {
    let mut a = db();
    a.plan.as_mut().unwrap().actions = vec![stsmend::policy::Action::DeletePods {
        pods: vec!["db-2".into()],
        any_pod: true,
        why: "test".into(),
    }];
    carry_out_plan(script, Mode::Apply, &a).await
}

const EVICT: &str = "POST /api/v1/namespaces/shop/pods/db-2/eviction";

#[tokio::test]
async fn an_eviction_a_disruption_budget_forbids_is_disallowed_not_retried() {
    let pdb = (
        429,
        serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 429, "reason": "TooManyRequests",
            "message": "Cannot evict pod as it would violate the pod's disruption budget."}),
    );
    let s = Script::new(&[pdb, ok(serde_json::json!({}))]);
    let done = evict(&s).await;
    assert_eq!(done[0].1, Status::Disallowed, "{done:?}");
    assert_eq!(s.seen(), [EVICT, EVENT]);
}

#[tokio::test]
async fn a_throttled_eviction_is_retried() {
    let s = Script::new(&[
        status(429, "TooManyRequests"),
        ok(serde_json::json!({})),
        ok(serde_json::json!({})),
    ]);
    let done = evict(&s).await;
    assert_eq!(done[0].1, Status::Done, "{done:?}");
    assert_eq!(s.seen(), [EVICT, EVICT, EVENT]);
}

/// An eviction refused as a conflict (the resourceVersion it is
/// conditional on moved: a crash-looping pod's status) reads the pod
/// again, checks it again, and evicts it; a pod that stays in conflict is
/// left to the next run after a few looks, never evicted unconditionally.
#[tokio::test]
async fn an_eviction_in_conflict_looks_at_the_pod_again() {
    let a = db();
    let pod = a
        .facts
        .pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("db-2"))
        .cloned()
        .unwrap();
    let list = ok(
        serde_json::json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [pod]}),
    );
    let s = Script::new(&[
        status(409, "Conflict"),
        list.clone(),
        ok(serde_json::json!({})),
        ok(serde_json::json!({})),
    ]);
    let done = evict(&s).await;
    assert_eq!(done[0].1, Status::Done, "{done:?}");
    const READ_POD: &str = "GET /api/v1/namespaces/shop/pods";
    assert_eq!(s.seen(), [EVICT, READ_POD, EVICT, EVENT]);

    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.extend([status(409, "Conflict"), list.clone()]);
    }
    answers.extend([status(409, "Conflict"), ok(serde_json::json!({}))]);
    let s = Script::new(&answers);
    let done = evict(&s).await;
    assert_eq!(done[0].1, Status::Conflict, "{done:?}");
    assert_eq!(
        s.seen().iter().filter(|r| *r == EVICT).count(),
        4,
        "{:?}",
        s.seen()
    );

    // Gone when looked at again: not deleted, and said so.
    let gone =
        ok(serde_json::json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": []}));
    let s = Script::new(&[status(409, "Conflict"), gone, ok(serde_json::json!({}))]);
    let done = evict(&s).await;
    assert!(done[0].2.contains("no longer exists"), "{done:?}");
    assert_eq!(s.seen(), [EVICT, READ_POD, EVENT]);
}

/// Serves `script` over plain HTTP on a local port, one request per
/// connection, so a test can use the client the binary builds
/// ([`stsmend::cluster::build_client`]), with all its layers.
async fn serve(script: Script) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let script = script.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Headers, then as much body as Content-Length says.
                let (head_end, length) = loop {
                    let n = conn.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (i + 4, length);
                    }
                };
                while buf.len() < head_end + length {
                    let n = conn.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let mut words = head.split_whitespace();
                let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                let path = target.split('?').next().unwrap_or("");
                script.seen.lock().unwrap().push(format!("{method} {path}"));
                let (code, body) = script
                    .answers
                    .lock()
                    .unwrap()
                    .pop_front()
                    .unwrap_or((599, serde_json::json!({})));
                let body = serde_json::to_vec(&body).unwrap();
                let reply = format!(
                    "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(reply.as_bytes()).await;
                let _ = conn.write_all(&body).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

/// A refused eviction through the client the binary builds: the budget's
/// 429 reaches the agent at once (no client retry layer honouring
/// Retry-After for minutes), is tried once, and names the budget.
#[tokio::test]
async fn the_binarys_client_sends_a_refused_eviction_once() {
    let pdb = (
        429,
        serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 429, "reason": "TooManyRequests",
            "message": "Cannot evict pod as it would violate the pod's disruption budget.",
            "details": {"causes": [{"reason": "DisruptionBudget", "message": "The disruption budget db needs 2 healthy pods and has 2 currently"}], "retryAfterSeconds": 10}}),
    );
    let s = Script::new(&[pdb, ok(serde_json::json!({}))]);
    let url = serve(s.clone()).await;
    let config = kube::Config::new(url.parse().unwrap());
    let client =
        stsmend::cluster::build_client(config, &stsmend::cluster::metrics::Counter::default())
            .unwrap();
    let mut a = db();
    a.plan.as_mut().unwrap().actions = vec![stsmend::policy::Action::DeletePods {
        pods: vec!["db-2".into()],
        any_pod: true,
        why: "test".into(),
    }];
    a.facts.pdbs = vec![serde_json::from_value(serde_json::json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "db", "namespace": "shop"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "db"}}},
        "status": {"disruptionsAllowed": 0, "currentHealthy": 2, "desiredHealthy": 2, "expectedPods": 3, "observedGeneration": 1}
    }))
    .unwrap()];
    let started = std::time::Instant::now();
    let done = carry_out_with(client, Mode::Apply, &a).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(done[0].1, Status::Disallowed, "{done:?}");
    assert!(
        done[0]
            .2
            .contains("PodDisruptionBudget shop/db allows 0 disruption(s)"),
        "{done:?}"
    );
    assert_eq!(s.seen(), [EVICT, EVENT]);
}
