//! `-o "k=v;k2=v2"`: the overrides of the command line, the top layer of a
//! config.

use serde_json::{Map, Value};

use super::{nesting_depth, pylit, MAX_NESTING};
use crate::error::{Error, Result};

/// Keys whose values are plain strings even when they look like JSON
/// (`-o timestamp=2004-06-30`, `-o title=2004`).
const STRING_KEYS: &[&str] = &["title", "timestamp", "var_name"];

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
    if let Some(j) = pylit::parse(v) {
        return j;
    }
    Value::String(v.to_string())
}

/// Split on `sep` where it is not inside quotes or brackets. A quote
/// opens a quoted text only where a value or an item starts (after `=`,
/// `:`, `,` or an opening bracket, spaces aside): an apostrophe inside a
/// word (`title=Bob's data`) is a letter. A quote never closed is a letter
/// too, so it cannot swallow the pairs after it.
fn split_top_level(s: &str, sep: char) -> Vec<&str> {
    let mut ignored: Vec<usize> = Vec::new();
    loop {
        match split_once_through(s, sep, &ignored) {
            Ok(parts) => return parts,
            Err(unclosed) => ignored.push(unclosed),
        }
    }
}

/// One pass of [`split_top_level`], quotes at `ignored` taken as letters;
/// `Err` with where a quote opened and never closed.
fn split_once_through<'s>(
    s: &'s str,
    sep: char,
    ignored: &[usize],
) -> std::result::Result<Vec<&'s str>, usize> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut quote: Option<(char, usize)> = None;
    let mut escaped = false;
    let mut start = 0;
    let mut before: Option<char> = None;
    for (i, c) in s.char_indices() {
        if let Some((q, _)) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            before = Some(c);
            continue;
        }
        let opens_value = before.is_none_or(|b| "=:,[{(".contains(b)) || before == Some(sep);
        match c {
            '"' | '\'' if opens_value && !ignored.contains(&i) => quote = Some((c, i)),
            '[' | '{' | '(' => depth += 1,
            ']' | '}' | ')' => depth -= 1,
            c if c == sep && depth <= 0 => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
        if !c.is_whitespace() {
            before = Some(c);
        }
    }
    if let Some((_, at)) = quote {
        return Err(at);
    }
    parts.push(&s[start..]);
    Ok(parts)
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
    fn an_apostrophe_in_a_value_is_a_letter() {
        let m = parse_overrides("title=Bob's data;units={'values':'mol'};precision=3").unwrap();
        assert_eq!(m["title"], json!("Bob's data"));
        assert_eq!(m["units"], json!({"values": "mol"}));
        assert_eq!(m["precision"], json!(3));
        let m = parse_overrides("title='Bob's data';precision=2").unwrap();
        assert_eq!(m["title"], json!("Bob's data"));
        assert_eq!(m["precision"], json!(2));
        let m = parse_overrides("title=it's;var_name=flux").unwrap();
        assert_eq!(m["title"], json!("it's"));
        assert_eq!(m["var_name"], json!("flux"));
        let m = parse_overrides("title='unclosed;precision=1").unwrap();
        assert_eq!(m["title"], json!("'unclosed"));
        assert_eq!(m["precision"], json!(1));
    }

    #[test]
    fn malformed_overrides_are_refused() {
        assert!(parse_overrides("timestamp").is_err());
        assert!(parse_overrides("=3").is_err());
        assert!(parse_overrides(";;").is_err());
    }
}
