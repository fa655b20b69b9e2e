//! Times: the `timestamp` key, the date a `regex` reads from the data
//! file's name, and the ISO 8601 and `strftime` forms they are written in.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::Value;

use super::Config;
use crate::error::{Error, Result};

impl Config {
    /// The time of the first step: the `timestamp` key when any layer gives
    /// one, else the date the `regex` key reads from the data file's name,
    /// else `None`. A timestamp that is given but cannot be read is an error.
    pub fn timestamp(&self) -> Result<Option<DateTime<Utc>>> {
        let t = if let Some(text) = self.string("timestamp")? {
            parse_timestamp(&text).ok_or_else(|| {
                Error::config(
                    self.origin(&["timestamp"]),
                    "timestamp",
                    format!("'{text}' is not a valid ISO 8601 time such as 2004-06-30T03:00:00"),
                )
            })?
        } else {
            match (self.file_regex()?, &self.file_name) {
                (Some(r), Some(name)) => match r.timestamp(name)? {
                    Some(t) => t,
                    None => return Ok(None),
                },
                _ => return Ok(None),
            }
        };
        use chrono::Timelike;
        if t.nanosecond() % 1_000_000 != 0 {
            return Err(Error::config(
                self.origin(&["timestamp"]),
                "timestamp",
                format!(
                    "{} has a fraction of a millisecond; stored times are whole milliseconds",
                    t.format("%Y-%m-%dT%H:%M:%S%.f")
                ),
            ));
        }
        if crate::time::date_after(t, 0.0).is_none() {
            return Err(Error::config(
                self.origin(&["timestamp"]),
                "timestamp",
                format!(
                    "{} is outside the years 1 to 9999 that stored dates can hold",
                    t.format("%Y-%m-%dT%H:%M:%S")
                ),
            ));
        }
        Ok(Some(t))
    }

    /// [`Config::timestamp`], required: its absence is an error that says
    /// where it was looked for.
    pub fn require_timestamp(&self) -> Result<DateTime<Utc>> {
        if let Some(t) = self.timestamp()? {
            return Ok(t);
        }
        let how = "give it in the config file or with -o timestamp=2004-06-30T00:00:00";
        let msg = match (self.file_regex()?, &self.file_name) {
            (Some(r), Some(name)) => format!(
                "is missing and the file name '{name}' does not match the regex '{}': {how}",
                r.pattern.as_str()
            ),
            _ => format!("is missing: {how}"),
        };
        Err(Error::config(self.subject(), "timestamp", msg))
    }

    /// The `regex` key: a pattern, or `{"regex": pattern, "map": {"timestamp":
    /// format}}`; a top-level `map` key is read too, as the old tool's
    /// configs wrote it.
    fn file_regex(&self) -> Result<Option<FileRegex>> {
        let Some((value, origin)) = self.get("regex") else {
            return Ok(None);
        };
        let bad = |msg: String| Error::config(origin, "regex", msg);
        let (pattern, map) = match value {
            Value::String(p) => (p.clone(), self.value("map")),
            Value::Object(o) => match o.get("regex") {
                Some(Value::String(p)) => (p.clone(), o.get("map").cloned()),
                _ => {
                    return Err(bad(
                        "must be a pattern or an object with a \"regex\" pattern, e.g. {\"regex\": \"^Kriged_(\\\\d{8})_\", \"map\": {\"timestamp\": \"%Y%m%d\"}}".into(),
                    ))
                }
            },
            _ => return Err(bad("must be a string or an object".into())),
        };
        let format = match map {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => match m.get("timestamp") {
                None => None,
                Some(Value::String(f)) => Some(f.clone()),
                Some(_) => {
                    return Err(bad(
                        "'map.timestamp' must be a date format such as \"%Y%m%d\"".into(),
                    ))
                }
            },
            Some(_) => {
                return Err(bad(
                    "'map' must be an object such as {\"timestamp\": \"%Y%m%d\"}".into(),
                ))
            }
        };
        let pattern = regex::Regex::new(&pattern).map_err(|e| {
            bad(format!(
                "'{pattern}' is not a valid regular expression ({e})"
            ))
        })?;
        if pattern.captures_len() < 2 {
            return Err(bad(format!(
                "'{}' has no capture group for the date, e.g. ^Kriged_(\\d{{8}})_",
                pattern.as_str()
            )));
        }
        Ok(Some(FileRegex {
            pattern,
            format,
            origin: origin.to_string(),
        }))
    }
}

/// A pattern that reads the time of a file from its name.
struct FileRegex {
    pattern: regex::Regex,
    /// The `strftime` format of the captured text; `None` reads an ISO 8601
    /// time or `YYYYMMDD`.
    format: Option<String>,
    origin: String,
}

