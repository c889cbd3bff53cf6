//! The offline source: what `kubectl get ... -o yaml|json` prints, a `v1 List`
//! or multi-document YAML, from files, directories or standard input.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::inventory::Inventory;

/// The path that means standard input.
pub const STDIN: &str = "-";

/// Reads every path into one inventory. A directory contributes its `.yaml`,
/// `.yml` and `.json` files, sorted by name so the order is reproducible.
pub fn load(paths: &[PathBuf]) -> Result<Inventory> {
    let mut inventory = Inventory::default();
    for path in paths {
        if path.as_os_str() == STDIN {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })?;
            parse_into(&mut inventory, Path::new("<stdin>"), &text)?;
        } else {
            for file in expand(path)? {
                let text = std::fs::read_to_string(&file).map_err(|source| Error::Io {
                    path: file.clone(),
                    source,
                })?;
                parse_into(&mut inventory, &file, &text)?;
            }
        }
    }
    Ok(inventory)
}

fn expand(path: &Path) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| Error::Io {
                path: dir.clone(),
                source,
            })?;
            let p = entry.path();
            if p.is_dir() {
                dirs.push(p);
            } else if matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            ) {
                files.push(p);
            }
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(Error::Input {
            path: path.to_path_buf(),
            message: "directory holds no .yaml, .yml or .json file".into(),
        });
    }
    Ok(files)
}

/// Parses one file's text (JSON or YAML, one or many documents) into the
/// inventory. Errors name the file, and the document and object where known.
pub fn parse_into(inventory: &mut Inventory, path: &Path, text: &str) -> Result<()> {
    let documents: Vec<Value> = if text.trim_start().starts_with(['{', '[']) {
        vec![serde_json::from_str(text).map_err(|e| Error::Input {
            path: path.to_path_buf(),
            message: format!(
                "invalid JSON at line {} column {}: {e}",
                e.line(),
                e.column()
            ),
        })?]
    } else {
        serde_saphyr::from_multiple(text).map_err(|e| Error::Input {
            path: path.to_path_buf(),
            message: format!("invalid YAML: {e}"),
        })?
    };
    let several = documents.len() > 1;
    for (index, document) in documents.into_iter().enumerate() {
        if document.is_null() {
            continue; // an empty document, as between `---` lines
        }
        if !document.is_object() {
            return Err(Error::Document {
                path: path.to_path_buf(),
                document: index + 1,
                message: "expected a Kubernetes object (a mapping with kind and apiVersion)".into(),
            });
        }
        let origin = |message: &str| {
            if several {
                Error::Document {
                    path: path.to_path_buf(),
                    document: index + 1,
                    message: message.to_string(),
                }
            } else {
                Error::Input {
                    path: path.to_path_buf(),
                    message: message.to_string(),
                }
            }
        };
        inventory.add_value(document, &origin)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Inventory> {
        let mut inv = Inventory::default();
        parse_into(&mut inv, Path::new("in.yaml"), text)?;
        Ok(inv)
    }

    #[test]
    fn reads_multi_document_yaml_and_lists() {
        let inv = parse(
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: apps/v1\n  kind: StatefulSet\n  metadata: {name: db, namespace: a}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: db-0, namespace: a}\n---\n",
        )
        .unwrap();
        assert_eq!(inv.stateful_sets.len(), 1);
        assert_eq!(inv.pods.len(), 1);
    }

    #[test]
    fn typed_lists_give_their_items_a_kind() {
        let inv = parse(r#"{"apiVersion":"v1","kind":"PodList","items":[{"metadata":{"name":"p","namespace":"a"}}]}"#).unwrap();
        assert_eq!(inv.pods.len(), 1);
    }

    #[test]
    fn other_versions_of_a_kind_are_read() {
        let inv = parse("apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: db, namespace: a}\nspec: {maxUnavailable: 1}\n---\napiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: db, namespace: a}\nspec: {scaleTargetRef: {kind: StatefulSet, name: db}, maxReplicas: 5, metrics: []}\n").unwrap();
        assert_eq!(inv.pdbs.len(), 1);
        assert_eq!(inv.hpas[0].spec.as_ref().unwrap().max_replicas, 5);
    }

    #[test]
    fn unknown_kinds_are_counted_not_failed() {
        let inv = parse("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n").unwrap();
        assert_eq!(inv.skipped.get("v1/Service"), Some(&1));
    }

    #[test]
    fn a_bad_object_names_file_document_and_object() {
        let err = parse("apiVersion: v1\nkind: Pod\nmetadata: {name: ok}\n---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db, namespace: a}\nspec: {replicas: many}\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("in.yaml: document 2: StatefulSet a/db:"),
            "{err}"
        );
        assert!(
            err.contains("replicas") || err.contains("invalid type"),
            "{err}"
        );
    }

    #[test]
    fn a_yaml_syntax_error_names_the_file_and_line() {
        let err = parse("kind: Pod\nmetadata: [unclosed\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("in.yaml: invalid YAML"), "{err}");
        assert!(err.contains("line"), "{err}");
    }

    #[test]
    fn a_document_without_kind_is_an_error() {
        let err = parse("metadata: {name: x}\n").unwrap_err().to_string();
        assert_eq!(err, "in.yaml: object has no `kind`");
    }
}
