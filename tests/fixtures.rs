//! Detection, diagnosis and the default ladder on objects captured from a
//! real kube-apiserver (tests/fixtures/, re-captured by
//! scripts/capture-fixtures.sh): every finding kind the captures show, the
//! evidence behind it, the designed non-findings, and the rung chosen.

use std::path::PathBuf;

use stsmend::detect::Exemption;
use stsmend::diagnose::Confidence;
use stsmend::duration::Span;
use stsmend::guard::Limits;
use stsmend::pipeline::{self, Assessment, Options, Outcome, Settings};
use stsmend::policy::Policies;

/// Plans on a fixture as `stsmend plan --from FILE --for 0s` does, with
/// storm protection out of the way (a one-namespace capture has few
/// StatefulSets, most of them broken on purpose).
fn plan(name: &str) -> Outcome {
    plan_inventory(load(name))
}

fn load(name: &str) -> stsmend::inventory::Inventory {
    let path = PathBuf::from(format!("tests/fixtures/{name}.yaml"));
    stsmend::source::files::load(&[path]).unwrap()
}

fn plan_inventory(inv: stsmend::inventory::Inventory) -> Outcome {
    let settings = fixture_settings(&inv);
    pipeline::run(&inv, None, &settings, &Policies::builtin()).outcome
}

fn fixture_settings(inv: &stsmend::inventory::Inventory) -> Settings {
    let now = stsmend::snapshot::taken_at(inv)
        .unwrap()
        .expect("a snapshot marker");
    Settings::with(
        Options::new(now, Span::minutes(0)).migration_annotations(&["stsmend.io/migration"]),
    )
    .limits(Limits {
        storm_max_failing: 100,
        storm_max_share: 1.0,
        ..Default::default()
    })
}

fn failing<'a>(o: &'a Outcome, name: &str) -> &'a Assessment {
    o.failing
        .iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| {
            panic!(
                "{name} is not failing: {:?}",
                o.failing.iter().map(|a| &a.name).collect::<Vec<_>>()
            )
        })
}

fn kinds(a: &Assessment) -> Vec<&'static str> {
    a.findings.iter().map(|f| f.kind.as_str()).collect()
}

fn summary<'a>(a: &'a Assessment, kind: &str) -> &'a str {
    &a.findings
        .iter()
        .find(|f| f.kind.as_str() == kind)
        .unwrap_or_else(|| panic!("{}: no {kind} in {:?}", a.name, kinds(a)))
        .summary
}

fn rung(a: &Assessment) -> &str {
    a.plan
        .as_ref()
        .and_then(|p| p.rung.as_deref())
        .unwrap_or("-")
}

#[track_caller]
fn has(a: &Assessment, expected: &[&str]) {
    let k = kinds(a);
    for e in expected {
        assert!(k.contains(e), "{}: {e} missing from {k:?}", a.name);
    }
}

