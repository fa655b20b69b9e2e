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
//! The URI's password never leaves this file: [`Redactor`] scrubs it (and
//! the other secrets a URI can carry) from every message.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::thread::JoinHandle;
use std::time::Duration;

use bson::{doc, Bson, Document, RawDocumentBuf};
use chrono::{DateTime, Utc};
use mongodb::error::{ErrorKind, InsertManyError, WriteFailure};
use mongodb::options::ClientOptions;
use mongodb::sync::{Client, Collection, Database};
use rayon::prelude::*;

pub use super::uri::redact_uri;
use super::uri::{is_secret_option, password_span};
use super::{
    check_document_size, geom_dataset, geom_name, ingest_id, ingest_input, is_kept_internal,
    sort_key, staging_name, Attempt, Filter, Holder, Load, Renew, Store, COORD_INDEX,
    DEFAULT_DB_NAME, INGEST_LOG, LOCKS, METADATA, SUMMARY,
};
use crate::error::{Error, Result};

/// Server selection timeout when the URI sets no `serverSelectionTimeoutMS`:
/// an unreachable server is reported after this long, not the driver's 30 s.
pub const DEFAULT_SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// MongoDB's `maxMessageSizeBytes`: no insert may exceed it.
pub const MAX_MESSAGE_BYTES: usize = 48_000_000;
/// MongoDB's `maxWriteBatchSize`: documents per insert.
pub const MAX_BATCH_DOCUMENTS: usize = 100_000;
/// Bytes of documents per insert: well under the message limit, small
/// enough that several batches are in flight on a typical load.
const BATCH_BYTES: usize = 8 << 20;
/// The field of a dataset's summary entry that notes its largest `_id`.
const LAST_ID: &str = "last_id";
/// The field of a summary entry with the digest of the coordinates.
const COORDS_SHA256: &str = "coords_sha256";
/// MongoDB's duplicate key error.
const DUPLICATE_KEY: i32 = 11000;

/// What a `mongodb://` URI resolves to, without touching the network
/// (except the DNS lookups a `mongodb+srv://` URI asks for).
pub struct Target {
    pub options: ClientOptions,
    /// The database: the URI's, else `fluxvis`.
    pub db_name: String,
    /// `host:port,…`, for messages.
    pub hosts: String,
    pub redactor: Redactor,
    /// Whether the URI sets `authSource` (the driver fills it in otherwise).
    pub auth_source_given: bool,
}

impl Target {
    pub fn parse(uri: &str) -> Result<Self> {
        let redactor = Redactor::for_uri(uri);
        let mut options = ClientOptions::parse(uri).run().map_err(|e| {
            Error::Usage(format!(
                "--db {}: not a valid MongoDB URI: {}",
                redact_uri(uri),
                redactor.message(&e.kind.to_string())
            ))
        })?;
        if options.server_selection_timeout.is_none() {
            options.server_selection_timeout = Some(DEFAULT_SERVER_SELECTION_TIMEOUT);
        }
        if options.app_name.is_none() {
            options.app_name = Some("fluxpy-manage".into());
        }
        let db_name = database_name(options.default_database.as_deref());
        let hosts = options
            .hosts
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let hosts = if hosts.is_empty() {
            // mongodb+srv:// resolves hosts only when connecting.
            host_part(uri).to_string()
        } else {
            hosts
        };
        let auth_source_given = uri.split_once('?').is_some_and(|(_, q)| {
            q.split('&')
                .any(|kv| kv.to_ascii_lowercase().starts_with("authsource="))
        });
        Ok(Self {
            options,
            db_name,
            hosts: redactor.message(&hosts),
            redactor,
            auth_source_given,
        })
    }
}

/// The database a URI names, or `fluxvis`.
pub fn database_name(from_uri: Option<&str>) -> String {
    match from_uri {
        Some(d) if !d.is_empty() => d.to_string(),
        _ => DEFAULT_DB_NAME.to_string(),
    }
}

/// The hosts of a URI as written (after any `user:pass@`, before `/` or `?`).
fn host_part(uri: &str) -> &str {
    let start = uri.find("://").map_or(0, |i| i + 3);
    let end = uri[start..].find('?').map_or(uri.len(), |q| start + q);
    let from = uri[start..end].rfind('@').map_or(start, |a| start + a + 1);
    let to = uri[from..end].find('/').map_or(end, |s| from + s);
    &uri[from..to]
}

/// The same URI naming database `db` (what the test suite uses to work in a
/// fresh database of the deployment `FLUXPY_TEST_MONGODB_URI` names).
pub fn with_database(uri: &str, db: &str) -> String {
    let start = uri.find("://").map_or(0, |i| i + 3);
    let query = uri[start..].find('?').map_or(uri.len(), |q| start + q);
    let hosts_from = uri[start..query]
        .rfind('@')
        .map_or(start, |a| start + a + 1);
    let path = uri[hosts_from..query]
        .find('/')
        .map_or(query, |s| hosts_from + s);
    format!("{}/{db}{}", &uri[..path], &uri[query..])
}

