//! The MongoDB store, on the official driver's blocking API.
//!
//! It holds the very documents the embedded store holds (the models build
//! them; this file only moves them) in the layout the Carbon Data Explorer
//! reads: one collection per dataset, plus `metadata` and `coord_index`.
//!
//! A load never shows a half dataset. It writes into a staging collection
//! `_load.NAME` only the documents it writes. A first load then renames the
//! staging collection to NAME (`renameCollection`, atomic on the server),
//! writes the `coord_index` entry and, last, the `metadata` entry. An
//! append deletes NAME's `metadata` entry, notes itself in NAME's summary
//! entry, merges the staged documents into NAME (`$merge` on `_id`) and
//! writes the entries, `metadata` last: it costs what it adds. Whatever the
//! moment a load dies, `db -a` sees either the leftover `_load.NAME` or a
//! collection without its `metadata` entry, and running the same load again
//! completes the dataset; a load of another file is refused meanwhile.
//!
//! Documents reach the server in `_id` order (one insert in flight, each
//! sorted; a collection written out of order is rewritten sorted before
//! the swap), so that its natural order is time order: the Carbon Data
//! Explorer reads some ranges with an unsorted `find`.
//!
//! The URI's password never leaves this module: [`Redactor`] scrubs it (and
//! the other secrets a URI can carry) from every message.

mod deadline;
mod errors;
mod load;
mod uri;
mod writer;

use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::Duration;

use bson::{doc, Bson, Document, RawDocumentBuf};
use chrono::{DateTime, Utc};
use mongodb::sync::{Client, Collection, Database};

use super::{
    checked_id, staging_name, Attempt, Bookkeeping, Filter, Holder, Load, Renew, Store,
    INGEST_DATASET_FIELD, INGEST_LOG, LOCKS,
};
use crate::error::{Error, Result};
pub use crate::store::uri::redact_uri;
pub use deadline::DEFAULT_OPERATION_TIMEOUT;
use deadline::{Deadline, Rows, Within};
use errors::{is_duplicate_key, is_unauthorized, map_err, Subject};
pub use uri::{database_name, with_database, Redactor, Target, DEFAULT_SERVER_SELECTION_TIMEOUT};
pub use writer::{split_batches, MAX_BATCH_DOCUMENTS, MAX_MESSAGE_BYTES};
use writer::{BatchError, Encoded, Inserted};

/// A connection to one database of a MongoDB deployment.
pub struct Mongo {
    client: Client,
    db: Database,
    target: Target,
    /// The time limit of every operation (see [`deadline`]).
    deadline: Deadline,
    /// Set once the ingest log's index was asked for (see
    /// [`Mongo::ensure_ingest_index`]).
    ingest_index: OnceLock<()>,
}

/// The name of the ingest log's index on `{name: 1, _id: 1}` (MongoDB's
/// default name for that key).
pub const INGEST_LOG_INDEX: &str = "name_1__id_1";

impl Mongo {
    /// Connect to the URI's database (`fluxvis` when it names none), and make
    /// sure a server answers within the server selection timeout.
    pub fn open(uri: &str) -> Result<Self> {
        Self::connect(Target::parse(uri)?)
    }

    /// Connect to `db_name` on the URI's deployment, whatever the URI names.
    pub fn open_database(uri: &str, db_name: &str) -> Result<Self> {
        let mut target = Target::parse(uri)?;
        target.db_name = db_name.to_string();
        Self::connect(target)
    }

    fn connect(target: Target) -> Result<Self> {
        let client = Client::with_options(target.options.clone()).map_err(|e| {
            Error::store(
                target.where_(),
                target.redactor.message(&e.kind.to_string()),
            )
        })?;
        let db = client.database(&target.db_name);
        let deadline = Deadline::new(target.operation_timeout);
        let store = Self {
            client,
            db,
            target,
            deadline,
            ingest_index: OnceLock::new(),
        };
        store
            .db
            .run_command(doc! { "ping": 1 })
            .within(&store.deadline)
            .map_err(|e| store.command_err("ping", e))?;
        Ok(store)
    }

