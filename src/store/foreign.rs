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

use super::{Filter, Store};
use crate::doc::SUMMARY;
use crate::error::{Error, Result};

/// What tells a dataset another tool wrote.
#[derive(Debug, Clone)]
pub struct Foreign {
    /// `gridded: false` in its metadata.
    pub points: bool,
    /// Its first document's `_id` is an ObjectId.
    pub object_ids: bool,
    /// Its first document, to compare the file's with.
    pub first: Option<Document>,
}

/// Dataset `name` (whose metadata entry is `md`) when another tool wrote
/// it; `None` for one `manage` wrote, or none at all.
pub fn foreign_dataset(
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
