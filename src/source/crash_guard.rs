//! A last line of defence around the HDF5 C library.
//!
//! libhdf5 1.10 (Debian's) can crash on some damaged files: fuzzing found
//! inputs that make it read through a null pointer while parsing the file's
//! metadata. `manage` checks what it can before the library reads (see
//! `hdf5.rs`), but it cannot check the library's own parsing. While an HDF5
//! file is open, a crash of the process (SIGSEGV, SIGBUS) therefore prints
//! one line naming that file and exits with code 1, as any other refusal
//! does, instead of dying with signal 11. A load is one transaction, so the
//! store is left as it was (for MongoDB, `db -a` reports the staging
//! leftover and re-running the load repairs it).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Mutex, Once};

static MESSAGE: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static LENGTH: AtomicUsize = AtomicUsize::new(0);
/// The current line and the one before it, owned here so that they are
/// neither leaked nor freed while the handler may still read them.
static LINES: Mutex<VecDeque<Box<[u8]>>> = Mutex::new(VecDeque::new());

/// Name `path` in the line printed if the process crashes from now on,
/// until [`clear`].
pub fn reading(path: &Path) {
    install();
    let line = format!(
        "manage: error: {}: the HDF5 library crashed reading this file: it is damaged; copy it again or re-create it\n",
        crate::error::shown(path)
    );
    // The handler may read the line at any moment, so it is never freed
    // while it can be current: the lines live in a static (so no leak
    // checker reports them), and a line is freed only two files later,
    // long after the pointer to it was replaced.
    let bytes = line.into_bytes().into_boxed_slice();
    let ptr = bytes.as_ptr() as *mut u8;
    let len = bytes.len();
    let mut lines = LINES.lock().unwrap_or_else(|e| e.into_inner());
    LENGTH.store(0, Ordering::SeqCst);
    MESSAGE.store(ptr, Ordering::SeqCst);
    LENGTH.store(len, Ordering::SeqCst);
    lines.push_back(bytes);
    while lines.len() > 2 {
        lines.pop_front();
    }
}

/// The HDF5 file is closed: a crash from now on is not its doing.
pub fn clear() {
    LENGTH.store(0, Ordering::SeqCst);
    MESSAGE.store(std::ptr::null_mut(), Ordering::SeqCst);
}

fn install() {
    // Under a fuzzer, a crash of the library is the finding: the fuzzer's
    // own handler reports it and keeps the input.
    if cfg!(fuzzing) {
        return;
    }
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for signal in [libc::SIGSEGV, libc::SIGBUS] {
            // SAFETY: the handler only loads atomics and calls write(2) and
            // _exit(2), which are async-signal-safe; it runs on the
            // alternate signal stack Rust sets up for the main thread.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_crash as *const () as usize;
                action.sa_flags = libc::SA_ONSTACK;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(signal, &action, std::ptr::null_mut());
            }
        }
    });
}

extern "C" fn on_crash(_signal: libc::c_int) {
    let (ptr, len) = (
        MESSAGE.load(Ordering::SeqCst),
        LENGTH.load(Ordering::SeqCst),
    );
    let generic = b"manage: internal error (a bug, please report it): the process crashed\n";
    // SAFETY: `ptr` points at a line of `len` bytes held in `LINES`.
    unsafe {
        if ptr.is_null() || len == 0 {
            libc::write(2, generic.as_ptr().cast(), generic.len());
        } else {
            libc::write(2, ptr.cast(), len);
        }
        libc::_exit(1);
    }
}
