//! The embedded store: one SQLite file holding the same BSON documents the
//! MongoDB backend writes.
//!
//! Each collection is a table `"c:NAME"` of `(key, doc)`, where `key` sorts
//! like the document's `_id` (see `key.rs`) and `doc` is the BSON document.
//! A table per collection makes `remove` a `DROP TABLE` and `rename` an
//! `ALTER TABLE … RENAME`, both constant-time. A load is one SQLite
//! transaction, so its documents, `coord_index` and `metadata` entries become
//! visible together or not at all.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bson::{Bson, Document, RawDocumentBuf};
use chrono::{DateTime, Utc};
use rayon::prelude::*;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use super::{
    sort_key, Attempt, Entries, Filter, Holder, Load, Renew, Store, COORD_INDEX, LOCKS, METADATA,
};
use crate::doc::Docs;
use crate::error::{Error, Result};

const TABLE_PREFIX: &str = "c:";
/// How long a write waits for another process's write to finish, unless
/// the command says (a load: its `--lock-timeout`).
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Page size of a new store file, in bytes (SQLite's largest).
const PAGE_SIZE: i64 = 65536;
/// Page cache of a connection, in KiB.
const CACHE_KIB: i64 = 16 << 10;

/// The file used when neither `--db` nor `FLUXPY_DB` is given:
/// `$XDG_DATA_HOME/fluxpy/fluxvis.db`, else `$HOME/.local/share/fluxpy/fluxvis.db`.
/// As the XDG base directory specification says, an `XDG_DATA_HOME` that
/// is not an absolute path is ignored; a `HOME` that is empty or relative
/// is refused, naming it (a store is never made relative to the working
/// directory).
pub fn default_path() -> Result<PathBuf> {
    default_path_from(std::env::var_os("XDG_DATA_HOME"), std::env::var_os("HOME"))
}

fn default_path_from(
    xdg: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Result<PathBuf> {
    let xdg = xdg.map(PathBuf::from).filter(|p| p.is_absolute());
    let base = match (xdg, home) {
        (Some(x), _) => x,
        (None, Some(h)) if PathBuf::from(&h).is_absolute() => PathBuf::from(h).join(".local/share"),
        (None, Some(h)) => {
            return Err(Error::Usage(format!(
                "HOME is {}, not an absolute path, so the default store cannot be placed (XDG_DATA_HOME is unset or not absolute either): give the store with --db PATH, or set HOME or XDG_DATA_HOME to an absolute path",
                if h.is_empty() {
                    "empty".to_string()
                } else {
                    format!("'{}'", crate::error::shown(Path::new(&h)))
                }
            )))
        }
        (None, None) => {
            return Err(Error::Usage(
                "neither HOME nor XDG_DATA_HOME is set to an absolute path: give the store with --db PATH".into(),
            ))
        }
    };
    Ok(base.join("fluxpy").join("fluxvis.db"))
}

/// The embedded store's own knobs, given when it is opened.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long each write waits for another process's write to finish
    /// (SQLite's busy timeout; a load gives its `--lock-timeout`).
    pub busy_wait: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            busy_wait: BUSY_TIMEOUT,
        }
    }
}

pub struct Embedded {
    conn: Connection,
    path: PathBuf,
    /// How long a write waits for another process's write to finish.
    busy: Duration,
    /// The `-shm` file, opened to ask whether another process holds the
    /// write lock (see [`Embedded::writing_elsewhere`]). Kept open as long as
    /// the connection, after it (closing a file drops every POSIX lock
    /// this process holds on it, SQLite's own included).
    shm: std::sync::OnceLock<Option<std::fs::File>>,
}

fn table(collection: &str) -> String {
    format!("\"{TABLE_PREFIX}{}\"", collection.replace('"', "\"\""))
}

fn sql_err(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| Error::store(crate::error::shown(path).to_string(), sql_message(&e))
}

/// What an SQLite error says of the store file: an I/O error (the disk or
/// the filesystem failed a read or write: SQLITE_IOERR, or SQLITE_FULL)
/// is said to be one, naming the file, and never taken for damage; only
/// SQLITE_CORRUPT and SQLITE_NOTADB say the file is damaged.
fn sql_message(e: &rusqlite::Error) -> String {
    use rusqlite::ErrorCode as C;
    let rusqlite::Error::SqliteFailure(f, _) = e else {
        return e.to_string();
    };
    match f.code {
        C::SystemIoFailure => format!(
            "an I/O error reading or writing the file (SQLite extended code {}: {e}); the disk or filesystem failed, the store itself may be sound: check the device and run the command again",
            f.extended_code
        ),
        C::DiskFull => format!("the disk is full ({e}); nothing of this command was kept"),
        C::DatabaseCorrupt => format!("the file is damaged ({e}); restore it from a backup"),
        C::NotADatabase => format!("the file is not a store ({e})"),
        _ => e.to_string(),
    }
}

