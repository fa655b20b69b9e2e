//! Per-dataset locks: one writer of a dataset at a time, across processes
//! and hosts sharing one store.
//!
//! A lock is the document `{_id: NAME, owner, host, pid, started, boot_id,
//! token}` in the internal collection `_locks`; a backend takes it
//! atomically (a unique `_id`, or a write transaction) in
//! [`Store::try_lock`]. A lock whose holder is known to be gone (same host,
//! and its process no longer runs or the host has rebooted since) is
//! *stale*: the next writer takes it over, `db -a` reports it and
//! `db -a --fix` removes it. A lock held from another host cannot be
//! checked from here and is never taken over.

use std::thread::sleep;
use std::time::{Duration, Instant};

use bson::{doc, Document};
use chrono::{DateTime, SubsecRound, Utc};

use super::Store;
use crate::error::{Error, Result};

/// How long a load waits for a dataset's lock unless `--lock-timeout` says.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// Who holds (or wants) a lock.
#[derive(Debug, Clone, PartialEq)]
pub struct Holder {
    /// The user running the process.
    pub owner: String,
    pub host: String,
    pub pid: u32,
    /// When the process asked for the lock (milliseconds, as stored).
    pub started: DateTime<Utc>,
    /// Linux's boot id of the host, when known: a lock from an earlier boot
    /// is stale whatever its pid.
    pub boot_id: Option<String>,
    /// Unique per acquisition: a lock is released or taken over only by
    /// naming the very acquisition that holds it.
    pub token: String,
}

/// What one attempt at a lock found.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    /// The lock is ours (it was free, or stale and taken over).
    Taken,
    /// Another live process holds it.
    Held(Holder),
    /// The store could not tell within the time given (busy with another
    /// writer, or the lock changed hands while looking); try again.
    Busy,
}

impl Holder {
    /// This process, now.
    pub fn this_process() -> Self {
        let started = Utc::now().trunc_subsecs(3);
        let host = host_name();
        let pid = std::process::id();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        Self {
            owner: user_name(),
            token: format!("{host}:{pid}:{nanos}"),
            host,
            pid,
            started,
            boot_id: boot_id(),
        }
    }

    /// The lock document of dataset `name`.
    pub fn to_document(&self, name: &str) -> Document {
        let mut d = doc! {
            "_id": name,
            "owner": &self.owner,
            "host": &self.host,
            "pid": i64::from(self.pid),
            "started": bson::DateTime::from_chrono(self.started),
            "token": &self.token,
        };
        if let Some(b) = &self.boot_id {
            d.insert("boot_id", b);
        }
        d
    }

    /// The holder a lock document names; `None` for a document that is not one.
    pub fn from_document(d: &Document) -> Option<Self> {
        Some(Self {
            owner: d.get_str("owner").ok()?.to_string(),
            host: d.get_str("host").ok()?.to_string(),
            pid: u32::try_from(d.get_i64("pid").ok()?).ok()?,
            started: d.get_datetime("started").ok()?.to_chrono(),
            boot_id: d.get_str("boot_id").ok().map(str::to_string),
            token: d.get_str("token").ok()?.to_string(),
        })
    }

    /// Whether this holder is known to be gone: it ran on this host and
    /// its process no longer runs (or the host has rebooted since).
    pub fn is_gone(&self) -> bool {
        if self.host != host_name() {
            return false;
        }
        if let (Some(then), Some(now)) = (&self.boot_id, boot_id()) {
            if *then != now {
                return true;
            }
        }
        if self.pid == std::process::id() {
            // Our own pid: either this very acquisition, or one of a process
            // that died before the pid came round to us.
            return !self.token.starts_with(&this_token_prefix());
        }
        !process_alive(self.pid)
    }

    /// `user@host (pid N) since TIME`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "{}@{} (pid {}) since {}",
            self.owner,
            self.host,
            self.pid,
            self.started.format("%Y-%m-%dT%H:%M:%SZ")
        )
    }
}

/// The start of every token this process makes.
fn this_token_prefix() -> String {
    format!("{}:{}:", host_name(), std::process::id())
}

