//! What identifies one input of a load, and the ingest-log entry that
//! records it: the file's size and SHA-256, the digest of everything that
//! decides its documents, and the entry written with the load.

use std::path::Path;

use bson::{doc, Document};
use sha2::{Digest, Sha256};

use super::Request;
use crate::config::Config;
use crate::doc::ingest_log::{self, id as ingest_id, NAME as INGEST_DATASET_FIELD};
use crate::error::{Error, Result};
use crate::model::ModelKind;
use crate::store::Holder;

/// The ingest-log facts of one file.
pub(crate) struct Input {
    pub size: u64,
    pub sha256: String,
    /// The ingest-log `_id` of this input in its dataset.
    pub id: String,
    /// The digest of the file's content, model and config.
    pub input: String,
}

impl Input {
    /// The file's size and hash, and the ingest-log identity of loading it
    /// with this model and config into `name`.
    pub fn of(name: &str, kind: ModelKind, config: &Config, path: &Path) -> Result<Self> {
        let (size, sha256) = hash_file(path)?;
        let input = input_digest(&sha256, kind, config);
        Ok(Input {
            size,
            sha256,
            id: ingest_id(name, &input),
            input,
        })
    }

    /// The ingest-log entry of this file, loaded as `request` says.
    pub fn entry(
        &self,
        request: &Request,
        path: &Path,
        dates: &[String],
        documents: usize,
        seconds: f64,
    ) -> Document {
        let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let me = Holder::this_process();
        doc! {
            "_id": &self.id,
            INGEST_DATASET_FIELD: request.name,
            ingest_log::PATH: absolute.display().to_string(),
            "size": self.size as i64,
            "sha256": &self.sha256,
            ingest_log::INPUT: &self.input,
            "model": request.model,
            "dates": dates,
            "documents": documents as i64,
            "seconds": (seconds * 1000.0).round() / 1000.0,
            "version": env!("CARGO_PKG_VERSION"),
            ingest_log::LOADED_AT: bson::DateTime::from_chrono(me.started),
            "loaded_by": format!("{}@{}", me.owner, me.host),
            "force": request.force,
        }
    }
}

/// What says whether a file is still the one a load began to read: its
/// device and inode (a file renamed over it is another inode), size,
/// and modification and change times (a write in place moves both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    /// The stamp of the file `path` names now (following links).
    pub fn of(path: &Path) -> Result<Self> {
        use std::os::unix::fs::MetadataExt;
        let md = std::fs::metadata(path).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        Ok(Stamp {
            dev: md.dev(),
            ino: md.ino(),
            size: md.size(),
            mtime: (md.mtime(), md.mtime_nsec()),
            ctime: (md.ctime(), md.ctime_nsec()),
        })
    }

    /// Refuse the load when `path` no longer names the file as it was when
    /// this stamp was taken: the file was written, replaced or removed
    /// while it was read, so that its hash and its values may come from
    /// different bytes (or the values from two versions of it).
    pub fn check_unchanged(&self, path: &Path) -> Result<()> {
        let changed = |what: &str| {
            Err(Error::format(
                path,
                format!(
                    "the file {what} while it was read; nothing was stored (load it again once it is written completely)"
                ),
            ))
        };
        match Stamp::of(path) {
            Err(_) => changed("was removed or replaced"),
            Ok(now) if now.dev != self.dev || now.ino != self.ino => {
                changed("was replaced by another file")
            }
            Ok(now) if now.size != self.size => changed("changed size"),
            Ok(now) if now != *self => changed("was written to"),
            Ok(_) => Ok(()),
        }
    }
}

/// A file's size and SHA-256, read in pieces (never held whole), stopping
/// at a signal between two pieces: from the load's one pass over the file
/// when it shares one (see [`crate::source::scan`]), else read here.
fn hash_file(path: &Path) -> Result<(u64, String)> {
    if let Some(pass) = crate::source::scan::shared(path) {
        return Ok((pass.size, hex::encode(pass.sha256)));
    }
    let pass = crate::source::scan::scan(path)?;
    Ok((pass.size, hex::encode(pass.sha256)))
}

/// What identifies one load's input: the file's content, the model and
/// the config (see [`Config::identity`]).
fn input_digest(sha256: &str, kind: ModelKind, config: &Config) -> String {
    let what = serde_json::json!({
        "sha256": sha256,
        "model": kind.name(),
        "config": config.identity(),
    });
    hex::encode(Sha256::digest(what.to_string().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_hash_is_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("abc");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            hash_file(&p).unwrap(),
            (
                3,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".to_string()
            )
        );
    }
}
