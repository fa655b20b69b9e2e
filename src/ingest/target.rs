//! What one input's pipeline ([`super::pipeline`]) reads and writes into:
//! the store under the dataset's lock ([`Locked`]), or a dry run's view of
//! the store and of what the inputs before it in the run would have made
//! of the dataset ([`DryRun`]), whose [`Load`] discards what is written.
//! The checks, the conversion and the commit are the pipeline's, once for
//! both: a target only answers what the dataset holds.

use std::collections::HashSet;

use bson::{Bson, Document, RawDocumentBuf};

use super::checks::{held_in, Held};
use super::summary::refuse_over_unfinished_append;
use super::{already_loaded, skipped, span_of, Destination, Outcome};
use crate::doc::{coordinates_of_raw, Docs, METADATA};
use crate::error::Result;
use crate::model::Summary;
use crate::read::stored_summary;
use crate::store::foreign::{foreign_dataset, Foreign};
use crate::store::lock::Lease;
use crate::store::{Entries, Load, Store};

/// What the pipeline of one input into dataset `name` reads of the
/// dataset, and where it writes.
pub(super) trait Target {
    /// A skip, when input `id` is in dataset `name` already.
    fn loaded(&self, name: &str, id: &str) -> Result<Option<Outcome>>;

    /// Refuse a load over an append of another input cut short (see
    /// [`refuse_over_unfinished_append`]).
    fn refuse_unfinished(&self, name: &str, id: &str) -> Result<()>;

    /// The dataset's `metadata` entry.
    fn metadata(&self, name: &str) -> Result<Option<Document>>;

    /// The dataset (of metadata `md`) when another tool wrote it.
    fn foreign(&self, name: &str, md: Option<&Document>) -> Result<Option<Foreign>>;

    /// The dataset's stored summary and the digest of its coordinates.
    fn summary(&self, name: &str) -> Result<Option<(Summary, String)>>;

    /// What the dataset holds of coordinates (see [`held_in`]).
    fn held(&self, name: &str, digest: Option<&str>, coords: &[[f64; 2]]) -> Result<Held>;

    /// A signal, or the dataset's lock lost: the load stops here.
    fn check(&self) -> Result<()>;

    /// Whether what is committed is written (the user is told when the
    /// commit starts).
    fn writes(&self) -> bool;

    /// Begin the load (`replace`: one that replaces the dataset whole).
    fn begin<'t>(&'t mut self, name: &str, replace: bool) -> Result<Box<dyn Load + 't>>;

    /// What is reported of what was committed.
    fn outcome(&self, done: Done<'_>) -> Outcome;
}

/// What the pipeline committed: `documents` of the times `dates`, of the
/// summary `file`, leaving the dataset of the summary `dataset`
/// (`appending` to one that existed).
pub(super) struct Done<'a> {
    pub documents: usize,
    pub dates: Vec<String>,
    pub file: &'a Summary,
    pub dataset: &'a Summary,
    pub appending: bool,
}

/// The store, under dataset `name`'s lock `lease`.
pub(super) struct Locked<'a> {
    pub store: &'a mut dyn Store,
    pub lease: &'a Lease,
}

impl Target for Locked<'_> {
    fn loaded(&self, name: &str, id: &str) -> Result<Option<Outcome>> {
        Ok(already_loaded(&*self.store, name, id)?.map(|e| skipped(&e)))
    }

    fn refuse_unfinished(&self, name: &str, id: &str) -> Result<()> {
        refuse_over_unfinished_append(&*self.store, name, id)
    }

    fn metadata(&self, name: &str) -> Result<Option<Document>> {
        self.store.entry(METADATA, name)
    }

    fn foreign(&self, name: &str, md: Option<&Document>) -> Result<Option<Foreign>> {
        foreign_dataset(&*self.store, name, md)
    }

    fn summary(&self, name: &str) -> Result<Option<(Summary, String)>> {
        stored_summary(&*self.store, name)
    }

    fn held(&self, name: &str, digest: Option<&str>, coords: &[[f64; 2]]) -> Result<Held> {
        held_in(&*self.store, name, digest, coords)
    }

    fn check(&self) -> Result<()> {
        self.lease.check()
    }

    fn writes(&self) -> bool {
        true
    }

    fn begin<'t>(&'t mut self, name: &str, replace: bool) -> Result<Box<dyn Load + 't>> {
        // The load's staging and commit are fenced by its lock: should
        // another process take the lock over, nothing of this load is
        // committed.
        self.store.fence(name, self.lease.token());
        let load = if replace {
            self.store.begin_replace(name)?
        } else {
            self.store.begin_load(name)?
        };
        Ok(Box::new(Guarded {
            load: Some(load),
            lease: self.lease,
        }))
    }

    fn outcome(&self, done: Done<'_>) -> Outcome {
        Outcome::Loaded {
            documents: done.documents,
            dates: done.dates,
            times: done.dataset.times.len(),
            span: span_of(done.dataset),
        }
    }
}

/// A load under a lease: each write and the commit fail once a signal
/// came or another process took the lock over, and a load that fails
/// because its lock was taken over is abandoned to that process rather
/// than undone (see [`Load::abandon`]).
struct Guarded<'l, 'a> {
    load: Option<Box<dyn Load + 'l>>,
    lease: &'a Lease,
}

impl Guarded<'_, '_> {
    fn inner(&mut self) -> &mut (dyn Load + '_) {
        self.load.as_deref_mut().expect("a load not yet committed")
    }
}

impl Load for Guarded<'_, '_> {
    fn write(&mut self, docs: Docs) -> Result<()> {
        // A signal, or the lock lost: the load fails here, and its writes
        // are undone with it.
        self.lease.check()?;
        self.inner().write(docs)
    }

