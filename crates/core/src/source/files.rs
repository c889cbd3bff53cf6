//! The offline source: what `kubectl get ... -o yaml|json` prints, a `v1 List`
//! or multi-document YAML, from files, directories or standard input.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_saphyr::Spanned;

use crate::error::{Error, Result};
use crate::inventory::Inventory;

/// The path that means standard input.
pub const STDIN: &str = "-";

/// Where a StatefulSet read from a file is declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: PathBuf,
    /// The 1-based line its object starts on (its document's first key, or
    /// its `-` in a List). None in JSON, which serde_json reads without
    /// positions.
    pub line: Option<usize>,
}

/// Where each StatefulSet read from files is declared, by namespace and
/// name; the namespace is empty for an object without one, as the pipeline
/// names it. Kept beside the inventory rather than in it, since only the
/// SARIF report asks, and the inventory is also what a live run reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Locations(BTreeMap<(String, String), Location>);

impl Locations {
    pub fn get(&self, namespace: &str, name: &str) -> Option<&Location> {
        self.0.get(&(namespace.to_string(), name.to_string()))
    }

    /// Records the StatefulSets of one document: the document itself, or
    /// the items of a List. The first declaration of a name is kept.
    pub(super) fn record(
        &mut self,
        document: &Value,
        path: &Path,
        line: Option<usize>,
        item_lines: &[usize],
    ) {
        let kind = document
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let items = document.get("items").and_then(Value::as_array);
        let Some(items) = items.filter(|_| kind.ends_with("List")) else {
            if kind == "StatefulSet" {
                self.insert(document, path, line);
            }
            return;
        };
        // As the inventory reads a `kubectl get statefulsets -o json` list,
        // whose items carry no kind.
        let item_kind = kind.strip_suffix("List").filter(|k| !k.is_empty());
        for (index, item) in items.iter().enumerate() {
            if item.get("kind").and_then(Value::as_str).or(item_kind) == Some("StatefulSet") {
                self.insert(item, path, item_lines.get(index).copied());
            }
        }
    }

    /// Adds `other`'s, after this one's: the first declaration is kept.
    fn merge(&mut self, other: Locations) {
        for (key, location) in other.0 {
            self.0.entry(key).or_insert(location);
        }
    }

    fn insert(&mut self, object: &Value, path: &Path, line: Option<usize>) {
        let field = |f| {
            object
                .pointer(f)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let Some(name) = field("/metadata/name") else {
            return;
        };
        let namespace = field("/metadata/namespace").unwrap_or_default();
        self.0.entry((namespace, name)).or_insert_with(|| Location {
            path: path.to_path_buf(),
            line: line.filter(|&l| l > 0),
        });
    }
}

/// Reads every path into one inventory. A directory contributes its `.yaml`,
/// `.yml` and `.json` files, sorted by name so the order is reproducible.
pub fn load(paths: &[PathBuf]) -> Result<Inventory> {
    load_with_locations(paths).map(|(inventory, _)| inventory)
}

/// As [`load`], with where each StatefulSet is declared. Standard input has
/// no path to point at: its objects get no location.
pub fn load_with_locations(paths: &[PathBuf]) -> Result<(Inventory, Locations)> {
    let mut inventory = Inventory::default();
    let mut locations = Locations::default();
    for path in paths {
        if path.as_os_str() == STDIN {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })?;
            parse(
                &mut inventory,
                &mut Locations::default(),
                Path::new("<stdin>"),
                &text,
            )?;
        } else {
            for file in expand(path)? {
                let text = std::fs::read_to_string(&file).map_err(|source| Error::Io {
                    path: file.clone(),
                    source,
                })?;
                parse(&mut inventory, &mut locations, &file, &text)?;
            }
        }
    }
    Ok((inventory, locations))
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
    parse(inventory, &mut Locations::default(), path, text)
}

