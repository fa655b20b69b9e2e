//! What the writers of stored documents share: the decimal keys of BSON
//! arrays, counted up in place, and a small pool of the megabyte buffers
//! step documents take, reused instead of mapped afresh for each one.
//!
//! (Step documents are written straight in the embedded store's compact
//! form, `doc::packed::StepWriter`; MongoDB gets the BSON joined back.)

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
pub(crate) fn buffer(bytes: usize) -> Vec<u8> {
    if bytes >= SPARE_FROM_BYTES {
        let mut spare = SPARE_BUFFERS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = spare.iter().position(|b| b.capacity() >= bytes) {
            return spare.swap_remove(i);
        }
        // Rounded up, so that a buffer handed back serves the next
        // documents of about its size too (step documents differ by a few
        // bytes), not only smaller ones.
        return Vec::with_capacity(bytes.next_multiple_of(SPARE_FROM_BYTES / 4));
    }
    Vec::with_capacity(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_keys_count_in_decimal() {
        let mut k = ArrayKeys::default();
        for i in 0..1_234_567usize {
            assert_eq!(k.with_nul(), format!("{i}\0").as_bytes());
            k.advance();
        }
    }
}
