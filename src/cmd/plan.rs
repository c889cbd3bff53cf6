//! `stsmend plan` and `stsmend explain`: read-only.

use super::*;

pub(crate) async fn plan(args: PlanArgs) -> stsmend::Result<u8> {
    let mut a = assess(
        &args.source,
        &args.scope,
        args.policy.policies.as_deref(),
        args.threshold,
        args.now,
        None,
        None,
    )
    .await?;
    let failed = policy_failed(&a);
    for e in a.outcome.policy_errors() {
        tracing::warn!(error = %e, "policy failed; no actions for this StatefulSet");
    }
    let locations = std::mem::take(&mut a.locations);
    let report = a.into_report(None);
    let text = report.render_with_locations(args.output, &locations)?;
    if let Some(path) = &args.report {
        std::fs::write(path, &text).map_err(|e| Error::write(path, e))?;
    }
    print!("{text}");
    Ok(if failed {
        EXIT_BAD_INPUT
    } else {
        report.exit_code()
    })
}

pub(crate) async fn explain(args: ExplainArgs) -> stsmend::Result<u8> {
    let (ns, name) = split_target(&args.target)?;
    let a = assess(
        &args.source,
        &args.scope,
        args.policy.policies.as_deref(),
        args.threshold,
        args.now,
        None,
        None,
    )
    .await?;
    let id = format!("{ns}/{name}");
    let o = &a.outcome;
    let failing = o.failing.iter().find(|x| x.id() == id);
    let found = failing.or_else(|| o.pending.iter().find(|x| x.id() == id));
    let exempt = o
        .exempt
        .iter()
        .find(|e| e.namespace == ns && e.name == name);
    match args.output {
        ExplainFormat::Json => {
            let value = serde_json::json!({
                "statefulSet": id,
                "status": if failing.is_some() { "failing" } else if found.is_some() { "pending" } else if exempt.is_some() { "exempt" } else { "not_failing" },
                "assessment": found,
                "exempt": exempt,
            });
            let text = serde_json::to_string_pretty(&value)
                .map_err(|e| Error::encode("explanation", e))?;
            println!("{text}");
        }
        ExplainFormat::Text => match (found, exempt) {
            (Some(assessment), _) => print!(
                "{}",
                stsmend::report::explain(assessment, failing.is_some(), a.config.threshold)
            ),
            (None, Some(e)) => println!("{id}: exempt by design: {}", e.reason.describe()),
            (None, None) => println!(
                "{id}: no failed or stuck rollout in {} ({} StatefulSet(s) scanned)",
                a.source_label, o.scanned
            ),
        },
    }
    Ok(if policy_failed(&a) {
        EXIT_BAD_INPUT
    } else if failing.is_some() {
        1
    } else {
        0
    })
}
