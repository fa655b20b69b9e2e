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

/// The decimal keys of a BSON array, `"0"`, `"1"`, …, counted up in place
/// rather than formatted for each element.
pub struct ArrayKeys {
    /// The key right-aligned, then the NUL that ends it.
    buf: [u8; 21],
    start: usize,
}

impl Default for ArrayKeys {
    fn default() -> Self {
        let mut buf = [0u8; 21];
        buf[19] = b'0';
        Self { buf, start: 19 }
    }
}

impl ArrayKeys {
    /// The current key with its terminating NUL.
    #[inline]
    pub fn with_nul(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Move to the next index.
    #[inline]
    pub fn advance(&mut self) {
        let mut at = 19;
        loop {
            if self.buf[at] != b'9' {
                self.buf[at] += 1;
                return;
            }
            self.buf[at] = b'0';
            if at == self.start {
                self.start -= 1;
                self.buf[self.start] = b'1';
                return;
            }
            at -= 1;
        }
    }
}

/// The most bytes an array element of a number takes: type, a key of up to
/// 20 digits and its NUL, 8 bytes of value.
const ELEMENT_MAX: usize = 30;

/// A BSON document being written: elements are appended, `finish` closes it.
pub struct Writer {
    buf: Vec<u8>,
    /// Start offsets of the open (sub)documents, whose lengths are patched
    /// when they are closed.
    open: Vec<usize>,
}

/// Buffers of documents already stored, kept for the next documents: a
/// global step document takes megabytes, and a fresh buffer for each one
/// is mapped and faulted in page by page (a fifth of a load's time).
static SPARE_BUFFERS: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());
/// At most this many are kept, so that the pool adds a bounded amount to
/// what a load holds (8 global step documents: 33 MB).
const SPARE_BUFFERS_KEPT: usize = 8;
/// Smaller buffers come from the allocator's own free lists.
const SPARE_FROM_BYTES: usize = 1 << 20;

/// Hand a document's bytes back once stored, for [`Writer`] to reuse.
pub fn recycle(mut buf: Vec<u8>) {
    if buf.capacity() < SPARE_FROM_BYTES {
        return;
    }
    buf.clear();
    let mut spare = SPARE_BUFFERS.lock().unwrap_or_else(|e| e.into_inner());
    if spare.len() < SPARE_BUFFERS_KEPT {
        spare.push(buf);
    }
}

/// An empty buffer of at least `bytes` capacity, a recycled one if any fits.
fn buffer(bytes: usize) -> Vec<u8> {
    if bytes >= SPARE_FROM_BYTES {
        let mut spare = SPARE_BUFFERS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = spare.iter().position(|b| b.capacity() >= bytes) {
            return spare.swap_remove(i);
        }
    }
    Vec::with_capacity(bytes)
}

impl Writer {
    pub fn with_capacity(bytes: usize) -> Self {
        let mut w = Self {
            buf: buffer(bytes),
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

    pub fn datetime(&mut self, key: &str, ms: i64) {
        self.key(DATETIME, key);
        self.buf.extend_from_slice(&ms.to_le_bytes());
    }

    /// An array of numbers, `None` written as null.
    pub fn numbers(&mut self, key: &str, values: impl Iterator<Item = Option<f64>>) {
        self.key(ARRAY, key);
        self.begin();
        self.buf.reserve(values.size_hint().0 * 16);
        let mut keys = ArrayKeys::default();
        for v in values {
            // One element: its type, its key with NUL, its 8 bytes if any,
            // built in a fixed-size array that is copied whole (a copy of
            // a constant size is a few moves; one of the element's own
            // length is a call to memcpy per value).
            let mut e = [0u8; ELEMENT_MAX];
            let k = keys.with_nul();
            e[1..1 + k.len()].copy_from_slice(k);
            let mut len = 1 + k.len();
            match v {
                Some(x) => {
                    e[0] = DOUBLE;
                    e[len..len + 8].copy_from_slice(&x.to_le_bytes());
                    len += 8;
                }
                None => e[0] = NULL,
            }
            self.push_element(&e, len);
            keys.advance();
        }
        self.end();
    }

    /// Append the first `len` bytes of `e`.
    #[inline]
    fn push_element(&mut self, e: &[u8; ELEMENT_MAX], len: usize) {
        assert!(len <= ELEMENT_MAX);
        self.buf.reserve(ELEMENT_MAX);
        let at = self.buf.len();
        // SAFETY: `reserve` made room for ELEMENT_MAX bytes after `at`, all
        // of which are written (the tail past `len` is overwritten by the
        // next element or left outside the vector's length); `len` of them
        // become part of the vector.
        unsafe {
            std::ptr::copy_nonoverlapping(e.as_ptr(), self.buf.as_mut_ptr().add(at), ELEMENT_MAX);
            self.buf.set_len(at + len);
        }
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
    fn array_keys_count_in_decimal() {
        let mut k = ArrayKeys::default();
        for i in 0..1_234_567usize {
            assert_eq!(k.with_nul(), format!("{i}\0").as_bytes());
            k.advance();
        }
    }

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
