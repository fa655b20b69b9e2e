//! The dataset rules, written once above the backends' primitives.
//!
//! A dataset NAME is its collection, its entries `{_id: NAME}` in
//! `metadata`, `coord_index` and `summary_stats`, its ingest-log entries and
//! flux-server's geometry cache `_geom_NAME`. What `remove` and `rename` do
//! to these parts, which collections are datasets or leftovers, and which
//! entries a load's commit writes, in which order, is said here alone; a
//! backend ([`Store`]) only moves documents and collections.
//!
//! On a store with transactions (the embedded one) each operation is one
//! transaction. On one without (MongoDB: `renameCollection` and `drop` are
//! not allowed in a transaction) the steps run in the order given here,
//! which is chosen so that an operation cut short leaves a state that
//! `db -a` reports and that running the same operation again completes.

use bson::{Bson, Document, RawDocumentBuf};

use super::{
    check_document_size, geom_dataset, geom_name, ingest_id, ingest_input, is_data_collection,
    is_kept_internal, Filter, Holder, Store, COORD_INDEX, INGEST_DATASET_FIELD, INGEST_LOG, LOCKS,
    METADATA, SUMMARY, SUMMARY_PENDING, UNFINISHED,
};
use crate::error::{Error, Result};

/// Which ingest-log entries are dataset `name`'s: those whose
/// [`INGEST_DATASET_FIELD`] it is.
pub(crate) fn ingest_entries_of(name: &str) -> Filter {
    Filter::Field(INGEST_DATASET_FIELD.into(), Bson::String(name.into()))
}

/// A remove or rename under way, or cut short, on a store without
/// transactions: its note in [`UNFINISHED`] is written before its first
/// step and deleted after its last, so that `db -a` finds one cut short at
/// any step (whatever the step left) and running it again, or `db -a
/// --fix`, finishes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Unfinished {
    Remove { name: String },
    Rename { from: String, to: String },
}

impl Unfinished {
    fn to_document(&self) -> Document {
        match self {
            Unfinished::Remove { name } => bson::doc! { "_id": name, "op": "remove" },
            Unfinished::Rename { from, to } => {
                bson::doc! { "_id": from, "op": "rename", "to": to }
            }
        }
    }

    fn from_document(d: &Document) -> Option<Self> {
        let id = d.get_str("_id").ok()?.to_string();
        match d.get_str("op").ok()? {
            "remove" => Some(Unfinished::Remove { name: id }),
            "rename" => Some(Unfinished::Rename {
                from: id,
                to: d.get_str("to").ok()?.to_string(),
            }),
            _ => None,
        }
    }

    /// The dataset the note is kept under (a rename's old name).
    pub fn key(&self) -> &str {
        match self {
            Unfinished::Remove { name } => name,
            Unfinished::Rename { from, .. } => from,
        }
    }

    /// Whether it concerns dataset `name`.
    pub fn concerns(&self, name: &str) -> bool {
        match self {
            Unfinished::Remove { name: n } => n == name,
            Unfinished::Rename { from, to } => from == name || to == name,
        }
    }

    /// The command that finishes it.
    pub fn command(&self) -> String {
        match self {
            Unfinished::Remove { name } => format!("manage remove -n {name}"),
            Unfinished::Rename { from, to } => format!("manage rename -n {from} -r {to}"),
        }
    }

    /// What it is, in words.
    pub fn describe(&self) -> String {
        match self {
            Unfinished::Remove { name } => format!("a remove of '{name}'"),
            Unfinished::Rename { from, to } => format!("a rename of '{from}' to '{to}'"),
        }
    }

    /// Why `command` on dataset `name` cannot run while this is unfinished.
    pub fn refusal(&self, name: &str) -> Error {
        Error::collection(
            name,
            format!(
                "{} was cut short; run `{}` to finish it first (or `manage db -a --fix`)",
                self.describe(),
                self.command()
            ),
        )
    }
}

/// One part of a dataset, as `remove` deletes it.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    /// The staging collections of loads into the dataset (see
    /// [`super::staged_dataset`]), each dropped whole.
    Staging,
    /// A collection, dropped whole.
    Collection(String),
    /// The dataset's entry `{_id: NAME}` in this bookkeeping collection.
    Entry(&'static str),
    /// The dataset's ingest-log entries (see [`ingest_entries_of`]).
    IngestLog,
}