#[test]
fn mixed_rollouts_bad_image_crash_loop_gpu_never_ready_partition() {
    let o = plan("mixed");
    assert_eq!(o.scanned, 14);
    let mut names: Vec<&str> = o.failing.iter().map(|a| a.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["cache", "canary", "db", "ledger", "trainer"]);

    let db = failing(&o, "db");
    has(
        db,
        &[
            "rollout_stuck",
            "revision_change",
            "image_pull",
            "ordered_ready_blocked",
        ],
    );
    assert!(summary(db, "image_pull").contains("registry.example/db:2-broken"));
    assert!(summary(db, "revision_change").contains("spec.containers[0].image"));
    assert_eq!(rung(db), "rollback");

    let cache = failing(&o, "cache");
    has(cache, &["rollout_stuck", "crash_loop"]);
    assert!(
        !kinds(cache).contains(&"ordered_ready_blocked"),
        "Parallel: the controller replaces pods itself"
    );
    assert!(summary(cache, "crash_loop").contains("last exit 1"));
    assert_eq!(rung(cache), "rollback");

    let trainer = failing(&o, "trainer");
    has(trainer, &["replicas_not_ready", "unschedulable"]);
    assert!(summary(trainer, "unschedulable").contains("nvidia.com/gpu"));

    let ledger = failing(&o, "ledger");
    has(ledger, &["never_ready", "ordered_ready_blocked"]);

    let canary = failing(&o, "canary");
    has(canary, &["partition", "crash_loop"]);

    let exempt: Vec<(&str, Exemption)> = o
        .exempt
        .iter()
        .map(|e| (e.name.as_str(), e.reason))
        .collect();
    assert!(
        exempt.contains(&("batch", Exemption::OnDelete)),
        "{exempt:?}"
    );
    assert!(
        exempt.contains(&("pilot", Exemption::PartitionHeld)),
        "{exempt:?}"
    );
    assert!(
        exempt.contains(&("archive", Exemption::ScaledToZero)),
        "{exempt:?}"
    );
    for healthy in ["web", "api", "search", "auth", "queue", "mail"] {
        assert!(
            !o.failing
                .iter()
                .chain(&o.pending)
                .any(|a| a.name == healthy),
            "{healthy} is healthy"
        );
    }
}

#[test]
fn limit_range_denial_is_a_genuine_mismatch() {
    let o = plan("limit-range");
    let db = failing(&o, "db");
    has(
        db,
        &["generation_mismatch", "admission_denied", "revision_change"],
    );
    assert!(summary(db, "admission_denied").contains("LimitRange"));
    let f = db
        .findings
        .iter()
        .find(|f| f.kind.as_str() == "admission_denied")
        .unwrap();
    assert!(
        f.evidence
            .iter()
            .any(|e| e.message.as_deref().unwrap_or_default().contains("memory")),
        "the event message is the evidence: {:?}",
        f.evidence
    );
    assert_eq!(rung(db), "rollback");
}

/// The same refusal as a v1.25+ controller writes it (status updated,
/// tests/fixtures/versions/): a stalled rollout rather than a mismatch,
/// the same admission finding and evidence, the same rollback; the
/// controller's Progressing condition kept as evidence.
#[test]
fn a_refusal_with_status_written_reads_as_the_v1_20_mismatch_does() {
    let o = plan("versions/limit-range-status-written");
    let db = failing(&o, "db");
    has(
        db,
        &["rollout_stuck", "admission_denied", "revision_change"],
    );
    assert!(
        !db.findings
            .iter()
            .any(|f| f.kind.as_str() == "generation_mismatch"),
        "observedGeneration caught up"
    );
    assert!(summary(db, "admission_denied").contains("LimitRange"));
    let stuck = db
        .findings
        .iter()
        .find(|f| f.kind.as_str() == "rollout_stuck")
        .unwrap();
    assert!(
        stuck.evidence.iter().any(
            |e| e.field.as_deref() == Some("status.conditions[Progressing]")
                && e.message
                    .as_deref()
                    .unwrap_or_default()
                    .starts_with("False (ProgressDeadlineExceeded)")
        ),
        "{:?}",
        stuck.evidence
    );
    assert_eq!(rung(db), "rollback");
    // KEP-3541's Recreate, newer than the agent: named as written.
    let mut inv = load("versions/limit-range-status-written");
    for s in &mut inv.stateful_sets {
        s.spec.update_strategy.as_mut().unwrap().type_ = Some("Recreate".into());
    }
    let recreate = plan_inventory(inv);
    let stuck = failing(&recreate, "db")
        .findings
        .iter()
        .find(|f| f.kind.as_str() == "rollout_stuck")
        .unwrap();
    assert!(
        stuck
            .evidence
            .iter()
            .any(|e| e.field.as_deref() == Some("spec.updateStrategy.type")
                && e.message
                    .as_deref()
                    .unwrap_or_default()
                    .starts_with("Recreate")),
        "{:?}",
        stuck.evidence
    );
    let v120 = plan("limit-range");
    let plan_of = |a: &Assessment| serde_json::to_value(&a.plan.as_ref().unwrap().actions).unwrap();
    assert_eq!(
        plan_of(db),
        plan_of(failing(&v120, "db")),
        "the same rollback"
    );
}

