//! A load's commit: the staging collection swapped in (a first load) or
//! merged into the dataset (an append), its entries written `metadata`
//! last; and the documents a load reads back before it commits.

use std::collections::HashSet;

use bson::{doc, Bson, Document, RawDocumentBuf};
use rayon::prelude::*;

use super::deadline::{Rows, Within};
use super::writer::encode;
use super::{scan, Before, MongoLoad};
use crate::error::{Error, Result};
use crate::store::{
    check_document_size, geom_name, sort_key, Bookkeeping, Entries, Filter, Load, Store,
    COORD_INDEX, MAX_DOCUMENT_BYTES, METADATA, SUMMARY, SUMMARY_PENDING,
};

/// The field of a dataset's summary entry that notes its largest `_id`.
const LAST_ID: &str = "last_id";
/// The field of a pending summary entry that keeps what the append's
/// commit writes (see `finish_append`).
pub(super) const FINISH: &str = "finish";
/// The field of a summary entry with the digest of the coordinates.
const COORDS_SHA256: &str = "coords_sha256";

impl Load for MongoLoad<'_> {
    fn write_raw(&mut self, docs: Vec<RawDocumentBuf>) -> Result<()> {
        let name = &self.name;
        // Every document is checked before any of them is sent.
        let encoded = docs
            .into_par_iter()
            .map(|d| encode(name, d))
            .collect::<Result<Vec<_>>>()?;
        self.written
            .extend(encoded.iter().map(|d| (d.key.clone(), d.id.clone())));
        self.pending.extend(encoded);
        self.flush(false)
    }

    fn stored(&mut self, ids: &[Bson], f: &mut dyn FnMut(Document) -> Result<()>) -> Result<()> {
        // The stored documents are those of NAME itself: this load writes
        // only to its staging collection until it commits. They are read as
        // one `_id` range (an `$in` of many `_id`s is slow on some servers),
        // keeping those asked for; a range over `_id`s of several types is
        // not one, so those are read one by one. An `_id` above the largest
        // one NAME holds is not stored: the nightly append of later times
        // asks the server nothing.
        let Some((stored_last, _)) = self.before()?.last else {
            return Ok(());
        };
        let ids: Vec<&Bson> = ids
            .iter()
            .filter(|id| sort_key(id) <= stored_last)
            .collect();
        let (Some(first), Some(last)) = (
            ids.iter().min_by_key(|id| sort_key(id)),
            ids.iter().max_by_key(|id| sort_key(id)),
        ) else {
            return Ok(());
        };
        let wanted: HashSet<Vec<u8>> = ids.iter().map(|id| sort_key(id)).collect();
        let coll = self.store.coll(&self.name);
        let err = |e| self.store.err(&self.name, e);
        let queries: Vec<Document> = if ids
            .iter()
            .all(|id| id.element_type() == first.element_type())
        {
            vec![doc! { "_id": { "$gte": (*first).clone(), "$lte": (*last).clone() } }]
        } else {
            ids.iter().map(|id| doc! { "_id": (*id).clone() }).collect()
        };
        for q in queries {
            let cursor = coll.find(q).within(&self.store.deadline).map_err(err)?;
            for d in Rows::new(cursor, &self.store.deadline) {
                let d = d.map_err(err)?;
                if d.get("_id")
                    .is_some_and(|id| wanted.contains(&sort_key(id)))
                {
                    f(d)?;
                }
            }
        }
        Ok(())
    }

    fn bookkeeping(&mut self) -> &mut Bookkeeping {
        &mut self.bookkeeping
    }

    fn scan(&mut self, f: &mut dyn FnMut(Document) -> Result<()>) -> Result<()> {
        self.settle()?;
        if !self.appending {
            return scan(self.store, &self.staging, &Filter::All, f);
        }
        // NAME as the merge will leave it: its documents, those staged
        // replacing the ones with the same `_id`, in `_id` order.
        let sorted = |c: &str| -> Result<_> {
            let err = |e| self.store.err(c, e);
            let cursor = self
                .store
                .coll(c)
                .find(doc! {})
                .sort(doc! { "_id": 1 })
                .within(&self.store.deadline)
                .map_err(err)?;
            let c = c.to_string();
            Ok(Rows::new(cursor, &self.store.deadline).map(move |d| {
                let d = d.map_err(|e| Error::collection(&c, e.to_string()))?;
                let key = d.get("_id").map(sort_key).unwrap_or_default();
                Ok::<_, Error>((key, d))
            }))
        };
        let mut stored = sorted(&self.name)?.peekable();
        let mut staged = sorted(&self.staging)?.peekable();
        loop {
            let take_staged = match (stored.peek(), staged.peek()) {
                (None, None) => return Ok(()),
                (Some(Err(_)), _) => return stored.next().map_or(Ok(()), |r| r.map(|_| ())),
                (_, Some(Err(_))) => return staged.next().map_or(Ok(()), |r| r.map(|_| ())),
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some(Ok((a, _))), Some(Ok((b, _)))) => match a.cmp(b) {
                    std::cmp::Ordering::Less => false,
                    std::cmp::Ordering::Greater => true,
                    std::cmp::Ordering::Equal => {
                        stored.next(); // replaced by the staged one
                        true
                    }
                },
            };
            let next = if take_staged {
                staged.next()
            } else {
                stored.next()
            };
            if let Some(item) = next {
                f(item?.1)?;
            }
        }
    }

    fn abandon(mut self: Box<Self>) {
        // Its lock was taken over: the staging collection is this load's
        // own (see `Store::fence`), dropped as any uncommitted load's is.
        let _ = self.join();
    }

    fn commit(self: Box<Self>, coord_index: Document, metadata: Document) -> Result<()> {
        let coord_index = RawDocumentBuf::from_document(&coord_index)
            .map_err(|e| Error::store("write", format!("cannot encode a document: {e}")))?;
        self.commit_raw(coord_index, metadata)
    }

    /// The commit, with the `coord_index` entry as it is sent: a global
    /// grid's is megabytes of BSON, and decoded into a `Document` (to be
    /// encoded again) it took 116 MB, the peak of a load's memory.
    fn commit_raw(
        mut self: Box<Self>,
        coord_index: RawDocumentBuf,
        metadata: Document,
    ) -> Result<()> {
        // Every entry is checked before anything is written (the ingest-log
        // entries were, by `log_ingest`).
        let id = |d: &RawDocumentBuf| {
            d.get("_id")
                .ok()
                .flatten()
                .and_then(|b| b.to_raw_bson().try_into().ok())
        };
        check_document_size(
            COORD_INDEX,
            id(&coord_index).as_ref(),
            coord_index.as_bytes().len(),
        )?;
        let entries = [(&metadata, METADATA)]
            .into_iter()
            .chain(self.bookkeeping.summary.iter().map(|e| (e, SUMMARY)));
        for entry in entries {
            let bytes = bson::to_vec(entry.0)
                .map_err(|e| Error::store("write", format!("cannot encode a document: {e}")))?;
            check_document_size(entry.1, entry.0.get("_id"), bytes.len())?;
        }
        self.settle()?;
        if self.appending {
            return self.commit_append(coord_index, metadata);
        }
        let store = self.store;
        if !self.in_order {
            // Documents written out of `_id` order (or a time added before
            // stored ones): rewrite the staging collection sorted, on the
            // server, so that an unsorted `find` reads a time series.
            store.sort_into(&self.staging, &self.staging)?;
        }
        self.drop_stale_geometry(&coord_index)?;
        // Without its metadata entry the dataset is incomplete to `db -a`
        // until the new entry is written, last.
        let id = Bson::String(self.name.clone());
        self.check_fence()?;
        let old_metadata = store.entry(METADATA, &self.name)?;
        store.delete(METADATA, &id)?;
        // The summary goes with it, and comes back before it: a summary
        // beside a metadata entry is always that of the collection.
        let old_summary = store.entry(SUMMARY, &self.name)?;
        store.delete(SUMMARY, &id)?;
        let swapped = self
            .check_fence()
            .and_then(|()| store.rename_coll(&self.staging, &self.name));
        if let Err(e) = swapped {
            // The stored collection is untouched: its entries go back, so
            // the dataset stays whole and listed. (Should this fail too,
            // `db -a` reports the missing entry and the same load repairs it.)
            if let Some(s) = old_summary {
                let _ = store.put(SUMMARY, &s);
            }
            if let Some(md) = old_metadata {
                let _ = store.put(METADATA, &md);
            }
            return Err(e);
        }
        self.committed = true;
        let entries = self.entries(Some(coord_index), None, metadata)?;
        self.check_fence()?;
        entries.write(store)?;
        store.make_geometry(&self.name)
    }
}

