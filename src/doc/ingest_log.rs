//! An entry of the ingest log (`_ingest_log`): one per file loaded into a
//! dataset, written with the load it records. Its `_id` is
//! [`id`]`(name, input)`, so that loading the same input again replaces
//! the entry.

use bson::Document;

/// The collection of the ingest log.
pub const COLLECTION: &str = "_ingest_log";

/// The field that names the entry's dataset.
pub const NAME: &str = "name";
/// The file's absolute path.
pub const PATH: &str = "path";
/// The digest of the file's content and of everything else that decides
/// its documents.
pub const INPUT: &str = "input";
/// When the load started.
pub const LOADED_AT: &str = "loaded_at";

/// The ingest-log `_id` of loading input `input` (a digest of the file's
/// content and of everything else that decides its documents) into `name`:
/// loading the same input again replaces the entry, never duplicates it.
pub fn id(name: &str, input: &str) -> String {
    format!("{name}/{input}")
}

/// The input digest of an ingest-log entry of dataset `name`.
pub fn input_of(entry: &Document, name: &str) -> String {
    match entry.get_str(INPUT) {
        Ok(i) => i.to_string(),
        Err(_) => entry
            .get_str("_id")
            .unwrap_or_default()
            .strip_prefix(&format!("{name}/"))
            .unwrap_or_default()
            .to_string(),
    }
}
