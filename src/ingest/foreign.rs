//! Datasets `manage` did not write: those the old `manage.py` filled.
//!
//! Such a dataset has no summary entry, and its `metadata` entry has the old
//! tool's shape (no `precision`), or its point documents have ObjectId
//! `_id`s (the old tool let the server make them). It is recognised before
//! anything is written. A grid appends as any dataset does (its summary is
//! rebuilt once, from every stored document). Points are refused: the old
//! tool stored each observation under an ObjectId and one day after its
//! row's day of year, so `manage`'s documents (an `_id` derived from the
//! row, the row's own day) would be a second copy of each; `--replace`
//! rewrites the dataset from the file instead.

use bson::{Bson, Document};

use crate::doc::SUMMARY;
use crate::error::{Error, Result};
use crate::store::{Filter, Store};

/// What tells a dataset another tool wrote.
#[derive(Debug, Clone)]
pub(crate) struct Foreign {
    /// `gridded: false` in its metadata.
    pub points: bool,
    /// Its first document's `_id` is an ObjectId.
    pub object_ids: bool,
    /// Its first document, to compare the file's with.
    pub first: Option<Document>,
}

/// Dataset `name` (whose metadata entry is `md`) when another tool wrote
/// it; `None` for one `manage` wrote, or none at all.
pub(crate) fn foreign_dataset(
    store: &dyn Store,
    name: &str,
    md: Option<&Document>,
) -> Result<Option<Foreign>> {
    let Some(md) = md else {
        return Ok(None);
    };
    if store.entry(SUMMARY, name)?.is_some() {
        return Ok(None);
    }
    let first = first_document(store, name)?;
    let object_ids = matches!(
        first.as_ref().and_then(|d| d.get("_id")),
        Some(Bson::ObjectId(_))
    );
    let old_shape = md.get("precision").is_none();
    if !(object_ids || old_shape) {
        return Ok(None);
    }
    Ok(Some(Foreign {
        points: md.get_bool("gridded") == Ok(false),
        object_ids,
        first,
    }))
}

/// The first document of `collection` in the store's order.
fn first_document(store: &dyn Store, collection: &str) -> Result<Option<Document>> {
    let mut first = None;
    let stop = "first document read";
    let scanned = store.scan(collection, &Filter::All, &mut |d| {
        first = Some(d);
        Err(Error::Usage(stop.into()))
    });
    match scanned {
        Err(Error::Usage(m)) if m == stop => {}
        other => other?,
    }
    Ok(first)
}

/// The time of a point document, in milliseconds.
fn point_time(d: &Document) -> Option<i64> {
    d.get_datetime("timestamp")
        .ok()
        .map(|t| t.timestamp_millis())
}

fn point_coordinates(d: &Document) -> Option<Bson> {
    d.get("coordinates").cloned()
}

/// Refuse to add the file's point documents `docs` (its first batch) to a
/// point dataset another tool wrote, naming what differs: the `_id`
/// scheme, and the shift between the stored time of an observation and
/// the file's (one day, for the old tool), measured on the stored first
/// document when the file has its point.
pub(crate) fn refuse_points(name: &str, path: &str, foreign: &Foreign, docs: &[Document]) -> Error {
    let ids = if foreign.object_ids {
        "its documents have ObjectId _ids (manage derives each _id from its row, so none would replace one)"
    } else {
        "it has no summary entry and its metadata has the old manage.py's shape"
    };
    let shift = foreign.first.as_ref().and_then(|stored| {
        let at = point_coordinates(stored)?;
        let file = docs.iter().find(|d| point_coordinates(d).as_ref() == Some(&at))?;
        let d = point_time(stored)? - point_time(file)?;
        Some(if d == 0 {
            "; the file's first stored observation has the same time there".to_string()
        } else {
            let days = d as f64 / 86_400_000.0;
            format!(
                "; its observations are stored {} day{} {} the file's (the old tool's off-by-one day), so each would be stored twice, on two days",
                days.abs(),
                if days.abs() == 1.0 { "" } else { "s" },
                if d > 0 { "after" } else { "before" }
            )
        })
    });
    Error::collection(
        name,
        format!(
            "it holds point observations written by another tool (the old manage.py): {ids}{}; loading {path} would store observations a second time; nothing was written. `manage load --replace` rewrites '{name}' from the file in one step (see docs/mongodb.md)",
            shift.unwrap_or_default()
        ),
    )
}

/// Whether `-o` sets config key `key`.
pub(crate) fn overridden(options: Option<&str>, key: &str) -> bool {
    options
        .and_then(|o| crate::config::parse_overrides(o).ok())
        .is_some_and(|m| m.contains_key(key))
}
