//! Stores: where documents go. The embedded SQLite file or MongoDB.
//!
//! The commands see only the [`Store`] trait. Both backends hold the same
//! BSON documents, built once by the models; a backend only moves them.
//!
//! A dataset NAME is three parts that must stay in step: the collection NAME
//! (one document per time step or point), the entry `{_id: NAME}` in
//! `metadata`, and the entry `{_id: NAME}` in `coord_index`.

pub mod embedded;
mod key;

use std::path::PathBuf;

use bson::{Bson, Document, RawDocumentBuf};

use crate::error::{Error, Result};

pub use key::sort_key;

/// The collection of one metadata document per dataset.
pub const METADATA: &str = "metadata";
/// The collection of one coordinate list per dataset.
pub const COORD_INDEX: &str = "coord_index";
/// The database name when the URI names none, as in the old tool.
pub const DEFAULT_DB_NAME: &str = "fluxvis";

/// Which documents of a collection to read.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    All,
    /// The document whose `_id` equals this value.
    Id(Bson),
}

/// The operations the commands need, and nothing more.
pub trait Store {
    /// Names of the data collections, sorted; bookkeeping and internal
    /// collections (`metadata`, `coord_index`, names starting with `_`) are
    /// not among them.
    fn collections(&self) -> Result<Vec<String>>;

    /// Number of documents in a collection (0 if it does not exist).
    fn count(&self, collection: &str) -> Result<u64>;

    /// The `_id`s of a bookkeeping collection (`metadata`, `coord_index`), sorted.
    fn entry_ids(&self, bookkeeping: &str) -> Result<Vec<String>>;

    /// The entry `{_id: name}` of a bookkeeping collection.
    fn entry(&self, bookkeeping: &str, name: &str) -> Result<Option<Document>>;

    /// Every document of `collection` matching `filter`, in `_id` order.
    fn scan(
        &self,
        collection: &str,
        filter: &Filter,
        f: &mut dyn FnMut(Document) -> Result<()>,
    ) -> Result<()>;

    /// Start loading into dataset `name`. Nothing written through the
    /// returned [`Load`] is visible until it is committed; dropping it
    /// uncommitted leaves the store as it was.
    fn begin_load<'s>(&'s mut self, name: &str) -> Result<Box<dyn Load + 's>>;

    /// Delete the collection `name` and its two entries, all or nothing.
    fn remove(&mut self, name: &str) -> Result<()>;

    /// Move the collection `from` and its two entries to `to`, all or
    /// nothing; refused when anything named `to` exists.
    fn rename(&mut self, from: &str, to: &str) -> Result<()>;

    /// A description of where the data is, safe to print (no password).
    fn describe(&self) -> String;
}

/// One load into one dataset.
pub trait Load {
    /// Insert documents already encoded as BSON (as models hand them on),
    /// replacing any stored document with the same `_id`.
    fn write_raw(&mut self, docs: Vec<RawDocumentBuf>) -> Result<()>;

    /// Insert documents, replacing any stored document with the same `_id`.
    fn write(&mut self, docs: Vec<Document>) -> Result<()> {
        let raw = docs
            .iter()
            .map(RawDocumentBuf::from_document)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::store("write", format!("cannot encode a document: {e}")))?;
        self.write_raw(raw)
    }

    /// Every document of the dataset as it will be once committed, in `_id` order.
    fn scan(&mut self, f: &mut dyn FnMut(Document) -> Result<()>) -> Result<()>;

    /// Write the `coord_index` and `metadata` entries and make everything visible.
    fn commit(self: Box<Self>, coord_index: Document, metadata: Document) -> Result<()>;
}

/// Where `--db`/`FLUXPY_DB` points.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    /// `mongodb://` or `mongodb+srv://` URI.
    Mongo(String),
    /// A file of the embedded store.
    Embedded(PathBuf),
}

impl Location {
    /// Interpret `--db`; without one, the embedded store's default file.
    pub fn parse(db: Option<&str>) -> Result<Self> {
        match db {
            Some(uri) if uri.starts_with("mongodb://") || uri.starts_with("mongodb+srv://") => {
                Ok(Location::Mongo(uri.to_string()))
            }
            Some(path) if path.trim().is_empty() => Err(Error::Usage(
                "--db is empty: give a file path or a mongodb:// URI".into(),
            )),
            Some(path) => Ok(Location::Embedded(PathBuf::from(path))),
            None => Ok(Location::Embedded(embedded::default_path()?)),
        }
    }
}

/// Open the store `--db`/`FLUXPY_DB` names.
pub fn open(db: Option<&str>) -> Result<Box<dyn Store>> {
    match Location::parse(db)? {
        Location::Embedded(path) => Ok(Box::new(embedded::Embedded::open(&path)?)),
        Location::Mongo(_) => Err(Error::Usage(
            "MongoDB URIs are not supported by this build yet; use an embedded store path".into(),
        )),
    }
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
    if [METADATA, COORD_INDEX, "summary_stats"].contains(&name) {
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
            &"x".repeat(121),
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} should be refused");
        }
        for good in ["casa_2004", "xco2.v2", "Kriged-2009", &"x".repeat(120)] {
            validate_name(good).unwrap();
        }
    }

    #[test]
    fn locations() {
        assert_eq!(
            Location::parse(Some("mongodb://h/db")).unwrap(),
            Location::Mongo("mongodb://h/db".into())
        );
        assert_eq!(
            Location::parse(Some("/tmp/x.db")).unwrap(),
            Location::Embedded("/tmp/x.db".into())
        );
        assert!(Location::parse(Some(" ")).is_err());
    }
}
