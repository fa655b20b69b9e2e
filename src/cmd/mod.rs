//! One module per command, each a short script over source → model → store.
//!
//! Every module holds its clap `Args` (so its `--help` lives beside the code
//! that honours it) and one `run` function.

pub mod args;
pub mod copy;
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

use crate::error::{Error, Result};

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

pub fn write_error(e: io::Error) -> Error {
    Error::Io {
        path: "<stdout>".into(),
        source: e,
    }
}