/// Documents of at least this many BSON bytes are stored zstd-compressed.
const COMPRESS_FROM: usize = 4096;
/// zstd level: the fastest; higher levels gain a few percent for twice the time.
const ZSTD_LEVEL: i32 = 1;
/// Every zstd frame starts with these bytes. A BSON document cannot: they
/// would make its length prefix negative.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The tag of a document kept in its compact form (see `packed.rs`),
/// zstd-compressed after the tag. No BSON document starts with it (the
/// length would be negative), nor a zstd frame.
const PACKED_TAG: [u8; 4] = [b'F', b'P', b'2', 0xff];

fn decode(path: &Path, bytes: &[u8]) -> Result<Document> {
    let damaged = |e: String| {
        Error::store(
            crate::error::shown(path).to_string(),
            format!("damaged document: {e}"),
        )
    };
    if let Some(z) = bytes.strip_prefix(&PACKED_TAG) {
        let packed = zstd::decode_all(z).map_err(|e| damaged(e.to_string()))?;
        let plain = crate::doc::packed::join(&packed)
            .ok_or_else(|| damaged("its compact form does not rebuild a document".into()))?;
        Document::from_reader(&plain[..]).map_err(|e| damaged(e.to_string()))
    } else if bytes.starts_with(&ZSTD_MAGIC) {
        let plain = zstd::decode_all(bytes).map_err(|e| damaged(e.to_string()))?;
        Document::from_reader(&plain[..]).map_err(|e| damaged(e.to_string()))
    } else {
        Document::from_reader(bytes).map_err(|e| damaged(e.to_string()))
    }
}

/// A stored row as [`super::Stored`]: a document in the compact form read
/// in place (its zstd frame inflated into `buf`, its numbers left as they
/// are stored), any other decoded as [`decode`] does.
fn decode_stored<'b>(path: &Path, bytes: &[u8], buf: &'b mut Vec<u8>) -> Result<super::Stored<'b>> {
    let damaged = |e: String| {
        Error::store(
            crate::error::shown(path).to_string(),
            format!("damaged document: {e}"),
        )
    };
    let Some(z) = bytes.strip_prefix(&PACKED_TAG) else {
        return decode(path, bytes).map(super::Stored::Document);
    };
    buf.clear();
    zstd::stream::copy_decode(z, &mut *buf).map_err(|e| damaged(e.to_string()))?;
    let not_compact = || damaged("its compact form does not rebuild a document".into());
    let array = crate::doc::packed::view(buf).ok_or_else(not_compact)?;
    let outline = array.outline().ok_or_else(not_compact)?;
    let outline = Document::from_reader(&outline[..]).map_err(|e| damaged(e.to_string()))?;
    Ok(super::Stored::Compact { outline, array })
}

/// The stored form of a document's BSON bytes: compressed when large, since
/// the values of a step compress about fourfold and a load then writes (and
/// the log checkpoints) a quarter of the bytes, for less time than it saves.
fn pack(bson: Vec<u8>) -> Result<Vec<u8>> {
    if bson.len() < COMPRESS_FROM {
        return Ok(bson);
    }
    let packed = PACKING
        .with(|p| p.borrow_mut().pack(&bson))
        .map_err(|e| Error::store("write", format!("cannot compress a document: {e}")))?;
    crate::doc::recycle(bson);
    Ok(packed)
}

thread_local! {
    /// Each thread's zstd context and buffers, made once and reused for
    /// every document it packs: new ones for each document would allocate
    /// (and fault in) megabytes every time.
    static PACKING: std::cell::RefCell<Packing> = std::cell::RefCell::new(Packing::default());
}

#[derive(Default)]
struct Packing {
    compressor: Option<zstd::bulk::Compressor<'static>>,
    packed: Vec<u8>,
    doubles: Vec<u8>,
    compressed: Vec<u8>,
}