/// Every part of dataset `name`, in the order a remove deletes them: what
/// an interrupted load left first, then the `metadata` entry, so that a
/// remove cut short (on a store without transactions) leaves a dataset
/// `db -a` reports, and that removing it again finishes; then its summary,
/// its documents, flux-server's geometry cache, its `coord_index` entry and
/// its ingest log.
fn parts_of(name: &str) -> [Part; 7] {
    [
        Part::Staging,
        Part::Entry(METADATA),
        Part::Entry(SUMMARY),
        Part::Collection(name.to_string()),
        Part::Collection(geom_name(name)),
        Part::Entry(COORD_INDEX),
        Part::IngestLog,
    ]
}

/// An entry `{_id: from, ...}` as it is under the name `to`.
fn renamed(mut entry: Document, to: &str) -> Document {
    entry.insert("_id", to);
    entry
}

/// An ingest-log entry of dataset `from` as it is once the dataset is
/// renamed `to`: its `_id` (see [`ingest_id`]) and `name` say `to`. With
/// the `_id` it had, to delete; `None` for an entry without one.
fn renamed_ingest_entry(mut entry: Document, from: &str, to: &str) -> Option<(Bson, Document)> {
    let old = entry.get("_id").cloned()?;
    let input = ingest_input(&entry, from);
    entry.insert("_id", ingest_id(to, &input));
    entry.insert(INGEST_DATASET_FIELD, to);
    Some((old, entry))
}

/// The documents a scan hands on, collected.
pub(crate) fn collected(
    scan: impl FnOnce(&mut dyn FnMut(Document) -> Result<()>) -> Result<()>,
) -> Result<Vec<Document>> {
    let mut out = Vec::new();
    scan(&mut |d| {
        out.push(d);
        Ok(())
    })?;
    Ok(out)
}

/// The entries a load's commit writes once its documents are in place, in
/// the order that keeps a store without transactions readable at every
/// step: the `coord_index` entry (when the coordinates changed), the
/// summary (removed when there is none), the `metadata` entry, which makes
/// the dataset complete to readers and to `db -a`, and last the ingest log,
/// so that an entry exists only for a load that is complete and a load cut
/// short before it is not skipped when run again.
pub struct Entries {
    pub name: String,
    pub coord_index: Option<RawDocumentBuf>,
    pub summary: Option<Document>,
    pub metadata: Document,
    pub ingest: Vec<Document>,
    /// The load replaces the dataset whole (`load --replace`): the
    /// dataset's other ingest-log entries are deleted first.
    pub replaces: bool,
}

impl Entries {
    /// The entries of a load into `name` of these coordinates and
    /// metadata, with no summary (the stored one is removed) and no
    /// ingest-log entry.
    pub fn new(name: &str, coord_index: RawDocumentBuf, metadata: Document) -> Self {
        Self {
            name: name.to_string(),
            coord_index: Some(coord_index),
            summary: None,
            metadata,
            ingest: Vec::new(),
            replaces: false,
        }
    }

    /// Refuse, before anything is written, an entry over the document
    /// size limit, naming its collection and `_id`.
    pub fn check(&self) -> Result<()> {
        let encoded = |d: &Document| {
            bson::to_vec(d)
                .map(|b| b.len())
                .map_err(|e| Error::store("write", format!("cannot encode a document: {e}")))
        };
        if let Some(ci) = &self.coord_index {
            let id = Bson::String(self.name.clone());
            check_document_size(COORD_INDEX, Some(&id), ci.as_bytes().len())?;
        }
        let rest = [(&self.metadata, METADATA)]
            .into_iter()
            .chain(self.summary.iter().map(|s| (s, SUMMARY)))
            .chain(self.ingest.iter().map(|e| (e, INGEST_LOG)));
        for (d, collection) in rest {
            check_document_size(collection, d.get("_id"), encoded(d)?)?;
        }
        Ok(())
    }

    /// These entries as one document, kept where a later process can
    /// write them (see `Store::finish_append`).
    pub fn to_document(&self) -> Result<Document> {
        let mut d = Document::new();
        if let Some(ci) = &self.coord_index {
            let ci = ci
                .to_document()
                .map_err(|e| Error::store("write", format!("cannot decode a document: {e}")))?;
            d.insert("coord_index", ci);
        }
        if let Some(s) = &self.summary {
            d.insert("summary", s.clone());
        }
        d.insert("metadata", self.metadata.clone());
        d.insert("ingest", self.ingest.clone());
        d.insert("replaces", self.replaces);
        Ok(d)
    }