/// The pods the plan's first action evicts, as the report writes them.
fn evicts(a: &Assessment) -> serde_json::Value {
    let plan = a.plan.as_ref().expect("a plan");
    serde_json::to_value(&plan.actions[0]).unwrap()["evict"].clone()
}

fn pods_of<'a>(a: &'a Assessment, kind: &str) -> Vec<&'a str> {
    a.findings
        .iter()
        .filter(|f| f.kind.as_str() == kind)
        .flat_map(|f| f.pods.iter().map(String::as_str))
        .collect()
}

/// A PodDisruptionBudget over shop/cache's pods, one healthy of two
/// wanted, as the disruption controller writes it.
fn budget(policy: Option<&str>) -> k8s_openapi::api::policy::v1::PodDisruptionBudget {
    let mut spec =
        serde_json::json!({"minAvailable": 2, "selector": {"matchLabels": {"app": "cache"}}});
    if let Some(p) = policy {
        spec["unhealthyPodEvictionPolicy"] = p.into();
    }
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "cache", "namespace": "shop", "generation": 1},
        "spec": spec,
        "status": {"observedGeneration": 1, "currentHealthy": 1, "desiredHealthy": 2,
                   "disruptionsAllowed": 0, "expectedPods": 3}}))
    .unwrap()
}

/// maxUnavailable 2 as a v1.35 controller rolls it out (KEP-961): both pods
/// it replaced at once are named, and one forced rollback, one action of
/// the run's budget, evicts both; a budget that would refuse the eviction
/// is named and nothing it refuses is planned.
#[test]
fn max_unavailable_names_every_stuck_pod_and_one_forced_rollback_evicts_them() {
    let inv = load("versions/max-unavailable");
    let mut settings = fixture_settings(&inv);
    settings.limits.max_actions = 1;
    settings.limits.debounce_runs = 1;
    let o = pipeline::run(&inv, None, &settings, &Policies::builtin()).outcome;
    let cache = failing(&o, "cache");
    has(
        cache,
        &[
            "rollout_stuck",
            "crash_loop",
            "ordered_ready_blocked",
            "max_unavailable",
        ],
    );
    assert_eq!(pods_of(cache, "crash_loop"), ["cache-1", "cache-2"]);
    assert_eq!(
        pods_of(cache, "ordered_ready_blocked"),
        ["cache-1", "cache-2"]
    );
    assert!(
        summary(cache, "max_unavailable")
            .contains("cache-1, cache-2 of the update revision are not Ready")
    );
    assert_eq!(rung(cache), "rollback");
    assert_eq!(evicts(cache), serde_json::json!(["cache-1", "cache-2"]));
    let gate = cache.gate.as_ref().unwrap();
    assert!(gate.admitted && gate.blocked.is_none(), "{gate:?}");

    // IfHealthyBudget with 1 healthy of 2 wanted refuses both evictions.
    let mut refused = inv.clone();
    refused.pdbs.push(budget(None));
    let o = plan_inventory(refused);
    let cache = failing(&o, "cache");
    let blocked = cache
        .findings
        .iter()
        .find(|f| f.kind.as_str() == "eviction_blocked")
        .expect("eviction_blocked");
    assert_eq!(blocked.pods, ["cache-1", "cache-2"]);
    assert!(blocked.summary.contains("IfHealthyBudget (the default)"));
    assert!(
        blocked
            .summary
            .contains("AlwaysAllow on the budget would let them be evicted")
    );
    assert_eq!(rung(cache), "rollback");
    assert_eq!(
        evicts(cache),
        serde_json::Value::Null,
        "no eviction the API server refuses"
    );
    // AlwaysAllow lets pods that are not Ready go.
    let mut allowed = inv.clone();
    allowed.pdbs.push(budget(Some("AlwaysAllow")));
    let o = plan_inventory(allowed);
    let cache = failing(&o, "cache");
    assert!(!kinds(cache).contains(&"eviction_blocked"));
    assert_eq!(evicts(cache), serde_json::json!(["cache-1", "cache-2"]));
}