impl Packing {
    /// The compact form of `bson` compressed after its tag, or (for a
    /// document without an array of numbers) the zstd frame of `bson`.
    fn pack(&mut self, bson: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut packed = std::mem::take(&mut self.packed);
        let out = if crate::doc::packed::split_into(bson, &mut packed, &mut self.doubles) {
            self.compress(&PACKED_TAG, &packed)
        } else {
            self.compress(&[], bson)
        };
        self.packed = packed;
        out
    }

    /// A document already in the compact form, compressed after its tag.
    fn compress_packed(&mut self, packed: &[u8]) -> std::io::Result<Vec<u8>> {
        self.compress(&PACKED_TAG, packed)
    }

    /// `tag`, then the zstd frame of `source`.
    fn compress(&mut self, tag: &[u8], source: &[u8]) -> std::io::Result<Vec<u8>> {
        let compressor = match &mut self.compressor {
            Some(c) => c,
            None => self
                .compressor
                .insert(zstd::bulk::Compressor::new(ZSTD_LEVEL)?),
        };
        self.compressed.clear();
        self.compressed
            .reserve(zstd::zstd_safe::compress_bound(source.len()));
        let n = compressor.compress_to_buffer(source, &mut self.compressed)?;
        let mut out = Vec::with_capacity(tag.len() + n);
        out.extend_from_slice(tag);
        out.extend_from_slice(&self.compressed[..n]);
        Ok(out)
    }
}

fn encode(doc: &Document) -> Result<(Vec<u8>, Vec<u8>)> {
    let id = doc
        .get("_id")
        .ok_or_else(|| Error::store("write", "a document has no _id"))?;
    let mut bytes = Vec::new();
    doc.to_writer(&mut bytes)
        .map_err(|e| Error::store("write", format!("cannot encode a document: {e}")))?;
    Ok((sort_key(id), pack(bytes)?))
}

/// The key and stored bytes of a document already encoded.
/// Documents over MongoDB's limit are refused here too, so that a dataset
/// loads into both stores or neither.
fn encode_raw(collection: &str, doc: RawDocumentBuf) -> Result<(Vec<u8>, Vec<u8>)> {
    let id = super::checked_id(collection, &doc)?;
    Ok((sort_key(&id), pack(doc.into_bytes())?))
}

