//! Errors of the loader.
//!
//! Every variant carries what a user needs to find the fault: the file, the
//! variable, the config key or the collection. The `Display` text is the one
//! line `manage` prints on stderr, so it is written as a sentence that says
//! what is wrong and, where it helps, what to do next.

use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A path as every message shows it: control characters escaped (`\n`,
/// `\t`, `\u{1b}`) and bytes that are not UTF-8 as `\xNN`, so that a name
/// cannot break a line, move the cursor, or pass for another; anything else
/// as it is.
pub fn shown(path: &Path) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        shown_bytes(path.as_os_str().as_bytes())
    }
    #[cfg(not(unix))]
    {
        shown_text(&path.to_string_lossy())
    }
}

/// Text as [`shown`] shows a path.
pub fn shown_text(s: &str) -> String {
    shown_bytes(s.as_bytes())
}

fn shown_bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input file cannot be opened or read.
    #[error("{}: {source}", shown(path))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file is not in a format `manage` reads, or it is damaged.
    #[error("{}: {msg}", shown(path))]
    Format { path: PathBuf, msg: String },

    /// The variable (MAT) or dataset (HDF5) is missing or cannot be used.
    #[error("{}: variable '{}' {msg}", shown(path), shown_text(var))]
    Variable {
        path: PathBuf,
        var: String,
        msg: String,
    },

    /// A configuration key is missing, of the wrong type or out of range.
    #[error("{origin}: config key '{key}' {msg}")]
    Config {
        origin: String,
        key: String,
        msg: String,
    },

    /// A configuration file or `-o` string that cannot be parsed at all.
    #[error("{origin}: {msg}")]
    ConfigSyntax { origin: String, msg: String },

    /// A collection name `-n`/`-r` that the store refuses.
    #[error("collection name '{name}' {msg}")]
    Name { name: String, msg: String },

    /// An operation on a collection that cannot be done (unknown, exists, mismatch).
    #[error("collection '{collection}': {msg}")]
    Collection { collection: String, msg: String },

    /// The store itself failed (SQLite or MongoDB).
    #[error("store {what}: {msg}")]
    Store { what: String, msg: String },

    /// Anything else the user asked for that makes no sense.
    #[error("{0}")]
    Usage(String),

    /// SIGINT or SIGTERM came while the command worked (see
    /// [`crate::interrupt`]).
    #[error("interrupted by {}: the unfinished work was undone and its locks released", signal_name(*signal))]
    Interrupted { signal: i32 },
}

/// The name of a signal that [`crate::interrupt`] catches.
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        signal_hook::consts::SIGINT => "SIGINT",
        signal_hook::consts::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

impl Error {
    pub fn format(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            msg: msg.into(),
        }
    }

    pub fn variable(path: impl Into<PathBuf>, var: &str, msg: impl Into<String>) -> Self {
        Error::Variable {
            path: path.into(),
            var: var.to_string(),
            msg: msg.into(),
        }
    }

    pub fn config(origin: impl Into<String>, key: &str, msg: impl Into<String>) -> Self {
        Error::Config {
            origin: origin.into(),
            key: key.to_string(),
            msg: msg.into(),
        }
    }

    pub fn collection(collection: &str, msg: impl Into<String>) -> Self {
        Error::Collection {
            collection: collection.to_string(),
            msg: msg.into(),
        }
    }

    pub fn store(what: impl Into<String>, msg: impl ToString) -> Self {
        Error::Store {
            what: what.into(),
            msg: msg.to_string(),
        }
    }
}