    /// The database name in use.
    pub fn database_name(&self) -> &str {
        &self.target.db_name
    }

    /// Drop the whole database (test clean-up).
    pub fn drop_database(&self) -> Result<()> {
        self.db
            .drop()
            .within(&self.deadline)
            .map_err(|e| self.command_err("dropDatabase", e))
    }

    fn coll(&self, name: &str) -> Collection<Document> {
        self.db.collection(name)
    }

    /// One line for a driver error: which server or collection, what failed.
    fn err(&self, collection: &str, e: mongodb::error::Error) -> Error {
        map_err(&self.target, Subject::Collection(collection), e)
    }

    /// One line for a driver error of a database command.
    fn command_err(&self, command: &str, e: mongodb::error::Error) -> Error {
        map_err(&self.target, Subject::Command(command), e)
    }

    fn drop_coll(&self, name: &str) -> Result<()> {
        self.coll(name)
            .drop()
            .within(&self.deadline)
            .map_err(|e| self.err(name, e))
    }

    /// `renameCollection`, replacing any collection `to`.
    fn rename_coll(&self, from: &str, to: &str) -> Result<()> {
        let db = &self.target.db_name;
        self.client
            .database("admin")
            .run_command(doc! {
                "renameCollection": format!("{db}.{from}"),
                "to": format!("{db}.{to}"),
                "dropTarget": true,
            })
            .within(&self.deadline)
            .map(|_| ())
            .map_err(|e| self.err(from, e))
    }

    /// Make flux-server's geometry cache `_geom_NAME` from NAME's
    /// `coord_index` entry when it does not exist: `{_id: i, ll: [x, y],
    /// idx: i}` for cell (or point) i, as flux-server's core.js makes it.
    /// flux-server cannot make it itself: with the driver it runs on, the
    /// first `t.json?geom=` request of a dataset without it throws and the
    /// process exits (see docs/mongodb.md). It has no 2dsphere index:
    /// `$geoIntersects` needs none (MongoDB's documentation), and building
    /// one took minutes, or the server's memory, on SecantusDB. Written
    /// under a staging name and renamed, so that a cut-short build never
    /// shows as a partial cache.
    pub(crate) fn make_geometry(&self, name: &str) -> Result<()> {
        let geom = super::geom_name(name);
        if self.exists(&geom)? {
            return Ok(());
        }
        let Some(entry) = self.get(super::COORD_INDEX, &Bson::String(name.into()))? else {
            return Ok(());
        };
        let Some(coords) = crate::model::coordinates_of(&entry) else {
            return Ok(());
        };
        let staging = staging_name(&geom);
        self.drop_coll(&staging)?;
        let coll = self.coll(&staging);
        let err = |e| self.err(&staging, e);
        for (k, chunk) in coords.chunks(50_000).enumerate() {
            let docs = chunk.iter().enumerate().map(|(j, [x, y])| {
                let i = (k * 50_000 + j) as i32;
                doc! { "_id": i, "ll": [*x, *y], "idx": i }
            });
            coll.insert_many(docs).within(&self.deadline).map_err(err)?;
        }
        if coords.is_empty() {
            self.db
                .create_collection(&staging)
                .within(&self.deadline)
                .map_err(err)?;
        }
        self.rename_coll(&staging, &geom)
    }