impl Embedded {
    /// Open (creating it if need be) the store file `path`, with the
    /// default [`Options`].
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, &Options::default())
    }

    /// Open (creating it if need be) the store file `path`.
    pub fn open_with(path: &Path, options: &Options) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::Io {
                path: dir.to_path_buf(),
                source: e,
            })?;
        }
        let err = sql_err(path);
        let conn = Connection::open(path).map_err(&err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(&err)?;
        // Before anything below writes to the file (the journal mode does).
        Self::refuse_foreign(&conn, path)?;
        // Documents of a global grid are megabytes each: large pages keep
        // their overflow chains short. Only takes effect on a new file.
        conn.pragma_update(None, "page_size", PAGE_SIZE)
            .map_err(&err)?;
        // WAL lets readers (db, export) run while a load writes; NORMAL sync
        // keeps every commit atomic and is durable at checkpoints.
        // Switching a new file to WAL takes the file's exclusive lock
        // without calling the busy handler: a second process opening the
        // same new store at that moment is told "database is locked" at
        // once (two cron jobs' first loads). Tried again until the busy
        // timeout, as every other wait for the file is.
        let until = std::time::Instant::now() + BUSY_TIMEOUT;
        loop {
            match conn.pragma_update(None, "journal_mode", "WAL") {
                Err(e) if is_busy(&e) && std::time::Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                other => break other.map_err(&err)?,
            }
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(&err)?;
        // A load is one transaction of up to gigabytes; the log is truncated
        // back to this size once it is checkpointed into the file.
        conn.pragma_update(None, "journal_size_limit", 64 << 20)
            .map_err(&err)?;
        conn.pragma_update(None, "cache_size", -CACHE_KIB)
            .map_err(&err)?;
        conn.busy_timeout(options.busy_wait).map_err(&err)?;
        let mut store = Self::checked(conn, path)?;
        store.busy = options.busy_wait;
        Ok(store)
    }

    /// Refuse another program's SQLite database: one with a table whose
    /// name is not a collection's. It is left as it was (a load would have
    /// switched it to WAL and added tables).
    fn refuse_foreign(conn: &Connection, path: &Path) -> Result<()> {
        let other: Option<String> = match conn.query_row(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, length(?1)) != ?1 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name LIMIT 1",
            [TABLE_PREFIX],
            |r| r.get(0),
        ) {
            Ok(name) => Some(name),
            Err(rusqlite::Error::QueryReturnedNoRows) => None,
            // Not a SQLite database: said as such by `checked`.
            Err(_) => return Ok(()),
        };
        match other {
            Some(table) => Err(Error::store(
                crate::error::shown(path).to_string(),
                format!(
                    "is another program's SQLite database (it has a table '{}'), not an embedded store; it was left as it was: give --db a file of its own",
                    crate::error::shown_text(&table)
                ),
            )),
            None => Ok(()),
        }
    }

    /// The store on `conn`, once the file is known to be a SQLite database.
    fn checked(conn: Connection, path: &Path) -> Result<Self> {
        Self::refuse_foreign(&conn, path)?;
        let store = Self {
            conn,
            path: path.to_path_buf(),
            busy: BUSY_TIMEOUT,
            shm: std::sync::OnceLock::new(),
        };
        store.tables().map_err(|_| {
            Error::store(
                crate::error::shown(path).to_string(),
                "is not an embedded store (not a SQLite database)",
            )
        })?;
        let version: i64 = store
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(store.err())?;
        crate::doc::check_format_version(&crate::error::shown(path).to_string(), version)?;
        Ok(store)
    }

    /// Open an existing store for reading only: nothing is written to the
    /// file, not even the journal mode (a `--dry-run` leaves it byte for
    /// byte as it was).
    pub fn open_read_only(path: &Path) -> Result<Self> {
        let err = sql_err(path);
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        // Without a write-ahead log beside it, no other connection is open
        // and every commit is in the file: read it as immutable, which
        // creates no `-wal`/`-shm` files either. With one, read through it.
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let immutable = if Path::new(&wal).exists() {
            ""
        } else {
            "?immutable=1"
        };
        let uri = format!("file:{}{immutable}", uri_path(path));
        let conn = Connection::open_with_flags(uri, flags).map_err(&err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(&err)?;
        Self::checked(conn, path)
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> Error + '_ {
        sql_err(&self.path)
    }

    /// Every collection table, without the prefix.
    fn tables(&self) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .map_err(self.err())?;
        let names = st
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(self.err())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err())?;
        Ok(names
            .into_iter()
            .filter_map(|n| n.strip_prefix(TABLE_PREFIX).map(str::to_string))
            .collect())
    }

    fn has_table(conn: &Connection, collection: &str) -> rusqlite::Result<bool> {
        conn.query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [format!("{TABLE_PREFIX}{collection}")],
            |_| Ok(()),
        )
        .optional()
        .map(|o| o.is_some())
    }

    fn create_table(conn: &Connection, collection: &str) -> rusqlite::Result<()> {
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {} (key BLOB PRIMARY KEY, doc BLOB NOT NULL)",
            table(collection)
        ))
    }

    fn get_bytes(
        conn: &Connection,
        collection: &str,
        id: &Bson,
    ) -> rusqlite::Result<Option<Vec<u8>>> {
        if !Self::has_table(conn, collection)? {
            return Ok(None);
        }
        conn.query_row(
            &format!("SELECT doc FROM {} WHERE key = ?1", table(collection)),
            [sort_key(id)],
            |r| r.get(0),
        )
        .optional()
    }

    /// The holder of the lock of `name`, if any.
    fn lock_holder(conn: &Connection, path: &Path, name: &str) -> Result<Option<Holder>> {
        let bytes =
            Self::get_bytes(conn, LOCKS, &Bson::String(name.into())).map_err(sql_err(path))?;
        Ok(match bytes {
            Some(b) => Holder::from_document(&decode(path, &b)?),
            None => None,
        })
    }

    fn delete_key(conn: &Connection, collection: &str, id: &Bson) -> rusqlite::Result<()> {
        if Self::has_table(conn, collection)? {
            conn.execute(
                &format!("DELETE FROM {} WHERE key = ?1", table(collection)),
                [sort_key(id)],
            )?;
        }
        Ok(())
    }

    /// Insert or replace encoded rows of `collection`, whose table exists.
    fn upsert(
        conn: &Connection,
        path: &Path,
        collection: &str,
        rows: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<()> {
        let err = sql_err(path);
        let mut st = conn
            .prepare_cached(&format!(
                "INSERT OR REPLACE INTO {} (key, doc) VALUES (?1, ?2)",
                table(collection)
            ))
            .map_err(&err)?;
        for (k, d) in rows {
            st.execute(params![k, d]).map_err(&err)?;
        }
        Ok(())
    }

    fn put_doc(conn: &Connection, path: &Path, collection: &str, doc: &Document) -> Result<()> {
        let (key, bytes) = encode(doc)?;
        Self::create_table(conn, collection)
            .and_then(|_| {
                conn.execute(
                    &format!(
                        "INSERT OR REPLACE INTO {} (key, doc) VALUES (?1, ?2)",
                        table(collection)
                    ),
                    params![key, bytes],
                )
            })
            .map(|_| ())
            .map_err(sql_err(path))
    }

    fn scan_conn(
        conn: &Connection,
        path: &Path,
        collection: &str,
        filter: &Filter,
        f: &mut dyn FnMut(Document) -> Result<()>,
    ) -> Result<()> {
        Self::scan_rows(conn, path, collection, filter, &mut |bytes| {
            let doc = decode(path, bytes)?;
            if let Filter::Field(field, value) = filter {
                if doc.get(field) != Some(value) {
                    return Ok(());
                }
            }
            f(doc)
        })
    }

    /// [`Store::scan_stored`] on `conn`.
    fn scan_stored_conn(
        conn: &Connection,
        path: &Path,
        collection: &str,
        filter: &Filter,
        f: &mut dyn FnMut(super::Stored<'_>) -> Result<()>,
    ) -> Result<()> {
        let mut buf = Vec::new();
        Self::scan_rows(conn, path, collection, filter, &mut |bytes| {
            let stored = decode_stored(path, bytes, &mut buf)?;
            if let Filter::Field(field, value) = filter {
                if stored.outline().get(field) != Some(value) {
                    return Ok(());
                }
            }
            f(stored)
        })
    }

    /// The stored bytes of each row of `collection` that `filter` may
    /// select (by `_id`, or all of them in `_id` order), to `f`.
    fn scan_rows(
        conn: &Connection,
        path: &Path,
        collection: &str,
        filter: &Filter,
        f: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let err = sql_err(path);
        if !Self::has_table(conn, collection).map_err(&err)? {
            return Ok(());
        }
        let (sql, key) = match filter {
            // No index on other fields: read in _id order and compare below.
            Filter::All | Filter::Field(..) => (
                format!("SELECT doc FROM {} ORDER BY key", table(collection)),
                None,
            ),
            Filter::Id(id) => (
                format!("SELECT doc FROM {} WHERE key = ?1", table(collection)),
                Some(sort_key(id)),
            ),
        };
        let mut st = conn.prepare(&sql).map_err(&err)?;
        let mut rows = match &key {
            Some(k) => st.query([k]),
            None => st.query([]),
        }
        .map_err(&err)?;
        while let Some(row) = rows.next().map_err(&err)? {
            let bytes = row.get_ref(0).map_err(&err)?.as_blob().map_err(|e| {
                Error::store(
                    crate::error::shown(path).to_string(),
                    format!("damaged row: {e}"),
                )
            })?;
            f(bytes)?;
        }
        Ok(())
    }
}

impl Embedded {
    /// A load into `name` in the transaction just begun (rolled back if
    /// its tables cannot be made).
    fn begin_in_transaction<'s>(&'s mut self, name: &str) -> Result<Box<dyn Load + 's>> {
        // The stored format's version, noted by the load's own transaction
        // (a new store, or one written before the version was kept): only
        // a store a load wrote to says it.
        let noted = self
            .conn
            .pragma_update(None, "user_version", crate::doc::FORMAT_VERSION);
        for made in [noted].into_iter().chain(
            [name, METADATA, COORD_INDEX]
                .into_iter()
                .map(|c| Self::create_table(&self.conn, c)),
        ) {
            if let Err(e) = made {
                self.rollback_transaction();
                return Err(sql_err(&self.path)(e));
            }
        }
        Ok(Box::new(EmbeddedLoad {
            store: self,
            name: name.to_string(),
            committed: false,
        }))
    }
}

