//! A dataset's entry in [`SUMMARY`](super::SUMMARY): its mergeable summary
//! (times, tables of value counts, as `model::Summary::to_stored` writes
//! it) and the digest of its coordinates, so that an append merges into it
//! instead of reading every stored document. While an append's commit is
//! under way on a store without transactions, the entry also names that
//! load ([`PENDING`], [`PATH`]) and keeps what its commit writes
//! ([`FINISH`]).

use bson::{doc, Document};
use sha2::{Digest, Sha256};

use super::MAX_DOCUMENT_BYTES;

/// Which summary entries this version writes and reads.
pub const VERSION: i32 = 1;

/// The field with [`VERSION`].
pub const VERSION_FIELD: &str = "version";
/// The field with the digest of the coordinates ([`coords_digest`]).
pub const COORDS_SHA256: &str = "coords_sha256";
/// The field with the stored summary.
pub const SUMMARY: &str = "summary";
/// The field that names (by its ingest-log `_id`) the load whose commit is
/// under way on a store without transactions: only that load, run again,
/// may go on (see `ingest::summary`).
pub const PENDING: &str = "pending";
/// The path of the file whose load is [`PENDING`], for messages.
pub const PATH: &str = "path";
/// What a pending append's commit writes once its documents are merged,
/// so that any host can finish it (MongoDB).
pub const FINISH: &str = "finish";
/// The largest `_id` of the dataset (MongoDB: where an append merges).
pub const LAST_ID: &str = "last_id";

/// The digest of a dataset's coordinates, kept in its summary entry: the
/// SHA-256 of their doubles, little-endian, x then y.
pub fn coords_digest(coords: &[[f64; 2]]) -> String {
    let mut h = Sha256::new();
    for [x, y] in coords {
        h.update(x.to_le_bytes());
        h.update(y.to_le_bytes());
    }
    hex::encode(h.finalize())
}

/// The entry of `name` with its stored summary `stored`; `None` (no entry)
/// when it would not fit one document.
pub fn entry(name: &str, coords: &[[f64; 2]], stored: Document) -> Option<Document> {
    let entry = doc! {
        "_id": name,
        VERSION_FIELD: VERSION,
        COORDS_SHA256: coords_digest(coords),
        SUMMARY: stored,
    };
    let size = bson::to_vec(&entry).map(|b| b.len()).unwrap_or(usize::MAX);
    (size <= MAX_DOCUMENT_BYTES).then_some(entry)
}

/// The stored summary and coordinate digest of an entry this version
/// wrote, if it is one.
pub fn parts(entry: &Document) -> Option<(&Document, &str)> {
    if entry.get_i32(VERSION_FIELD).ok() != Some(VERSION) {
        return None;
    }
    Some((
        entry.get_document(SUMMARY).ok()?,
        entry.get_str(COORDS_SHA256).ok()?,
    ))
}