/// KEP-3541's Recreate (1.37 alpha) read on the same failure: every pod
/// deleted first, so nothing is left serving and nothing is forced; the
/// rollback evicts nothing, the controller replacing the abandoned pods.
#[test]
fn recreate_reads_stuck_its_own_way_and_forces_nothing() {
    let mut inv = load("versions/max-unavailable");
    for s in &mut inv.stateful_sets {
        s.spec.update_strategy =
            serde_json::from_value(serde_json::json!({"type": "Recreate"})).unwrap();
    }
    let with_earlier = plan_inventory(inv.clone());
    let evidence = |o: &Outcome| -> String {
        let stuck = failing(o, "cache")
            .findings
            .iter()
            .find(|f| f.kind.as_str() == "rollout_stuck")
            .unwrap();
        stuck
            .evidence
            .iter()
            .find(|e| e.field.as_deref() == Some("spec.updateStrategy.type"))
            .and_then(|e| e.message.clone())
            .unwrap_or_default()
    };
    assert!(
        evidence(&with_earlier).starts_with(
            "Recreate (1.37 alpha, KEP-3541): cache-0 of an earlier revision not yet gone"
        ),
        "{}",
        evidence(&with_earlier)
    );
    inv.pods
        .retain(|p| p.metadata.name.as_deref() != Some("cache-0"));
    let o = plan_inventory(inv);
    assert!(
        evidence(&o).contains("none is left serving"),
        "{}",
        evidence(&o)
    );
    let cache = failing(&o, "cache");
    assert!(
        !kinds(cache).contains(&"ordered_ready_blocked"),
        "nothing waits under Recreate"
    );
    assert_eq!(rung(cache), "rollback");
    assert_eq!(evicts(cache), serde_json::Value::Null);
}

/// spec.ordinals.start 5 (1.31 GA): the partition, the pod that failed,
/// the forced rollback and the claims a scale-down would delete, all
/// counted from ordinal 5.
#[test]
fn ordinals_start_is_counted_from_in_partition_pods_and_claims() {
    let inv = load("versions/ordinals-start");
    let o = plan_inventory(inv.clone());
    let cache = failing(&o, "cache");
    assert!(summary(cache, "partition").contains("only ordinal 6 is updated"));
    assert_eq!(pods_of(cache, "crash_loop"), ["cache-6"]);
    assert_eq!(rung(cache), "rollback");
    assert_eq!(evicts(cache), serde_json::json!(["cache-6"]));
    // A team policy's scale-down under whenScaled: Delete is held, naming
    // ordinal 6's claim (not ordinal 1's).
    let shed = stsmend::policy::Policies::load(
        std::path::Path::new(
            "policies/tests/examples/scale-down-held-deletes-claims/scale-down.rhai",
        ),
        stsmend::policy::Origin::Config,
    )
    .unwrap();
    let mut settings = fixture_settings(&inv);
    settings.limits.debounce_runs = 1;
    let o = pipeline::run(&inv, None, &settings, &shed).outcome;
    let gate = failing(&o, "cache").gate.clone().unwrap();
    assert_eq!(
        gate.blocked,
        Some(stsmend::guard::Blocked::DeletesClaims {
            claims: vec!["data-cache-6".into()]
        })
    );
}