fn parse(
    inventory: &mut Inventory,
    locations: &mut Locations,
    path: &Path,
    text: &str,
) -> Result<()> {
    if text.trim_start().starts_with('{')
        && let Some((items, declared)) = super::json_list::read(path, text)?
    {
        locations.merge(declared);
        inventory.append(items);
        return Ok(());
    }
    let documents: Vec<Spanned<Document>> = if text.trim_start().starts_with(['{', '[']) {
        let value: Value = serde_json::from_str(text).map_err(|source| Error::Json {
            path: path.to_path_buf(),
            source,
        })?;
        let unknown = serde_saphyr::Location::UNKNOWN;
        vec![Spanned::new(Document::from(value), unknown, unknown)]
    } else {
        serde_saphyr::from_multiple_with_options(text, yaml_options(text.len())).map_err(
            |source| Error::Yaml {
                path: path.to_path_buf(),
                source: Box::new(source),
            },
        )?
    };
    let several = documents.len() > 1;
    for (index, document) in documents.into_iter().enumerate() {
        let line = usize::try_from(document.referenced.line()).ok();
        let Document { value, item_lines } = document.value;
        if value.is_null() {
            continue; // an empty document, as between `---` lines
        }
        if !value.is_object() {
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
        locations.record(&value, path, line, &item_lines);
        inventory.add_value(value, &origin)?;
    }
    Ok(())
}

/// The YAML reader's budget for `len` bytes of input. Its defaults stop a
/// snapshot of about 1,000 StatefulSets (250,000 nodes, 1,024 documents),
/// so what grows with the input grows with it: no document, node, event or
/// scalar byte can take less than a byte of text, so a budget of the
/// input's own size admits any plain file. What only aliases can make
/// (expansion beyond the text: a "billion laughs") and nesting depth keep
/// the reader's fixed limits, so bombs are still refused.
fn yaml_options(len: usize) -> serde_saphyr::Options {
    let mut budget = serde_saphyr::budget::Budget::default();
    budget.max_events = budget.max_events.max(len.saturating_mul(2));
    budget.max_nodes = budget.max_nodes.max(len);
    budget.max_documents = budget.max_documents.max(len / 4);
    budget.max_total_scalar_bytes = budget.max_total_scalar_bytes.max(len);
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

/// One document as JSON, with the line each item of its `items` starts on:
/// a `serde_json::Value` has no room for positions, and a List's items are
/// where `kubectl get -o yaml` puts the objects.
struct Document {
    value: Value,
    item_lines: Vec<usize>,
}

impl From<Value> for Document {
    fn from(value: Value) -> Self {
        Document {
            value,
            item_lines: Vec::new(),
        }
    }
}

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Level::Document.deserialize(d)
    }
}

/// What a node is to the visitor: a document, whose `items` it reads with
/// positions, or those items.
#[derive(Clone, Copy)]
enum Level {
    Document,
    Items,
}

impl<'de> DeserializeSeed<'de> for Level {
    type Value = Document;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Document, D::Error> {
        d.deserialize_any(self)
    }
}

/// Any other node is read as serde_json reads it.
fn json<'de, D: de::Deserializer<'de>>(d: D) -> std::result::Result<Document, D::Error> {
    Value::deserialize(d).map(Document::from)
}