/// Removes a URI's secrets from any text, as written and percent-decoded.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    pub fn for_uri(uri: &str) -> Self {
        let mut secrets = Vec::new();
        if let Some((a, b)) = password_span(uri) {
            secrets.push(uri[a..b].to_string());
        }
        if let Some(q) = uri.find('?') {
            for kv in uri[q + 1..].split('&') {
                if let Some((k, v)) = kv.split_once('=') {
                    if is_secret_option(k) {
                        secrets.push(v.to_string());
                    }
                }
            }
        }
        let decoded: Vec<String> = secrets.iter().map(|s| percent_decode(s)).collect();
        secrets.extend(decoded);
        secrets.retain(|s| !s.is_empty());
        // Longest first, so that a secret containing another is scrubbed whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self { secrets }
    }

    /// `text` on one line, without any secret.
    pub fn message(&self, text: &str) -> String {
        let mut t = text.replace(['\n', '\r'], " ");
        for s in &self.secrets {
            t = t.replace(s.as_str(), "***");
        }
        t
    }
}

fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Split documents of these encoded sizes into consecutive batches of at
/// most `max_bytes` and `max_count` documents (a document larger than
/// `max_bytes` goes alone).
pub fn split_batches(sizes: &[usize], max_bytes: usize, max_count: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, &n) in sizes.iter().enumerate() {
        if i > start && (bytes + n > max_bytes || i - start >= max_count) {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += n;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

/// A document ready to send: its `_id`, its sort key and its bytes.
struct Encoded {
    id: Bson,
    key: Vec<u8>,
    raw: RawDocumentBuf,
}

fn encode(collection: &str, raw: RawDocumentBuf) -> Result<Encoded> {
    let id = raw
        .get("_id")
        .ok()
        .flatten()
        .and_then(|id| Bson::try_from(id.to_raw_bson()).ok())
        .ok_or_else(|| Error::store("write", "a document has no _id"))?;
    check_document_size(collection, Some(&id), raw.as_bytes().len())?;
    Ok(Encoded {
        key: sort_key(&id),
        id,
        raw,
    })
}

/// Keep the last of documents with the same `_id`, as a replacing write would.
fn dedup_last(docs: Vec<Encoded>) -> Vec<Encoded> {
    let mut last: HashMap<Vec<u8>, usize> = HashMap::with_capacity(docs.len());
    for (i, d) in docs.iter().enumerate() {
        last.insert(d.key.clone(), i);
    }
    if last.len() == docs.len() {
        return docs;
    }
    docs.into_iter()
        .enumerate()
        .filter(|(i, d)| last[&d.key] == *i)
        .map(|(_, d)| d)
        .collect()
}

/// A connection to one database of a MongoDB deployment.
pub struct Mongo {
    client: Client,
    db: Database,
    target: Target,
}

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
        let store = Self { client, db, target };
        store
            .db
            .run_command(doc! { "ping": 1 })
            .run()
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
            .run()
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

    fn exists(&self, name: &str) -> Result<bool> {
        let names = self
            .db
            .list_collection_names()
            .filter(doc! { "name": name })
            .run()
            .map_err(|e| self.err(name, e))?;
        Ok(!names.is_empty())
    }

    fn all_collections(&self) -> Result<Vec<String>> {
        let mut names = self
            .db
            .list_collection_names()
            .filter(doc! { "type": "collection" })
            .run()
            .map_err(|e| self.command_err("listCollections", e))?;
        names.retain(|n| !n.starts_with("system."));
        names.sort();
        Ok(names)
    }

    fn drop_collection(&self, name: &str) -> Result<()> {
        self.coll(name).drop().run().map_err(|e| self.err(name, e))
    }

    fn rename_collection(&self, from: &str, to: &str, drop_target: bool) -> Result<()> {
        let db = &self.target.db_name;
        self.client
            .database("admin")
            .run_command(doc! {
                "renameCollection": format!("{db}.{from}"),
                "to": format!("{db}.{to}"),
                "dropTarget": drop_target,
            })
            .run()
            .map(|_| ())
            .map_err(|e| self.err(from, e))
    }

    fn put_entry(&self, bookkeeping: &str, entry: Document) -> Result<()> {
        let id = entry.get("_id").cloned().unwrap_or(Bson::Null);
        self.coll(bookkeeping)
            .replace_one(doc! { "_id": id }, entry)
            .upsert(true)
            .run()
            .map(|_| ())
            .map_err(|e| self.err(bookkeeping, e))
    }

    fn delete_entry(&self, bookkeeping: &str, name: &str) -> Result<()> {
        self.coll(bookkeeping)
            .delete_one(doc! { "_id": name })
            .run()
            .map(|_| ())
            .map_err(|e| self.err(bookkeeping, e))
    }

    /// Write the documents of `from` into `to` (which may be `from`) in
    /// `_id` order, on the server: `$out` replaces `to` whole, keeping its
    /// indexes, and inserts in the pipeline's order.
    fn sort_into(&self, from: &str, to: &str) -> Result<()> {
        self.coll(from)
            .aggregate([doc! { "$sort": { "_id": 1 } }, doc! { "$out": to }])
            .run()
            .map_err(|e| self.err(from, e))?;
        Ok(())
    }
}

impl Target {
    fn where_(&self) -> String {
        format!("MongoDB at {}", self.hosts)
    }
}

/// What a failed operation was working on, for messages.
#[derive(Clone, Copy)]
enum Subject<'a> {
    Collection(&'a str),
    Command(&'a str),
}

/// MongoDB's `AuthenticationFailed` error code.
const AUTHENTICATION_FAILED: i32 = 18;

fn is_auth_failure(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Authentication { .. } => true,
        ErrorKind::Command(c) => c.code == AUTHENTICATION_FAILED,
        _ => false,
    }
}

/// The one line for a failed authentication: the host, the user, the
/// database it was looked up in, and what to try.
fn auth_message(target: &Target, text: &str) -> String {
    let cred = target.options.credential.as_ref();
    let user = cred
        .and_then(|c| c.username.as_deref())
        .map(|u| format!(" for user '{}'", target.redactor.message(u)))
        .unwrap_or_default();
    let source = cred
        .and_then(|c| c.source.as_deref())
        .or(target.options.default_database.as_deref())
        .filter(|d| !d.is_empty())
        .unwrap_or("admin");
    let hint = if !target.auth_source_given && source != "admin" {
        format!(
            "the URI sets no authSource, so the user was looked up in database '{source}'; if it was created in 'admin' (the usual place), add authSource=admin to the URI (…/{source}?authSource=admin)"
        )
    } else {
        format!("check the user name and password, and that the user exists in database '{source}'")
    };
    let cause = text.trim_start_matches("Authentication error: ").trim();
    format!("authentication failed{user} (database '{source}'): {cause}; {hint}")
}

fn map_err(target: &Target, subject: Subject, e: mongodb::error::Error) -> Error {
    let text = target.redactor.message(&e.kind.to_string());
    if is_auth_failure(&e) {
        return Error::store(target.where_(), auth_message(target, &text));
    }
    match e.kind.as_ref() {
        ErrorKind::ServerSelection { .. } => {
            let secs = target
                .options
                .server_selection_timeout
                .unwrap_or(DEFAULT_SERVER_SELECTION_TIMEOUT)
                .as_secs_f64();
            // The driver lists the topology; its first server error is the cause.
            let cause = text
                .split_once("Error: ")
                .map(|(_, c)| c.split(", labels").next().unwrap_or(c))
                .map(|c| {
                    c.trim_start_matches("Kind: ")
                        .trim_end_matches([' ', '}', ']'])
                })
                .unwrap_or(&text);
            Error::store(
                target.where_(),
                format!(
                    "no server answered within {secs} s ({cause}); check the host in --db or FLUXPY_DB and that MongoDB is running there"
                ),
            )
        }
        _ => {
            let what = match subject {
                Subject::Collection(c) => format!("collection '{c}'"),
                Subject::Command(c) => format!("command {c}"),
            };
            Error::store(
                format!(
                    "{} (database '{}', {what})",
                    target.where_(),
                    target.db_name
                ),
                text,
            )
        }
    }
}

impl Store for Mongo {
    fn collections(&self) -> Result<Vec<String>> {
        let mut names = self.all_collections()?;
        names.retain(|n| n != METADATA && n != COORD_INDEX && n != SUMMARY && !n.starts_with('_'));
        Ok(names)
    }

    fn leftovers(&self) -> Result<Vec<String>> {
        let all = self.all_collections()?;
        let (metadata, coords) = (self.entry_ids(METADATA)?, self.entry_ids(COORD_INDEX)?);
        // flux-server's geometry cache of a dataset that exists is kept.
        let is_dataset = |d: &str| {
            !d.starts_with('_')
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

    fn drop_leftover(&mut self, collection: &str) -> Result<()> {
        if !self.leftovers()?.iter().any(|l| l == collection) {
            return Err(Error::collection(collection, "is not a leftover of a load"));
        }
        self.drop_collection(collection)
    }

    fn try_lock(&mut self, name: &str, me: &Holder, _wait: Duration) -> Result<Attempt> {
        let locks = self.coll(LOCKS);
        // The lock is the document {_id: name}: the unique _id makes the
        // insert succeed for exactly one of the processes racing for it.
        match locks.insert_one(me.to_document(name)).run() {
            Ok(_) => return Ok(Attempt::Taken),
            Err(e) if is_duplicate_key(&e) => {}
            Err(e) => return Err(self.err(LOCKS, e)),
        }
        let Some(found) = locks
            .find_one(doc! { "_id": name })
            .run()
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
            .run()
            .map_err(|e| self.err(LOCKS, e))?;
        Ok(match replaced {
            Some(_) => Attempt::Taken,
            None => Attempt::Busy,
        })
    }

    fn renewer(&self) -> Result<Box<dyn Renew>> {
        Ok(Box::new(MongoRenew {
            locks: self.coll(LOCKS),
        }))
    }

    fn unlock(&mut self, name: &str, holder: &Holder) -> Result<bool> {
        self.coll(LOCKS)
            .delete_one(doc! { "_id": name, "token": &holder.token })
            .run()
            .map(|r| r.deleted_count == 1)
            .map_err(|e| self.err(LOCKS, e))
    }

    fn count_kept(&self, collection: &str) -> Result<u64> {
        self.coll(collection)
            .estimated_document_count()
            .run()
            .map_err(|e| self.err(collection, e))
    }

    fn count(&self, collection: &str) -> Result<u64> {
        self.coll(collection)
            .count_documents(doc! {})
            .run()
            .map_err(|e| self.err(collection, e))
    }

    fn entry_ids(&self, bookkeeping: &str) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        let cursor = self
            .coll(bookkeeping)
            .find(doc! {})
            .projection(doc! { "_id": 1 })
            .sort(doc! { "_id": 1 })
            .run()
            .map_err(|e| self.err(bookkeeping, e))?;
        for d in cursor {
            let d = d.map_err(|e| self.err(bookkeeping, e))?;
            if let Ok(id) = d.get_str("_id") {
                ids.push(id.to_string());
            }
        }
        Ok(ids)
    }

    fn entry(&self, bookkeeping: &str, name: &str) -> Result<Option<Document>> {
        self.coll(bookkeeping)
            .find_one(doc! { "_id": name })
            .run()
            .map_err(|e| self.err(bookkeeping, e))
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
        let staging = staging_name(name);
        // A leftover of a load that died is dropped: this load redoes it.
        self.drop_collection(&staging)?;
        self.db
            .create_collection(&staging)
            .run()
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
            ingest: Vec::new(),
            summary: None,
            committed: false,
            appending: false,
            written: Vec::new(),
            before: None,
        };
        // An append stages only what it writes; the commit merges it into
        // NAME, so that it costs what it adds, not what is stored.
        load.appending = load.store.exists(name)?;
        Ok(Box::new(load))
    }

    fn remove(&mut self, name: &str) -> Result<()> {
        // The metadata entry goes first, so that a remove cut short leaves a
        // dataset `db -a` reports, and that removing again finishes.
        self.drop_collection(&staging_name(name))?;
        self.delete_entry(METADATA, name)?;
        self.delete_entry(SUMMARY, name)?;
        self.drop_collection(name)?;
        self.drop_collection(&geom_name(name))?;
        self.delete_entry(COORD_INDEX, name)?;
        self.coll(INGEST_LOG)
            .delete_many(doc! { "name": name })
            .run()
            .map(|_| ())
            .map_err(|e| self.err(INGEST_LOG, e))
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        let renamed = |d: Option<Document>, id: &str| {
            d.map(|mut d| {
                d.insert("_id", id);
                d
            })
        };
        let (from_meta, from_ci) = (self.entry(METADATA, from)?, self.entry(COORD_INDEX, from)?);
        let (to_meta, to_ci) = (self.entry(METADATA, to)?, self.entry(COORD_INDEX, to)?);
        let (from_coll, to_coll) = (self.exists(from)?, self.exists(to)?);
        let moved_meta = renamed(from_meta.clone(), to);
        let moved_ci = renamed(from_ci.clone(), to);
        // A rename cut short after moving the collection: the metadata entry
        // (moved last) is still under `from`, and what `to` has is a copy.
        let resuming = !from_coll
            && to_coll
            && from_meta.is_some()
            && (to_meta.is_none() || to_meta == moved_meta)
            && (to_ci.is_none() || from_ci.is_none() || to_ci == moved_ci);
        if !resuming && (to_coll || to_meta.is_some() || to_ci.is_some()) {
            return Err(Error::collection(
                to,
                "already exists; remove it first or choose another name",
            ));
        }
        // The summary is not moved: the next load of `to` computes it again.
        self.delete_entry(SUMMARY, from)?;
        self.delete_entry(SUMMARY, to)?;
        if from_coll {
            self.rename_collection(from, to, false)?;
        }
        // flux-server's geometry cache moves with the coordinates; one
        // under `to` can only be stale (nothing named `to` exists).
        if self.exists(&geom_name(from))? {
            self.rename_collection(&geom_name(from), &geom_name(to), true)?;
        }
        if let Some(ci) = moved_ci {
            self.put_entry(COORD_INDEX, ci)?;
            self.delete_entry(COORD_INDEX, from)?;
        }
        // Each ingest-log entry is copied under its new _id before the old
        // one goes, so a rename cut short loses none and running it again
        // moves the rest.
        for mut entry in self.ingest_log(from)? {
            let Some(old) = entry.get("_id").cloned() else {
                continue;
            };
            let input = ingest_input(&entry, from);
            entry.insert("_id", ingest_id(to, &input));
            entry.insert("name", to);
            self.put_entry(INGEST_LOG, entry)?;
            self.coll(INGEST_LOG)
                .delete_one(doc! { "_id": old })
                .run()
                .map_err(|e| self.err(INGEST_LOG, e))?;
        }
        if let Some(md) = moved_meta {
            self.put_entry(METADATA, md)?;
            self.delete_entry(METADATA, from)?;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "MongoDB database '{}' at {}",
            self.target.db_name, self.target.hosts
        )
    }
}

fn scan(
    store: &Mongo,
    collection: &str,
    filter: &Filter,
    f: &mut dyn FnMut(Document) -> Result<()>,
) -> Result<()> {
    let query = match filter {
        Filter::All => doc! {},
        Filter::Id(id) => doc! { "_id": id.clone() },
        Filter::Field(field, value) => doc! { field.as_str(): value.clone() },
    };
    let cursor = store
        .coll(collection)
        .find(query)
        .sort(doc! { "_id": 1 })
        .run()
        .map_err(|e| store.err(collection, e))?;
    for d in cursor {
        f(d.map_err(|e| store.err(collection, e))?)?;
    }
    Ok(())
}

/// What an insert did: the sort keys of the first and last documents it
/// added (documents whose `_id` was stored already are replaced in place).
#[derive(Default)]
struct Inserted {
    first: Option<Vec<u8>>,
    last: Option<Vec<u8>>,
}

/// Why an insert failed: the driver's error, or the server's reply to a
/// replacing `update`.
enum BatchError {
    Driver(mongodb::error::Error),
    Reply(String),
}

impl From<mongodb::error::Error> for BatchError {
    fn from(e: mongodb::error::Error) -> Self {
        BatchError::Driver(e)
    }
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
    /// Ingest-log entries, written last by the commit.
    ingest: Vec<Document>,
    /// The summary entry, written before the metadata by the commit.
    summary: Option<Document>,
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

/// MongoDB's answer to an insert whose `_id` is taken.
fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    matches!(e.kind.as_ref(), ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == DUPLICATE_KEY)
}

/// Insert a batch (sorted by `_id`); documents whose `_id` is already in the
/// staging collection (an append over stored times, a reload) replace the
/// stored ones in place, keeping the collection's order.
fn insert_batch(
    db: &Database,
    coll: &Collection<RawDocumentBuf>,
    docs: &[Encoded],
) -> std::result::Result<Inserted, BatchError> {
    let e = match coll
        .insert_many(docs.iter().map(|d| &d.raw))
        .ordered(false)
        .run()
    {
        Ok(_) => {
            return Ok(Inserted {
                first: docs.first().map(|d| d.key.clone()),
                last: docs.last().map(|d| d.key.clone()),
            })
        }
        Err(e) => e,
    };
    let dups: HashSet<usize> = match e.kind.as_ref() {
        ErrorKind::InsertMany(InsertManyError {
            write_errors: Some(w),
            write_concern_error: None,
            ..
        }) if w.iter().all(|w| w.code == DUPLICATE_KEY) => w.iter().map(|w| w.index).collect(),
        _ => return Err(e.into()),
    };
    let added: Vec<usize> = (0..docs.len()).filter(|i| !dups.contains(i)).collect();
    let inserted = Inserted {
        first: added.first().map(|&i| docs[i].key.clone()),
        last: added.last().map(|&i| docs[i].key.clone()),
    };
    // One `update` command of replacements by `_id`: each finds its
    // document through the `_id` index (a `delete_many` with `$in` and a
    // reinsert was slow, and moved the documents to the end).
    let replaced: Vec<&Encoded> = {
        let mut v: Vec<usize> = dups.into_iter().collect();
        v.sort_unstable();
        v.into_iter().map(|i| &docs[i]).collect()
    };
    let sizes: Vec<usize> = replaced.iter().map(|d| d.raw.as_bytes().len()).collect();
    for r in split_batches(&sizes, BATCH_BYTES, MAX_BATCH_DOCUMENTS) {
        let mut updates = Vec::with_capacity(r.len());
        for d in &replaced[r] {
            let u = d
                .raw
                .to_document()
                .map_err(|e| BatchError::Reply(format!("cannot decode a document: {e}")))?;
            updates.push(doc! { "q": { "_id": d.id.clone() }, "u": u, "upsert": true });
        }
        let reply = db
            .run_command(doc! { "update": coll.name(), "updates": updates, "ordered": false })
            .run()?;
        if let Ok(errors) = reply.get_array("writeErrors") {
            let first = errors
                .first()
                .and_then(Bson::as_document)
                .and_then(|d| d.get_str("errmsg").ok())
                .unwrap_or("unknown error");
            return Err(BatchError::Reply(format!(
                "{} of the documents replacing stored ones were refused: {first}",
                errors.len()
            )));
        }
    }
    Ok(inserted)
}

impl MongoLoad<'_> {
    fn err(&self, e: mongodb::error::Error) -> Error {
        self.store.err(&self.staging, e)
    }

    /// Wait for the insert in flight, and note whether it kept `_id` order.
    fn join(&mut self) -> Result<()> {
        let Some(handle) = self.in_flight.take() else {
            return Ok(());
        };
        let inserted = match handle.join() {
            Ok(Ok(i)) => i,
            Ok(Err(BatchError::Driver(e))) => return Err(self.err(e)),
            Ok(Err(BatchError::Reply(m))) => {
                return Err(Error::collection(
                    &self.staging,
                    self.store.target.redactor.message(&m),
                ))
            }
            Err(_) => {
                return Err(Error::store(
                    self.store.target.where_(),
                    format!("a writer thread of the load into '{}' panicked", self.name),
                ))
            }
        };
        if let (Some(first), Some(last)) = (&inserted.first, &self.last_key) {
            if first < last {
                self.in_order = false;
            }
        }
        if let Some(l) = inserted.last {
            if self.last_key.as_ref().is_none_or(|k| &l > k) {
                self.last_key = Some(l);
            }
        }
        Ok(())
    }

    /// Send one batch on its own thread once the previous insert is done,
    /// so that documents reach the server in the order they are sent while
    /// the caller builds the next ones.
    fn send(&mut self, batch: Vec<Encoded>) -> Result<()> {
        self.join()?;
        let (db, coll) = (self.store.db.clone(), self.raw.clone());
        self.in_flight = Some(std::thread::spawn(move || {
            let inserted = insert_batch(&db, &coll, &batch);
            for d in batch {
                crate::model::recycle(d.raw.into_bytes());
            }
            inserted
        }));
        Ok(())
    }

    /// Send every full batch, in `_id` order; with `all`, the partial last
    /// one too.
    fn flush(&mut self, all: bool) -> Result<()> {
        let mut pending = dedup_last(std::mem::take(&mut self.pending));
        pending.sort_by(|a, b| a.key.cmp(&b.key));
        let sizes: Vec<usize> = pending.iter().map(|d| d.raw.as_bytes().len()).collect();
        let mut batches = split_batches(&sizes, BATCH_BYTES, MAX_BATCH_DOCUMENTS);
        let keep = if all { None } else { batches.pop() };
        let mut docs = pending.into_iter();
        for r in batches {
            let batch: Vec<Encoded> = docs.by_ref().take(r.len()).collect();
            self.send(batch)?;
        }
        if keep.is_some() {
            self.pending = docs.collect();
        }
        Ok(())
    }

    fn settle(&mut self) -> Result<()> {
        self.flush(true)?;
        self.join()
    }
}

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
            for d in coll.find(q).run().map_err(err)? {
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

    fn set_summary(&mut self, entry: Option<Document>) {
        self.summary = entry;
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
                .run()
                .map_err(err)?;
            let c = c.to_string();
            Ok(cursor.map(move |d| {
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

    fn log_ingest(&mut self, entry: Document) -> Result<()> {
        self.ingest.push(entry);
        Ok(())
    }

    fn abandon(mut self: Box<Self>) {
        // The staging collection is the new holder's now: only the insert
        // in flight is waited for.
        let _ = self.join();
        self.committed = true;
    }

    fn commit(mut self: Box<Self>, coord_index: Document, metadata: Document) -> Result<()> {
        let entries = [(&coord_index, COORD_INDEX), (&metadata, METADATA)]
            .into_iter()
            .chain(self.summary.iter().map(|e| (e, SUMMARY)))
            .chain(self.ingest.iter().map(|e| (e, INGEST_LOG)));
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
        let old_metadata = store.entry(METADATA, &self.name)?;
        store.delete_entry(METADATA, &self.name)?;
        // The summary goes with it, and comes back before it: a summary
        // beside a metadata entry is always that of the collection.
        let old_summary = store.entry(SUMMARY, &self.name)?;
        store.delete_entry(SUMMARY, &self.name)?;
        if let Err(e) = store.rename_collection(&self.staging, &self.name, true) {
            // The stored collection is untouched: its entries go back, so
            // the dataset stays whole and listed. (Should this fail too,
            // `db -a` reports the missing entry and the same load repairs it.)
            if let Some(s) = old_summary {
                let _ = store.put_entry(SUMMARY, s);
            }
            if let Some(md) = old_metadata {
                let _ = store.put_entry(METADATA, md);
            }
            return Err(e);
        }
        self.committed = true;
        store.put_entry(COORD_INDEX, coord_index)?;
        if let Some(summary) = self.summary_with_last(None) {
            store.put_entry(SUMMARY, summary)?;
        }
        store.put_entry(METADATA, metadata)?;
        // The ingest log last: an entry exists only for a load that is
        // complete, so a load cut short before it is not skipped when run
        // again (and one cut short after the metadata is merely redone).
        for entry in std::mem::take(&mut self.ingest) {
            store.put_entry(INGEST_LOG, entry)?;
        }
        Ok(())
    }
}

impl MongoLoad<'_> {
    /// Drop flux-server's geometry cache of NAME when the coordinates
    /// change: it is made from coord_index. Dropping it is always safe (it
    /// is made again on the next geometry request).
    fn drop_stale_geometry(&self, coord_index: &Document) -> Result<()> {
        let geom = geom_name(&self.name);
        if self.store.exists(&geom)? {
            let stored = self.store.entry(COORD_INDEX, &self.name)?;
            if stored.as_ref().and_then(|d| d.get("i")) != coord_index.get("i") {
                self.store.drop_collection(&geom)?;
            }
        }
        Ok(())
    }

    /// Whether merging the staged documents into NAME keeps NAME's natural
    /// order its `_id` order: every staged `_id` below NAME's last one must
    /// replace a stored document (a replacement keeps its place), not add one.
    fn merge_keeps_order(&self, stored_last: Option<&(Vec<u8>, Bson)>) -> Result<bool> {
        let Some((last, _)) = stored_last else {
            return Ok(true);
        };
        // Each staged `_id` below the last stored one is looked up by
        // itself (an `_id` range or sort is a scan of every document on
        // some servers): none, for the nightly append of later times.
        let err = |e| self.store.err(&self.name, e);
        for (_, id) in self.written.iter().filter(|(k, _)| k < last) {
            let found = self
                .store
                .coll(&self.name)
                .find_one(doc! { "_id": id.clone() })
                .projection(doc! { "_id": 1 })
                .run()
                .map_err(err)?;
            if found.is_none() {
                return Ok(false);
            }
        }
        Ok(true)
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
                .run()
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

    /// The summary entry to write, with the largest `_id` NAME holds once
    /// this load is committed (so that the next append need not ask).
    fn summary_with_last(&mut self, stored_last: Option<(Vec<u8>, Bson)>) -> Option<Document> {
        let mut summary = self.summary.take()?;
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
    fn commit_append(mut self: Box<Self>, coord_index: Document, metadata: Document) -> Result<()> {
        let store = self.store;
        let before = self.before()?;
        let stored_last = before.last;
        let keeps_order = self.merge_keeps_order(stored_last.as_ref())?;
        // The coordinates are those NAME holds when the summary entry
        // written with its coord_index says so: that entry (a few MB for a
        // global grid) is not written again.
        let same_coords = before.coords_sha256.is_some()
            && before.coords_sha256.as_deref()
                == self
                    .summary
                    .as_ref()
                    .and_then(|s| s.get_str(COORDS_SHA256).ok());
        if !same_coords {
            self.drop_stale_geometry(&coord_index)?;
        }
        store.delete_entry(METADATA, &self.name)?;
        let entry = |k: &str| {
            self.ingest
                .first()
                .and_then(|e| e.get(k))
                .cloned()
                .unwrap_or(Bson::Null)
        };
        let pending = doc! { "_id": &self.name, "pending": entry("_id"), "path": entry("path") };
        store.put_entry(SUMMARY, pending)?;
        let merged = store
            .coll(&self.staging)
            .aggregate([
                doc! { "$sort": { "_id": 1 } },
                doc! { "$merge": {
                    "into": &self.name,
                    "on": "_id",
                    "whenMatched": "replace",
                    "whenNotMatched": "insert",
                } },
            ])
            .run()
            .map(|_| ())
            .map_err(|e| self.err(e));
        if let Err(e) = merged {
            return Err(Error::collection(
                &self.name,
                format!(
                    "{e}; the append was cut short, so '{}' has no metadata entry until the same load is run again",
                    self.name
                ),
            ));
        }
        if !keeps_order {
            // A time added before stored ones: NAME is rewritten sorted, on
            // the server, so that an unsorted `find` reads a time series.
            store.sort_into(&self.name, &self.name)?;
        }
        self.committed = true;
        store.drop_collection(&self.staging)?;
        if !same_coords {
            store.put_entry(COORD_INDEX, coord_index)?;
        }
        match self.summary_with_last(stored_last) {
            Some(summary) => store.put_entry(SUMMARY, summary)?,
            None => store.delete_entry(SUMMARY, &self.name)?,
        }
        store.put_entry(METADATA, metadata)?;
        for entry in std::mem::take(&mut self.ingest) {
            store.put_entry(INGEST_LOG, entry)?;
        }
        Ok(())
    }
}

/// Renews leases through a handle of its own on the locks collection.
struct MongoRenew {
    locks: Collection<Document>,
}

impl Renew for MongoRenew {
    fn renew(&mut self, name: &str, token: &str, expires: DateTime<Utc>) -> Result<bool> {
        self.locks
            .update_one(
                doc! { "_id": name, "token": token },
                doc! { "$set": { "expires": bson::DateTime::from_chrono(expires) } },
            )
            .run()
            .map(|r| r.matched_count == 1)
            .map_err(|e| Error::store(LOCKS, e))
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
        let _ = self.store.drop_collection(&self.staging);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_defaults_to_fluxvis() {
        assert_eq!(database_name(None), "fluxvis");
        assert_eq!(database_name(Some("")), "fluxvis");
        assert_eq!(database_name(Some("carbon")), "carbon");
        assert_eq!(Target::parse("mongodb://h").unwrap().db_name, "fluxvis");
        assert_eq!(Target::parse("mongodb://h/").unwrap().db_name, "fluxvis");
        assert_eq!(
            Target::parse("mongodb://u:p@h:27018/carbon?authSource=admin")
                .unwrap()
                .db_name,
            "carbon"
        );
    }

    #[test]
    fn uri_parsing() {
        let t = Target::parse("mongodb://u:s3cret@db1:27018,db2/carbon?replicaSet=rs0").unwrap();
        assert_eq!(t.hosts, "db1:27018,db2:27017");
        assert_eq!(t.options.repl_set_name.as_deref(), Some("rs0"));
        let cred = t.options.credential.as_ref().unwrap();
        assert_eq!(cred.username.as_deref(), Some("u"));
        assert_eq!(cred.password.as_deref(), Some("s3cret"));
        assert_eq!(
            t.options.server_selection_timeout,
            Some(DEFAULT_SERVER_SELECTION_TIMEOUT)
        );
        let t = Target::parse("mongodb://h/?serverSelectionTimeoutMS=250").unwrap();
        assert_eq!(
            t.options.server_selection_timeout,
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            host_part("mongodb+srv://u:p@cluster0.example.net/db"),
            "cluster0.example.net"
        );
    }

    #[test]
    fn a_bad_uri_is_refused_without_its_password() {
        let e = Target::parse("mongodb://u:hunter2@h/db?maxPoolSize=many")
            .err()
            .unwrap()
            .to_string();
        assert!(!e.contains("hunter2") && e.contains("maxPoolSize"), "{e}");
        let e = Target::parse("mongodb://u:hunter2@/db")
            .err()
            .unwrap()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("u:***@"), "{e}");
    }

    #[test]
    fn another_database_of_the_same_deployment() {
        assert_eq!(with_database("mongodb://h", "t1"), "mongodb://h/t1");
        assert_eq!(with_database("mongodb://h:1/", "t1"), "mongodb://h:1/t1");
        assert_eq!(
            with_database("mongodb://u:p/x@h1,h2/old?replicaSet=rs", "t1"),
            "mongodb://u:p/x@h1,h2/t1?replicaSet=rs"
        );
        assert_eq!(with_database("mongodb://h?w=1", "t1"), "mongodb://h/t1?w=1");
        let t = Target::parse(&with_database("mongodb://h/old?w=1", "t1")).unwrap();
        assert_eq!(t.db_name, "t1");
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_uri("mongodb://alice:p%40ss:w@h1,h2/db?tls=true"),
            "mongodb://alice:***@h1,h2/db?tls=true"
        );
        assert_eq!(redact_uri("mongodb://h/db"), "mongodb://h/db");
        assert_eq!(redact_uri("mongodb://alice@h/db"), "mongodb://alice@h/db");
        assert_eq!(
            redact_uri("mongodb+srv://a:b@c/?tlsCertificateKeyFilePassword=kp&appName=x"),
            "mongodb+srv://a:***@c/?tlsCertificateKeyFilePassword=***&appName=x"
        );
        let r = Redactor::for_uri("mongodb://alice:p%40ss@h/db");
        let m = r.message("auth failed for p@ss and p%40ss\nsecond line");
        assert_eq!(m, "auth failed for *** and *** second line");
        assert_eq!(Redactor::for_uri("mongodb://h/").message("a\nb"), "a b");
    }

    #[test]
    fn describe_and_errors_never_show_the_password() {
        let t = Target::parse("mongodb://alice:topsecret@topsecret-host:1/db").unwrap();
        // The host happens to contain the password: scrubbing wins.
        assert!(!t.hosts.contains("topsecret"), "{}", t.hosts);
        let t = Target::parse("mongodb://alice:pw123@localhost:1/db").unwrap();
        assert_eq!(t.where_(), "MongoDB at localhost:1");
    }

    #[test]
    fn batches_stay_under_the_limits() {
        assert!(split_batches(&[], 10, 10).is_empty());
        assert_eq!(split_batches(&[4, 4, 4], 8, 10), vec![0..2, 2..3]);
        assert_eq!(split_batches(&[4, 4, 4], 100, 2), vec![0..2, 2..3]);
        // A document above the batch size goes alone.
        assert_eq!(split_batches(&[3, 20, 3], 8, 10), vec![0..1, 1..2, 2..3]);
        // Sixteen 16 MiB documents: two per message, never over 48 MB.
        let big = vec![super::super::MAX_DOCUMENT_BYTES; 16];
        let b = split_batches(&big, MAX_MESSAGE_BYTES - (1 << 16), MAX_BATCH_DOCUMENTS);
        assert_eq!(b.len(), 8);
        // Many small documents: the count limit splits them.
        let small = vec![10; 250_001];
        let b = split_batches(&small, BATCH_BYTES, MAX_BATCH_DOCUMENTS);
        assert_eq!(
            b.iter().map(|r| r.len()).collect::<Vec<_>>(),
            [100_000, 100_000, 50_001]
        );
        // Every document once, in order.
        let sizes: Vec<usize> = (0..1000).map(|i| (i * 7919) % 3000 + 1).collect();
        let b = split_batches(&sizes, 20_000, 64);
        assert_eq!(b.first().unwrap().start, 0);
        assert_eq!(b.last().unwrap().end, 1000);
        for w in b.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        for r in &b {
            assert!(sizes[r.clone()].iter().sum::<usize>() <= 20_000 && r.len() <= 64);
        }
    }

    #[test]
    fn documents_over_16_mib_are_refused_before_sending() {
        let raw = |d: Document| RawDocumentBuf::from_document(&d).unwrap();
        let ok: Vec<Bson> = vec![Bson::Double(1.5); 1000];
        encode("x", raw(doc! { "_id": 1, "values": ok })).unwrap();
        // About a million cells in one step: over the limit.
        let big: Vec<Bson> = vec![Bson::Double(1.5); 1_100_000];
        let e = encode(
            "casa",
            raw(doc! { "_id": bson::DateTime::from_millis(0), "values": big }),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("'casa'") && e.contains("16 MiB"), "{e}");
    }

    #[test]
    fn duplicates_in_one_batch_keep_the_last() {
        let raw = |d: Document| RawDocumentBuf::from_document(&d).unwrap();
        let docs = vec![
            encode("x", raw(doc! { "_id": 1, "v": 1 })).unwrap(),
            encode("x", raw(doc! { "_id": 2, "v": 2 })).unwrap(),
            encode("x", raw(doc! { "_id": 1, "v": 3 })).unwrap(),
        ];
        let kept = dedup_last(docs);
        let vs: Vec<_> = kept
            .iter()
            .map(|d| d.raw.to_document().unwrap().get_i32("v").unwrap())
            .collect();
        assert_eq!(vs, [2, 3]);
    }

    #[test]
    fn auth_failures_suggest_auth_source_only_when_it_would_help() {
        let m = |uri: &str| auth_message(&Target::parse(uri).unwrap(), "SCRAM failure: x");
        let no_source = m("mongodb://alice:pw%40@h/carbon");
        assert!(
            no_source.starts_with("authentication failed for user 'alice'"),
            "{no_source}"
        );
        assert!(
            no_source.contains("authSource=admin") && no_source.contains("'carbon'"),
            "{no_source}"
        );
        assert!(
            !no_source.contains("pw@") && !no_source.contains("pw%40"),
            "{no_source}"
        );
        for uri in [
            "mongodb://alice:pw@h/carbon?authSource=admin",
            "mongodb://alice:pw@h/",
        ] {
            let given = m(uri);
            assert!(
                given.contains("authentication failed") && !given.contains("authSource="),
                "{given}"
            );
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("p%40ss%3A"), "p@ss:");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
