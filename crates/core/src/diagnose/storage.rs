//! Persistent volume claims: pending, lost, or naming a StorageClass that does
//! not exist.

use super::{Confidence, Evidence, Finding, Input, Kind, data};

pub fn claims(input: &Input<'_>, out: &mut Vec<Finding>) {
    let facts = input.facts;
    let ns = input.namespace();
    let class_exists = |name: &str| {
        facts
            .storage_classes
            .iter()
            .any(|c| c.metadata.name.as_deref() == Some(name))
    };
    let has_default = facts.storage_classes.iter().any(|c| {
        c.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("storageclass.kubernetes.io/is-default-class"))
            .is_some_and(|v| v == "true")
    });
    let mut missing_reported = std::collections::BTreeSet::new();
    for pvc in &facts.pvcs {
        let name = pvc.metadata.name.as_deref().unwrap_or_default();
        let obj = format!("PersistentVolumeClaim {ns}/{name}");
        let phase = pvc
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("Pending");
        let class = pvc
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.as_deref());
        let last_event = input
            .events()
            .filter(|e| {
                e.involved_object.kind.as_deref() == Some("PersistentVolumeClaim")
                    && e.involved_object.name.as_deref() == Some(name)
                    && e.type_.as_deref() == Some("Warning")
            })
            .last()
            .and_then(|e| e.message.clone());
        match phase {
            "Lost" => out.push(
                Finding::new(
                    Kind::PvcLost,
                    Confidence::High,
                    format!("claim {name} lost its volume"),
                )
                .with(Evidence::field(&obj, "status.phase", "Lost"))
                .data(data::PvcLost { claim: name.into() }),
            ),
            "Pending" => {
                let missing_class = match class {
                    Some(c) if !c.is_empty() => !class_exists(c),
                    Some(_) => false,
                    None => !has_default,
                };
                if missing_class && missing_reported.insert(class.unwrap_or("").to_string()) {
                    let summary = match class {
                        Some(c) => format!("StorageClass {c} named by claim {name} does not exist"),
                        None => format!(
                            "claim {name} names no StorageClass and the cluster has no default"
                        ),
                    };
                    out.push(
                        Finding::new(Kind::StorageClassMissing, Confidence::High, summary)
                            .with(Evidence::field(
                                &obj,
                                "spec.storageClassName",
                                class.unwrap_or("<unset>"),
                            ))
                            .data(data::StorageClassMissing {
                                claim: name.into(),
                                storage_class: class.unwrap_or_default().into(),
                            }),
                    );
                }
                let mut f = Finding::new(
                    Kind::PvcPending,
                    Confidence::High,
                    format!("claim {name} is Pending"),
                )
                .with(Evidence::field(&obj, "status.phase", "Pending"))
                .data(data::PvcPending {
                    claim: name.into(),
                    storage_class: class.unwrap_or_default().into(),
                });
                if let Some(m) = last_event {
                    f = f.with(Evidence::event(&obj, m));
                }
                out.push(f);
            }
            _ => {}
        }
    }
}