/// Whether a process with this pid runs on this host.
fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // Signal 0 checks for existence without sending anything; EPERM means it
    // exists under another user.
    // SAFETY: kill(2) with signal 0 has no effect on the target.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The host's name.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // within it on success (and we stop at the first NUL or the end anyway).
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Linux's id of the current boot, if the system has one.
/// Who runs this process: the name the password database gives the real
/// user id (so root is `root`, whatever the environment says), else
/// `$USER`/`$LOGNAME`, else `uidN`.
pub fn user_name() -> String {
    let uid = nix::unistd::getuid();
    if let Ok(Some(user)) = nix::unistd::User::from_uid(uid) {
        return user.name;
    }
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid{uid}"))
}

fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Take the lock of dataset `name` for `me`, waiting up to `timeout` for
/// another process to release it; a stale lock is taken over. Fails with a
/// message naming the holder when the time runs out, ending with `hint`
/// (what to do about it).
pub fn acquire(
    store: &mut dyn Store,
    name: &str,
    me: &Holder,
    timeout: Duration,
    hint: &str,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(20);
    loop {
        // The store's own busy wait is part of the timeout: only what
        // remains of it.
        let left = deadline.saturating_duration_since(Instant::now());
        let seen = match store.try_lock(name, me, left)? {
            Attempt::Taken => return Ok(()),
            Attempt::Held(h) => Some(h),
            Attempt::Busy => None,
        };
        let now = Instant::now();
        if now >= deadline {
            let secs = timeout.as_secs_f64();
            let msg = match seen {
                Some(h) => format!(
                    "could not get its lock within {secs} s: a load by {} holds it; {hint}",
                    h.describe()
                ),
                None => format!(
                    "could not get its lock within {secs} s: the store is busy with another write; {hint}"
                ),
            };
            return Err(Error::collection(name, msg));
        }
        sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

/// Run `f` holding the locks of `names` (taken in sorted order, so that two
/// commands never wait for each other), each waited for up to
/// [`DEFAULT_LOCK_TIMEOUT`]; every lock is released afterwards.
pub fn with_locks<T>(
    store: &mut dyn Store,
    names: &[&str],
    f: impl FnOnce(&mut dyn Store) -> Result<T>,
) -> Result<T> {
    let me = Holder::this_process();
    let mut sorted = names.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut held = Vec::new();
    let mut result = Ok(());
    for name in sorted {
        result = acquire(store, name, &me, DEFAULT_LOCK_TIMEOUT, "try again later");
        if result.is_err() {
            break;
        }
        held.push(name);
    }
    let result = result.and_then(|_| f(store));
    for name in held {
        if let Err(e) = store.unlock(name, &me) {
            eprintln!(
                "warning: the lock of '{name}' could not be released ({e}); `manage db -a --fix` removes it"
            );
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_document_round_trips() {
        let me = Holder::this_process();
        let d = me.to_document("casa");
        assert_eq!(d.get_str("_id").unwrap(), "casa");
        assert_eq!(Holder::from_document(&d), Some(me.clone()));
        assert!(!me.is_gone(), "this process is alive");
        assert!(Holder::from_document(&doc! { "_id": "x" }).is_none());
    }

    #[test]
    fn who_is_gone() {
        let me = Holder::this_process();
        // A pid far above any pid_max: no such process.
        let dead = Holder {
            pid: 0x7fff_fff0,
            ..me.clone()
        };
        assert!(dead.is_gone());
        // pid 1 always runs.
        let init = Holder {
            pid: 1,
            ..me.clone()
        };
        assert!(!init.is_gone());
        // Another host cannot be checked: never taken for gone.
        let far = Holder {
            host: "elsewhere.example".into(),
            ..dead.clone()
        };
        assert!(!far.is_gone());
        // Our pid under a token this process did not make: a dead process
        // whose pid came round to us.
        let reused = Holder {
            token: "h:1:2".into(),
            ..me.clone()
        };
        assert!(reused.is_gone());
        if me.boot_id.is_some() {
            let old_boot = Holder {
                boot_id: Some("an-earlier-boot".into()),
                pid: 1,
                ..me.clone()
            };
            assert!(old_boot.is_gone());
        }
    }
}
