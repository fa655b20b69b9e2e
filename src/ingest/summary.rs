//! A dataset's entry in [`SUMMARY`]: its mergeable summary (times, tables
//! of value counts) and the digest of its coordinates, so that an append
//! merges into it instead of reading every stored document.

use bson::{Bson, Document};

use crate::doc::summary::{self as entry, PENDING as SUMMARY_PENDING};
use crate::doc::{METADATA, SUMMARY};
use crate::error::{Error, Result};
use crate::model::Summary;
use crate::store::Store;

/// The entry of `name` in [`SUMMARY`]; `None` (no entry) when it would not
/// fit one document.
pub(crate) fn summary_entry(
    name: &str,
    coords: &[[f64; 2]],
    summary: &Summary,
) -> Option<Document> {
    entry::entry(name, coords, summary.to_stored())
}

/// The stored summary of dataset `name` and the digest of its coordinates,
/// when the dataset is complete and the summary is one this version wrote
/// for as many documents as the collection holds.
pub(crate) fn stored_summary(store: &dyn Store, name: &str) -> Result<Option<(Summary, String)>> {
    let Some(entry) = store.entry(SUMMARY, name)? else {
        return Ok(None);
    };
    let Some((stored, digest)) = entry::parts(&entry) else {
        return Ok(None);
    };
    if store.entry(METADATA, name)?.is_none() {
        return Ok(None);
    }
    let summary = Summary::from_stored(stored);
    let digest = Some(digest.to_string());
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
                entry.get_str(entry::PATH).unwrap_or("another file")
            ),
        )),
        _ => Ok(()),
    }
}
