//! Stores: where documents go. The embedded SQLite file or MongoDB.
//!
//! Two layers. A backend implements [`Store`]: primitives on collections
//! and documents (get, put, delete, scan, count, drop, rename, a
//! transaction where it has them, a lock) and [`Load`], the way it writes a
//! load's documents out of sight and swaps them in. The dataset rules
//! (what `remove` and `rename` do to a dataset's parts, which collections
//! are datasets or leftovers, the entries a commit writes and their order)
//! are written once above them, in [`Datasets`] (`dataset.rs`). Both
//! backends hold the same BSON documents, built once by the models.
//!
//! A dataset NAME is three parts that must stay in step: the collection NAME
//! (one document per time step or point), the entry `{_id: NAME}` in
//! `metadata`, and the entry `{_id: NAME}` in `coord_index`.

pub mod audit;
mod dataset;
pub mod embedded;
pub mod foreign;
pub mod lock;
#[cfg(feature = "mongodb")]
pub mod mongo;
mod uri;

use std::path::PathBuf;

use bson::{Bson, Document, RawDocumentBuf};

use crate::error::{Error, Result};

pub(crate) use dataset::collected;
pub use dataset::{Datasets, Entries, Unfinished};

pub(crate) use crate::doc::check_document_size;
use crate::doc::ingest_log::{
    id as ingest_id, input_of as ingest_input, COLLECTION as INGEST_LOG,
    NAME as INGEST_DATASET_FIELD,
};
use crate::doc::summary::PENDING as SUMMARY_PENDING;
use crate::doc::{checked_id, sort_key, Docs, COORD_INDEX, METADATA, SUMMARY};
pub use lock::{Attempt, Holder, Lease, Locks, Renew};

/// The database name when the URI names none, as in the old tool.
pub const DEFAULT_DB_NAME: &str = "fluxvis";
/// Where a load writes before it is swapped in: `_load.NAME`. Names starting
/// with `_` are refused for datasets, so this can never be a user's.
const STAGING_PREFIX: &str = "_load.";

/// The Carbon Data Explorer's API server (flux-server) caches a dataset's
/// cells as `{ll, idx}` points in `_geom_NAME`, made from its
/// `coord_index` entry. It belongs to NAME: a load into MongoDB makes it
/// when it is missing (flux-server's own attempt kills its process), a
/// load that changes NAME's coordinates makes it again, `remove` drops it
/// and `rename` moves it.
const GEOM_PREFIX: &str = "_geom_";

/// The store's own notes (MongoDB): `{_id: "format", version}`, the
/// stored format's version (see [`crate::doc::FORMAT_VERSION`]).
pub const META: &str = "_meta";
/// The per-dataset locks of running loads (see [`lock`]).
pub const LOCKS: &str = "_locks";
/// Notes of the removes and renames under way on a store without
/// transactions, one per dataset: written before the first step, deleted
/// after the last, so that one cut short at any step is found by `db -a`
/// and finished by running it again (see [`dataset::Unfinished`]).
pub const UNFINISHED: &str = "_unfinished";

/// Whether `collection` holds a dataset's documents: not a bookkeeping
/// collection, and not an internal one (a name starting with `_`).
pub fn is_data_collection(collection: &str) -> bool {
    ![METADATA, COORD_INDEX, SUMMARY].contains(&collection) && !collection.starts_with('_')
}

/// Whether `collection` is an internal one that a sound store keeps (the
/// ingest log, the locks), as opposed to a leftover.
pub fn is_kept_internal(collection: &str) -> bool {
    [INGEST_LOG, LOCKS, UNFINISHED, META].contains(&collection)
}

/// flux-server's geometry collection of dataset `name` (see [`GEOM_PREFIX`]).
pub fn geom_name(name: &str) -> String {
    format!("{GEOM_PREFIX}{name}")
}

/// The dataset a geometry collection belongs to, if `collection` is one.
pub fn geom_dataset(collection: &str) -> Option<&str> {
    collection.strip_prefix(GEOM_PREFIX)
}

