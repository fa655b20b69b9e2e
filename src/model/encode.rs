//! BSON encoding of the documents models write, without building a
//! `bson::Document` first.
//!
//! A global step document holds hundreds of thousands of numbers; as a
//! `Document` each is a 112-byte `Bson` value, so one document would take
//! ~30 MB and most of the conversion time. Writing the BSON bytes directly
//! takes 16 bytes per value and a fraction of the time. Tests check the bytes
//! against the `bson` crate's own encoding of the same document.

/// BSON element types used here.
const DOUBLE: u8 = 0x01;
const ARRAY: u8 = 0x04;
const DATETIME: u8 = 0x09;
const NULL: u8 = 0x0A;

/// A BSON document being written: elements are appended, `finish` closes it.
pub struct Writer {
    buf: Vec<u8>,
    /// Start offsets of the open (sub)documents, whose lengths are patched
    /// when they are closed.
    open: Vec<usize>,
}

impl Writer {
    pub fn with_capacity(bytes: usize) -> Self {
        let mut w = Self {
            buf: Vec::with_capacity(bytes),
            open: vec![],
        };
        w.begin();
        w
    }

    fn begin(&mut self) {
        self.open.push(self.buf.len());
        self.buf.extend_from_slice(&[0; 4]);
    }

    fn end(&mut self) {
        self.buf.push(0);
        let start = self.open.pop().expect("an open document");
        let len = (self.buf.len() - start) as i32;
        self.buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    }

    fn key(&mut self, kind: u8, key: &str) {
        self.buf.push(kind);
        self.buf.extend_from_slice(key.as_bytes());
        self.buf.push(0);
    }

    /// An array key: the decimal index, as BSON arrays are keyed.
    fn index(&mut self, kind: u8, i: usize) {
        self.buf.push(kind);
        let mut digits = [0u8; 20];
        let mut n = i;
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.buf.extend_from_slice(&digits[at..]);
        self.buf.push(0);
    }

    pub fn datetime(&mut self, key: &str, ms: i64) {
        self.key(DATETIME, key);
        self.buf.extend_from_slice(&ms.to_le_bytes());
    }

    /// An array of numbers, `None` written as null.
    pub fn numbers(&mut self, key: &str, values: impl Iterator<Item = Option<f64>>) {
        self.key(ARRAY, key);
        self.begin();
        for (i, v) in values.enumerate() {
            match v {
                Some(x) => {
                    self.index(DOUBLE, i);
                    self.buf.extend_from_slice(&x.to_le_bytes());
                }
                None => self.index(NULL, i),
            }
        }
        self.end();
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.end();
        debug_assert!(self.open.is_empty());
        self.buf
    }
}

/// Bytes a step document of `n` values takes at most.
pub fn step_document_capacity(n: usize) -> usize {
    // element type + up to 7 key bytes with NUL + 8 bytes, plus headers
    n * 16 + 64
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, Bson};

    #[test]
    fn bytes_equal_the_bson_crates_encoding() {
        for n in [0usize, 1, 9, 10, 11, 101, 1234, 100_001] {
            let values: Vec<Option<f64>> = (0..n)
                .map(|i| (i % 7 != 3).then_some(i as f64 * -0.25))
                .collect();
            let mut w = Writer::with_capacity(step_document_capacity(n));
            w.datetime("_id", 1_088_553_600_000);
            w.numbers("values", values.iter().copied());
            let mine = w.finish();

            let arr: Vec<Bson> = values
                .iter()
                .map(|v| v.map(Bson::Double).unwrap_or(Bson::Null))
                .collect();
            let d = doc! {
                "_id": bson::DateTime::from_millis(1_088_553_600_000),
                "values": arr,
            };
            assert_eq!(mine, bson::to_vec(&d).unwrap(), "n = {n}");
            assert!(mine.len() <= step_document_capacity(n) + 32);
        }
    }
}
