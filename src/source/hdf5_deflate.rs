//! The deflate (gzip) filter libhdf5 runs on compressed chunks, replaced by
//! one that inflates with `flate2` and, while a reader says how many bytes
//! a chunk holds, refuses a chunk that inflates to any other number.
//!
//! libhdf5 1.10 reads past its buffer when a chunk inflates short (found by
//! fuzzing), so every compressed chunk of a matrix used to be inflated once
//! by a check before the library read any, and again by the library: a
//! third of the time of loading a gzip-compressed file. Now the one inflate
//! the library asks for is the check: [`expect`] names the chunk size for
//! the reads of one dataset, and a chunk of another size fails the read
//! (what it held is kept for the reader's message, [`take_short`]).
//!
//! The filter compresses too (level from the dataset's filter parameters),
//! so that files written in the same process get the library's format.

use std::cell::Cell;
use std::ffi::{c_uint, c_void};
use std::sync::OnceLock;

use hdf5_sys::h5::{H5allocate_memory, H5free_memory};
use hdf5_sys::h5z::{H5Z_class2_t, H5Z_FILTER_DEFLATE, H5Z_FLAG_REVERSE};

thread_local! {
    /// The bytes a chunk inflates to in the reads being made on this thread.
    static EXPECTED: Cell<Option<usize>> = const { Cell::new(None) };
    /// A chunk that inflated to another size than expected: `(held, expected)`.
    static SHORT: Cell<Option<(u64, usize)>> = const { Cell::new(None) };
    /// The bytes the last chunk inflated to on this thread: the first guess
    /// at the next one's (a dataset's chunks are all of one size), so that
    /// its buffer is not grown and copied chunk after chunk.
    static LAST: Cell<usize> = const { Cell::new(0) };
}

/// Whether the filter replaced the library's: registered once per process
/// (before the first read of a compressed chunk by libhdf5, libnetcdf's
/// included). Where it did not, the library's own filter inflates and
/// callers check chunks themselves.
pub fn registered() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        let class = Box::leak(Box::new(H5Z_class2_t {
            version: 1, // H5Z_CLASS_T_VERS
            id: H5Z_FILTER_DEFLATE,
            encoder_present: 1,
            decoder_present: 1,
            name: c"deflate".as_ptr(),
            can_apply: None,
            set_local: None,
            filter: Some(filter),
        }));
        // The public `H5Zregister` refuses the library's own filter numbers
        // (below 256); the library's internal registration, which
        // `H5Zregister` calls and libhdf5 exports, replaces the deflate
        // filter's entry with this class, as it does for any filter
        // registered again.
        extern "C" {
            fn H5Z_register(cls: *const H5Z_class2_t) -> hdf5_sys::h5::herr_t;
        }
        // SAFETY: the class lives for the rest of the process, and is of
        // the layout the library's `H5Z_class2_t` has.
        let status = ::hdf5::sync::sync(|| unsafe { H5Z_register(class) });
        status >= 0
    })
}

/// While the guard lives, a chunk inflated on this thread must hold
/// `bytes` (`None`: any size, as the library's own filter allows).
pub fn expect(bytes: Option<usize>) -> Expecting {
    let before = EXPECTED.with(|e| e.replace(bytes));
    SHORT.with(|s| s.set(None));
    Expecting { before }
}

pub struct Expecting {
    before: Option<usize>,
}

impl Drop for Expecting {
    fn drop(&mut self) {
        EXPECTED.with(|e| e.set(self.before));
    }
}

/// The chunk that failed a read on this thread by its size, if one did:
/// `(bytes it held, bytes a chunk holds)`.
pub fn take_short() -> Option<(u64, usize)> {
    SHORT.with(|s| s.take())
}

/// `len` bytes from the library's allocator, or null.
///
/// # Safety
/// `len` > 0.
unsafe fn allocate(len: usize) -> *mut u8 {
    unsafe { H5allocate_memory(len, 0).cast() }
}

