//! Buffers of blocks of columns, reused across a load: a block of a global
//! grid takes megabytes, and a fresh one for each block is mapped and
//! faulted in page by page, so that a load's page faults grew with its size.
//! A reader takes a buffer with [`buffer`] and the converter hands the
//! block back with [`recycle`] once it is converted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use ndarray::Array2;

static SPARE: Mutex<Vec<Vec<f64>>> = Mutex::new(Vec::new());
/// Whether a reader takes its blocks from here: blocks handed back are kept
/// only then (a reader that allocates its own would leave them unused).
static TAKEN: AtomicBool = AtomicBool::new(false);
/// At most this many are kept: a load has a block being read, one being
/// converted and one read ahead.
const KEPT: usize = 3;
/// Smaller blocks come from the allocator's own free lists.
const SPARE_FROM_VALUES: usize = 1 << 17;

/// An empty buffer of at least `values` capacity, a recycled one if any fits.
pub fn buffer(values: usize) -> Vec<f64> {
    if values >= SPARE_FROM_VALUES {
        TAKEN.store(true, Ordering::Relaxed);
        let mut spare = SPARE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = spare.iter().position(|b| b.capacity() >= values) {
            return spare.swap_remove(i);
        }
    }
    Vec::with_capacity(values)
}

/// Hand a block back once it is converted, for [`buffer`] to reuse.
pub fn recycle(block: Array2<f64>) {
    let (mut v, _) = block.into_raw_vec_and_offset();
    if v.capacity() < SPARE_FROM_VALUES || !TAKEN.load(Ordering::Relaxed) {
        return;
    }
    v.clear();
    let mut spare = SPARE.lock().unwrap_or_else(|e| e.into_inner());
    if spare.len() < KEPT {
        spare.push(v);
    } else if let Some(smallest) = spare.iter_mut().min_by_key(|b| b.capacity()) {
        // Keep the largest: a load's blocks are all of one size but the last.
        if smallest.capacity() < v.capacity() {
            *smallest = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recycled_block_is_given_again() {
        drop(buffer(1 << 18));
        recycle(Array2::<f64>::zeros((1 << 16, 4)));
        let b = buffer(1 << 18);
        assert!(b.is_empty());
        assert!(b.capacity() >= 1 << 18);
        // Small blocks are not kept.
        recycle(Array2::<f64>::zeros((2, 2)));
        assert!(buffer(4).capacity() >= 4);
    }
}