/// The staging collection of a load into `name`.
pub fn staging_name(name: &str) -> String {
    format!("{STAGING_PREFIX}{name}")
}

/// The staging collection of a load into `name` fenced by lock acquisition
/// `token` (see [`Store::fence`]): `_load@HASH.NAME`, HASH the first 12 hex
/// digits of the token's SHA-256, so that a load whose lock was taken over
/// never writes into its successor's staging collection.
pub fn fenced_staging_name(name: &str, token: &str) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(token.as_bytes());
    format!("{FENCED_PREFIX}{}.{name}", hex::encode(&hash[..6]))
}

/// The start of a fenced staging collection's name (see
/// [`fenced_staging_name`]).
const FENCED_PREFIX: &str = "_load@";

/// The dataset a staging collection was loading, if `collection` is one
/// (of either form, `_load.NAME` or `_load@HASH.NAME`).
pub fn staged_dataset(collection: &str) -> Option<&str> {
    if let Some(rest) = collection.strip_prefix(FENCED_PREFIX) {
        let (hash, name) = rest.split_at_checked(12)?;
        return (hash.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| name.strip_prefix('.'))
            .flatten()
            .filter(|n| !n.is_empty());
    }
    collection.strip_prefix(STAGING_PREFIX)
}

/// Which documents of a collection to read.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    All,
    /// The document whose `_id` equals this value.
    Id(Bson),
    /// The documents whose top-level field (e.g. the `timestamp` of point
    /// data, whose `_id` is not a time) equals this value.
    Field(String, Bson),
}

/// A document as [`Store::scan_stored`] hands it out.
pub enum Stored<'a> {
    Document(Document),
    /// A document kept in the compact form ([`crate::doc::packed`]): its other fields,
    /// with the array left empty, and the array in place.
    Compact {
        outline: Document,
        array: crate::doc::packed::View<'a>,
    },
}

impl Stored<'_> {
    /// The document's fields, a compact array left empty.
    pub fn outline(&self) -> &Document {
        match self {
            Stored::Document(d) | Stored::Compact { outline: d, .. } => d,
        }
    }
}

/// A backend: the primitives on collections and documents that the
/// dataset rules ([`Datasets`]) and the loads are built from, and nothing
/// more. It knows nothing of datasets: it moves documents and collections.
pub trait Store: Locks {
    /// Every collection of the store, internal ones included, sorted
    /// (MongoDB's own `system.` collections left out).
    fn all_collections(&self) -> Result<Vec<String>>;

    /// Whether `collection` exists.
    fn exists(&self, collection: &str) -> Result<bool> {
        Ok(self.all_collections()?.iter().any(|c| c == collection))
    }

    /// Drop a collection; one that does not exist is no error.
    fn drop_collection(&mut self, collection: &str) -> Result<()>;

    /// Rename collection `from` to `to`, replacing any collection `to`.
    fn rename_collection(&mut self, from: &str, to: &str) -> Result<()>;

    /// Number of documents in a collection (0 if it does not exist).
    fn count(&self, collection: &str) -> Result<u64>;

    /// The number of documents as the store keeps it, without reading
    /// them: MongoDB's collection metadata (`estimatedDocumentCount`,
    /// exact unless the server stopped uncleanly), an exact count where that
    /// is as cheap.
    fn count_kept(&self, collection: &str) -> Result<u64> {
        self.count(collection)
    }

    /// The string `_id`s of a collection (`metadata`, `coord_index`), sorted,
    /// without reading the documents whole.
    fn entry_ids(&self, collection: &str) -> Result<Vec<String>>;

    /// The document of `collection` whose `_id` is `id`.
    fn get(&self, collection: &str, id: &Bson) -> Result<Option<Document>>;

    /// The entry `{_id: name}` of a bookkeeping collection.
    fn entry(&self, bookkeeping: &str, name: &str) -> Result<Option<Document>> {
        self.get(bookkeeping, &Bson::String(name.into()))
    }

    /// Every document of `collection` matching `filter`, in `_id` order.
    fn scan(
        &self,
        collection: &str,
        filter: &Filter,
        f: &mut dyn FnMut(Document) -> Result<()>,
    ) -> Result<()>;

