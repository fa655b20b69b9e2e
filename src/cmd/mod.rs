//! One module per command, each a short script over source → model → store.
//!
//! Every module holds its clap `Args` (so its `--help` lives beside the code
//! that honours it) and one `run` function.

pub mod args;
pub mod copy;
pub mod dataset;
pub mod db;
pub mod export;
pub mod info;
pub mod load;
pub mod netcdf_out;
pub mod plot;
pub mod remove;
pub mod rename;

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use bson::{Bson, Document};

use crate::doc::{COORD_INDEX, METADATA};
use crate::error::{Error, Result};
use crate::store::{Datasets, Store};

/// A document as one line of relaxed MongoDB Extended JSON
/// (dates as `{"$date": "…Z"}`), keys in stored order.
pub fn extended_json(doc: Document) -> String {
    Bson::Document(doc).into_relaxed_extjson().to_string()
}

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Record that file descriptor 1 was closed when the process started
/// (the Rust runtime then opens `/dev/null` there, where every write
/// succeeds): commands that write to stdout fail instead of writing
/// nowhere.
pub fn stdout_closed_at_start(closed: bool) {
    STDOUT_CLOSED.store(closed, Ordering::SeqCst);
}

/// Counts what the writer under it took.
struct Counting<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Write to stdout. A pipe closed by its reader once it has read what it
/// wanted (`manage export … | head`) ends quietly; a stdout closed before
/// anything could be written is an error, as nothing reached anyone.
pub fn stdout_lines(f: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let closed = || Error::Usage("stdout is closed: nothing was written".into());
    if STDOUT_CLOSED.load(Ordering::SeqCst) {
        return Err(closed());
    }
    let stdout = io::stdout();
    let mut counted = Counting {
        inner: stdout.lock(),
        written: 0,
    };
    let mut out = io::BufWriter::with_capacity(1 << 16, &mut counted);
    let r = f(&mut out).and_then(|_| out.flush().map_err(write_error));
    drop(out);
    match r {
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::BrokenPipe => {
            if counted.written == 0 {
                Err(closed())
            } else {
                Ok(())
            }
        }
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
        || store
            .leftovers()?
            .iter()
            .any(|l| crate::store::staged_dataset(l) == Some(name))
        || store.unfinished()?.iter().any(|u| u.key() == name)
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
