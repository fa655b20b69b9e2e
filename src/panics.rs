//! A panic is a bug; `manage` still ends it in one line and exit code 1,
//! not a backtrace. The hook keeps the panic's message (and where it
//! happened) for the main thread to print: a worker thread's panic reaches
//! the main thread through rayon without running the hook again. A panic
//! a parser caught and reported is simply overwritten by the next.

use std::sync::Mutex;

static PANIC: Mutex<Option<String>> = Mutex::new(None);

/// Keep every panic's message, in whichever thread, instead of printing it.
pub fn install_hook() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!(" at {l}"))
            .unwrap_or_default();
        *PANIC.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("{msg}{at}"));
    }));
}

/// The message of the latest panic, `MESSAGE at FILE:LINE:COLUMN` (empty
/// if none was kept), taken away.
pub fn take_message() -> String {
    PANIC
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_default()
}