    /// The entries [`Entries::to_document`] kept for dataset `name`.
    pub fn from_document(name: &str, d: &Document) -> Option<Self> {
        Some(Self {
            name: name.to_string(),
            coord_index: match d.get_document("coord_index") {
                Ok(ci) => Some(RawDocumentBuf::from_document(ci).ok()?),
                Err(_) => None,
            },
            summary: d.get_document("summary").ok().cloned(),
            metadata: d.get_document("metadata").ok()?.clone(),
            ingest: d
                .get_array("ingest")
                .ok()?
                .iter()
                .map(|e| e.as_document().cloned())
                .collect::<Option<Vec<_>>>()?,
            replaces: d.get_bool("replaces").unwrap_or(false),
        })
    }

    /// Write them, in that order.
    pub fn write(self, store: &(impl Store + ?Sized)) -> Result<()> {
        if let Some(ci) = self.coord_index {
            store.put_raw(COORD_INDEX, ci)?;
        }
        match self.summary {
            Some(summary) => store.put(SUMMARY, &summary)?,
            None => store.delete(SUMMARY, &Bson::String(self.name.clone()))?,
        }
        store.put(METADATA, &self.metadata)?;
        if self.replaces {
            store.delete_where(INGEST_LOG, &ingest_entries_of(&self.name))?;
        }
        for entry in &self.ingest {
            store.put(INGEST_LOG, entry)?;
        }
        Ok(())
    }
}

