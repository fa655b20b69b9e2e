//! The JSON config of a data file, `-o` overrides, and per-model defaults.
//!
//! A config is a stack of layers: the model's defaults, then the config file
//! (`data.mat` → `data.json`, or `-c PATH`), then `-o "k=v;k=v"`. A key is
//! looked up from the top, and an error about a key names the layer it came
//! from, so a user knows whether to fix the file or the command line.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Keys whose values are plain strings even when they look like JSON
/// (`-o timestamp=2004-06-30`, `-o title=2004`).
const STRING_KEYS: &[&str] = &["title", "timestamp", "var_name"];

/// `data.mat` → `data.json`.
pub fn sidecar_path(data: &Path) -> PathBuf {
    data.with_extension("json")
}

/// One layer of configuration and where it came from.
#[derive(Debug, Clone)]
struct Layer {
    origin: String,
    map: Map<String, Value>,
}

/// The layered configuration of one load.
#[derive(Debug, Clone, Default)]
pub struct Config {
    layers: Vec<Layer>,
    subject: String,
    /// The data file's name, which `regex` may take the timestamp from.
    file_name: Option<String>,
}

impl Config {
    pub fn new() -> Self {
        Self::default()
    }

    /// Name the data file this config is for, so that an error about a
    /// key that is missing everywhere names the file it was needed for.
    pub fn for_file(mut self, data: &Path) -> Self {
        self.subject = crate::error::shown(data).to_string();
        self.file_name = data.file_name().map(|n| n.to_string_lossy().into_owned());
        self
    }

    /// Where a missing key was looked for, for error messages.
    pub fn subject(&self) -> String {
        if self.subject.is_empty() {
            "config".into()
        } else {
            self.subject.clone()
        }
    }

    /// Everything of this config that decides a load's documents, without
    /// where each layer came from: every layer's keys and values, and the
    /// data file's name (which `regex` may read the time from). Two loads
    /// of equal files with equal identities write equal documents.
    pub fn identity(&self) -> Value {
        let layers: Vec<Value> = self
            .layers
            .iter()
            .map(|l| Value::Object(l.map.clone()))
            .collect();
        serde_json::json!({ "file_name": self.file_name, "layers": layers })
    }

    /// Push a layer on top of the ones already there.
    pub fn push(&mut self, origin: impl Into<String>, map: Map<String, Value>) {
        self.layers.push(Layer {
            origin: origin.into(),
            map,
        });
    }

    /// Read a JSON config file and push it as a layer.
    pub fn push_file(&mut self, path: &Path) -> Result<()> {
        let map = read_config_file(path)?;
        self.push(crate::error::shown(path).to_string(), map);
        Ok(())
    }

    /// The topmost value of `key` (or of its alias) and the layer it came from.
    pub fn get(&self, key: &str) -> Option<(&Value, &str)> {
        self.layers.iter().rev().find_map(|l| {
            l.map
                .get(key)
                .map(|v| (v, l.origin.as_str()))
                .filter(|(v, _)| !v.is_null())
        })
    }