    /// Make sure the ingest log has its index `{name: 1, _id: 1}`, once per
    /// connection, before this process first writes to it: every query of
    /// the log filters on the dataset name (and reads in `_id` order), which
    /// otherwise scans the whole log. `createIndexes` of an index that
    /// exists with the same key and name does nothing (MongoDB's
    /// documentation), so every writer may ask. Only writes ask, so a
    /// read-only command never needs the privilege; a user without it
    /// (`Unauthorized`) writes without the index, and nothing is said.
    fn ensure_ingest_index(&self) -> Result<()> {
        if self.ingest_index.get().is_some() {
            return Ok(());
        }
        let index = mongodb::IndexModel::builder()
            .keys(doc! { INGEST_DATASET_FIELD: 1, "_id": 1 })
            .options(
                mongodb::options::IndexOptions::builder()
                    .name(INGEST_LOG_INDEX.to_string())
                    .build(),
            )
            .build();
        match self
            .coll(INGEST_LOG)
            .create_index(index)
            .within(&self.deadline)
        {
            Ok(_) => {}
            Err(e) if is_unauthorized(&e) => {}
            Err(e) => return Err(self.err(INGEST_LOG, e)),
        }
        let _ = self.ingest_index.set(());
        Ok(())
    }

    /// Write the documents of `from` into `to` (which may be `from`) in
    /// `_id` order, on the server: `$out` replaces `to` whole, keeping its
    /// indexes, and inserts in the pipeline's order.
    fn sort_into(&self, from: &str, to: &str) -> Result<()> {
        let coll = self.coll(from);
        let out = coll.aggregate([doc! { "$sort": { "_id": 1 } }, doc! { "$out": to }]);
        self.deadline
            .run(async { out.await.map(|_| ()) })
            .map_err(|e| self.err(from, e))
    }
}

impl Store for Mongo {
    fn all_collections(&self) -> Result<Vec<String>> {
        let mut names = self
            .db
            .list_collection_names()
            .filter(doc! { "type": "collection" })
            .within(&self.deadline)
            .map_err(|e| self.command_err("listCollections", e))?;
        names.retain(|n| !n.starts_with("system."));
        names.sort();
        Ok(names)
    }

    fn exists(&self, collection: &str) -> Result<bool> {
        let names = self
            .db
            .list_collection_names()
            .filter(doc! { "name": collection })
            .within(&self.deadline)
            .map_err(|e| self.err(collection, e))?;
        Ok(!names.is_empty())
    }

    fn drop_collection(&mut self, collection: &str) -> Result<()> {
        self.drop_coll(collection)
    }

    fn rename_collection(&mut self, from: &str, to: &str) -> Result<()> {
        self.rename_coll(from, to)
    }

    fn get(&self, collection: &str, id: &Bson) -> Result<Option<Document>> {
        self.coll(collection)
            .find_one(doc! { "_id": id })
            .within(&self.deadline)
            .map_err(|e| self.err(collection, e))
    }

    fn put_raw(&self, collection: &str, doc: RawDocumentBuf) -> Result<()> {
        let id = checked_id(collection, &doc)?;
        if collection == INGEST_LOG {
            self.ensure_ingest_index()?;
        }
        self.db
            .collection::<RawDocumentBuf>(collection)
            .replace_one(doc! { "_id": id }, doc)
            .upsert(true)
            .within(&self.deadline)
            .map(|_| ())
            .map_err(|e| self.err(collection, e))
    }

    fn delete(&self, collection: &str, id: &Bson) -> Result<()> {
        self.coll(collection)
            .delete_one(doc! { "_id": id })
            .within(&self.deadline)
            .map(|_| ())
            .map_err(|e| self.err(collection, e))
    }

    fn delete_where(&self, collection: &str, filter: &Filter) -> Result<()> {
        if collection == INGEST_LOG {
            self.ensure_ingest_index()?;
        }
        self.coll(collection)
            .delete_many(query(filter))
            .within(&self.deadline)
            .map(|_| ())
            .map_err(|e| self.err(collection, e))
    }