impl super::Locks for Embedded {
    fn try_lock(&mut self, name: &str, me: &Holder, wait: Duration) -> Result<Attempt> {
        let path = self.path.clone();
        let err = sql_err(&path);
        let held_by_other = |h: Option<Holder>| h.filter(|h| h.token != me.token && !h.is_gone());
        // A live holder is seen without waiting for the store's write lock
        // (which its load may hold for long).
        if let Some(h) = held_by_other(Self::lock_holder(&self.conn, &path, name)?) {
            return Ok(Attempt::Held(h));
        }
        self.conn.busy_timeout(wait).map_err(&err)?;
        let attempt = match self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
        {
            // Checked again inside the write transaction: taking the lock
            // (or taking over a stale one) is atomic.
            Ok(tx) => match held_by_other(Self::lock_holder(&tx, &path, name)?) {
                Some(h) => Ok(Attempt::Held(h)),
                None => Self::put_doc(&tx, &path, LOCKS, &me.to_document(name))
                    .and_then(|_| tx.commit().map_err(&err))
                    .map(|_| Attempt::Taken),
            },
            Err(e) if is_busy(&e) => Ok(Attempt::Busy),
            Err(e) => Err(err(e)),
        };
        self.conn.busy_timeout(self.busy).map_err(&err)?;
        attempt
    }

