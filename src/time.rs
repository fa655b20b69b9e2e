//! Stored dates: the range a stored date may take and its ISO form. A leaf
//! that config (parsing times), the models (writing them) and the commands
//! (printing them) share.

use chrono::{DateTime, Utc};

/// The first and last instants a stored date may have (milliseconds since
/// 1970): years 1 to 9999, what MongoDB's Extended JSON, ISO 8601 readers
/// and the web API can all read back.
pub const FIRST_DATE_MS: i64 = -62_135_596_800_000;
pub const LAST_DATE_MS: i64 = 253_402_300_799_999;

/// `start` plus `seconds`, to the millisecond, when that is in years 1 to
/// 9999; `None` otherwise (never an overflow).
pub fn date_after(start: DateTime<Utc>, seconds: f64) -> Option<bson::DateTime> {
    let ms = start.timestamp_millis() as f64 + (seconds * 1000.0).round();
    (ms.is_finite() && ms >= FIRST_DATE_MS as f64 && ms <= LAST_DATE_MS as f64)
        .then(|| bson::DateTime::from_millis(ms as i64))
}

/// A BSON date from a chrono time.
pub fn bson_date(t: DateTime<Utc>) -> bson::DateTime {
    bson::DateTime::from_millis(t.timestamp_millis())
}

/// The metadata form of a time: `YYYY-MM-DDTHH:MM:SS`.
/// A time with milliseconds (the store's resolution) carries them:
/// `YYYY-MM-DDTHH:MM:SS.mmm`, so that every listed date names its document.
pub fn iso_date(ms: i64) -> String {
    let format = if ms.rem_euclid(1000) == 0 {
        "%Y-%m-%dT%H:%M:%S"
    } else {
        "%Y-%m-%dT%H:%M:%S%.3f"
    };
    bson::DateTime::from_millis(ms)
        .to_chrono()
        .format(format)
        .to_string()
}