/// The filter, as `H5Z_func_t`: returns the bytes in `*buf` after it, or 0
/// on failure (the buffer then left as it was).
unsafe extern "C" fn filter(
    flags: c_uint,
    cd_nelmts: usize,
    cd_values: *const c_uint,
    nbytes: usize,
    buf_size: *mut usize,
    buf: *mut *mut c_void,
) -> usize {
    // A panic must not unwind into C.
    std::panic::catch_unwind(|| {
        // SAFETY: the library hands `nbytes` valid bytes at `*buf`.
        let input = unsafe { std::slice::from_raw_parts((*buf).cast::<u8>(), nbytes) };
        let out = if flags & H5Z_FLAG_REVERSE != 0 {
            inflate(input, EXPECTED.with(Cell::get))
        } else {
            let level = if cd_nelmts > 0 {
                // SAFETY: `cd_nelmts` values at `cd_values`.
                unsafe { *cd_values }.min(9)
            } else {
                6
            };
            deflate(input, level)
        };
        let Some((data, len)) = out else {
            return 0;
        };
        // SAFETY: the library's buffer is replaced by one of its allocator,
        // as its own filters do; the old one is freed by that allocator.
        unsafe {
            H5free_memory(*buf);
            *buf = data.cast();
            *buf_size = len;
        }
        len
    })
    .unwrap_or(0)
}

/// Inflate a zlib stream into a buffer of the library's allocator: `(buffer,
/// bytes)`; `None` when the stream is damaged, or (with `expected`) holds
/// another number of bytes.
fn inflate(input: &[u8], expected: Option<usize>) -> Option<(*mut u8, usize)> {
    use flate2::{Decompress, FlushDecompress, Status};
    let mut cap = expected.map_or_else(
        || {
            let guess = input.len().saturating_mul(4).max(4096);
            // One byte more than the last chunk held, so that a chunk of
            // the same size ends with room left, as a stream end needs.
            guess.max(LAST.with(Cell::get).saturating_add(1))
        },
        |n| n + 1,
    );
    // SAFETY: `cap` > 0.
    let mut out = unsafe { allocate(cap) };
    if out.is_null() {
        return None;
    }
    let fail = |out: *mut u8| {
        // SAFETY: allocated above, by the library's allocator.
        unsafe { H5free_memory(out.cast()) };
        None
    };
    let short = |held: usize| {
        if let Some(n) = expected {
            SHORT.with(|s| s.set(Some((held as u64, n))));
        }
    };
    let mut z = Decompress::new(true);
    loop {
        let (before_in, before_out) = (z.total_in() as usize, z.total_out() as usize);
        // SAFETY: `out` holds `cap` bytes, of which `before_out` are filled.
        let space =
            unsafe { std::slice::from_raw_parts_mut(out.add(before_out), cap - before_out) };
        let status = z.decompress(&input[before_in..], space, FlushDecompress::None);
        let (now_in, now_out) = (z.total_in() as usize, z.total_out() as usize);
        match status {
            Err(_) => return fail(out),
            Ok(Status::StreamEnd) => break,
            Ok(_) if now_out < cap => {
                // Room left, and the stream wants more than it has: cut short.
                if now_in == input.len() || (now_in == before_in && now_out == before_out) {
                    short(now_out);
                    return fail(out);
                }
            }
            Ok(_) => {
                if expected.is_some() {
                    // More than a chunk holds.
                    short(now_out);
                    return fail(out);
                }
                let Some(grown) = cap.checked_mul(2) else {
                    return fail(out);
                };
                // SAFETY: a new buffer of `grown` bytes, the filled part
                // copied over, the old one freed.
                let bigger = unsafe { allocate(grown) };
                if bigger.is_null() {
                    return fail(out);
                }
                unsafe {
                    std::ptr::copy_nonoverlapping(out, bigger, now_out);
                    H5free_memory(out.cast());
                }
                out = bigger;
                cap = grown;
            }
        }
    }
    let len = z.total_out() as usize;
    LAST.with(|l| l.set(len));
    if expected.is_some_and(|n| n != len) {
        short(len);
        return fail(out);
    }
    Some((out, len))
}

/// Deflate `input` at `level` into a buffer of the library's allocator.
fn deflate(input: &[u8], level: u32) -> Option<(*mut u8, usize)> {
    use std::io::Write;
    let mut e = flate2::write::ZlibEncoder::new(
        Vec::with_capacity(input.len() / 2 + 64),
        flate2::Compression::new(level),
    );
    e.write_all(input).ok()?;
    let bytes = e.finish().ok()?;
    // SAFETY: at least one byte is allocated; `bytes` is copied into it.
    unsafe {
        let out = allocate(bytes.len().max(1));
        if out.is_null() {
            return None;
        }
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), out, bytes.len());
        Some((out, bytes.len()))
    }
}