    fn unlock(&mut self, name: &str, holder: &Holder) -> Result<bool> {
        let path = self.path.clone();
        with_own_lock(&mut self.conn, &path, name, &holder.token, |tx, _| {
            Self::delete_key(tx, LOCKS, &Bson::String(name.into())).map_err(sql_err(&path))
        })
    }

    fn renewer(&self) -> Result<Box<dyn Renew>> {
        let err = sql_err(&self.path);
        let conn = Connection::open(&self.path).map_err(&err)?;
        // While a load writes (one transaction), nothing else can: a
        // renewal that finds the store busy is tried again next time, and
        // no other process can take the lock over meanwhile either.
        conn.busy_timeout(RENEW_WAIT).map_err(&err)?;
        Ok(Box::new(EmbeddedRenew {
            conn,
            path: self.path.clone(),
        }))
    }

    fn why_gone(&self, holder: &Holder) -> Option<String> {
        let why = holder.why_gone_at(super::lock::host_now())?;
        // One writer at a time, and a load is one transaction: while
        // another connection writes, no lease can be renewed, and a lease
        // from another host that looks lapsed proves nothing yet.
        if !holder.on_this_host() && self.writing_elsewhere() {
            return None;
        }
        Some(why)
    }
}

impl Embedded {
    /// Whether another connection is writing to the store right now.
    fn writing_elsewhere(&self) -> bool {
        // In WAL mode a writer holds an exclusive lock on byte 120 of the
        // `-shm` file from the start of its transaction to its commit
        // (SQLite's documented WAL-index format). Asked with F_GETLK,
        // which takes no lock; without a `-shm` file nobody writes.
        let shm = self.shm.get_or_init(|| {
            let mut p = self.path.as_os_str().to_owned();
            p.push("-shm");
            std::fs::File::open(p).ok()
        });
        let Some(shm) = shm else {
            return false;
        };
        // SAFETY: an all-zero flock is valid; fcntl(F_GETLK) only fills it in.
        let mut lock: libc::flock = unsafe { std::mem::zeroed() };
        lock.l_type = libc::F_WRLCK as libc::c_short;
        lock.l_whence = libc::SEEK_SET as libc::c_short;
        lock.l_start = WAL_WRITE_LOCK_BYTE;
        lock.l_len = 1;
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor is open for the call; `lock` is a valid flock.
        let r = unsafe { libc::fcntl(shm.as_raw_fd(), libc::F_GETLK, &mut lock) };
        r == 0 && lock.l_type != libc::F_UNLCK as libc::c_short
    }
}

impl Store for Embedded {
    fn all_collections(&self) -> Result<Vec<String>> {
        self.tables()
    }

    fn drop_collection(&mut self, collection: &str) -> Result<()> {
        self.conn
            .execute_batch(&format!("DROP TABLE IF EXISTS {}", table(collection)))
            .map_err(self.err())
    }

    fn exists(&self, collection: &str) -> Result<bool> {
        Self::has_table(&self.conn, collection).map_err(self.err())
    }

    fn rename_collection(&mut self, from: &str, to: &str) -> Result<()> {
        self.conn
            .execute_batch(&format!(
                "DROP TABLE IF EXISTS {to_table}; ALTER TABLE {} RENAME TO {to_table}",
                table(from),
                to_table = table(to),
            ))
            .map_err(self.err())
    }

    fn get(&self, collection: &str, id: &Bson) -> Result<Option<Document>> {
        Self::get_bytes(&self.conn, collection, id)
            .map_err(self.err())?
            .map(|b| decode(&self.path, &b))
            .transpose()
    }

