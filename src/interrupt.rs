//! SIGINT and SIGTERM while a command writes.
//!
//! Commands that take locks (load, remove, rename) catch both signals: the
//! handler only sets a flag, which the work checks between its steps
//! ([`check`]); the command then fails as any other failure does, so that
//! an unfinished load is undone and every lock is released on the way out,
//! and `manage` exits with 130 (SIGINT) or 143 (SIGTERM). A second signal
//! while the first is being handled ends the process at once.
//!
//! Commands that write only temporary files of their own (`export
//! --output`, `info`) have nothing to undo: on either signal they remove
//! those files and end at once, with the same codes ([`end_on_signal`]).
//!
//! Work that does not reach a check, such as a library call that does not
//! return on a damaged file or a wait inside SQLite for another program's
//! write, would ignore a single signal (and `timeout` or cron's kill sends
//! one): [`GRACE`] after the first signal the process ends itself, as a
//! kill would end it. What it leaves is what a kill leaves: an unfinished
//! load that the next run undoes, and a lock whose holder is gone, which
//! the next command takes over.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;
use signal_hook::iterator::Signals;

/// How long the work has to stop after a signal before the process ends
/// without it (see the module's text).
pub const GRACE: Duration = Duration::from_secs(5);

use crate::error::{signal_name, Error, Result};

struct Flags {
    /// Whether a signal came.
    any: Arc<AtomicBool>,
    /// The last signal that came.
    which: Arc<AtomicUsize>,
}

static FLAGS: OnceLock<Flags> = OnceLock::new();

/// Catch SIGINT and SIGTERM from now on (see the module's text).
pub fn catch() -> Result<()> {
    if FLAGS.get().is_some() {
        return Ok(());
    }
    let flags = Flags {
        any: Arc::new(AtomicBool::new(false)),
        which: Arc::new(AtomicUsize::new(0)),
    };
    let failed = |e: std::io::Error| Error::Usage(format!("cannot catch SIGINT and SIGTERM: {e}"));
    for signal in [SIGINT, SIGTERM] {
        // The actions run in this order: a signal that finds the flag set
        // already takes its default action (the process ends).
        flag::register_conditional_default(signal, Arc::clone(&flags.any)).map_err(failed)?;
        flag::register_usize(signal, Arc::clone(&flags.which), signal as usize).map_err(failed)?;
        flag::register(signal, Arc::clone(&flags.any)).map_err(failed)?;
    }
    let mut signals = Signals::new([SIGINT, SIGTERM]).map_err(failed)?;
    std::thread::Builder::new()
        .name("signal-grace".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                std::thread::sleep(GRACE);
                eprintln!(
                    "manage: {} came {} s ago and the work has not stopped; ending now (the next run undoes what is unfinished and takes over the lock)",
                    signal_name(signal),
                    GRACE.as_secs()
                );
                // SAFETY: `_exit` ends the process at once, without the
                // exit handlers: libhdf5's would run while another thread
                // may be inside the library.
                unsafe { libc::_exit(128 + signal) };
            }
        })
        .map_err(failed)?;
    let _ = FLAGS.set(flags);
    Ok(())
}

/// The temporary files and folders to remove on a signal, for
/// [`end_on_signal`].
static LEFT_BEHIND: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());

/// For commands that write nothing but their own temporary files before
/// they rename or remove them (`export --output`, `info`): on SIGINT or
/// SIGTERM, remove those files (see [`remove_on_signal`]) and end at once
/// with 130 or 143. There is no store to undo and no lock to release, so
/// nothing waits for the work to reach a check.
pub fn end_on_signal() -> Result<()> {
    let failed = |e: std::io::Error| Error::Usage(format!("cannot catch SIGINT and SIGTERM: {e}"));
    let mut signals = Signals::new([SIGINT, SIGTERM]).map_err(failed)?;
    std::thread::Builder::new()
        .name("signal-cleanup".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                // Held to the end: a file is not registered or dropped
                // after this point.
                let paths = LEFT_BEHIND.lock().unwrap_or_else(|e| e.into_inner());
                for p in paths.iter() {
                    let _ = if p.is_dir() {
                        std::fs::remove_dir_all(p)
                    } else {
                        std::fs::remove_file(p)
                    };
                }
                eprintln!(
                    "manage: interrupted: {} received; its temporary files were removed and no output was written",
                    signal_name(signal)
                );
                // SAFETY: `_exit` ends the process at once, without the
                // exit handlers: libhdf5's and libnetcdf's would run while
                // another thread may be inside them.
                unsafe { libc::_exit(128 + signal) };
            }
        })
        .map_err(failed)?;
    Ok(())
}

/// Remove `path` (a file or a folder) if [`end_on_signal`]'s signal comes
/// while the returned guard lives; dropping it forgets the path.
pub fn remove_on_signal(path: &std::path::Path) -> LeftBehind {
    let path = path.to_path_buf();
    LEFT_BEHIND
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(path.clone());
    LeftBehind(path)
}

/// A path registered by [`remove_on_signal`].
pub struct LeftBehind(std::path::PathBuf);

impl Drop for LeftBehind {
    fn drop(&mut self) {
        let mut paths = LEFT_BEHIND.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = paths.iter().rposition(|p| *p == self.0) {
            paths.remove(i);
        }
    }
}

/// The signal that came, if one did since [`catch`].
pub fn received() -> Option<i32> {
    let flags = FLAGS.get()?;
    if !flags.any.load(Ordering::SeqCst) {
        return None;
    }
    i32::try_from(flags.which.load(Ordering::SeqCst)).ok()
}

/// Fail with [`Error::Interrupted`] if a signal came.
pub fn check() -> Result<()> {
    match received() {
        Some(signal) => Err(Error::Interrupted { signal }),
        None => Ok(()),
    }
}
