//! A JSON List read one item at a time. Read whole into a
//! `serde_json::Value` first, a snapshot of 20,000 StatefulSets took about
//! ten times its own size in memory before the first object was typed;
//! here each item is typed (and trimmed) as soon as it is read, so the
//! untyped form of only one item is held at a time.

use std::fmt;
use std::path::Path;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::files::Locations;
use crate::error::{Error, Result};
use crate::inventory::Inventory;

/// The items of a JSON List file, read into a fresh inventory with where
/// its StatefulSets are declared, or `None`
/// when the file is not a List (one object, or an object that only has
/// an `items` key): the caller reads it whole as before.
pub(super) fn read(path: &Path, text: &str) -> Result<Option<(Inventory, Locations)>> {
    let mut reader = Reader {
        path,
        inventory: Inventory::default(),
        locations: Locations::default(),
        kindless: Vec::new(),
        error: None,
        had_items: false,
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let top = Top(&mut reader).deserialize(&mut de).and_then(|top| {
        de.end()?;
        Ok(top)
    });
    if let Some(e) = reader.error.take() {
        return Err(e);
    }
    let top = top.map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let kind = top.get("kind").and_then(Value::as_str).unwrap_or_default();
    let list = kind == "List" || kind.ends_with("List") && reader.had_items;
    if !list {
        return Ok(None);
    }
    // `kubectl get pods -o json` prints a PodList whose items carry no
    // kind; the list's own kind, which JSON gives after the items, says
    // what they are.
    let api_version = top
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let item_kind = kind.strip_suffix("List").filter(|k| !k.is_empty());
    for (index, mut item) in std::mem::take(&mut reader.kindless) {
        if let (Some(k), Value::Object(obj)) = (item_kind, &mut item) {
            obj.insert("kind".into(), Value::String(k.to_string()));
            obj.entry("apiVersion")
                .or_insert_with(|| Value::String(api_version.clone()));
        }
        reader.add(index, item)?;
    }
    Ok(Some((reader.inventory, reader.locations)))
}

struct Reader<'a> {
    path: &'a Path,
    inventory: Inventory,
    locations: Locations,
    /// Items without a kind, with their index: typed once the List's kind
    /// is known.
    kindless: Vec<(usize, Value)>,
    /// The first bad item: reading stops there.
    error: Option<Error>,
    had_items: bool,
}

impl Reader<'_> {
    fn add(&mut self, index: usize, item: Value) -> Result<()> {
        let path = self.path;
        self.locations.record(&item, path, None, &[]);
        self.inventory
            .add_value(item, &|message: &str| Error::Input {
                path: path.to_path_buf(),
                message: format!("items[{index}]: {message}"),
            })
    }
}

/// The List's own keys, its items read on the way.
struct Top<'r, 'a>(&'r mut Reader<'a>);

impl<'de> DeserializeSeed<'de> for Top<'_, '_> {
    type Value = Map<String, Value>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Top<'_, '_> {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Kubernetes object")
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut top = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "items" && !self.0.had_items {
                self.0.had_items = true;
                map.next_value_seed(Items(&mut *self.0))?;
            } else {
                let value = map.next_value::<Value>()?;
                top.insert(key, value);
            }
        }
        Ok(top)
    }
}

struct Items<'r, 'a>(&'r mut Reader<'a>);

impl<'de> DeserializeSeed<'de> for Items<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Items<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("`items`, a sequence of objects")
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        let mut index = 0;
        while let Some(item) = seq.next_element::<Value>()? {
            let typed = item.get("kind").and_then(Value::as_str).is_some();
            if typed {
                if let Err(e) = self.0.add(index, item) {
                    self.0.error = Some(e);
                    return Err(de::Error::custom("a bad item"));
                }
            } else {
                self.0.kindless.push((index, item));
            }
            index += 1;
        }
        Ok(())
    }
}