    /// [`Store::scan`], each document as the store keeps it: a step
    /// document in the embedded store's compact form is handed out as
    /// that, its numbers not turned into BSON (what `export` writes from).
    fn scan_stored(
        &self,
        collection: &str,
        filter: &Filter,
        f: &mut dyn FnMut(Stored<'_>) -> Result<()>,
    ) -> Result<()> {
        self.scan(collection, filter, &mut |d| f(Stored::Document(d)))
    }

    /// Insert an encoded document into `collection` (made if need be),
    /// replacing the one with the same `_id`.
    fn put_raw(&self, collection: &str, doc: RawDocumentBuf) -> Result<()>;

    /// [`Store::put_raw`] of a document.
    fn put(&self, collection: &str, doc: &Document) -> Result<()> {
        let raw = RawDocumentBuf::from_document(doc)
            .map_err(|e| Error::store("write", format!("cannot encode a document: {e}")))?;
        self.put_raw(collection, raw)
    }

    /// Delete the document of `collection` whose `_id` is `id`, if any.
    fn delete(&self, collection: &str, id: &Bson) -> Result<()>;

    /// Delete every document of `collection` matching `filter`.
    fn delete_where(&self, collection: &str, filter: &Filter) -> Result<()> {
        let ids = collected(|f| self.scan(collection, filter, f))?;
        for id in ids.iter().filter_map(|d| d.get("_id")) {
            self.delete(collection, id)?;
        }
        Ok(())
    }

    /// Begin a transaction: what follows, up to
    /// [`Store::commit_transaction`], is written all or nothing. A store
    /// without transactions does nothing here, and writes step by step.
    fn begin_transaction(&mut self) -> Result<()> {
        Ok(())
    }

    /// Commit the transaction [`Store::begin_transaction`] began.
    fn commit_transaction(&mut self) -> Result<()> {
        Ok(())
    }

    /// Undo the transaction [`Store::begin_transaction`] began.
    fn rollback_transaction(&mut self) {}

    /// Whether [`Store::begin_transaction`] makes what follows all or
    /// nothing (else each write stands by itself).
    fn has_transactions(&self) -> bool {
        false
    }

    /// Start loading into dataset `name`. Nothing written through the
    /// returned [`Load`] is visible until it is committed; dropping it
    /// uncommitted leaves the store as it was.
    fn begin_load<'s>(&'s mut self, name: &str) -> Result<Box<dyn Load + 's>>;

    /// A load that replaces dataset `name` whole (`load --replace`): once
    /// committed, NAME holds the documents written and none of those it
    /// held, in one step as a first load's (the swap of its staging
    /// collection, or its transaction).
    fn begin_replace<'s>(&'s mut self, name: &str) -> Result<Box<dyn Load + 's>>;

    /// Fence the loads this connection begins into `name` with the lock
    /// acquisition `token`: each stages into a collection of its own, and
    /// checks right before each step of its commit that `token` still
    /// holds the lock, failing (its staging dropped) when another process
    /// took it over. A store whose commit is one transaction under the lock
    /// needs nothing more.
    fn fence(&mut self, _name: &str, _token: &str) {}

    /// Finish an append into `name` that was cut short after it began to
    /// change the dataset (on a store without transactions), from what it
    /// kept for that, whichever host ran it; call holding `name`'s lock.
    /// What was done, if anything.
    fn finish_append(&mut self, _name: &str) -> Result<Option<String>> {
        Ok(None)
    }

    /// A description of where the data is, safe to print (no password).
    fn describe(&self) -> String;
}

/// One load into one dataset.
pub trait Load {
    /// Insert encoded documents (as models hand them on), replacing any
    /// stored document with the same `_id`. A store that keeps BSON joins
    /// step documents back from the compact form ([`Docs::into_bson`]);
    /// the embedded store keeps the form.
    fn write(&mut self, docs: Docs) -> Result<()>;

    /// The documents with these `_id`s that the dataset held before this
    /// load wrote any of them (the ones a write of the same `_id`s replaces).
    /// Call it before writing those `_id`s.
    fn stored(&mut self, ids: &[Bson], f: &mut dyn FnMut(Document) -> Result<()>) -> Result<()>;

