//! Evaluating the default ladder on one StatefulSet's facts: the crash-loop
//! case of the policy tests (three pods, two revisions, events, nodes),
//! where the ladder walks five rungs before it chooses. Target: under 50 µs
//! per StatefulSet (docs/performance.md). And the whole of one run's pure
//! part on the same objects, as `plan` and `run` call it (`pipeline::run`).

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};

use stsmend::pipeline::{self, DecideOptions, Options};
use stsmend::policy::{Policies, View};

fn ladder(c: &mut Criterion) {
    let objects = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("policies/tests/ladder/e-rollback-crash-loop/objects.yaml");
    let inv = stsmend::source::files::load(&[objects]).expect("bench objects");
    let opts = Options::new(
        "2026-11-22T10:00:00Z".parse().unwrap(),
        stsmend::duration::Span::minutes(10),
    )
    .migration_annotations(&["stsmend.io/migration"]);
    let outcome = pipeline::evaluate(&inv, None, &opts);
    let assessment = &outcome.failing[0];
    let run = pipeline::run_context(
        &outcome,
        &opts,
        &DecideOptions::default(),
        &Default::default(),
    );
    let policies = Policies::builtin();
    let plan = policies.decide(
        &assessment.facts,
        &assessment.detection,
        &assessment.findings,
        &run,
    );
    assert_eq!(plan.rung.as_deref(), Some("rollback"), "{plan:?}");

    let mut group = c.benchmark_group("ladder");
    group.bench_function("decide (view + evaluation)", |b| {
        b.iter(|| {
            policies.decide(
                black_box(&assessment.facts),
                black_box(&assessment.detection),
                black_box(&assessment.findings),
                black_box(&run),
            )
        })
    });
    let view = Arc::new(View::new(
        &assessment.facts,
        &assessment.detection,
        &assessment.findings,
        &run,
    ));
    group.bench_function("evaluate (view reused)", |b| {
        b.iter(|| policies.decide_view(black_box(&assessment.facts.stateful_set), black_box(&view)))
    });
    let empty =
        Policies::from_sources(&[("ladder", "[]")], stsmend::policy::Origin::Config).unwrap();
    group.bench_function("evaluate an empty policy (fixed cost)", |b| {
        b.iter(|| empty.decide_view(black_box(&assessment.facts.stateful_set), black_box(&view)))
    });
    group.bench_function("build view", |b| {
        b.iter(|| {
            View::new(
                black_box(&assessment.facts),
                &assessment.detection,
                &assessment.findings,
                &run,
            )
        })
    });
    group.bench_function("compile the ladder", |b| b.iter(Policies::builtin));
    let settings = pipeline::Settings::with(opts.clone());
    group.bench_function("pipeline::run (detect to guards, one StatefulSet)", |b| {
        b.iter(|| pipeline::run(black_box(&inv), None, &settings, &policies))
    });
    group.finish();
}

criterion_group!(benches, ladder);
criterion_main!(benches);
