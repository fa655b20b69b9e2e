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
    checked_id, fenced_staging_name, lock, staged_dataset, staging_name, Attempt, Filter, Holder,
    Load, Renew, Store, INGEST_DATASET_FIELD, INGEST_LOG, LOCKS,
};
use crate::error::{Error, Result};
pub use crate::store::uri::redact_uri;
pub use deadline::DEFAULT_OPERATION_TIMEOUT;
use deadline::{Deadline, Rows, Within};
use errors::{
    is_duplicate_key, is_namespace_missing, is_retryable, is_unauthorized, map_err, Subject,
};
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
    /// Whether the server is a `mongos` of a sharded cluster, once asked.
    sharded: OnceLock<bool>,
    /// The dataset and lock token that fence the loads begun here (see
    /// [`Store::fence`]).
    fence: Option<(String, String)>,
    /// Whether `_meta` notes the stored format's version (read on connect;
    /// the first load notes it).
    format_noted: bool,
}

/// How many times an idempotent step is run again after a fail-over error.
const RETRIES: u32 = 4;

/// Run an idempotent operation, again after an error a fail-over
/// causes (see [`errors::is_retryable`]): the driver retries only
/// inserts, updates, deletes of one document and reads, not commands
/// such as `drop`, `renameCollection` or an aggregation with `$merge`.
/// Up to [`RETRIES`] times, waiting a little longer each time; server
/// selection then waits for the new primary.
pub(super) fn retrying<T>(
    mut op: impl FnMut() -> mongodb::error::Result<T>,
) -> mongodb::error::Result<T> {
    let mut pause = Duration::from_millis(100);
    let mut tries = 0;
    loop {
        match op() {
            Err(e) if tries < RETRIES && is_retryable(&e) => {
                tries += 1;
                std::thread::sleep(pause);
                pause *= 4;
            }
            other => return other,
        }
    }
}

/// Whether a lock's lease has lapsed, by the server's clock (`$$NOW`):
/// never by a host's, so that hosts whose clocks differ agree. (Both sides
/// as milliseconds: MongoDB compares dates so too, and SecantusDB compares
/// `$$NOW` with a stored date wrongly.)
fn lapsed() -> Document {
    doc! { "$lte": [ { "$toLong": "$expires" }, { "$toLong": "$$NOW" } ] }
}

/// The update that makes the lock document `lock` (without `expires`),
/// its lease `ms` milliseconds from the server's now.
fn leased(mut lock: Document, ms: i64) -> Vec<Document> {
    lock.remove("expires");
    vec![
        doc! { "$replaceWith": { "$literal": lock } },
        doc! { "$set": { "expires": { "$add": ["$$NOW", ms] } } },
    ]
}

