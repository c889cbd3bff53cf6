//! What a run remembers of the StatefulSets it saw, for the next run.

use jiff::Timestamp;

use super::Outcome;
use crate::state::{Seen, State};

/// The state after a run: a mismatch seen for the first time is recorded with
/// `now`; a record whose mismatch has cleared, or whose generation moved on,
/// is renewed; records of StatefulSets no longer suspect are dropped so the
/// ConfigMap does not grow without bound, except for what the agent must
/// not forget when a set heals: its rollbacks (the templates it rolled back
/// from, [`crate::state::Reverted`]) and the last action they came with,
/// for as long as [`crate::state::REVERTED_KEPT`].
pub fn observe(prior: &State, outcome: &Outcome, now: Timestamp) -> State {
    let mut next = State::default();
    for a in outcome.failing.iter().chain(&outcome.pending) {
        let id = a.id();
        let old = prior
            .records
            .get(&id)
            .filter(|r| r.uid.is_none() || r.uid == a.uid);
        let mismatch = a.detection.symptoms.iter().find_map(|h| match h.symptom {
            crate::detect::Symptom::GenerationMismatch { generation, .. } => Some(generation),
            _ => None,
        });
        let mut record = old.cloned().unwrap_or_default();
        record.uid = a.uid.clone();
        let failing = outcome.failing.iter().any(|f| f.id() == id);
        record.failing_runs = if failing {
            record.failing_runs.saturating_add(1)
        } else {
            0
        };
        record.mismatch = mismatch.map(|generation| match &record.mismatch {
            Some(seen) if seen.generation == generation => seen.clone(),
            _ => Seen {
                generation,
                first_seen: now,
            },
        });
        record.prune_reverted(now);
        next.records.insert(id, record);
    }
    for (id, old) in &prior.records {
        if next.records.contains_key(id) || old.reverted.is_empty() {
            continue;
        }
        let mut kept = crate::state::Record {
            uid: old.uid.clone(),
            last_action: old.last_action.clone(),
            reverted: old.reverted.clone(),
            ..Default::default()
        };
        kept.prune_reverted(now);
        if !kept.reverted.is_empty() {
            next.records.insert(id.clone(), kept);
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Inventory;
    use crate::pipeline::{Options, evaluate};

    fn outcome(generation: i64, observed: i64) -> crate::pipeline::Outcome {
        let mut inv = Inventory::default();
        let yaml = format!(
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: db, namespace: shop, uid: u1, generation: {generation}}}\nspec: {{replicas: 1, selector: {{matchLabels: {{app: db}}}}, serviceName: db, template: {{metadata: {{labels: {{app: db}}}}, spec: {{containers: [{{name: db, image: db}}]}}}}}}\nstatus: {{replicas: 1, readyReplicas: 1, observedGeneration: {observed}}}\n"
        );
        crate::source::files::parse_into(&mut inv, std::path::Path::new("t.yaml"), &yaml).unwrap();
        evaluate(
            &inv,
            None,
            &Options::new(
                "2026-11-22T10:00:00Z".parse().unwrap(),
                crate::duration::Span::minutes(10),
            ),
        )
    }

    #[test]
    fn first_sight_is_recorded_and_kept_while_the_generation_holds() {
        let t1: Timestamp = "2026-11-22T10:00:00Z".parse().unwrap();
        let t2: Timestamp = "2026-11-22T10:05:00Z".parse().unwrap();
        let s1 = observe(&State::default(), &outcome(3, 2), t1);
        assert_eq!(
            s1.get("shop", "db")
                .unwrap()
                .mismatch
                .as_ref()
                .unwrap()
                .first_seen,
            t1
        );
        let s2 = observe(&s1, &outcome(3, 2), t2);
        assert_eq!(
            s2.get("shop", "db")
                .unwrap()
                .mismatch
                .as_ref()
                .unwrap()
                .first_seen,
            t1
        );
        // A new generation restarts the clock.
        let s3 = observe(&s2, &outcome(4, 2), t2);
        assert_eq!(
            s3.get("shop", "db")
                .unwrap()
                .mismatch
                .as_ref()
                .unwrap()
                .first_seen,
            t2
        );
        assert_eq!(
            s3.get("shop", "db").unwrap().failing_runs,
            0,
            "pending, not failing"
        );
        // Healed: the record goes.
        let s4 = observe(&s3, &outcome(4, 4), t2);
        assert!(s4.get("shop", "db").is_none());
    }

    #[test]
    fn a_rollback_is_remembered_while_the_set_is_healthy_until_it_is_old() {
        let t1: Timestamp = "2026-11-22T10:00:00Z".parse().unwrap();
        let mut s1 = observe(&State::default(), &outcome(3, 2), t1);
        let record = s1.records.get_mut("shop/db").unwrap();
        record.remember_rollback(t1, "db-bad", "db-good");
        record.last_action = Some(crate::state::LastAction {
            at: t1,
            action: "rollback".into(),
            why: "crash loop".into(),
        });
        // Healed: the rollback and its action stay, the rest goes.
        let s2 = observe(&s1, &outcome(4, 4), t1);
        let kept = s2.get("shop", "db").expect("kept");
        assert_eq!(kept.reverted, s1.get("shop", "db").unwrap().reverted);
        assert!(kept.last_action.is_some());
        assert_eq!((kept.failing_runs, kept.mismatch.clone()), (0, None));
        // Failing again: the memory is there for diagnosis.
        let s3 = observe(&s2, &outcome(5, 4), t1);
        assert_eq!(s3.get("shop", "db").unwrap().reverted.len(), 1);
        // A week and a day later, healthy: forgotten.
        let later: Timestamp = "2026-11-30T10:00:00Z".parse().unwrap();
        assert!(
            observe(&s2, &outcome(4, 4), later)
                .get("shop", "db")
                .is_none()
        );
    }

    #[test]
    fn a_recorded_first_sight_makes_the_mismatch_due() {
        let t1: Timestamp = "2026-11-22T09:40:00Z".parse().unwrap();
        let state = observe(&State::default(), &outcome(3, 2), t1);
        let mut inv = Inventory::default();
        crate::source::files::parse_into(
            &mut inv,
            std::path::Path::new("t.yaml"),
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db, namespace: shop, uid: u1, generation: 3}\nspec: {replicas: 1, selector: {matchLabels: {app: db}}, serviceName: db, template: {metadata: {labels: {app: db}}, spec: {containers: [{name: db, image: db}]}}}\nstatus: {replicas: 1, readyReplicas: 1, observedGeneration: 2}\n",
        )
        .unwrap();
        let opts = Options::new(
            "2026-11-22T10:00:00Z".parse().unwrap(),
            crate::duration::Span::minutes(10),
        );
        assert_eq!(
            evaluate(&inv, None, &opts).failing.len(),
            0,
            "without state, not yet due"
        );
        assert_eq!(
            evaluate(&inv, Some(&state), &opts).failing.len(),
            1,
            "with state, held 20m"
        );
    }
}
