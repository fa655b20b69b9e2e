//! A dataset's entry in [`SUMMARY`]: its mergeable summary (times, tables
//! of value counts) and the digest of its coordinates, so that an append
//! merges into it instead of reading every stored document.

use std::collections::HashSet;

use bson::{Bson, Document, RawDocumentBuf};

use crate::doc::sort_key;
use crate::doc::summary::{self as entry, PENDING as SUMMARY_PENDING};
use crate::doc::SUMMARY;
use crate::error::{Error, Result};
use crate::model::{Batch, Model, Summary};
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

/// The summary of a dataset as a load will leave it: the stored one, less
/// the documents the load replaces, plus the file's. Only the replaced
/// documents are read. Without a stored summary (a store written before
/// there was one, or one that does not fit), or when what is replaced
/// cannot be told, every document is read once at the end.
pub(crate) struct DatasetSummary {
    /// The load appends to a stored dataset.
    appending: bool,
    /// The stored summary less what was replaced so far; `None` once it
    /// cannot be kept exact.
    base: Option<Summary>,
    /// The sort keys of the `_id`s written so far.
    written: HashSet<Vec<u8>>,
}

/// Read the stored documents with these `_id`s (`Load::stored`).
type Stored<'a> = dyn FnMut(&[Bson], &mut dyn FnMut(Document) -> Result<()>) -> Result<()> + 'a;
/// Read every document of the dataset as committed (`Load::scan`).
type ScanAll<'a> = dyn FnMut(&mut dyn FnMut(Document) -> Result<()>) -> Result<()> + 'a;

impl DatasetSummary {
    /// For a load that `appending`s to a dataset whose stored summary is
    /// `stored` (a first load starts from nothing).
    pub(crate) fn new(appending: bool, stored: Option<Summary>) -> Self {
        let base = match (appending, stored) {
            (false, _) => Some(Summary::default()),
            (true, s) => s,
        };
        Self {
            appending,
            base,
            written: HashSet::new(),
        }
    }

    /// Before `batch` is written: take out of the base the stored
    /// documents it replaces (read through `stored`).
    pub(crate) fn replacing(
        &mut self,
        batch: &Batch,
        model: &dyn Model,
        stored: &mut Stored<'_>,
    ) -> Result<()> {
        if !self.appending || self.base.is_none() {
            return Ok(());
        }
        let ids: Vec<Bson> = batch
            .docs
            .iter()
            .filter_map(id_of)
            .chain(batch.packed.iter().map(|p| p.id.clone()))
            .collect();
        // An _id twice in one load, or one that cannot be read: the merge
        // cannot tell what is replaced; read everything.
        let written = &mut self.written;
        let repeated =
            ids.len() != batch.len() || !ids.iter().all(|id| written.insert(sort_key(id)));
        if repeated {
            self.base = None;
            return Ok(());
        }
        let mut fits = true;
        let base = &mut self.base;
        stored(&ids, &mut |old| {
            if let Some(b) = base.as_mut() {
                fits &= b.subtract(&model.summarize(&old));
            }
            Ok(())
        })?;
        if !fits {
            self.base = None;
        }
        Ok(())
    }

    /// The dataset's summary once the file (of summary `file`) is written:
    /// the base merged with the file's, or every document read through
    /// `scan` when the base was not kept (dates and statistics describe
    /// the whole collection, old times too).
    pub(crate) fn finish(
        self,
        file: &Summary,
        model: &dyn Model,
        scan: &mut ScanAll<'_>,
    ) -> Result<Summary> {
        match self.base {
            Some(b) if b.compatible(file) => Ok(b.merge(file.clone())),
            _ => {
                let mut all = Summary::default();
                scan(&mut |d| {
                    all = std::mem::take(&mut all).merge(model.summarize(&d));
                    Ok(())
                })?;
                Ok(all)
            }
        }
    }
}

/// The `_id` of an encoded document.
fn id_of(doc: &RawDocumentBuf) -> Option<Bson> {
    doc.get("_id")
        .ok()
        .flatten()
        .and_then(|id| Bson::try_from(id.to_raw_bson()).ok())
}