/// The lease `holder` asks for, in milliseconds from now: the time from
/// this host's now to its expiry (the host's clock cancels out).
fn lease_ms(holder: &Holder) -> i64 {
    (holder.expires - lock::host_now()).num_milliseconds()
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
        let mut store = Self {
            client,
            db,
            target,
            deadline,
            ingest_index: OnceLock::new(),
            sharded: OnceLock::new(),
            fence: None,
            format_noted: false,
        };
        store
            .db
            .run_command(doc! { "ping": 1 })
            .within(&store.deadline)
            .map_err(|e| store.command_err("ping", e))?;
        let noted = store
            .coll(super::META)
            .find_one(doc! { "_id": "format" })
            .within(&store.deadline)
            .map_err(|e| store.err(super::META, e))?;
        let version = noted.and_then(|d| match d.get("version") {
            Some(Bson::Int32(v)) => Some(i64::from(*v)),
            Some(Bson::Int64(v)) => Some(*v),
            _ => None,
        });
        if let Some(version) = version {
            crate::doc::check_format_version(&store.target.where_(), version)?;
        }
        store.format_noted = version.is_some();
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
        retrying(|| self.coll(name).drop().within(&self.deadline)).map_err(|e| self.err(name, e))
    }

    /// `renameCollection`, replacing any collection `to`. Retried after a
    /// fail-over: a rename that took effect before the answer was lost
    /// leaves `from` gone and `to` present, which is success.
    fn rename_coll(&self, from: &str, to: &str) -> Result<()> {
        let db = &self.target.db_name;
        let mut first = true;
        retrying(|| {
            let run = self
                .client
                .database("admin")
                .run_command(doc! {
                    "renameCollection": format!("{db}.{from}"),
                    "to": format!("{db}.{to}"),
                    "dropTarget": true,
                })
                .within(&self.deadline)
                .map(|_| ());
            let retried = !std::mem::replace(&mut first, false);
            match run {
                Err(e) if retried && is_namespace_missing(&e) => {
                    match (self.exists(from), self.exists(to)) {
                        (Ok(false), Ok(true)) => Ok(()),
                        _ => Err(e),
                    }
                }
                other => other,
            }
        })
        .map_err(|e| self.err(from, e))
    }

    /// Whether the server is a `mongos` (its `hello` says `isdbgrid`),
    /// asked once per connection: there, document counts are exact only
    /// when counted (orphans make the collection's own count wrong), and
    /// natural order is not kept.
    fn is_sharded(&self) -> Result<bool> {
        if let Some(s) = self.sharded.get() {
            return Ok(*s);
        }
        let hello = self
            .db
            .run_command(doc! { "hello": 1 })
            .within(&self.deadline)
            .map_err(|e| self.command_err("hello", e))?;
        let sharded = hello.get_str("msg") == Ok("isdbgrid");
        let _ = self.sharded.set(sharded);
        Ok(sharded)
    }

    /// Shard `collection` on hashed `_id` (`shardStaging=hashed`): a new
    /// dataset's staging collection, so that its inserts spread over the
    /// shards and the swap puts a sharded dataset in place (renaming a
    /// sharded collection needs MongoDB 5.0+). Only on a `mongos`.
    fn shard_hashed(&self, collection: &str) -> Result<()> {
        if !self.is_sharded()? {
            return Err(Error::store(
                self.target.where_(),
                "shardStaging=hashed in the URI needs a sharded cluster, and this server is not a mongos (its hello has no msg: isdbgrid); remove the option",
            ));
        }
        let db = &self.target.db_name;
        let admin = self.client.database("admin");
        // Needed before MongoDB 6.0, a no-op since.
        admin
            .run_command(doc! { "enableSharding": db })
            .within(&self.deadline)
            .map_err(|e| self.command_err("enableSharding", e))?;
        admin
            .run_command(doc! {
                "shardCollection": format!("{db}.{collection}"),
                "key": { "_id": "hashed" },
            })
            .within(&self.deadline)
            .map(|_| ())
            .map_err(|e| self.command_err("shardCollection", e))
    }

    /// The staging collection of a load into `name`: its own per lock
    /// acquisition when fenced (see [`Store::fence`]).
    fn staging_for(&self, name: &str) -> (String, Option<String>) {
        match &self.fence {
            Some((n, token)) if n == name => {
                (fenced_staging_name(name, token), Some(token.clone()))
            }
            _ => (staging_name(name), None),
        }
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
        // Read as it is stored: a global grid's entry decoded into a
        // `Document` took 116 MB, the peak of a load's memory.
        let entry = self
            .db
            .collection::<RawDocumentBuf>(super::COORD_INDEX)
            .find_one(doc! { "_id": name })
            .within(&self.deadline)
            .map_err(|e| self.err(super::COORD_INDEX, e))?;
        let Some(coords) = entry.as_deref().and_then(crate::doc::coordinates_of_raw) else {
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

    /// Merge the documents of staging collection `from` into dataset
    /// `into` (`$merge` on `_id`, in `_id` order): a stored time is
    /// replaced, a new one added. Not a retryable write, but idempotent: run
    /// again after a fail-over, it replaces what it already wrote with the
    /// same documents. Times before the stored ones are added where the
    /// server puts them: `into` is never rewritten (see docs/mongodb.md).
    fn merge_into(&self, from: &str, into: &str) -> Result<()> {
        let staging = self.coll(from);
        retrying(|| {
            let merge = staging.aggregate([
                doc! { "$sort": { "_id": 1 } },
                doc! { "$merge": {
                    "into": into,
                    "on": "_id",
                    "whenMatched": "replace",
                    "whenNotMatched": "insert",
                } },
            ]);
            self.deadline.run(async { merge.await.map(|_| ()) })
        })
        .map_err(|e| self.err(from, e))
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

impl super::Locks for Mongo {
    fn try_lock(&mut self, name: &str, me: &Holder, _wait: Duration) -> Result<Attempt> {
        let locks = self.coll(LOCKS);
        let lock = leased(me.to_document(name), lease_ms(me));
        // The lock is the document {_id: name}. One update takes it when it
        // is free (the upsert inserts it) or when its lease has lapsed by
        // the server's clock (it matches and is replaced); while another's
        // lease holds, the upsert's insert meets the unique _id. Of several
        // processes racing, exactly one succeeds: the others find a lease
        // that holds, or the _id taken.
        match locks
            .update_one(doc! { "_id": name, "$expr": lapsed() }, lock.clone())
            .upsert(true)
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
            // Our own update, retried by the driver after it had succeeded.
            return Ok(Attempt::Taken);
        }
        // A holder on this host whose process is gone is taken over before
        // its lease lapses, if it is still that very lock: of several
        // processes taking it over, one replaces it.
        if !holder.on_this_host() || holder.why_gone_at(self.now()?).is_none() {
            return Ok(Attempt::Held(holder));
        }
        let replaced = locks
            .update_one(doc! { "_id": name, "token": &holder.token }, lock)
            .within(&self.deadline)
            .map_err(|e| self.err(LOCKS, e))?;
        Ok(match replaced.matched_count {
            1 => Attempt::Taken,
            _ => Attempt::Busy,
        })
    }

    fn unlock(&mut self, name: &str, holder: &Holder) -> Result<bool> {
        self.coll(LOCKS)
            .delete_one(doc! { "_id": name, "token": &holder.token })
            .within(&self.deadline)
            .map(|r| r.deleted_count == 1)
            .map_err(|e| self.err(LOCKS, e))
    }

    fn renewer(&self) -> Result<Box<dyn Renew>> {
        Ok(Box::new(MongoRenew {
            locks: self.coll(LOCKS),
            deadline: self.deadline.clone(),
        }))
    }

    fn now(&self) -> Result<DateTime<Utc>> {
        let hello = self
            .db
            .run_command(doc! { "hello": 1 })
            .within(&self.deadline)
            .map_err(|e| self.command_err("hello", e))?;
        Ok(hello
            .get_datetime("localTime")
            .map(|t| t.to_chrono())
            .unwrap_or_else(|_| lock::host_now()))
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
        // `delete` of many documents is not a retryable write; deleting
        // again what is already deleted is harmless.
        retrying(|| {
            self.coll(collection)
                .delete_many(query(filter))
                .within(&self.deadline)
        })
        .map(|_| ())
        .map_err(|e| self.err(collection, e))
    }

    fn count_kept(&self, collection: &str) -> Result<u64> {
        // On a sharded cluster the collection's own count includes orphan
        // documents (left on a shard by a chunk migration): count them.
        if self.is_sharded()? {
            return self.count(collection);
        }
        self.coll(collection)
            .estimated_document_count()
            .within(&self.deadline)
            .map_err(|e| self.err(collection, e))
    }

    fn fence(&mut self, name: &str, token: &str) {
        self.fence = Some((name.to_string(), token.to_string()));
    }

    fn finish_append(&mut self, name: &str) -> Result<Option<String>> {
        let Some(entry) = self.get(super::SUMMARY, &Bson::String(name.into()))? else {
            return Ok(None);
        };
        let Ok(finish) = entry.get_document(crate::doc::summary::FINISH) else {
            return Ok(None);
        };
        let (Ok(staging), Some(entries)) = (
            finish.get_str("staging"),
            super::Entries::from_document(name, finish),
        ) else {
            return Ok(None);
        };
        // The staging collection goes only after the entries are written:
        // while it exists, the merge may not be complete, and is run again.
        if self.exists(staging)? {
            self.merge_into(staging, name)?;
        }
        entries.write(self)?;
        self.drop_coll(staging)?;
        self.make_geometry(name)?;
        Ok(Some(format!(
            "the append of {} into '{name}' was cut short; it is finished",
            entry.get_str("path").unwrap_or("a file")
        )))
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
        // The stored format's version, noted by the first load into a
        // database without it: an insert (a retryable write), which another
        // host's first load may have made first.
        if !self.format_noted {
            let noted = self
                .coll(super::META)
                .insert_one(doc! { "_id": "format", "version": crate::doc::FORMAT_VERSION })
                .within(&self.deadline);
            match noted {
                Ok(_) => {}
                Err(e) if is_duplicate_key(&e) => {}
                Err(e) => return Err(self.err(super::META, e)),
            }
            self.format_noted = true;
        }
        let (staging, fence) = self.staging_for(name);
        // Leftovers of loads into NAME that died, or whose lock this load
        // holds now, are dropped: this load redoes them. (One whose holder
        // still runs fails at its fence, and drops what it wrote again.)
        for c in self.all_collections()? {
            if c.starts_with('_') && staged_dataset(&c) == Some(name) {
                self.drop_coll(&c)?;
            }
        }
        // An append stages only what it writes; the commit merges it into
        // NAME, so that it costs what it adds, not what is stored.
        let appending = !replace && self.exists(name)?;
        let mut first = true;
        retrying(|| {
            let made = self.db.create_collection(&staging).within(&self.deadline);
            match made {
                // Made by this very command, whose answer was lost.
                Err(e)
                    if !std::mem::replace(&mut first, false) && errors::is_namespace_exists(&e) =>
                {
                    Ok(())
                }
                other => {
                    first = false;
                    other
                }
            }
        })
        .map_err(|e| self.err(&staging, e))?;
        if self.target.shard_staging && !appending {
            if let Err(e) = self.shard_hashed(&staging) {
                let _ = self.drop_coll(&staging);
                return Err(e);
            }
        }
        let mut load = MongoLoad {
            raw: self.db.collection(&staging),
            store: self,
            name: name.to_string(),
            staging,
            fence,
            pending: Vec::new(),
            in_flight: None,
            last_key: None,
            in_order: true,
            committed: false,
            appending: false,
            written: Vec::new(),
            before: None,
        };
        load.appending = appending;
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
    /// The lock token the commit checks before each step (see
    /// [`Store::fence`]); `None` for a load begun without a lock.
    fence: Option<String>,
    /// Documents not yet sent: less than one batch.
    pending: Vec<Encoded>,
    /// The one insert in flight: the server keeps documents in the order
    /// they arrive (its natural order), so inserts go one after another.
    in_flight: Option<JoinHandle<std::result::Result<Inserted, BatchError>>>,
    /// The largest sort key in the staging collection.
    last_key: Option<Vec<u8>>,
    /// Whether the staging collection's natural order is still `_id` order.
    in_order: bool,
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
        // The new expiry is the server's now plus the lease, never this
        // host's clock.
        let ms = (expires - lock::host_now()).num_milliseconds();
        let update = self.locks.update_one(
            doc! { "_id": name, "token": token },
            vec![doc! { "$set": { "expires": { "$add": ["$$NOW", ms] } } }],
        );
        self.deadline
            .run_aside(update)
            .map(|r| r.matched_count == 1)
            .map_err(|e| Error::store(LOCKS, e))
    }
}
