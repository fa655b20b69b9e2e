//! A dataset's entry in [`SUMMARY`]: its mergeable summary (times, tables
//! of value counts) and the digest of its coordinates, so that an append
//! merges into it instead of reading every stored document.

use bson::{doc, Bson, Document};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::model::Summary;
use crate::store::{Store, MAX_DOCUMENT_BYTES, METADATA, SUMMARY, SUMMARY_PENDING};

/// Which summary entries this version writes and reads.
const SUMMARY_VERSION: i32 = 1;

/// The digest of a dataset's coordinates, kept in its summary entry: the
/// SHA-256 of their doubles, little-endian, x then y.
pub(crate) fn coords_digest(coords: &[[f64; 2]]) -> String {
    let mut h = Sha256::new();
    for [x, y] in coords {
        h.update(x.to_le_bytes());
        h.update(y.to_le_bytes());
    }
    hex::encode(h.finalize())
}

/// The entry of `name` in [`SUMMARY`]; `None` (no entry) when it would not
/// fit one document.
pub(crate) fn summary_entry(
    name: &str,
    coords: &[[f64; 2]],
    summary: &Summary,
) -> Option<Document> {
    let entry = doc! {
        "_id": name,
        "version": SUMMARY_VERSION,
        "coords_sha256": coords_digest(coords),
        "summary": summary.to_stored(),
    };
    let size = bson::to_vec(&entry).map(|b| b.len()).unwrap_or(usize::MAX);
    (size <= MAX_DOCUMENT_BYTES).then_some(entry)
}

/// The stored summary of dataset `name` and the digest of its coordinates,
/// when the dataset is complete and the summary is one this version wrote
/// for as many documents as the collection holds.
pub(crate) fn stored_summary(store: &dyn Store, name: &str) -> Result<Option<(Summary, String)>> {
    let Some(entry) = store.entry(SUMMARY, name)? else {
        return Ok(None);
    };
    if entry.get_i32("version").ok() != Some(SUMMARY_VERSION)
        || store.entry(METADATA, name)?.is_none()
    {
        return Ok(None);
    }
    let summary = entry
        .get_document("summary")
        .ok()
        .and_then(Summary::from_stored);
    let digest = entry.get_str("coords_sha256").ok().map(str::to_string);
    // Checked against the collection's document count as the store keeps
    // it (an exact count reads every document on MongoDB).
    match (summary, digest) {
        (Some(s), Some(d)) if s.documents == store.count_kept(name)? => Ok(Some((s, d))),
        _ => Ok(None),
    }
}

/// An append to MongoDB cut short in its merge leaves NAME without its
/// `metadata` entry and names itself in the summary entry: only that same
/// load, run again, may go on (it writes every document of its file again),
/// so that no other file's load makes NAME look complete meanwhile.
pub(crate) fn refuse_over_unfinished_append(store: &dyn Store, name: &str, id: &str) -> Result<()> {
    let Some(entry) = store.entry(SUMMARY, name)? else {
        return Ok(());
    };
    match entry.get(SUMMARY_PENDING) {
        Some(Bson::String(p)) if p != id => Err(Error::collection(
            name,
            format!(
                "an append of {} was cut short; run that load again to finish it (or `manage remove -n {name}`) before loading another file",
                entry.get_str("path").unwrap_or("another file")
            ),
        )),
        _ => Ok(()),
    }
}
