//! A reader for the Python literals the old tool's `-o` accepted: strings in
//! single or double quotes, numbers, `True`/`False`/`None`, lists, tuples and
//! dicts. It turns them into the equivalent JSON.

use serde_json::{Map, Number, Value};

pub(super) fn parse(s: &str) -> Option<Value> {
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