#[test]
fn quotas_name_the_resource_and_split_revision_from_pod_denials() {
    let o = plan("quotas");
    let db = failing(&o, "db");
    has(
        db,
        &["generation_mismatch", "quota_exhausted", "revision_change"],
    );
    assert!(summary(db, "quota_exhausted").contains("count/controllerrevisions.apps"));
    assert!(summary(db, "revision_change").contains("no revision records it"));
    assert_eq!(
        rung(db),
        "rollback",
        "rolling back reuses the recorded revision"
    );

    let cache = failing(&o, "cache");
    has(
        cache,
        &["generation_mismatch", "admission_denied", "quota_exhausted"],
    );
    assert!(summary(cache, "admission_denied").contains("ResourceQuota"));
    // The full revision quota is db's cause; cache, denied a pod, only
    // shares the namespace.
    let revisions_quota = |a: &Assessment| {
        a.findings
            .iter()
            .find(|f| {
                f.kind.as_str() == "quota_exhausted"
                    && f.summary.contains("count/controllerrevisions.apps")
            })
            .map(|f| f.confidence)
    };
    assert_eq!(revisions_quota(db), Some(Confidence::High));
    assert_eq!(revisions_quota(cache), Some(Confidence::Medium));
    assert_eq!(
        rung(cache),
        "escalate",
        "rolling back would not create the pod"
    );
}

#[test]
fn scheduling_and_storage_causes_are_told_apart() {
    let o = plan("scheduling-storage");
    let db = failing(&o, "db");
    has(db, &["unschedulable", "revision_change"]);
    assert!(summary(db, "unschedulable").contains("node selector"));
    assert_eq!(rung(db), "rollback");
    let store = failing(&o, "store");
    has(
        store,
        &["pvc_pending", "storage_class_missing", "unschedulable"],
    );
    assert!(summary(store, "storage_class_missing").contains("fast-ssd"));
}

#[test]
fn a_migration_on_shutdown_is_waited_for() {
    let o = plan("migration");
    let db = failing(&o, "db");
    has(db, &["pod_terminating", "long_grace_period"]);
    assert_eq!(rung(db), "wait_for_migration");
}

#[test]
fn a_stopped_controller_manager_is_seen_and_stood_aside_from() {
    let o = plan("controller-down");
    let db = failing(&o, "db");
    has(db, &["generation_mismatch", "controller_not_processing"]);
    assert!(summary(db, "controller_not_processing").contains("lease"));
    assert_eq!(rung(db), "stand_aside");
}

#[test]
fn the_bundled_example_is_the_mixed_capture() {
    assert_eq!(
        std::fs::read_to_string("examples/failing-rollout.yaml").unwrap(),
        std::fs::read_to_string("tests/fixtures/mixed.yaml").unwrap()
    );
}

#[test]
fn taints_anti_affinity_hpa_node_loss_and_the_autoscaler_are_named() {
    let o = plan("cluster-causes");
    let pinned = failing(&o, "pinned");
    has(pinned, &["unschedulable", "revision_change"]);
    assert!(
        pinned
            .findings
            .iter()
            .any(|f| f.summary.contains("taints") && f.summary.contains("dedicated")),
        "{:?}",
        kinds(pinned)
    );
    let spread = failing(&o, "spread");
    has(spread, &["unschedulable", "hpa", "node_not_ready"]);
    assert!(
        spread
            .findings
            .iter()
            .any(|f| f.summary.contains("anti-affinity")),
        "{:?}",
        spread
            .findings
            .iter()
            .map(|f| &f.summary)
            .collect::<Vec<_>>()
    );
    assert!(summary(spread, "hpa").contains("HorizontalPodAutoscaler spread"));
    let edge = failing(&o, "edge");
    has(edge, &["node_not_ready", "autoscaler_status"]);
    // Its pod is not Ready because its node is not: that is the finding,
    // not a readiness probe that never passes.
    for a in [edge, spread] {
        assert!(
            !kinds(a).contains(&"never_ready"),
            "{}: {:?}",
            a.name,
            kinds(a)
        );
    }
    assert!(summary(edge, "autoscaler_status").contains("gpu-pool"));
    // A lost node: no rung of the ladder mends that; a person decides.
    assert_eq!(rung(edge), "escalate");
}

