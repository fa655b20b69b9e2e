//! The JSON config of a data file, `-o` overrides, and per-model defaults.
//!
//! A config is a stack of layers: the model's defaults, then the config file
//! (`data.mat` → `data.json`, or `-c PATH`), then `-o "k=v;k=v"`. A key is
//! looked up from the top, and an error about a key names the layer it came
//! from, so a user knows whether to fix the file or the command line.

mod overrides;
mod pylit;
mod time;

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{Error, Result};
pub use overrides::parse_overrides;
pub use time::parse_timestamp;

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

    /// Whether `key` was given by the user (a config file or `-o`), not
    /// taken from the model's defaults.
    pub fn is_given(&self, key: &str) -> bool {
        self.get(key)
            .is_some_and(|(_, origin)| origin != "defaults")
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

    /// Keys that `known` does not know, with their values (topmost layer
    /// wins). `map`, the old tool's key for the matrices of a file, is
    /// always known.
    pub fn unknown_keys(&self, known: impl Fn(&str) -> bool) -> Map<String, Value> {
        let mut out = Map::new();
        for l in &self.layers {
            for (k, v) in &l.map {
                if !known(k) && k != "map" {
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

    /// The origin of a key, for error messages about its content.
    pub fn origin(&self, keys: &[&'static str]) -> String {
        self.get_any(keys)
            .map(|(_, _, o)| o.to_string())
            .unwrap_or_else(|| self.subject())
    }
}

/// The largest config file read: a config is a few keys, and a file
/// larger than this is not one (it is refused before it is read).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The text of a config file: a regular file of at most
/// [`MAX_CONFIG_BYTES`]. A device, FIFO or socket is refused before a byte
/// is read (opened without blocking, so a FIFO with no writer does not
/// hang), and no more than the limit is ever read.
fn config_text(path: &Path) -> Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let refuse = |msg: String| Error::ConfigSyntax {
        origin: crate::error::shown(path).to_string(),
        msg,
    };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    let md = f.metadata().map_err(io)?;
    let kind = md.file_type();
    if kind.is_dir() {
        return Err(refuse("is a directory, not a config file".into()));
    }
    if !kind.is_file() {
        use std::os::unix::fs::FileTypeExt;
        let what = if kind.is_fifo() {
            "a FIFO (named pipe)"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(refuse(format!(
            "is {what}, not a config file; give a JSON file"
        )));
    }
    let too_large = || {
        refuse(format!(
            "is larger than {} KiB, more than any config; give the JSON object of config keys",
            MAX_CONFIG_BYTES >> 10
        ))
    };
    if md.len() > MAX_CONFIG_BYTES {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    f.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(too_large());
    }
    String::from_utf8(bytes).map_err(|_| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        ))
    })
}

/// Read a config file; it must hold one JSON object.
pub fn read_config_file(path: &Path) -> Result<Map<String, Value>> {
    let text = config_text(path)?;
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

/// The stacked config of one load: the model's `defaults`, the config
/// file (`file`, else the data file's sidecar if there is one), then `-o`.
pub fn for_load(
    defaults: Map<String, Value>,
    data: &Path,
    file: Option<&Path>,
    options: Option<&str>,
) -> Result<Config> {
    let mut c = Config::new().for_file(data);
    c.push("defaults", defaults);
    match file {
        Some(f) => c.push_file(f)?,
        None => {
            let sidecar = sidecar_path(data);
            if sidecar.is_file() {
                c.push_file(&sidecar)?;
            }
        }
    }
    if let Some(o) = options {
        c.push("-o", parse_overrides(o)?);
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
