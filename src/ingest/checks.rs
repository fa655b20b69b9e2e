//! What refuses a file before anything is written: another model or
//! precision than the dataset holds, a metadata entry over the document
//! limit, coordinates that differ from the stored ones.

use std::path::Path;

use bson::{doc, Bson, Document};

use crate::doc::summary::coords_digest;
use crate::doc::{coordinates_of, fields, COORD_INDEX, MAX_DOCUMENT_BYTES};
use crate::error::{shown, Error, Result};
use crate::model::{Model, ModelKind, Summary};
use crate::store::Store;

/// Refuse a file that would add to dataset `name` documents of another
/// model, or values rounded to another precision, than it holds: the
/// dataset's `metadata` says which (see [`ModelKind::of_metadata`]).
pub(crate) fn check_fits_dataset(
    md: Option<Document>,
    name: &str,
    kind: ModelKind,
    model: &dyn Model,
    path: &Path,
) -> Result<()> {
    let Some(md) = md else {
        return Ok(());
    };
    if let Some(stored) = ModelKind::of_metadata(&md) {
        if stored != kind.layout() {
            return Err(Error::collection(
                name,
                format!(
                    "it holds {} data, and {} is loaded as {}; nothing was written (load it under another name)",
                    stored.layout_name(),
                    shown(path),
                    kind.name()
                ),
            ));
        }
    }
    if let Some(p) = stored_precision(&md).map(i64::from) {
        if p != i64::from(model.precision()) {
            return Err(Error::collection(
                name,
                format!(
                    "its values have precision {p}, and {} would add values with precision {}; nothing was written (set precision={p}, or load it under another name)",
                    shown(path),
                    model.precision()
                ),
            ));
        }
    }
    // The conversion of `units_to` is part of what the values are, as the
    // precision is: the same one (or none) or nothing is added.
    let stored = md.get(fields::UNITS_CONVERSION);
    let ours = model.metadata(&[], &Summary::default());
    let ours = ours.get(fields::UNITS_CONVERSION);
    if stored != ours {
        let said = |c: Option<&Bson>| match c.and_then(Bson::as_document) {
            Some(d) => format!(
                "converted from {:?} to {:?} (units_to)",
                d.get_str("from").unwrap_or("?"),
                d.get_str("to").unwrap_or("?")
            ),
            None => "in the unit they were read in (no units_to)".to_string(),
        };
        return Err(Error::collection(
            name,
            format!(
                "its values were stored {}, and {} would add values {}; nothing was written (load it with the same units_to, or under another name)",
                said(stored),
                shown(path),
                said(ours)
            ),
        ));
    }
    Ok(())
}

/// The `precision` a dataset's `metadata` entry records.
pub(crate) fn stored_precision(md: &Document) -> Option<u32> {
    match md.get("precision")? {
        Bson::Int32(n) => u32::try_from(*n).ok(),
        Bson::Int64(n) => u32::try_from(*n).ok(),
        Bson::Double(x) if x.fract() == 0.0 && *x >= 0.0 && *x < 4e9 => Some(*x as u32),
        _ => None,
    }
}

/// Refuse, before anything is written, a file whose `metadata` entry would
/// be over the document limit even before its dates and statistics: what
/// makes it so large is the config (a long title, units or unknown keys),
/// which is stored in it.
pub(crate) fn check_metadata_size(
    name: &str,
    path: &Path,
    model: &dyn Model,
    coords: &[[f64; 2]],
) -> Result<()> {
    let md = model.metadata(coords, &Summary::default());
    let bytes = bson::to_vec(&md).map_or(usize::MAX, |b| b.len());
    if bytes <= MAX_DOCUMENT_BYTES {
        return Ok(());
    }
    let largest = md
        .iter()
        .max_by_key(|(_, v)| bson::to_vec(&doc! {"v": *v}).map_or(usize::MAX, |b| b.len()))
        .map(|(k, _)| k.as_str())
        .unwrap_or("_id");
    Err(Error::collection(
        name,
        format!(
            "its metadata entry for {} would be {:.1} MiB, over MongoDB's 16 MiB document limit (its largest key, from the config, is '{largest}'); nothing was written",
            shown(path),
            bytes as f64 / (1024.0 * 1024.0)
        ),
    ))
}

/// What a dataset holds of coordinates, for a file's to be joined to.
pub(crate) enum Held {
    /// No dataset (or one being replaced): the file's coordinates are its.
    Nothing,
    /// A dataset whose coordinates are the file's (the same digest).
    Same,
    /// A dataset without a `coord_index` entry (only documents).
    NoEntry,
    /// A dataset's `coord_index` entry, decoded (`None`: it cannot be).
    Entry(Option<Vec<[f64; 2]>>),
}

/// What `store` holds of dataset `name`'s coordinates, for a file of
/// coordinates `coords`; `stored_digest` is the digest its stored summary
/// records, which spares decoding the entry when the file's are the same.
pub(crate) fn held_in(
    store: &dyn Store,
    name: &str,
    stored_digest: Option<&str>,
    coords: &[[f64; 2]],
) -> Result<Held> {
    // The same coordinates as stored: nothing to decode (and joining a
    // grid or a point list with itself gives it back).
    if stored_digest.is_some_and(|d| d == coords_digest(coords)) {
        return Ok(Held::Same);
    }
    Ok(match store.entry(COORD_INDEX, name)? {
        Some(entry) => Held::Entry(coordinates_of(&entry)),
        None if store.count(name)? > 0 => Held::NoEntry,
        None => Held::Nothing,
    })
}

/// The coordinates the dataset will have with this file, and whether the
/// dataset exists (so the metadata must cover what it holds already).
/// Refused when the file's cannot be joined to what it holds.
pub(crate) fn joined_coordinates(
    held: Held,
    name: &str,
    path: &Path,
    model: &dyn Model,
    coords: Vec<[f64; 2]>,
) -> Result<(Vec<[f64; 2]>, bool)> {
    match held {
        Held::Nothing => Ok((coords, false)),
        Held::Same | Held::NoEntry => Ok((coords, true)),
        Held::Entry(old) => {
            let cells = coords.len();
            let joined = old
                .and_then(|old| model.join_coordinates(old, coords))
                .ok_or_else(|| coords_differ(name, path, cells))?;
            Ok((joined, true))
        }
    }
}

/// A grid file whose coordinates are not the dataset's.
fn coords_differ(name: &str, path: &Path, cells: usize) -> Error {
    Error::collection(
        name,
        format!(
            "its stored coord_index differs from the coordinates of {} ({cells} cells); load it under another name",
            shown(path),
        ),
    )
}