    fn put_raw(&self, collection: &str, doc: RawDocumentBuf) -> Result<()> {
        let row = encode_raw(collection, doc)?;
        Self::create_table(&self.conn, collection).map_err(self.err())?;
        Self::upsert(&self.conn, &self.path, collection, &[row])
    }

    fn delete(&self, collection: &str, id: &Bson) -> Result<()> {
        Self::delete_key(&self.conn, collection, id).map_err(self.err())
    }

    fn begin_transaction(&mut self) -> Result<()> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(self.err())
    }

    fn has_transactions(&self) -> bool {
        true
    }

    fn commit_transaction(&mut self) -> Result<()> {
        self.conn.execute_batch("COMMIT").map_err(self.err())
    }

    fn rollback_transaction(&mut self) {
        // Nothing to undo when SQLite has already rolled back (a failed
        // COMMIT, a full disk).
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    fn count(&self, collection: &str) -> Result<u64> {
        if !Self::has_table(&self.conn, collection).map_err(self.err())? {
            return Ok(0);
        }
        self.conn
            .query_row(
                &format!("SELECT count(*) FROM {}", table(collection)),
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(self.err())
    }

    fn entry_ids(&self, bookkeeping: &str) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        self.scan(bookkeeping, &Filter::All, &mut |d| {
            if let Ok(id) = d.get_str("_id") {
                ids.push(id.to_string());
            }
            Ok(())
        })?;
        Ok(ids)
    }

    fn scan(
        &self,
        collection: &str,
        filter: &Filter,
        f: &mut dyn FnMut(Document) -> Result<()>,
    ) -> Result<()> {
        Self::scan_conn(&self.conn, &self.path, collection, filter, f)
    }

    fn scan_stored(
        &self,
        collection: &str,
        filter: &Filter,
        f: &mut dyn FnMut(super::Stored<'_>) -> Result<()>,
    ) -> Result<()> {
        Self::scan_stored_conn(&self.conn, &self.path, collection, filter, f)
    }

    fn begin_replace<'s>(&'s mut self, name: &str) -> Result<Box<dyn Load + 's>> {
        // The stored documents go in the load's own transaction: all of
        // them and the file's, or none.
        self.begin_transaction()?;
        if let Err(e) = self.drop_collection(name) {
            self.rollback_transaction();
            return Err(e);
        }
        self.begin_in_transaction(name)
    }

    fn begin_load<'s>(&'s mut self, name: &str) -> Result<Box<dyn Load + 's>> {
        self.begin_transaction()?;
        self.begin_in_transaction(name)
    }

    fn describe(&self) -> String {
        crate::error::shown(&self.path).to_string()
    }
}

/// The byte of the `-shm` file a WAL writer locks (WAL_WRITE_LOCK).
const WAL_WRITE_LOCK_BYTE: libc::off_t = 120;

/// How long a lease renewal waits for the store's write lock.
const RENEW_WAIT: Duration = Duration::from_millis(200);

/// Renews leases on a connection of its own.
struct EmbeddedRenew {
    conn: Connection,
    path: PathBuf,
}

impl Renew for EmbeddedRenew {
    fn renew(&mut self, name: &str, token: &str, expires: DateTime<Utc>) -> Result<bool> {
        let path = self.path.clone();
        with_own_lock(&mut self.conn, &path, name, token, |tx, h| {
            let renewed = Holder { expires, ..h };
            Embedded::put_doc(tx, &path, LOCKS, &renewed.to_document(name))
        })
    }
}

/// If the acquisition `token` still holds the lock of `name`, change it
/// with `f` in one write transaction; whether it did.
fn with_own_lock(
    conn: &mut Connection,
    path: &Path,
    name: &str,
    token: &str,
    f: impl FnOnce(&Connection, Holder) -> Result<()>,
) -> Result<bool> {
    let err = sql_err(path);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(&err)?;
    match Embedded::lock_holder(&tx, path, name)? {
        Some(h) if h.token == token => {
            f(&tx, h)?;
            tx.commit().map_err(&err)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// A path as the path of a `file:` URI (`%`, `?` and `#` escaped).
fn uri_path(path: &Path) -> String {
    let p = path.to_string_lossy();
    let mut out = String::with_capacity(p.len());
    for c in p.chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3f"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out
}

/// Whether SQLite gave up waiting for another process's write.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
}

/// A load: one transaction of the store's connection, rolled back unless
/// committed.
struct EmbeddedLoad<'c> {
    store: &'c mut Embedded,
    name: String,
    committed: bool,
}

impl EmbeddedLoad<'_> {
    /// Insert step documents, kept in the compact form, compressed.
    fn write_steps(&mut self, docs: Vec<crate::doc::packed::PackedDoc>) -> Result<()> {
        let name = &self.name;
        let rows = docs
            .into_par_iter()
            .map(|d| {
                super::check_document_size(name, Some(&d.id), d.bson_len)?;
                let stored = PACKING
                    .with(|p| p.borrow_mut().compress_packed(&d.packed))
                    .map_err(|e| {
                        Error::store("write", format!("cannot compress a document: {e}"))
                    })?;
                crate::doc::recycle(d.packed);
                Ok((sort_key(&d.id), stored))
            })
            .collect::<Result<Vec<_>>>()?;
        Embedded::upsert(&self.store.conn, &self.store.path, name, &rows)
    }
}