impl FileRegex {
    /// The time in `name`: the group named `timestamp`, else the first group.
    /// `None` when the name does not match; an error when it matches but the
    /// captured text is not a time.
    fn timestamp(&self, name: &str) -> Result<Option<DateTime<Utc>>> {
        let Some(caps) = self.pattern.captures(name) else {
            return Ok(None);
        };
        let Some(text) = caps.name("timestamp").or_else(|| caps.get(1)) else {
            return Ok(None);
        };
        let text = text.as_str();
        let time = match &self.format {
            Some(f) => parse_with_format(text, f),
            None => parse_timestamp(text).or_else(|| parse_with_format(text, "%Y%m%d")),
        };
        time.map(Some).ok_or_else(|| {
            Error::config(
                &self.origin,
                "regex",
                format!(
                    "reads '{text}' from the file name '{name}', which is not a time{}",
                    self.format
                        .as_ref()
                        .map(|f| format!(" in the format '{f}'"))
                        .unwrap_or_default()
                ),
            )
        })
    }
}

/// A time in a `strftime` format, with or without a time of day (UTC).
fn parse_with_format(text: &str, format: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(text, format)
        .map(|t| t.and_utc())
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(text, format)
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })
}

/// Parse an ISO 8601 time: a date, a date and time (`T` or space), with or
/// without seconds, fractions, `Z` or an offset. Times without an offset are
/// UTC. Returns `None` for anything else, including impossible dates.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Some(t.with_timezone(&Utc));
        }
    }
    let naive = s.strip_suffix('Z').unwrap_or(s);
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(naive, f) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(naive, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    #[test]
    fn timestamps_in_every_documented_form() {
        let t = |s| parse_timestamp(s).map(|t| t.to_rfc3339());
        let midnight = Some("2004-06-30T00:00:00+00:00".to_string());
        assert_eq!(t("2004-06-30"), midnight);
        assert_eq!(t("2004-06-30T00:00:00"), midnight);
        assert_eq!(t("2004-06-30T00:00:00Z"), midnight);
        assert_eq!(t("2004-06-30 00:00"), midnight);
        assert_eq!(t("2004-06-30T02:00:00+02:00"), midnight);
        assert_eq!(t("2004-06-29T19:00:00-0500"), midnight);
        assert_eq!(
            t("2004-06-30T03:00:00.5Z"),
            Some("2004-06-30T03:00:00.500+00:00".to_string())
        );
        assert_eq!(t("2004-13-45"), None);
        assert_eq!(t("2004-02-30"), None);
        assert_eq!(t("yesterday"), None);
    }

    #[test]
    fn timestamps_from_file_names_in_every_regex_form() {
        let at = |file: &str, layer: Value| {
            let mut c = Config::new().for_file(Path::new(file));
            c.push("data.json", layer.as_object().unwrap().clone());
            c.timestamp().map(|t| t.map(|t| t.to_rfc3339()))
        };
        let june = Some("2009-06-15T00:00:00+00:00".to_string());
        // A bare pattern: the first group, as YYYYMMDD.
        let bare = json!({"regex": "^Kriged_(\\d{8})_"});
        assert_eq!(at("/a/Kriged_20090615_x.mat", bare.clone()).unwrap(), june);
        assert_eq!(at("/a/other.mat", bare).unwrap(), None);
        // The old tool's form, nested or with a top-level map.
        let nested =
            json!({"regex": {"regex": "^(?P<timestamp>\\d{6})", "map": {"timestamp": "%y%m%d"}}});
        assert_eq!(at("/a/090615.mat", nested).unwrap(), june);
        let flat = json!({"regex": "^K_(?P<timestamp>\\d{8})_.*$", "map": {"timestamp": "%Y%m%d"}});
        assert_eq!(at("/a/K_20090615_x.mat", flat).unwrap(), june);
        // An explicit timestamp wins; bad patterns and dates are errors.
        let both = json!({"regex": "^K_(\\d{8})_", "timestamp": "2010-01-01"});
        assert_eq!(
            at("/a/K_20090615_x.mat", both).unwrap().unwrap(),
            "2010-01-01T00:00:00+00:00"
        );
        let e = at("/a/K_1.mat", json!({"regex": "^K_("})).unwrap_err();
        assert!(
            e.to_string().starts_with("data.json: config key 'regex'"),
            "{e}"
        );
        let e = at("/a/K_1.mat", json!({"regex": "^K_\\d"})).unwrap_err();
        assert!(e.to_string().contains("no capture group"), "{e}");
        let e = at("/a/K_20091345_x.mat", json!({"regex": "^K_(\\d{8})_"})).unwrap_err();
        assert!(e.to_string().contains("'20091345'"), "{e}");
    }
}