/// What the commands do to datasets, for every [`Store`].
pub trait Datasets: Store {
    /// Run `f` as one transaction where the store has them (all or
    /// nothing); elsewhere, step by step.
    fn atomically<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.begin_transaction()?;
        match f(self) {
            Ok(v) => {
                self.commit_transaction()?;
                Ok(v)
            }
            Err(e) => {
                self.rollback_transaction();
                Err(e)
            }
        }
    }

    /// Names of the data collections, sorted; bookkeeping and internal
    /// collections (`metadata`, `coord_index`, `summary_stats`, names
    /// starting with `_`) are not among them.
    fn collections(&self) -> Result<Vec<String>> {
        Ok(self
            .all_collections()?
            .into_iter()
            .filter(|n| is_data_collection(n))
            .collect())
    }

    /// Internal collections (names starting with `_`) other than the
    /// ingest log, the locks and the geometry caches of existing datasets
    /// (see [`geom_name`]), sorted: what an interrupted load left behind
    /// (see [`super::staged_dataset`]), or a geometry cache whose dataset is
    /// gone. `db -a` reports them.
    fn leftovers(&self) -> Result<Vec<String>> {
        let all = self.all_collections()?;
        let (metadata, coords) = (self.entry_ids(METADATA)?, self.entry_ids(COORD_INDEX)?);
        // flux-server's geometry cache of a dataset that exists is kept.
        let is_dataset = |d: &str| {
            is_data_collection(d)
                && (all.iter().any(|c| c == d)
                    || metadata.iter().any(|m| m == d)
                    || coords.iter().any(|c| c == d))
        };
        Ok(all
            .iter()
            .filter(|n| n.starts_with('_') && !is_kept_internal(n))
            .filter(|n| !geom_dataset(n).is_some_and(is_dataset))
            .cloned()
            .collect())
    }

    /// The staging collections of loads into `name` that exist, of either
    /// form (see [`super::staged_dataset`]).
    fn staging_of(&self, name: &str) -> Result<Vec<String>> {
        Ok(self
            .all_collections()?
            .into_iter()
            .filter(|c| super::staged_dataset(c) == Some(name))
            .collect())
    }

    /// Drop a leftover (a collection [`Datasets::leftovers`] lists); any
    /// other name is refused.
    fn drop_leftover(&mut self, collection: &str) -> Result<()> {
        if !self.leftovers()?.iter().any(|l| l == collection) {
            return Err(Error::collection(collection, "is not a leftover of a load"));
        }
        self.drop_collection(collection)
    }

    /// The removes and renames cut short (or under way), in `_id` order.
    fn unfinished(&self) -> Result<Vec<Unfinished>> {
        let mut out = Vec::new();
        self.scan(UNFINISHED, &Filter::All, &mut |d| {
            out.extend(Unfinished::from_document(&d));
            Ok(())
        })?;
        Ok(out)
    }

    /// The remove or rename cut short that concerns dataset `name`, if any.
    fn unfinished_of(&self, name: &str) -> Result<Option<Unfinished>> {
        Ok(self.unfinished()?.into_iter().find(|u| u.concerns(name)))
    }

    /// What is left of dataset `name`, one phrase per part (see
    /// [`parts_of`]), in the order a remove deletes them.
    fn remains_of(&self, name: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for part in parts_of(name) {
            match part {
                Part::Staging => {
                    for c in self.staging_of(name)? {
                        out.push(format!("collection '{c}'"));
                    }
                }
                Part::Collection(c) => {
                    if self.exists(&c)? {
                        out.push(format!("collection '{c}'"));
                    }
                }
                Part::Entry(book) => {
                    if self.get(book, &Bson::String(name.into()))?.is_some() {
                        out.push(format!("its {book} entry"));
                    }
                }
                Part::IngestLog => {
                    let n = self.ingest_log(name)?.len();
                    if n > 0 {
                        out.push(format!(
                            "{n} ingest-log entr{}",
                            if n == 1 { "y" } else { "ies" }
                        ));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Note `op` before its first step, where the store has no
    /// transactions (with them, the operation is all or nothing).
    fn note_unfinished(&mut self, op: &Unfinished) -> Result<()> {
        if self.has_transactions() {
            return Ok(());
        }
        self.put(UNFINISHED, &op.to_document())
    }

    /// Delete the note of `op`, after its last step.
    fn clear_unfinished(&mut self, op: &Unfinished) -> Result<()> {
        if self.has_transactions() {
            return Ok(());
        }
        self.delete(UNFINISHED, &Bson::String(op.key().into()))
    }

    /// Delete every part of dataset `name` (see [`parts_of`]), all or
    /// nothing where the store has transactions, else in that order between
    /// the writing and the deleting of its note in [`UNFINISHED`]. Refused
    /// while a rename of `name` is unfinished.
    fn remove(&mut self, name: &str) -> Result<()> {
        let id = Bson::String(name.into());
        let op = Unfinished::Remove { name: name.into() };
        if let Some(other) = self.unfinished_of(name)?.filter(|u| *u != op) {
            return Err(other.refusal(name));
        }
        self.atomically(|s| {
            s.note_unfinished(&op)?;
            for part in parts_of(name) {
                match part {
                    Part::Staging => {
                        for c in s.staging_of(name)? {
                            s.drop_collection(&c)?;
                        }
                    }
                    Part::Collection(c) => s.drop_collection(&c)?,
                    Part::Entry(bookkeeping) => s.delete(bookkeeping, &id)?,
                    Part::IngestLog => s.delete_where(INGEST_LOG, &ingest_entries_of(name))?,
                }
            }
            s.clear_unfinished(&op)
        })
    }

    /// Move every part of dataset `from` to `to`; refused when anything
    /// named `to` exists. All or nothing where the store has transactions.
    /// Elsewhere the `metadata` entry moves last: a rename cut short leaves
    /// `from`'s metadata entry beside `to`'s collection, and running it
    /// again completes it.
    fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        let op = Unfinished::Rename {
            from: from.into(),
            to: to.into(),
        };
        let notes: Vec<Unfinished> = self
            .unfinished()?
            .into_iter()
            .filter(|u| u.concerns(from) || u.concerns(to))
            .collect();
        if let Some(other) = notes.iter().find(|u| **u != op) {
            return Err(other.refusal(from));
        }
        let noted = !notes.is_empty();
        self.atomically(|s| {
            let (from_meta, from_ci) = (s.entry(METADATA, from)?, s.entry(COORD_INDEX, from)?);
            let (to_meta, to_ci) = (s.entry(METADATA, to)?, s.entry(COORD_INDEX, to)?);
            let (from_coll, to_coll) = (s.exists(from)?, s.exists(to)?);
            let moved_meta = from_meta.clone().map(|d| renamed(d, to));
            let moved_ci = from_ci.clone().map(|d| renamed(d, to));
            // A rename cut short after moving the collection: the metadata
            // entry is still under `from`, and what `to` has is a copy.
            // With its note (on a store without transactions) a rename
            // cut short at any step is known as such: whatever `to` has is
            // what it moved.
            let resuming = noted
                || (!from_coll
                    && to_coll
                    && from_meta.is_some()
                    && (to_meta.is_none() || to_meta == moved_meta)
                    && (to_ci.is_none() || from_ci.is_none() || to_ci == moved_ci));
            if !resuming && (to_coll || to_meta.is_some() || to_ci.is_some()) {
                return Err(Error::collection(
                    to,
                    "already exists; remove it first or choose another name",
                ));
            }
            s.note_unfinished(&op)?;
            if from_coll {
                s.rename_collection(from, to)?;
            }
            // flux-server's geometry cache moves with the coordinates; one
            // under `to` can only be stale (nothing named `to` exists).
            if s.exists(&geom_name(from))? {
                s.rename_collection(&geom_name(from), &geom_name(to))?;
            }
            let (from_id, to_id) = (Bson::String(from.into()), Bson::String(to.into()));
            if let Some(ci) = moved_ci {
                s.put(COORD_INDEX, &ci)?;
                s.delete(COORD_INDEX, &from_id)?;
            }
            // The summary moves with the documents it describes. Without
            // one under `from`, any under `to` is not this dataset's
            // (unless a rename cut short has moved it already).
            match s.entry(SUMMARY, from)? {
                Some(mut summary) => {
                    // An append cut short names itself by its ingest-log
                    // `_id`, which the rename changes as it changes the log's.
                    let pending = summary.get_str(SUMMARY_PENDING).ok();
                    if let Some(input) = pending.and_then(|p| p.strip_prefix(&format!("{from}/"))) {
                        summary.insert(SUMMARY_PENDING, ingest_id(to, input));
                    }
                    s.put(SUMMARY, &renamed(summary, to))?;
                    s.delete(SUMMARY, &from_id)?;
                }
                None if !resuming => s.delete(SUMMARY, &to_id)?,
                None => {}
            }
            // Each ingest-log entry is copied under its new _id before the
            // old one goes, so a rename cut short loses none and running it
            // again moves the rest.
            for entry in s.ingest_log(from)? {
                let Some((old, entry)) = renamed_ingest_entry(entry, from, to) else {
                    continue;
                };
                s.put(INGEST_LOG, &entry)?;
                s.delete(INGEST_LOG, &old)?;
            }
            if let Some(md) = moved_meta {
                s.put(METADATA, &md)?;
                s.delete(METADATA, &from_id)?;
            }
            s.clear_unfinished(&op)
        })
    }

    /// The ingest-log entries of dataset `name`, in `_id` order.
    fn ingest_log(&self, name: &str) -> Result<Vec<Document>> {
        collected(|f| self.scan(INGEST_LOG, &ingest_entries_of(name), f))
    }

    /// The ingest-log entry whose `_id` is `id` (see [`ingest_id`]).
    fn ingest_entry(&self, id: &str) -> Result<Option<Document>> {
        self.get(INGEST_LOG, &Bson::String(id.into()))
    }

    /// Fail unless some part of dataset `name` exists (its collection, an
    /// entry in `metadata` or `coord_index`, or what an interrupted load of it
    /// left); the error lists what does exist.
    fn require(&self, name: &str) -> Result<()> {
        let names = self.collections()?;
        if names.iter().any(|n| n == name)
            || self.entry(METADATA, name)?.is_some()
            || self.entry(COORD_INDEX, name)?.is_some()
            || self
                .leftovers()?
                .iter()
                .any(|l| super::staged_dataset(l) == Some(name))
            || self.unfinished()?.iter().any(|u| u.key() == name)
        {
            return Ok(());
        }
        let existing = if names.is_empty() {
            "the store holds no collection".to_string()
        } else {
            format!("existing collections: {}", names.join(", "))
        };
        Err(Error::collection(
            name,
            format!("does not exist; {existing}"),
        ))
    }

    /// Every lock, as (dataset, holder), in dataset order.
    fn locks(&self) -> Result<Vec<(String, Holder)>> {
        let mut out = Vec::new();
        self.scan(LOCKS, &Filter::All, &mut |d| {
            if let (Ok(name), Some(h)) = (d.get_str("_id"), Holder::from_document(&d)) {
                out.push((name.to_string(), h));
            }
            Ok(())
        })?;
        Ok(out)
    }
}

impl<S: Store + ?Sized> Datasets for S {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_takes_the_metadata_entry_before_the_documents() {
        let parts = parts_of("casa");
        let at = |p: &Part| parts.iter().position(|q| q == p).unwrap();
        assert!(at(&Part::Entry(METADATA)) < at(&Part::Collection("casa".into())));
        assert!(at(&Part::Staging) < at(&Part::Entry(METADATA)));
        assert!(at(&Part::Collection("casa".into())) < at(&Part::Entry(COORD_INDEX)));
    }

    #[test]
    fn renamed_ingest_entries_keep_their_input() {
        let entry = bson::doc! { "_id": ingest_id("a", "f00d"), "name": "a", "input": "f00d" };
        let (old, new) = renamed_ingest_entry(entry, "a", "b").unwrap();
        assert_eq!(old, Bson::String("a/f00d".into()));
        assert_eq!(new.get_str("_id").unwrap(), "b/f00d");
        assert_eq!(new.get_str("name").unwrap(), "b");
        // An entry without `input`: the input is read from its `_id`.
        let entry = bson::doc! { "_id": "a/beef", "name": "a" };
        let (_, new) = renamed_ingest_entry(entry, "a", "b").unwrap();
        assert_eq!(new.get_str("_id").unwrap(), "b/beef");
        assert!(renamed_ingest_entry(bson::doc! { "name": "a" }, "a", "b").is_none());
    }
}