impl Drop for EmbeddedLoad<'_> {
    fn drop(&mut self) {
        if !self.committed {
            self.store.rollback_transaction();
        }
    }
}

impl Load for EmbeddedLoad<'_> {
    fn write(&mut self, docs: Docs) -> Result<()> {
        let name = &self.name;
        let docs = match docs {
            Docs::Bson(docs) => docs,
            // Step documents are kept in their compact form.
            Docs::Steps(docs) => return self.write_steps(docs),
        };
        let rows = docs
            .into_par_iter()
            .map(|d| encode_raw(name, d))
            .collect::<Result<Vec<_>>>()?;
        Embedded::upsert(&self.store.conn, &self.store.path, name, &rows)
    }

    fn stored(&mut self, ids: &[Bson], f: &mut dyn FnMut(Document) -> Result<()>) -> Result<()> {
        // Inside the load's transaction, before it writes these `_id`s: one
        // cached statement for all of them (the table exists since
        // `begin_load`).
        let (conn, path) = (&self.store.conn, &self.store.path);
        let err = sql_err(path);
        let mut st = conn
            .prepare_cached(&format!(
                "SELECT doc FROM {} WHERE key = ?1",
                table(&self.name)
            ))
            .map_err(&err)?;
        for id in ids {
            let bytes: Option<Vec<u8>> = st
                .query_row([sort_key(id)], |r| r.get(0))
                .optional()
                .map_err(&err)?;
            if let Some(b) = bytes {
                f(decode(path, &b)?)?;
            }
        }
        Ok(())
    }

    fn scan(&mut self, f: &mut dyn FnMut(Document) -> Result<()>) -> Result<()> {
        self.store.scan(&self.name, &Filter::All, f)
    }

    fn commit(mut self: Box<Self>, entries: Entries) -> Result<()> {
        // One transaction: the order of the entries does not matter here.
        entries.check()?;
        entries.write(&*self.store)?;
        self.store.commit_transaction()?;
        self.committed = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_not_called_damage() {
        let err = |code: i32| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
        // SQLITE_IOERR_READ (266), SQLITE_IOERR_SHORT_READ (522), SQLITE_IOERR_FSYNC (1034).
        for code in [10, 266, 522, 1034] {
            let m = sql_message(&err(code));
            assert!(m.contains("I/O error"), "{code}: {m}");
            assert!(
                !m.contains("damaged") && !m.contains("malformed"),
                "{code}: {m}"
            );
        }
        let m = sql_message(&err(11));
        assert!(m.contains("damaged"), "{m}");
        let m = sql_message(&err(26));
        assert!(m.contains("not a store"), "{m}");
        let shown = sql_err(Path::new("/data/s.db"))(err(266)).to_string();
        assert!(
            shown.contains("/data/s.db") && shown.contains("I/O error"),
            "{shown}"
        );
    }

    #[test]
    fn the_default_path_follows_the_xdg_rules() {
        let os = |s: &str| Some(std::ffi::OsString::from(s));
        assert_eq!(
            default_path_from(os("/x"), os("/h")).unwrap(),
            PathBuf::from("/x/fluxpy/fluxvis.db")
        );
        assert_eq!(
            default_path_from(os("rel"), os("/h")).unwrap(),
            PathBuf::from("/h/.local/share/fluxpy/fluxvis.db")
        );
        for home in ["", "rel/home"] {
            let e = default_path_from(os("rel"), os(home))
                .unwrap_err()
                .to_string();
            assert!(e.contains("HOME"), "{e}");
        }
        assert!(default_path_from(None, None).is_err());
    }
}