    /// Every document of the dataset as it will be once committed, in `_id` order.
    fn scan(&mut self, f: &mut dyn FnMut(Document) -> Result<()>) -> Result<()>;

    /// Write the entries (`coord_index`, summary, `metadata`, ingest log:
    /// see [`Entries`]) and make everything visible, or nothing.
    fn commit(self: Box<Self>, entries: Entries) -> Result<()>;

    /// Give up a load whose lock another process has taken over: nothing
    /// of it is kept, and what it shares with that process's load (the
    /// MongoDB staging collection) is left to it. Dropping a load instead
    /// undoes it whole.
    fn abandon(self: Box<Self>) {}
}

/// A store reached by a URI rather than a file.
pub struct Remote {
    /// What its URIs start with (in lower case, as the drivers want them).
    pub schemes: &'static [&'static str],
    /// Connect to the URI.
    pub open: fn(&str) -> Result<Box<dyn Store>>,
}

/// The stores reached by URI; any other `--db` is a file of the embedded
/// store (or, when it looks like a URI, refused). Adding a store is a
/// module implementing [`Store`], [`Locks`], [`Renew`] and [`Load`],
/// and an entry here: see "How to add a store" in `docs/design.md`.
pub const REMOTES: &[Remote] = &[Remote {
    schemes: &["mongodb://", "mongodb+srv://"],
    open: open_mongo,
}];

/// The store of [`REMOTES`] whose scheme `uri` starts with.
fn remote(uri: &str) -> Option<&'static Remote> {
    REMOTES
        .iter()
        .find(|r| r.schemes.iter().any(|s| uri.starts_with(s)))
}

/// Where `--db`/`FLUXPY_DB` points.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    /// A URI of one of the [`REMOTES`] (`mongodb://`, `mongodb+srv://`).
    Remote(String),
    /// A file of the embedded store.
    Embedded(PathBuf),
}

impl Location {
    /// Interpret `--db`; without one, the embedded store's default file.
    pub fn parse(db: Option<&str>) -> Result<Self> {
        let schemes = || {
            let all: Vec<&str> = REMOTES.iter().flat_map(|r| r.schemes).copied().collect();
            all.join(" or ")
        };
        match db {
            Some(uri) if remote(uri).is_some() => Ok(Location::Remote(uri.to_string())),
            Some(path) if path.trim().is_empty() => Err(Error::Usage(format!(
                "--db is empty: give a file path or a {} URI",
                REMOTES[0].schemes[0]
            ))),
            Some(uri) if looks_like_uri(uri) => Err(Error::Usage(format!(
                "--db '{}' looks like a URI but no store takes it: write {} (in lower case); a store file whose name looks like this is given as ./NAME",
                redact_loose(uri).escape_debug(),
                schemes()
            ))),
            Some(path) => Location::embedded(PathBuf::from(path)),
            None => Location::embedded(embedded::default_path()?),
        }
    }

    /// An embedded store file; a directory is refused as one (SQLite
    /// would say only that it cannot open it).
    fn embedded(path: PathBuf) -> Result<Self> {
        if path.is_dir() {
            return Err(Error::Usage(format!(
                "--db {} is a directory, not a store file; name a file in it, e.g. {}",
                crate::error::shown(&path),
                crate::error::shown(&path.join("fluxvis.db"))
            )));
        }
        Ok(Location::Embedded(path))
    }

    /// Open the store here.
    fn open(self, options: &Options) -> Result<Box<dyn Store>> {
        match self {
            Location::Embedded(path) => Ok(Box::new(embedded::Embedded::open_with(
                &path,
                &options.embedded,
            )?)),
            Location::Remote(uri) => open_remote(&uri),
        }
    }
}

/// Connect to a URI of one of the [`REMOTES`].
fn open_remote(uri: &str) -> Result<Box<dyn Store>> {
    let r = remote(uri).ok_or_else(|| {
        Error::Usage(format!("--db '{}' is no store's URI", uri::redact_uri(uri)))
    })?;
    (r.open)(uri)
}

