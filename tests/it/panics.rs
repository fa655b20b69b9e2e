//! A worker thread's panic reaches the user: its message and place are
//! what `manage` prints as its one line (no input is known to make a
//! worker panic, so the hook is exercised directly, in a process of its
//! own, since the hook is process-wide: the test runs itself again in a
//! child process of this test binary).

use std::sync::Mutex;

use rayon::prelude::*;

const IN_CHILD: &str = "FLUXPY_TEST_PANIC_HOOK_CHILD";

#[test]
fn a_worker_threads_panic_message_reaches_the_main_thread() {
    if std::env::var_os(IN_CHILD).is_none() {
        let name = "panics::a_worker_threads_panic_message_reaches_the_main_thread";
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--test-threads=1"])
            .env(IN_CHILD, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("test result: ok. 1 passed"),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
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
            "cell 7777 is out of range at tests/it/panics.rs:{line}:"
        )),
        "{msg}"
    );
    // Taken: a later failure that is no panic prints no stale message.
    assert_eq!(fluxpy::panics::take_message(), "");
}