    fn stored(&mut self, ids: &[Bson], f: &mut dyn FnMut(Document) -> Result<()>) -> Result<()> {
        self.inner().stored(ids, f)
    }

    fn scan(&mut self, f: &mut dyn FnMut(Document) -> Result<()>) -> Result<()> {
        self.inner().scan(f)
    }

    fn commit(mut self: Box<Self>, entries: Entries) -> Result<()> {
        self.lease.check()?;
        match self.load.take() {
            Some(l) => l.commit(entries),
            None => Ok(()),
        }
    }
}

impl Drop for Guarded<'_, '_> {
    fn drop(&mut self) {
        if let Some(l) = self.load.take() {
            if self.lease.lost() {
                l.abandon();
            }
        }
    }
}

/// What the inputs a dry run has checked so far would have committed to
/// the dataset, had it not been a dry run: so that each input is checked
/// against the dataset as the real run would find it (their coordinates,
/// model and precision, and the inputs the ingest log would hold).
#[derive(Default)]
pub(super) struct Pending {
    coord_index: Option<RawDocumentBuf>,
    metadata: Option<Document>,
    inputs: HashSet<String>,
}

/// A dry run: the store as it is (`None` when it does not exist yet),
/// read only, and what the inputs before this one would have committed.
/// No lock is taken.
pub(super) struct DryRun<'a> {
    store: Option<&'a dyn Store>,
    pending: &'a mut Pending,
    /// The inputs before this one would have made the dataset.
    earlier: bool,
}

impl<'a> DryRun<'a> {
    pub(super) fn new(store: Option<&'a dyn Store>, pending: &'a mut Pending) -> Self {
        let earlier = pending.metadata.is_some();
        Self {
            store,
            pending,
            earlier,
        }
    }
}

impl Target for DryRun<'_> {
    fn loaded(&self, name: &str, id: &str) -> Result<Option<Outcome>> {
        if self.pending.inputs.contains(id) {
            return Ok(Some(Outcome::Skipped { loaded_at: None }));
        }
        match self.store {
            Some(store) => Ok(already_loaded(store, name, id)?.map(|e| skipped(&e))),
            None => Ok(None),
        }
    }

    fn refuse_unfinished(&self, name: &str, id: &str) -> Result<()> {
        // An earlier input's commit would have finished the dataset.
        match self.store {
            Some(store) if !self.earlier => refuse_over_unfinished_append(store, name, id),
            _ => Ok(()),
        }
    }

    fn metadata(&self, name: &str) -> Result<Option<Document>> {
        match (&self.pending.metadata, self.store) {
            (Some(md), _) => Ok(Some(md.clone())),
            (None, Some(store)) => store.entry(METADATA, name),
            (None, None) => Ok(None),
        }
    }

    fn foreign(&self, name: &str, md: Option<&Document>) -> Result<Option<Foreign>> {
        // An earlier input's commit would have written the summary entry
        // that marks a dataset as `manage`'s.
        match self.store {
            Some(store) if !self.earlier => foreign_dataset(store, name, md),
            _ => Ok(None),
        }
    }

    /// None: a dry run's load reads no document back, so the dataset's
    /// summary is not made (it reports the file's own times).
    fn summary(&self, _name: &str) -> Result<Option<(Summary, String)>> {
        Ok(None)
    }

    fn held(&self, name: &str, digest: Option<&str>, coords: &[[f64; 2]]) -> Result<Held> {
        match (&self.pending.coord_index, self.store) {
            (Some(entry), _) => Ok(Held::Entry(coordinates_of_raw(entry))),
            (None, Some(store)) => held_in(store, name, digest, coords),
            (None, None) => Ok(Held::Nothing),
        }
    }

    fn check(&self) -> Result<()> {
        Ok(())
    }

    fn writes(&self) -> bool {
        false
    }

    fn begin<'t>(&'t mut self, _name: &str, _replace: bool) -> Result<Box<dyn Load + 't>> {
        Ok(Box::new(Discard {
            pending: self.pending,
        }))
    }

    fn outcome(&self, done: Done<'_>) -> Outcome {
        let into = match (done.appending, self.earlier) {
            (false, _) => Destination::NewDataset,
            (true, true) => Destination::EarlierInputs,
            (true, false) => Destination::ExistingDataset,
        };
        Outcome::WouldLoad {
            documents: done.documents,
            dates: done.dates,
            times: done.file.times.len(),
            span: span_of(done.file),
            into,
        }
    }
}

/// A dry run's load: what is written is thrown away; what is committed is
/// recorded into [`Pending`], for the inputs after it.
struct Discard<'a> {
    pending: &'a mut Pending,
}

/// Nothing is read back: the documents written are gone, and those of
/// the inputs before it were never stored.
impl Load for Discard<'_> {
    fn write(&mut self, _docs: Docs) -> Result<()> {
        Ok(())
    }

    fn stored(&mut self, _ids: &[Bson], _f: &mut dyn FnMut(Document) -> Result<()>) -> Result<()> {
        Ok(())
    }

    fn scan(&mut self, _f: &mut dyn FnMut(Document) -> Result<()>) -> Result<()> {
        Ok(())
    }

    fn commit(self: Box<Self>, entries: Entries) -> Result<()> {
        let p = self.pending;
        p.inputs.extend(
            entries
                .ingest
                .iter()
                .filter_map(|e| e.get_str("_id").ok().map(String::from)),
        );
        p.coord_index = entries.coord_index;
        p.metadata = Some(entries.metadata);
        Ok(())
    }
}
