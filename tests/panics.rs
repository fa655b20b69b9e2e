//! A worker thread's panic reaches the user: its message and place are
//! what `manage` prints as its one line (no input is known to make a
//! worker panic, so the hook is exercised directly, in a process of its
//! own, since the hook is process-wide).

use std::sync::Mutex;

use rayon::prelude::*;

#[test]
fn a_worker_threads_panic_message_reaches_the_main_thread() {
    fluxpy::panics::install_hook();
    let main = std::thread::current().id();
    let panicked_in = Mutex::new(None);
    let line = line!() + 5;
    let r = std::panic::catch_unwind(|| {
        (0..10_000u32).into_par_iter().for_each(|i| {
            if i == 7777 {
                *panicked_in.lock().unwrap() = Some(std::thread::current().id());
                panic!("cell {i} is out of range");
            }
        });
    });
    assert!(r.is_err(), "the panic reaches the caller");
    let thread = panicked_in.lock().unwrap().expect("the panic happened");
    assert_ne!(thread, main, "it happened in a worker thread");
    let msg = fluxpy::panics::take_message();
    assert!(
        msg.starts_with(&format!(
            "cell 7777 is out of range at tests/panics.rs:{line}:"
        )),
        "{msg}"
    );
    // Taken: a later failure that is no panic prints no stale message.
    assert_eq!(fluxpy::panics::take_message(), "");
}
