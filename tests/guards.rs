//! The guards on a real plan: the crash-loop case of the default ladder's
//! tests (objects captured in kubectl's format), put through opt-in, pause,
//! debounce, cooldown, budget and storm with the state a run would hold.

use std::path::Path;

use jiff::Timestamp;
use stsmend::guard::Blocked;
use stsmend::pipeline::{self, GuardOptions, Options, Outcome, Settings};
use stsmend::policy::Policies;
use stsmend::selector::Selector;
use stsmend::state::{LastAction, State};

const CASE: &str = "policies/tests/ladder/e-rollback-crash-loop/objects.yaml";

fn now() -> Timestamp {
    "2026-11-22T10:00:00Z".parse().unwrap()
}

fn inventory(edit: impl Fn(&mut serde_json::Value)) -> stsmend::inventory::Inventory {
    let mut inv = stsmend::source::files::load(&[Path::new(CASE).to_path_buf()]).unwrap();
    let mut list = inv.to_list().unwrap();
    edit(&mut list);
    inv = Default::default();
    let text = serde_json::to_string(&list).unwrap();
    stsmend::source::files::parse_into(&mut inv, Path::new("edited.json"), &text).unwrap();
    inv
}

fn sts_labels(list: &mut serde_json::Value) -> &mut serde_json::Value {
    let sts = list["items"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|o| o["kind"] == "StatefulSet")
        .unwrap();
    let meta = &mut sts["metadata"];
    if meta.get("labels").is_none() {
        meta["labels"] = serde_json::json!({});
    }
    &mut meta["labels"]
}

/// Plans and guards like `stsmend run`, with `prior` as the saved state.
fn run_with(
    inv: &stsmend::inventory::Inventory,
    prior: &State,
    guards: &GuardOptions,
) -> pipeline::Run {
    pipeline::run(inv, Some(prior), &settings(guards), &Policies::builtin())
}

/// The settings of a run at [`now`] with a 10-minute threshold.
fn settings(guards: &GuardOptions) -> Settings {
    let mut s = Settings::with(Options::new(now(), stsmend::duration::Span::minutes(10)));
    s.guards = guards.clone();
    s
}

fn run(inv: &stsmend::inventory::Inventory, prior: &State, guards: &GuardOptions) -> Outcome {
    run_with(inv, prior, guards).outcome
}

fn opted_in() -> stsmend::inventory::Inventory {
    inventory(|l| {
        sts_labels(l)["stsmend.io/remediate"] = "true".into();
    })
}

/// The state after `runs` earlier runs that saw it failing.
fn seen(runs: u32) -> State {
    let inv = opted_in();
    let mut s = State::default();
    for _ in 0..runs {
        s = run_with(&inv, &s, &GuardOptions::default()).next_state;
    }
    s
}

fn gate(o: &Outcome) -> &pipeline::Gate {
    o.failing[0].gate.as_ref().unwrap()
}

#[test]
fn a_plan_is_admitted_only_when_opted_in_and_seen_twice() {
    let o = run(&inventory(|_| {}), &seen(1), &GuardOptions::default());
    assert_eq!(o.failing[0].plan.as_ref().unwrap().writes(), 1);
    assert_eq!(gate(&o).blocked, Some(Blocked::NotOptedIn));
    let o = run(&opted_in(), &State::default(), &GuardOptions::default());
    assert_eq!(
        gate(&o).blocked,
        Some(Blocked::Debounce {
            seen_runs: 1,
            needed: 2
        })
    );
    let o = run(&opted_in(), &seen(1), &GuardOptions::default());
    assert!(gate(&o).admitted, "{:?}", gate(&o));
    assert_eq!(gate(&o).seen_runs, 2);
}

#[test]
fn the_config_selector_opts_in() {
    let inv = inventory(|l| {
        sts_labels(l)["tier"] = "db".into();
    });
    let guards = GuardOptions {
        opt_in: Some(Selector::parse("tier=db").unwrap()),
        ..Default::default()
    };
    assert!(gate(&run(&inv, &seen(1), &guards)).admitted);
}

#[test]
fn pause_cooldown_and_budget_hold_a_plan_back() {
    let paused = GuardOptions {
        pause: true,
        ..Default::default()
    };
    assert!(matches!(
        gate(&run(&opted_in(), &seen(1), &paused)).blocked,
        Some(Blocked::Paused { .. })
    ));
    let annotated = inventory(|l| {
        sts_labels(l)["stsmend.io/remediate"] = "true".into();
        let sts = l["items"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|o| o["kind"] == "StatefulSet")
            .unwrap();
        sts["metadata"]["annotations"]["stsmend.io/pause"] = "true".into();
    });
    assert!(matches!(
        gate(&run(&annotated, &seen(1), &GuardOptions::default())).blocked,
        Some(Blocked::Paused { .. })
    ));

    let mut cooling = seen(1);
    for r in cooling.records.values_mut() {
        r.last_action = Some(LastAction {
            at: "2026-11-22T09:50:00Z".parse().unwrap(),
            action: "rollback".into(),
            why: "x".into(),
        });
    }
    assert!(matches!(
        gate(&run(&opted_in(), &cooling, &GuardOptions::default())).blocked,
        Some(Blocked::Cooldown { .. })
    ));

    let mut no_budget = settings(&GuardOptions::default());
    no_budget.limits.max_actions = 0;
    let o = pipeline::run(
        &opted_in(),
        Some(&seen(1)),
        &no_budget,
        &Policies::builtin(),
    )
    .outcome;
    assert_eq!(gate(&o).blocked, Some(Blocked::MaxActions { limit: 0 }));
}

/// A team policy that scales the set down, under a claim retention policy
/// that deletes the removed ordinals' claims (`whenScaled: Delete`, GA in
/// 1.32): held, naming the claims, whatever else would admit it.
#[test]
fn a_scale_down_that_deletes_claims_is_held_naming_them() {
    let inv = inventory(|l| {
        sts_labels(l)["stsmend.io/remediate"] = "true".into();
        let sts = l["items"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|o| o["kind"] == "StatefulSet")
            .unwrap();
        sts["spec"]["persistentVolumeClaimRetentionPolicy"] =
            serde_json::json!({"whenScaled": "Delete", "whenDeleted": "Retain"});
        sts["spec"]["volumeClaimTemplates"] = serde_json::json!([{"metadata": {"name": "data"}}]);
    });
    let policy = "//! @namespaces shop\nrungs([\"shrink\"]);\nchoose(\"shrink\", [patch_spec(#{spec: #{replicas: 1}}, \"one replica is enough\")])\n";
    let mut policies =
        Policies::from_sources(&[("shrink", policy)], stsmend::policy::Origin::CommandLine)
            .unwrap();
    policies.set_annotation("stsmend.io/policy");
    let settings = settings(&GuardOptions::default());
    let mut inv = inv;
    for s in &mut inv.stateful_sets {
        s.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert("stsmend.io/policy".into(), "shrink".into());
    }
    let o = pipeline::run(&inv, Some(&seen(2)), &settings, &policies).outcome;
    let plan = o.failing[0].plan.as_ref().unwrap();
    assert!(plan.error.is_none(), "{plan:?}");
    let replicas = o.failing[0].facts.stateful_set.spec.replicas.unwrap();
    let name = &o.failing[0].name;
    let want: Vec<String> = (1..replicas).map(|i| format!("data-{name}-{i}")).collect();
    assert_eq!(
        gate(&o).blocked,
        Some(Blocked::DeletesClaims { claims: want })
    );
    assert!(!gate(&o).admitted);
}