impl MongoLoad<'_> {
    /// Drop flux-server's geometry cache of NAME when the coordinates
    /// change: it is made from coord_index, again by the commit once the
    /// new entry is written (see [`super::Mongo::make_geometry`]).
    fn drop_stale_geometry(&self, coord_index: &RawDocumentBuf) -> Result<()> {
        let geom = geom_name(&self.name);
        if self.store.exists(&geom)? {
            let stored = self.store.entry(COORD_INDEX, &self.name)?;
            let new: Option<Bson> = coord_index
                .get("i")
                .ok()
                .flatten()
                .and_then(|b| b.to_raw_bson().try_into().ok());
            if stored.as_ref().and_then(|d| d.get("i")) != new.as_ref() {
                self.store.drop_coll(&geom)?;
            }
        }
        Ok(())
    }

    /// Fail, in one line, if this load's lock no longer holds: another
    /// process took it over (its lease lapsed while this host was stopped
    /// or cut off). Checked right before each step of the commit; what this
    /// load staged is dropped as it fails.
    fn check_fence(&self) -> Result<()> {
        let Some(token) = &self.fence else {
            return Ok(());
        };
        let held = self
            .store
            .coll(crate::store::LOCKS)
            .find_one(doc! { "_id": &self.name, "token": token })
            .projection(doc! { "_id": 1 })
            .within(&self.store.deadline)
            .map_err(|e| self.store.err(crate::store::LOCKS, e))?;
        match held {
            Some(_) => Ok(()),
            None => Err(Error::collection(
                &self.name,
                "another process took its lock over (the lease lapsed before it was renewed) before this load committed; nothing of this load was kept",
            )),
        }
    }

    /// NAME before this load, read once: the largest `_id`, noted in its
    /// summary entry by the load that wrote it, else asked of the server;
    /// the digest of its coordinates, when the summary entry has one.
    fn before(&mut self) -> Result<Before> {
        if let Some(b) = &self.before {
            return Ok(b.clone());
        }
        let entry = self.store.entry(SUMMARY, &self.name)?;
        let noted = entry.as_ref().and_then(|e| e.get(LAST_ID).cloned());
        let last = match noted {
            Some(id) => Some(id),
            None => self
                .store
                .coll(&self.name)
                .find_one(doc! {})
                .sort(doc! { "_id": -1 })
                .projection(doc! { "_id": 1 })
                .within(&self.store.deadline)
                .map_err(|e| self.store.err(&self.name, e))?
                .and_then(|d| d.get("_id").cloned()),
        };
        let before = Before {
            last: last.map(|id| (sort_key(&id), id)),
            coords_sha256: entry
                .as_ref()
                .and_then(|e| e.get_str(COORDS_SHA256).ok())
                .map(str::to_string),
        };
        self.before = Some(before.clone());
        Ok(before)
    }

    /// The entries the commit writes once the documents are in place (see
    /// [`Entries`]): the summary with NAME's largest `_id`.
    fn entries(
        &mut self,
        coord_index: Option<RawDocumentBuf>,
        stored_last: Option<(Vec<u8>, Bson)>,
        metadata: Document,
    ) -> Result<Entries> {
        Ok(Entries {
            name: self.name.clone(),
            coord_index,
            summary: self.summary_with_last(stored_last),
            metadata,
            ingest: std::mem::take(&mut self.bookkeeping.ingest),
            replaces: self.bookkeeping.replaces,
        })
    }

    /// The summary entry to write, with the largest `_id` NAME holds once
    /// this load is committed (so that the next append need not ask).
    fn summary_with_last(&mut self, stored_last: Option<(Vec<u8>, Bson)>) -> Option<Document> {
        let mut summary = self.bookkeeping.summary.take()?;
        let last = self
            .written
            .iter()
            .max_by(|a, b| a.0.cmp(&b.0))
            .cloned()
            .into_iter()
            .chain(stored_last)
            .max_by(|a, b| a.0.cmp(&b.0));
        if let Some((_, id)) = last {
            summary.insert(LAST_ID, id);
        }
        Some(summary)
    }

    /// The commit of an append: only the staged documents are written into
    /// NAME. `metadata` goes first and comes back last, so NAME looks
    /// complete only once the merge is; in between, the summary entry names
    /// the load under way, and only that same load (run again) may go on.
    fn commit_append(
        mut self: Box<Self>,
        coord_index: RawDocumentBuf,
        metadata: Document,
    ) -> Result<()> {
        let store = self.store;
        let before = self.before()?;
        let stored_last = before.last;
        // The coordinates are those NAME holds when the summary entry
        // written with its coord_index says so: that entry (a few MB for a
        // global grid) is not written again.
        let same_coords = before.coords_sha256.is_some()
            && before.coords_sha256.as_deref()
                == self
                    .bookkeeping
                    .summary
                    .as_ref()
                    .and_then(|s| s.get_str(COORDS_SHA256).ok());
        if !same_coords {
            self.drop_stale_geometry(&coord_index)?;
        }
        let coord_index = (!same_coords).then_some(coord_index);
        let entries = self.entries(coord_index, stored_last, metadata)?;
        // In between, the summary entry names the load under way and keeps
        // what its commit writes once the documents are merged, with the
        // staging collection: a commit cut short from here on is finished
        // from it by any host (see `finish_append`). An entry that would
        // not fit a document keeps only the name: that same load, run
        // again, finishes it.
        let entry = |k: &str| {
            entries
                .ingest
                .first()
                .and_then(|e| e.get(k))
                .cloned()
                .unwrap_or(Bson::Null)
        };
        let mut pending =
            doc! { "_id": &self.name, SUMMARY_PENDING: entry("_id"), "path": entry("path") };
        let mut finish = entries.to_document()?;
        finish.insert("staging", &self.staging);
        let mut kept = pending.clone();
        kept.insert(FINISH, finish);
        let fits = bson::to_vec(&kept).is_ok_and(|b| b.len() <= MAX_DOCUMENT_BYTES);
        if fits {
            pending = kept;
        }
        self.check_fence()?;
        store.delete(METADATA, &Bson::String(self.name.clone()))?;
        store.put(SUMMARY, &pending)?;
        // From here the staging collection is kept for whoever finishes.
        self.committed = fits;
        let merged = self
            .check_fence()
            .and_then(|()| store.merge_into(&self.staging, &self.name));
        if let Err(e) = merged {
            let how = if fits {
                format!(
                    "the next load into '{}' or `manage db -a --fix` finishes it",
                    self.name
                )
            } else {
                format!(
                    "'{}' has no metadata entry until the same load is run again",
                    self.name
                )
            };
            return Err(Error::collection(
                &self.name,
                format!("{e}; the append was cut short: {how}"),
            ));
        }
        self.committed = true;
        self.check_fence()?;
        entries.write(store)?;
        store.drop_coll(&self.staging)?;
        store.make_geometry(&self.name)
    }
}

impl Drop for MongoLoad<'_> {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        // An uncommitted load leaves the store as it was: the staging
        // collection goes. Should this fail too, `db -a` reports it.
        let _ = self.join();
        let _ = self.store.drop_coll(&self.staging);
    }
}
