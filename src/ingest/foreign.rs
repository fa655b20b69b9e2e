//! What a load does with a dataset another tool wrote (see
//! [`crate::store::foreign`]): refuse to add points to it, naming what
//! differs, and keep its metadata where `-o` does not set a key.

use bson::{Bson, Document};

use crate::error::Error;
use crate::store::foreign::Foreign;

/// The time of a point document, in milliseconds.
fn point_time(d: &Document) -> Option<i64> {
    d.get_datetime("timestamp")
        .ok()
        .map(|t| t.timestamp_millis())
}

fn point_coordinates(d: &Document) -> Option<Bson> {
    d.get("coordinates").cloned()
}

/// Refuse to add the file's point documents `docs` (its first batch) to a
/// point dataset another tool wrote, naming what differs: the `_id`
/// scheme, and the shift between the stored time of an observation and
/// the file's (one day, for the old tool), measured on the stored first
/// document when the file has its point.
pub(crate) fn refuse_points(name: &str, path: &str, foreign: &Foreign, docs: &[Document]) -> Error {
    let ids = if foreign.object_ids {
        "its documents have ObjectId _ids (manage derives each _id from its row, so none would replace one)"
    } else {
        "it has no summary entry and its metadata has the old manage.py's shape"
    };
    let shift = foreign.first.as_ref().and_then(|stored| {
        let at = point_coordinates(stored)?;
        let file = docs.iter().find(|d| point_coordinates(d).as_ref() == Some(&at))?;
        let d = point_time(stored)? - point_time(file)?;
        Some(if d == 0 {
            "; the file's first stored observation has the same time there".to_string()
        } else {
            let days = d as f64 / 86_400_000.0;
            format!(
                "; its observations are stored {} day{} {} the file's (the old tool's off-by-one day), so each would be stored twice, on two days",
                days.abs(),
                if days.abs() == 1.0 { "" } else { "s" },
                if d > 0 { "after" } else { "before" }
            )
        })
    });
    Error::collection(
        name,
        format!(
            "it holds point observations written by another tool (the old manage.py): {ids}{}; loading {path} would store observations a second time; nothing was written. `manage load --replace` rewrites '{name}' from the file in one step (see docs/mongodb.md)",
            shift.unwrap_or_default()
        ),
    )
}

/// Whether `-o` sets config key `key`.
pub(crate) fn overridden(options: Option<&str>, key: &str) -> bool {
    options
        .and_then(|o| crate::config::parse_overrides(o).ok())
        .is_some_and(|m| m.contains_key(key))
}