/// `scheme:` followed by `/`: a URI, not a file name (RFC 3986 schemes are
/// a letter and then letters, digits, `+`, `-` or `.`; one letter is left
/// alone, as a drive letter would be).
fn looks_like_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    scheme.len() > 1
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && rest.starts_with('/')
}

/// Any URI-like text with its password and secret options replaced by
/// `***`, however many slashes follow the scheme.
fn redact_loose(uri: &str) -> String {
    let Some(colon) = uri.find(':') else {
        return uri.to_string();
    };
    let rest = uri[colon + 1..].trim_start_matches('/');
    let head = &uri[..uri.len() - rest.len()];
    let redacted = uri::redact_uri(&format!("x://{rest}"));
    format!("{head}{}", &redacted[4..])
}

/// Each backend's own knobs for opening a store; the others ignore them.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub embedded: embedded::Options,
}

/// Open the store `--db`/`FLUXPY_DB` names.
pub fn open(db: Option<&str>) -> Result<Box<dyn Store>> {
    open_with(db, &Options::default())
}

/// [`open`], with a backend's own knobs.
pub fn open_with(db: Option<&str>, options: &Options) -> Result<Box<dyn Store>> {
    Location::parse(db)?.open(options)
}

#[cfg(feature = "mongodb")]
fn open_mongo(uri: &str) -> Result<Box<dyn Store>> {
    Ok(Box::new(mongo::Mongo::open(uri)?))
}

/// A build without the `mongodb` feature (the fuzz targets') has no driver.
#[cfg(not(feature = "mongodb"))]
fn open_mongo(uri: &str) -> Result<Box<dyn Store>> {
    Err(Error::Usage(format!(
        "--db '{}': this build of manage has no MongoDB support (it was built without the default feature `mongodb`)",
        uri::redact_uri(uri)
    )))
}

/// Open the store `--db`/`FLUXPY_DB` names for reading only, writing
/// nothing to it (not even creating it): `None` when it is an embedded
/// store file that does not exist yet.
pub fn open_read_only(db: Option<&str>) -> Result<Option<Box<dyn Store>>> {
    match Location::parse(db)? {
        Location::Embedded(path) if !path.exists() => Ok(None),
        Location::Embedded(path) => Ok(Some(Box::new(embedded::Embedded::open_read_only(&path)?))),
        Location::Remote(uri) => open_remote(&uri).map(Some),
    }
}

/// The store `--db`/`FLUXPY_DB` names, refused when it is an embedded
/// store file that does not exist (a mistyped path is never created).
fn existing(db: Option<&str>) -> Result<Location> {
    let location = Location::parse(db)?;
    match &location {
        Location::Embedded(path) if !path.exists() => Err(Error::store(
            path.display().to_string().escape_debug().to_string(),
            "does not exist: nothing has been loaded into it (is --db or FLUXPY_DB mistyped?)",
        )),
        _ => Ok(location),
    }
}

/// Open the store `--db`/`FLUXPY_DB` names for a command that only reads
/// (`db`, `export`, `plot`): an embedded store is opened read-only, so a
/// read-only file or folder is no obstacle, and one that does not exist is
/// an error.
pub fn open_for_reading(db: Option<&str>) -> Result<Box<dyn Store>> {
    existing(db)?;
    open_read_only(db)?.ok_or_else(|| Error::store("open", "the store does not exist"))
}

/// [`open`], for a command that changes an existing store (`db -a --fix`,
/// `remove`, `rename`): a store file that does not exist is not created.
pub fn open_existing(db: Option<&str>) -> Result<Box<dyn Store>> {
    existing(db)?.open(&Options::default())
}