impl<'de> Visitor<'de> for Level {
    type Value = Document;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<Document, E> {
        json(v.into_deserializer())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Document, E> {
        json(v.into_deserializer())
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> std::result::Result<Document, E> {
        json(v.into_deserializer())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Document, E> {
        json(v.into_deserializer())
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> std::result::Result<Document, E> {
        json(v.into_deserializer())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Document, E> {
        json(v.into_deserializer())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Document, E> {
        json(v.into_deserializer())
    }

    fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Document, E> {
        json(v.into_deserializer())
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<Document, E> {
        Ok(Value::Null.into())
    }

    fn visit_none<E: de::Error>(self) -> std::result::Result<Document, E> {
        Ok(Value::Null.into())
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<Document, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Document, A::Error> {
        if let Level::Document = self {
            return json(SeqAccessDeserializer::new(seq));
        }
        let mut items = Vec::new();
        let mut item_lines = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Value>>()? {
            item_lines.push(usize::try_from(item.referenced.line()).unwrap_or_default());
            items.push(item.value);
        }
        Ok(Document {
            value: Value::Array(items),
            item_lines,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Document, A::Error> {
        if let Level::Items = self {
            return json(MapAccessDeserializer::new(map));
        }
        let mut object = serde_json::Map::new();
        let mut item_lines = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = if key == "items" {
                let items = map.next_value_seed(Level::Items)?;
                item_lines = items.item_lines;
                items.value
            } else {
                map.next_value()?
            };
            object.insert(key, value);
        }
        Ok(Document {
            value: Value::Object(object),
            item_lines,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Inventory> {
        let mut inv = Inventory::default();
        parse_into(&mut inv, Path::new("in.yaml"), text)?;
        Ok(inv)
    }

    fn locate(path: &str, text: &str) -> Locations {
        let mut locations = Locations::default();
        super::parse(
            &mut Inventory::default(),
            &mut locations,
            Path::new(path),
            text,
        )
        .unwrap();
        locations
    }

    fn at(path: &str, line: Option<usize>) -> Option<Location> {
        Some(Location {
            path: path.into(),
            line,
        })
    }

    #[test]
    fn locates_the_statefulset_not_a_pods_owner_reference() {
        let list = "\
apiVersion: v1
items:
- apiVersion: v1
  kind: Pod
  metadata:
    name: db-0
    namespace: shop
    ownerReferences:
    - apiVersion: apps/v1
      kind: StatefulSet
      name: db
- apiVersion: apps/v1
  kind: StatefulSet
  metadata:
    labels:
      name: other
    name: db
    namespace: shop
  spec:
    replicas: 3
kind: List
";
        let locations = locate("in.yaml", list);
        assert_eq!(
            locations.get("shop", "db").cloned(),
            at("in.yaml", Some(12))
        );
        assert_eq!(locations.get("billing", "db"), None);
        assert_eq!(locations.get("shop", "db-0"), None);
    }

    #[test]
    fn locates_documents_with_and_without_a_namespace() {
        let docs = "kind: ConfigMap\napiVersion: v1\nmetadata:\n  name: db\n---\n# the database\napiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\nspec: {}\n---\n\n---\n{apiVersion: apps/v1, kind: StatefulSet,\n metadata: {name: web, namespace: shop}}\n";
        let locations = locate("docs.yaml", docs);
        // The pipeline names a StatefulSet without a namespace `/db`.
        assert_eq!(locations.get("", "db").cloned(), at("docs.yaml", Some(7)));
        assert_eq!(
            locations.get("shop", "web").cloned(),
            at("docs.yaml", Some(15))
        );
    }

    #[test]
    fn json_is_located_by_its_file_alone() {
        let json = r#"{"apiVersion":"apps/v1","kind":"StatefulSetList","items":[{"metadata":{"name":"db","namespace":"a"}}]}"#;
        let locations = locate("list.json", json);
        assert_eq!(locations.get("a", "db").cloned(), at("list.json", None));
    }

    #[test]
    fn typed_list_items_without_a_kind_are_located() {
        let yaml = "apiVersion: apps/v1\nkind: StatefulSetList\nitems:\n- metadata: {name: db, namespace: a}\n-   metadata:\n      name: web\n      namespace: a\n";
        let locations = locate("list.yaml", yaml);
        assert_eq!(locations.get("a", "db").cloned(), at("list.yaml", Some(4)));
        assert_eq!(locations.get("a", "web").cloned(), at("list.yaml", Some(5)));
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
    fn a_json_list_is_read_item_by_item_whatever_its_key_order() {
        // kubectl prints the List's kind after its items.
        let json = r#"{"apiVersion":"v1","items":[
            {"metadata":{"name":"p","namespace":"a"}},
            {"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"db","namespace":"a"},"spec":{"selector":{},"serviceName":"db","template":{}}}
        ],"kind":"PodList","metadata":{}}"#;
        let mut locations = Locations::default();
        let mut inv = Inventory::default();
        super::parse(&mut inv, &mut locations, Path::new("l.json"), json).unwrap();
        assert_eq!((inv.pods.len(), inv.stateful_sets.len()), (1, 1));
        assert_eq!(locations.get("a", "db").cloned(), at("l.json", None));
        // An object that only has an `items` key is no List: read whole.
        let other = parse(r#"{"apiVersion":"example.com/v1","kind":"Basket","items":[{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}]}"#).unwrap();
        assert!(other.pods.is_empty());
        assert_eq!(other.skipped.get("example.com/v1/Basket"), Some(&1));
        // A bad item is named by its index, and nothing of the file is kept.
        let err = parse(r#"{"kind":"List","apiVersion":"v1","items":[{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}},{"apiVersion":"v1","kind":"Pod","metadata":{"name":7}}]}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("items[1]: Pod <unnamed>"), "{err}");
        assert!(parse(r#"{"kind":"List","apiVersion":"v1","items":[{"kind":"Pod"}]"#).is_err());
    }

    #[test]
    fn what_no_run_reads_is_dropped_but_a_statefulsets_writers_are_kept() {
        let managed = r#""managedFields":[{"manager":"kubectl","operation":"Update","time":"2026-11-22T09:40:00Z"}],"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{}","keep":"me"}"#;
        let json = format!(
            r#"{{"apiVersion":"v1","kind":"List","items":[
            {{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"p","namespace":"a",{managed}}}}},
            {{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{{"name":"db","namespace":"a",{managed}}},"spec":{{"selector":{{}},"serviceName":"db","template":{{}}}}}}]}}"#
        );
        let inv = parse(&json).unwrap();
        let pod = &inv.pods[0].metadata;
        assert!(pod.managed_fields.is_none());
        assert_eq!(pod.annotations.as_ref().unwrap().len(), 1, "only `keep`");
        let sts = &inv.stateful_sets[0].metadata;
        assert_eq!(sts.managed_fields.as_ref().map(Vec::len), Some(1));
        assert_eq!(sts.annotations.as_ref().unwrap().len(), 2);
    }

    #[test]
    fn other_versions_of_a_kind_are_read() {
        let inv = parse("apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: db, namespace: a}\nspec: {maxUnavailable: 1}\n---\napiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: db, namespace: a}\nspec: {scaleTargetRef: {kind: StatefulSet, name: db}, maxReplicas: 5, metrics: []}\n").unwrap();
        assert_eq!(inv.pdbs.len(), 1);
        assert_eq!(inv.hpas[0].spec.max_replicas, 5);
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