    fn try_lock(&mut self, name: &str, me: &Holder, _wait: Duration) -> Result<Attempt> {
        let locks = self.coll(LOCKS);
        // The lock is the document {_id: name}: the unique _id makes the
        // insert succeed for exactly one of the processes racing for it.
        match locks
            .insert_one(me.to_document(name))
            .within(&self.deadline)
        {
            Ok(_) => return Ok(Attempt::Taken),
            Err(e) if is_duplicate_key(&e) => {}
            Err(e) => return Err(self.err(LOCKS, e)),
        }
        let Some(found) = locks
            .find_one(doc! { "_id": name })
            .within(&self.deadline)
            .map_err(|e| self.err(LOCKS, e))?
        else {
            // Released in between: try again.
            return Ok(Attempt::Busy);
        };
        let holder = Holder::from_document(&found).ok_or_else(|| {
            Error::collection(
                LOCKS,
                format!("the lock of '{name}' is not one manage wrote; remove it from {LOCKS}"),
            )
        })?;
        if holder.token == me.token {
            // Our own insert, retried by the driver after it had succeeded.
            return Ok(Attempt::Taken);
        }
        if !holder.is_gone() {
            return Ok(Attempt::Held(holder));
        }
        // A stale lock is taken over only if it is still that very lock:
        // of several processes taking it over, one replaces it.
        let replaced = locks
            .find_one_and_replace(
                doc! { "_id": name, "token": &holder.token },
                me.to_document(name),
            )
            .within(&self.deadline)
            .map_err(|e| self.err(LOCKS, e))?;
        Ok(match replaced {
            Some(_) => Attempt::Taken,
            None => Attempt::Busy,
        })
    }

    fn renewer(&self) -> Result<Box<dyn Renew>> {
        Ok(Box::new(MongoRenew {
            locks: self.coll(LOCKS),
            deadline: self.deadline.clone(),
        }))
    }

    fn unlock(&mut self, name: &str, holder: &Holder) -> Result<bool> {
        self.coll(LOCKS)
            .delete_one(doc! { "_id": name, "token": &holder.token })
            .within(&self.deadline)
            .map(|r| r.deleted_count == 1)
            .map_err(|e| self.err(LOCKS, e))
    }

    fn count_kept(&self, collection: &str) -> Result<u64> {
        self.coll(collection)
            .estimated_document_count()
            .within(&self.deadline)
            .map_err(|e| self.err(collection, e))
    }

    fn count(&self, collection: &str) -> Result<u64> {
        self.coll(collection)
            .count_documents(doc! {})
            .within(&self.deadline)
            .map_err(|e| self.err(collection, e))
    }

    fn entry_ids(&self, bookkeeping: &str) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        let cursor = self
            .coll(bookkeeping)
            .find(doc! {})
            .projection(doc! { "_id": 1 })
            .sort(doc! { "_id": 1 })
            .within(&self.deadline)
            .map_err(|e| self.err(bookkeeping, e))?;
        for d in Rows::new(cursor, &self.deadline) {
            let d = d.map_err(|e| self.err(bookkeeping, e))?;
            if let Ok(id) = d.get_str("_id") {
                ids.push(id.to_string());
            }
        }
        Ok(ids)
    }

    fn scan(
        &self,
        collection: &str,
        filter: &Filter,
        f: &mut dyn FnMut(Document) -> Result<()>,
    ) -> Result<()> {
        scan(self, collection, filter, f)
    }

    fn begin_load<'s>(&'s mut self, name: &str) -> Result<Box<dyn Load + 's>> {
        self.begin(name, false)
    }

    fn begin_replace<'s>(&'s mut self, name: &str) -> Result<Box<dyn Load + 's>> {
        self.begin(name, true)
    }

    fn describe(&self) -> String {
        format!(
            "MongoDB database '{}' at {}",
            self.target.db_name, self.target.hosts
        )
    }
}

