//! One module per command, each a short script over source → model → store.
//!
//! Every module holds its clap `Args` (so its `--help` lives beside the code
//! that honours it) and one `run` function.

pub mod coastlines;
pub mod dataset;
pub mod db;
pub mod export;
pub mod load;
pub mod plot;
pub mod remove;
pub mod rename;

use std::io::{self, Write};

use bson::{Bson, Document};

use crate::error::{Error, Result};
use crate::store::{staging_name, Store, COORD_INDEX, METADATA};

/// A document as one line of relaxed MongoDB Extended JSON
/// (dates as `{"$date": "…Z"}`), keys in stored order.
pub fn extended_json(doc: Document) -> String {
    Bson::Document(doc).into_relaxed_extjson().to_string()
}

/// Write to stdout; a closed pipe (`manage export … | head`) ends quietly.
pub fn stdout_lines(f: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let r = f(&mut out).and_then(|_| out.flush().map_err(write_error));
    match r {
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// `1 document`, `2 documents`: a count and its noun, in the right number.
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

pub fn write_error(e: io::Error) -> Error {
    Error::Io {
        path: "<stdout>".into(),
        source: e,
    }
}

/// Fail unless some part of dataset `name` exists (its collection, an
/// entry in `metadata` or `coord_index`, or what an interrupted load of it
/// left); the error lists what does exist.
pub fn require_dataset(store: &dyn Store, name: &str) -> Result<()> {
    let names = store.collections()?;
    if names.iter().any(|n| n == name)
        || store.entry(METADATA, name)?.is_some()
        || store.entry(COORD_INDEX, name)?.is_some()
        || store.leftovers()?.contains(&staging_name(name))
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