/// Check a dataset name `-n`/`-r` against what MongoDB and this tool refuse.
pub fn validate_name(name: &str) -> Result<()> {
    let refuse = |msg: &str| {
        Err(Error::Name {
            name: name.escape_default().to_string(),
            msg: msg.to_string(),
        })
    };
    if name.is_empty() {
        return refuse("is empty");
    }
    if [METADATA, COORD_INDEX, SUMMARY].contains(&name) {
        return refuse("is reserved for the store's own bookkeeping; choose another");
    }
    if name.starts_with("system.") {
        return refuse("starts with 'system.', which MongoDB reserves");
    }
    if name.starts_with('_') {
        return refuse("starts with '_', which manage reserves for its own collections");
    }
    if name.contains('$') {
        return refuse("contains '$', which MongoDB does not allow");
    }
    if name.contains('\0') {
        return refuse("contains a NUL character");
    }
    if name.chars().any(char::is_control) {
        return refuse("contains a control character (a newline, tab, …)");
    }
    if name.len() > 120 {
        return refuse("is longer than 120 bytes");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_refused() {
        for bad in [
            "",
            "metadata",
            "coord_index",
            "summary_stats",
            "system.users",
            "_ingest_log",
            "a$b",
            "a\0b",
            "a\nb",
            "a\tb",
            "\u{1b}[31mred",
            &"x".repeat(121),
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} should be refused");
        }
        for good in ["casa_2004", "xco2.v2", "Kriged-2009", &"x".repeat(120)] {
            validate_name(good).unwrap();
        }
    }

    #[test]
    fn fenced_staging_names_map_back() {
        let a = fenced_staging_name("casa.2004", "host:1:2");
        let b = fenced_staging_name("casa.2004", "host:1:3");
        assert_ne!(a, b);
        assert!(a.starts_with("_load@") && a.ends_with(".casa.2004"), "{a}");
        assert_eq!(staged_dataset(&a), Some("casa.2004"));
        assert_eq!(staged_dataset("_load@0123456789ab"), None);
        assert_eq!(staged_dataset("_load@0123456789zz.x"), None);
        assert!(validate_name(&a).is_err());
    }

    #[test]
    fn staging_names_are_internal_and_map_back() {
        let s = staging_name("casa_2004");
        assert!(s.starts_with('_'));
        assert!(validate_name(&s).is_err());
        assert_eq!(staged_dataset(&s), Some("casa_2004"));
        assert_eq!(staged_dataset("casa_2004"), None);
        let g = geom_name("casa_2004");
        assert_eq!(g, "_geom_casa_2004");
        assert!(validate_name(&g).is_err());
        assert_eq!(geom_dataset(&g), Some("casa_2004"));
        assert_eq!(geom_dataset(&s), None);
    }

    #[test]
    fn locations() {
        assert_eq!(
            Location::parse(Some("mongodb://h/db")).unwrap(),
            Location::Remote("mongodb://h/db".into())
        );
        assert_eq!(
            Location::parse(Some("/tmp/x.db")).unwrap(),
            Location::Embedded("/tmp/x.db".into())
        );
        assert!(Location::parse(Some(" ")).is_err());
        for file in [
            "store.db",
            "./Mongodb://x",
            "C:/x.db",
            "a:b",
            "dir/mongodb:/x",
            "1x:/y",
        ] {
            assert!(
                matches!(Location::parse(Some(file)), Ok(Location::Embedded(_))),
                "{file}"
            );
        }
    }

    #[test]
    fn uri_lookalikes_are_refused_without_their_password() {
        for (uri, shown) in [
            (
                "Mongodb://bob:Hunter2@db1.example/fluxvis",
                "Mongodb://bob:***@db1.example/fluxvis",
            ),
            ("MONGODB://bob:Hunter2@db1/x", "MONGODB://bob:***@db1/x"),
            ("mongodb:/bob:Hunter2@db1/x", "mongodb:/bob:***@db1/x"),
            (
                "mongodb+svr://bob:Hunter2@db1/x",
                "mongodb+svr://bob:***@db1/x",
            ),
            (
                "postgres://h/db?password=Hunter2",
                "postgres://h/db?password=***",
            ),
            ("file:///tmp/x.db", "file:///tmp/x.db"),
        ] {
            let e = Location::parse(Some(uri)).unwrap_err().to_string();
            assert!(!e.contains("Hunter2"), "{e}");
            assert!(e.contains(shown), "{e}");
        }
    }
}