impl Mongo {
    /// A load into `name`; `replace`: committed as a first load is (the
    /// staging collection renamed over NAME), whatever NAME holds.
    fn begin<'s>(&'s mut self, name: &str, replace: bool) -> Result<Box<dyn Load + 's>> {
        let staging = staging_name(name);
        // A leftover of a load that died is dropped: this load redoes it.
        self.drop_coll(&staging)?;
        self.db
            .create_collection(&staging)
            .within(&self.deadline)
            .map_err(|e| self.err(&staging, e))?;
        let mut load = MongoLoad {
            raw: self.db.collection(&staging),
            store: self,
            name: name.to_string(),
            staging,
            pending: Vec::new(),
            in_flight: None,
            last_key: None,
            in_order: true,
            bookkeeping: Bookkeeping::default(),
            committed: false,
            appending: false,
            written: Vec::new(),
            before: None,
        };
        // An append stages only what it writes; the commit merges it into
        // NAME, so that it costs what it adds, not what is stored.
        load.appending = !replace && load.store.exists(name)?;
        Ok(Box::new(load))
    }
}

/// The query of a filter.
fn query(filter: &Filter) -> Document {
    match filter {
        Filter::All => doc! {},
        Filter::Id(id) => doc! { "_id": id.clone() },
        Filter::Field(field, value) => doc! { field.as_str(): value.clone() },
    }
}

fn scan(
    store: &Mongo,
    collection: &str,
    filter: &Filter,
    f: &mut dyn FnMut(Document) -> Result<()>,
) -> Result<()> {
    let cursor = store
        .coll(collection)
        .find(query(filter))
        .sort(doc! { "_id": 1 })
        .within(&store.deadline)
        .map_err(|e| store.err(collection, e))?;
    for d in Rows::new(cursor, &store.deadline) {
        f(d.map_err(|e| store.err(collection, e))?)?;
    }
    Ok(())
}

struct MongoLoad<'s> {
    store: &'s Mongo,
    raw: Collection<RawDocumentBuf>,
    name: String,
    staging: String,
    /// Documents not yet sent: less than one batch.
    pending: Vec<Encoded>,
    /// The one insert in flight: the server keeps documents in the order
    /// they arrive (its natural order), so inserts go one after another.
    in_flight: Option<JoinHandle<std::result::Result<Inserted, BatchError>>>,
    /// The largest sort key in the staging collection.
    last_key: Option<Vec<u8>>,
    /// Whether the staging collection's natural order is still `_id` order.
    in_order: bool,
    /// The summary and ingest-log entries the commit writes.
    bookkeeping: Bookkeeping,
    committed: bool,
    /// NAME existed when the load began: the staging collection holds only
    /// the documents this load writes, merged into NAME by the commit.
    appending: bool,
    /// The sort key and `_id` of every document written (for an append,
    /// to tell whether the merge keeps NAME in `_id` order).
    written: Vec<(Vec<u8>, Bson)>,
    /// What an append needs to know of NAME before it, read once.
    before: Option<Before>,
}

/// NAME before an append, from its summary entry.
#[derive(Clone)]
struct Before {
    /// The largest `_id` NAME holds, with its sort key.
    last: Option<(Vec<u8>, Bson)>,
    /// The digest of the coordinates its `coord_index` entry holds.
    coords_sha256: Option<String>,
}

/// Renews leases through a handle of its own on the locks collection.
///
/// It renews only while the store's connection makes progress (see
/// [`Deadline::making_progress`]): a load stuck on a stalled server stops
/// holding its dataset, so that another host can take it over once the
/// lease lapses.
struct MongoRenew {
    locks: Collection<Document>,
    deadline: Deadline,
}

impl Renew for MongoRenew {
    fn renew(&mut self, name: &str, token: &str, expires: DateTime<Utc>) -> Result<bool> {
        if !self.deadline.making_progress() {
            return Err(Error::store(
                LOCKS,
                "not renewed: the store stopped answering this process",
            ));
        }
        let update = self.locks.update_one(
            doc! { "_id": name, "token": token },
            doc! { "$set": { "expires": bson::DateTime::from_chrono(expires) } },
        );
        self.deadline
            .run_aside(update)
            .map(|r| r.matched_count == 1)
            .map_err(|e| Error::store(LOCKS, e))
    }
}