    /// The first key of `keys` found, searching layers from the top: so an
    /// override of `step` beats a file's `steps`.
    pub fn get_any(&self, keys: &[&'static str]) -> Option<(&'static str, &Value, &str)> {
        self.layers.iter().rev().find_map(|l| {
            keys.iter().find_map(|k| {
                l.map
                    .get(*k)
                    .filter(|v| !v.is_null())
                    .map(|v| (*k, v, l.origin.as_str()))
            })
        })
    }

    /// Keys no model understands, with their values (topmost layer wins).
    pub fn unknown_keys(&self) -> Map<String, Value> {
        let mut out = Map::new();
        for l in &self.layers {
            for (k, v) in &l.map {
                if !crate::model::is_known_key(k) && k != "map" {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        out
    }

    pub fn string(&self, key: &str) -> Result<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some((Value::String(s), _)) => Ok(Some(s.clone())),
            Some((Value::Number(n), _)) => Ok(Some(n.to_string())),
            Some((_, origin)) => Err(Error::config(origin, key, "must be a string")),
        }
    }

    pub fn string_list(&self, key: &str) -> Result<Option<Vec<String>>> {
        match self.get(key) {
            None => Ok(None),
            Some((Value::Array(a), origin)) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(Error::config(origin, key, "must be a list of strings")),
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some((_, origin)) => Err(Error::config(origin, key, "must be a list of strings")),
        }
    }

    /// A number of seconds given as a number or a one-element array, under
    /// either of two names (`step`/`steps`, `span`/`spans`).
    pub fn seconds(&self, keys: &[&'static str]) -> Result<Option<f64>> {
        let Some((key, v, origin)) = self.get_any(keys) else {
            return Ok(None);
        };
        let bad = || {
            Error::config(
                origin,
                key,
                "must be a number of seconds or a one-element array of it, e.g. [10800]",
            )
        };
        let n = match v {
            Value::Number(n) => n.as_f64(),
            Value::Array(a) if a.len() == 1 => a[0].as_f64(),
            _ => None,
        }
        .ok_or_else(bad)?;
        if !(n.is_finite() && n > 0.0) {
            return Err(Error::config(
                origin,
                key,
                "must be a positive number of seconds",
            ));
        }
        // The store keeps times to the millisecond (BSON dates): a step
        // between two milliseconds would give times that are not the ones
        // asked for, or that collide.
        let ms = n * 1000.0;
        if (ms - ms.round()).abs() > 1e-6 * ms.max(1.0) || ms.round() < 1.0 {
            return Err(Error::config(
                origin,
                key,
                format!(
                    "{n} s is not a whole number of milliseconds, the resolution of stored times"
                ),
            ));
        }
        Ok(Some(ms.round() / 1000.0))
    }

    pub fn unsigned(&self, key: &str, max: u64) -> Result<Option<u32>> {
        match self.get(key) {
            None => Ok(None),
            // 2.0 is the whole number 2, as JSON writers and Python's
            // json module may write it.
            Some((v, origin)) => match v.as_u64().or_else(|| {
                v.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= max as f64)
                    .map(|f| f as u64)
            }) {
                Some(n) if n <= max => Ok(Some(n as u32)),
                _ => Err(Error::config(
                    origin,
                    key,
                    format!("must be a whole number from 0 to {max}"),
                )),
            },
        }
    }

    /// An object value (`gridres`, `units`, …), returned as is.
    pub fn object(&self, keys: &[&'static str]) -> Result<Option<Map<String, Value>>> {
        match self.get_any(keys) {
            None => Ok(None),
            Some((_, Value::Object(m), _)) => Ok(Some(m.clone())),
            Some((key, _, origin)) => Err(Error::config(origin, key, "must be a JSON object")),
        }
    }

    /// Any value, for keys that are only carried into the metadata.
    pub fn value(&self, key: &str) -> Option<Value> {
        self.get(key).map(|(v, _)| v.clone())
    }

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
        if crate::model::date_after(t, 0.0).is_none() {
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

    /// The origin of a key, for error messages about its content.
    pub fn origin(&self, keys: &[&'static str]) -> String {
        self.get_any(keys)
            .map(|(_, _, o)| o.to_string())
            .unwrap_or_else(|| self.subject())
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

/// Read a config file; it must hold one JSON object.
pub fn read_config_file(path: &Path) -> Result<Map<String, Value>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    // Some editors on Windows start UTF-8 files with a byte order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let depth = nesting_depth(text);
    if depth > MAX_NESTING {
        return Err(Error::ConfigSyntax {
            origin: crate::error::shown(path).to_string(),
            msg: format!("nests values {depth} levels deep; at most {MAX_NESTING} are read"),
        });
    }
    match serde_json::from_str::<Value>(text) {
        // Keys starting with "//" are comments (JSON has no other kind).
        Ok(Value::Object(m)) => Ok(m
            .into_iter()
            .filter(|(k, _)| !k.starts_with("//"))
            .collect()),
        Ok(_) => Err(Error::ConfigSyntax {
            origin: crate::error::shown(path).to_string(),
            msg: "the config must be one JSON object, e.g. {\"timestamp\": \"2004-06-30\"}".into(),
        }),
        Err(e) => Err(Error::ConfigSyntax {
            origin: crate::error::shown(path).to_string(),
            msg: format!("not valid JSON ({e})"),
        }),
    }
}

/// Parse `-o "k=v;k2=v2"`. Values are JSON, or the Python literals the old
/// tool took (`{'units':'degrees','x':1.0}`, `True`, `(1, 2)`), or else plain
/// strings. `title`, `timestamp` and `var_name` are always plain strings.
pub fn parse_overrides(s: &str) -> Result<Map<String, Value>> {
    let syntax = |msg: String| Error::ConfigSyntax {
        origin: "-o".into(),
        msg,
    };
    let mut out = Map::new();
    for part in split_top_level(s, ';') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((k, v)) = part.split_once('=') else {
            return Err(syntax(format!(
                "'{part}' is not of the form key=value (separate pairs with ';')"
            )));
        };
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() {
            return Err(syntax(format!("'{part}' has an empty key")));
        }
        let value = if STRING_KEYS.contains(&k) {
            Value::String(unquote(v).to_string())
        } else {
            let depth = nesting_depth(v);
            if depth > MAX_NESTING {
                return Err(syntax(format!(
                    "the value of '{k}' is nested {depth} levels deep; at most {MAX_NESTING} are read"
                )));
            }
            parse_value(v)
        };
        out.insert(k.to_string(), value);
    }
    if out.is_empty() {
        return Err(syntax(
            "no key=value pair given, e.g. -o \"timestamp=2004-06-30;title=My data\"".into(),
        ));
    }
    Ok(out)
}

/// How deeply a value may nest lists, tuples and dicts (a config file's
/// JSON is bounded the same way by its reader, at 128): config values are a
/// few levels deep, and a bound keeps the readers' recursion off the end of
/// the stack.
const MAX_NESTING: usize = 64;

/// The deepest nesting of `[`, `(` and `{` in `v`, outside quoted strings.
fn nesting_depth(v: &str) -> usize {
    let (mut depth, mut deepest, mut quote, mut escaped) = (0usize, 0, None, false);
    for c in v.chars() {
        match quote {
            Some(_) if escaped => escaped = false,
            Some(_) if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\'' => quote = Some(c),
                '[' | '(' | '{' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                ']' | ')' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
    }
    deepest
}

/// Strip one pair of matching quotes, so `-o "title='My data'"` means `My data`.
fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    v
}

/// A value from the command line: JSON first, then a Python literal, then the
/// text itself as a string.
fn parse_value(v: &str) -> Value {
    if let Ok(j) = serde_json::from_str::<Value>(v) {
        return j;
    }
    if let Some(j) = pyliteral::parse(v) {
        return j;
    }
    Value::String(v.to_string())
}

/// Split on `sep` where it is not inside quotes or brackets.
fn split_top_level(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '[' | '{' | '(' => depth += 1,
            ']' | '}' | ')' => depth -= 1,
            c if c == sep && depth <= 0 => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
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

/// A reader for the Python literals the old tool's `-o` accepted: strings in
/// single or double quotes, numbers, `True`/`False`/`None`, lists, tuples and
/// dicts. It turns them into the equivalent JSON.
mod pyliteral {
    use serde_json::{Map, Number, Value};

    pub fn parse(s: &str) -> Option<Value> {
        let mut p = Parser {
            s: s.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        (p.i == p.s.len()).then_some(v)
    }

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Parser<'_> {
        fn ws(&mut self) {
            while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
                self.i += 1;
            }
        }

        fn peek(&mut self) -> Option<u8> {
            self.ws();
            self.s.get(self.i).copied()
        }

        fn eat(&mut self, c: u8) -> bool {
            if self.peek() == Some(c) {
                self.i += 1;
                true
            } else {
                false
            }
        }

        fn value(&mut self) -> Option<Value> {
            match self.peek()? {
                b'\'' | b'"' => self.string().map(Value::String),
                b'[' => self.seq(b']').map(Value::Array),
                b'(' => self.seq(b')').map(Value::Array),
                b'{' => self.dict(),
                _ => self.word(),
            }
        }

        fn string(&mut self) -> Option<String> {
            let q = self.s[self.i];
            self.i += 1;
            let mut out = Vec::new();
            while let Some(&c) = self.s.get(self.i) {
                self.i += 1;
                if c == q {
                    return String::from_utf8(out).ok();
                }
                if c == b'\\' {
                    let e = *self.s.get(self.i)?;
                    self.i += 1;
                    out.push(match e {
                        b'n' => b'\n',
                        b't' => b'\t',
                        other => other,
                    });
                } else {
                    out.push(c);
                }
            }
            None
        }

        fn seq(&mut self, close: u8) -> Option<Vec<Value>> {
            self.i += 1;
            let mut items = Vec::new();
            loop {
                if self.eat(close) {
                    return Some(items);
                }
                items.push(self.value()?);
                if !self.eat(b',') {
                    return self.eat(close).then_some(items);
                }
            }
        }

        fn dict(&mut self) -> Option<Value> {
            self.i += 1;
            let mut m = Map::new();
            loop {
                if self.eat(b'}') {
                    return Some(Value::Object(m));
                }
                let k = match self.value()? {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                if !self.eat(b':') {
                    return None;
                }
                let v = self.value()?;
                m.insert(k, v);
                if !self.eat(b',') {
                    return self.eat(b'}').then_some(Value::Object(m));
                }
            }
        }

        fn word(&mut self) -> Option<Value> {
            let start = self.i;
            while let Some(&c) = self.s.get(self.i) {
                if c == b',' || c == b':' || c == b']' || c == b')' || c == b'}' {
                    break;
                }
                self.i += 1;
            }
            let w = std::str::from_utf8(&self.s[start..self.i]).ok()?.trim();
            match w {
                "True" => Some(Value::Bool(true)),
                "False" => Some(Value::Bool(false)),
                "None" => Some(Value::Null),
                _ => {
                    if let Ok(n) = w.parse::<i64>() {
                        return Some(Value::Number(n.into()));
                    }
                    let f: f64 = w.parse().ok()?;
                    Number::from_f64(f).map(Value::Number)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn overrides_take_json_values() {
        let m =
            parse_overrides(r#"steps=[3600];gridres={"units":"degrees","x":0.5,"y":0.5}"#).unwrap();
        assert_eq!(m["steps"], json!([3600]));
        assert_eq!(
            m["gridres"],
            json!({"units": "degrees", "x": 0.5, "y": 0.5})
        );
    }

    #[test]
    fn overrides_take_python_literals() {
        let m = parse_overrides(
            "gridres={'units':'degrees','x':1.0,'y':1.0};flag=True;t=(1, 2);n=None",
        )
        .unwrap();
        assert_eq!(
            m["gridres"],
            json!({"units": "degrees", "x": 1.0, "y": 1.0})
        );
        assert_eq!(m["flag"], json!(true));
        assert_eq!(m["t"], json!([1, 2]));
        assert_eq!(m["n"], Value::Null);
    }

    #[test]
    fn string_keys_stay_strings() {
        let m =
            parse_overrides("title=2004;timestamp=2004-06-30T00:00:00;var_name='casa'").unwrap();
        assert_eq!(m["title"], json!("2004"));
        assert_eq!(m["timestamp"], json!("2004-06-30T00:00:00"));
        assert_eq!(m["var_name"], json!("casa"));
    }

    #[test]
    fn unparseable_values_become_strings_and_separators_in_quotes_are_kept() {
        let m = parse_overrides("units={'values': 'mol;m-2'};label=hello world").unwrap();
        assert_eq!(m["units"], json!({"values": "mol;m-2"}));
        assert_eq!(m["label"], json!("hello world"));
    }

    #[test]
    fn malformed_overrides_are_refused() {
        assert!(parse_overrides("timestamp").is_err());
        assert!(parse_overrides("=3").is_err());
        assert!(parse_overrides(";;").is_err());
    }

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
    fn layers_resolve_from_the_top_and_name_their_origin() {
        let mut c = Config::new();
        c.push(
            "defaults",
            json!({"steps": [10800], "precision": 2})
                .as_object()
                .unwrap()
                .clone(),
        );
        c.push(
            "data.json",
            json!({"steps": ["three hours"]})
                .as_object()
                .unwrap()
                .clone(),
        );
        let err = c.seconds(&["step", "steps"]).unwrap_err().to_string();
        assert!(err.starts_with("data.json: config key 'steps'"), "{err}");
        c.push("-o", parse_overrides("step=3600").unwrap());
        assert_eq!(c.seconds(&["step", "steps"]).unwrap(), Some(3600.0));
        assert_eq!(c.unsigned("precision", 15).unwrap(), Some(2));
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