/// Every failure carries whether the update revision explains it: the bad
/// image by its template diff, a lost node by nothing a template says.
#[test]
fn each_failure_says_whether_the_template_change_explains_it() {
    use stsmend::diagnose::change::{Aspect, Basis};
    let o = plan("mixed");
    let db = failing(&o, "db");
    let pull = db
        .findings
        .iter()
        .find(|f| f.kind.as_str() == "image_pull")
        .unwrap();
    let c = pull.change.as_ref().expect("a failure is judged");
    assert!(c.explains, "{}", c.why);
    assert_eq!(c.by, Basis::Template);
    assert!(c.changed.contains(&Aspect::Image), "{:?}", c.changed);
    // Symptoms are not judged.
    assert!(
        db.findings
            .iter()
            .filter(|f| f.kind.as_str() == "rollout_stuck")
            .all(|f| f.change.is_none())
    );

    let o = plan("cluster-causes");
    let edge = failing(&o, "edge");
    let lost = edge
        .findings
        .iter()
        .find(|f| f.kind.as_str() == "node_not_ready")
        .unwrap();
    let c = lost.change.as_ref().expect("a failure is judged");
    assert!(!c.explains, "{}", c.why);
    assert!(c.depends_on.is_empty());
}

/// What a real kubelet reports (tests/fixtures/kubelet.yaml): each failure
/// is named with its cause, blamed on the template change that introduced
/// it, and rolled back.
#[test]
fn real_kubelet_failures_are_named_and_blamed_on_their_change() {
    let o = plan("kubelet");
    let cache = failing(&o, "cache");
    has(cache, &["crash_loop"]);
    let s = summary(cache, "crash_loop");
    assert!(s.contains("OOMKilled") && s.contains("32Mi limit"), "{s}");

    let api = failing(&o, "api");
    has(api, &["container_config"]);
    let s = summary(api, "container_config");
    assert!(
        s.contains("key token of Secret shop/api-creds is missing"),
        "{s}"
    );

    let jobs = failing(&o, "jobs");
    has(jobs, &["crash_loop"]);
    let s = summary(jobs, "crash_loop");
    assert!(s.contains("migrate") && s.contains("last exit 3"), "{s}");
    // Its last words, read from its previous log through pods/log.
    assert!(
        s.contains("it last wrote: migrate: schema lock held by another writer"),
        "{s}"
    );

    let web = failing(&o, "web");
    has(web, &["crash_loop"]);
    let s = summary(web, "crash_loop");
    assert!(
        s.contains("failing its startup probe") && s.contains("/tmp/started"),
        "{s}"
    );

    let docs = failing(&o, "docs");
    has(docs, &["volume_mount"]);
    let s = summary(docs, "volume_mount");
    assert!(
        s.contains("volume config ConfigMap shop/app-config does not exist")
            && s.contains("FailedMount"),
        "{s}"
    );

    for a in [cache, api, jobs, web, docs] {
        assert_eq!(rung(a), "rollback", "{:?}", kinds(a));
    }
}

/// The kubelet's `object "ns"/"name" not registered` (its cache not yet
/// watching the ConfigMap) can come after the "not found" that says the
/// ConfigMap is missing: the finding keeps the message that names it.
#[test]
fn a_later_not_registered_mount_failure_does_not_hide_the_missing_config_map() {
    let mut inv = load("kubelet");
    let found = inv
        .events
        .iter()
        .find(|e| {
            e.reason.as_deref() == Some("FailedMount")
                && e.involved_object.name.as_deref() == Some("docs-1")
        })
        .expect("the captured FailedMount")
        .clone();
    let mut later = found.clone();
    later.metadata.name = Some("docs-1.later".into());
    later.message = Some(
        r#"MountVolume.SetUp failed for volume "config" : object "shop"/"app-config" not registered"#
            .into(),
    );
    later.count = Some(1);
    if let Some(t) = &found.last_timestamp {
        later.last_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            t.0 + jiff::SignedDuration::from_secs(1),
        ));
    }
    inv.events.push(later);
    let o = plan_inventory(inv);
    let s = summary(failing(&o, "docs"), "volume_mount");
    assert!(
        s.contains("volume config ConfigMap shop/app-config does not exist"),
        "{s}"
    );
}
