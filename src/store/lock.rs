//! Per-dataset locks: one writer of a dataset at a time, across processes
//! and hosts sharing one store.
//!
//! A lock is the document `{_id: NAME, owner, host, pid, pid_start, pid_ns,
//! started, boot_id, expires, token}` in the internal collection `_locks`;
//! a backend takes it atomically (a unique `_id`, or a write transaction)
//! in [`Store::try_lock`]. A lock is a *lease*: it holds until `expires`,
//! which its holder moves forward every third of the lease while it works
//! ([`Lease`]). A lock whose holder is known to be gone is *stale*: the
//! next writer takes it over, `db -a` reports it and `db -a --fix` removes
//! it. On the holder's own host (same host name, boot and PID namespace) a
//! holder is gone when its process no longer runs, or when the pid now
//! belongs to a process started at another time (the pid was reused);
//! from any other host, when its lease has lapsed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::sleep;
use std::time::{Duration, Instant};

use bson::{doc, Document};
use chrono::{DateTime, SubsecRound, Utc};

use super::Store;
use crate::error::{Error, Result};

/// What a store provides for the per-dataset locks: one atomic attempt
/// at a lock, its release, renewals from another thread, the clock leases
/// lapse by, and whether a holder is gone. Every
/// [`Store`](super::Store) is one; what is common to locks (holders,
/// leases, waiting, several in order) is written once above it, here.
pub trait Locks {
    /// The lock primitive: one atomic attempt at the lock of dataset `name`
    /// for `me`: take it if it is free or stale (see [`Holder::is_gone`]),
    /// else say who holds it. A backend may wait up to `wait` for the store
    /// itself to be free.
    fn try_lock(&mut self, name: &str, me: &Holder, wait: Duration) -> Result<Attempt>;

    /// Release the lock of `name` if `holder` (the same acquisition, by its
    /// token) still holds it; whether it did.
    fn unlock(&mut self, name: &str, holder: &Holder) -> Result<bool>;

    /// What renews the leases of locks in this store from another thread
    /// (its own connection).
    fn renewer(&self) -> Result<Box<dyn Renew>>;

    /// The store's clock, by which leases lapse: a server's own (MongoDB),
    /// so that hosts whose clocks differ agree; this host's for a store
    /// only this host writes.
    fn now(&self) -> Result<DateTime<Utc>> {
        Ok(host_now())
    }

    /// Why the lock `holder` holds is stale, if it is: its holder is gone
    /// (see [`Holder::why_gone_at`]), its lease judged by [`Locks::now`].
    /// A store whose writers cannot renew leases while another writes
    /// says `None` meanwhile for a lease that looks lapsed.
    fn why_gone(&self, holder: &Holder) -> Option<String> {
        holder.why_gone_at(self.now().unwrap_or_else(|_| host_now()))
    }
}

/// How long a load waits for a dataset's lock unless `--lock-timeout` says.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a lock holds unless renewed, unless [`LEASE_VAR`] says.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// The variable that sets the lease of the locks this process takes, in
/// seconds.
pub const LEASE_VAR: &str = "FLUXPY_LOCK_LEASE_SECONDS";

/// The variable that names this host in locks instead of its host name
/// (a container whose name changes every run can keep one).
pub const HOST_VAR: &str = "FLUXPY_HOST_ID";

/// The variable that sets this process's clock off by that many seconds
/// (fractions allowed, negative behind): what a host with a wrong clock
/// sees, for testing that lease rules do not depend on it.
pub const CLOCK_OFFSET_VAR: &str = "FLUXPY_CLOCK_OFFSET_SECONDS";

/// The longest attempt at a lock between two looks at the signals.
const ATTEMPT_SLICE: Duration = Duration::from_millis(500);

/// Who holds (or wants) a lock. Two holders are equal when all but their
/// expiry agree: renewing a lease (or a server setting its expiry by its
/// own clock) leaves the same holder.
#[derive(Debug, Clone)]
pub struct Holder {
    /// The user running the process.
    pub owner: String,
    /// The host name, or [`HOST_VAR`] when set.
    pub host: String,
    pub pid: u32,
    /// When the process started, in clock ticks since the host booted
    /// (Linux: field 22 of `/proc/PID/stat`), when known: a live process
    /// with the same pid but another start time is not the holder.
    pub pid_start: Option<u64>,
    /// The PID namespace `pid` is counted in (`pid:[N]`), when known: from
    /// another namespace the pid cannot be checked.
    pub pid_ns: Option<String>,
    /// When the process asked for the lock (milliseconds, as stored).
    pub started: DateTime<Utc>,
    /// Linux's boot id of the host, when known: a lock from an earlier boot
    /// is not checked by its pid.
    pub boot_id: Option<String>,
    /// Until when the lock holds unless renewed (milliseconds, as stored).
    pub expires: DateTime<Utc>,
    /// Unique per acquisition: a lock is released, renewed or taken over
    /// only by naming the very acquisition that holds it.
    pub token: String,
}

impl PartialEq for Holder {
    fn eq(&self, other: &Self) -> bool {
        self.owner == other.owner
            && self.host == other.host
            && self.pid == other.pid
            && self.pid_start == other.pid_start
            && self.pid_ns == other.pid_ns
            && self.started == other.started
            && self.boot_id == other.boot_id
            && self.token == other.token
    }
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

/// The lease of the locks this process takes: [`LEASE_VAR`] if set, else
/// [`DEFAULT_LEASE`].
pub fn lease() -> Result<Duration> {
    let Ok(v) = std::env::var(LEASE_VAR) else {
        return Ok(DEFAULT_LEASE);
    };
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| (0.1..=604_800.0).contains(s))
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            Error::Usage(format!(
                "{LEASE_VAR}={v:?} is not a lease in seconds (0.1 to 604800)"
            ))
        })
}

/// This host's clock: the time now, off by [`CLOCK_OFFSET_VAR`] when set.
/// Lease expiry on MongoDB is judged by the server's clock instead (see
/// [`Store::now`]); this clock decides only on the embedded store, which
/// one host writes.
pub fn host_now() -> DateTime<Utc> {
    let now = Utc::now();
    match std::env::var(CLOCK_OFFSET_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && s.abs() < 1e9)
    {
        Some(s) => now + chrono::Duration::milliseconds((s * 1000.0) as i64),
        None => now,
    }
}

/// `lease` from now, in milliseconds as stored.
pub fn expiry(lease: Duration) -> DateTime<Utc> {
    let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
    (host_now() + lease).trunc_subsecs(3)
}

impl Holder {
    /// This process, now, its lease starting now.
    pub fn this_process() -> Self {
        let started = host_now().trunc_subsecs(3);
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
            pid_start: process_start(pid),
            pid_ns: pid_namespace(),
            started,
            boot_id: boot_id(),
            expires: expiry(lease().unwrap_or(DEFAULT_LEASE)),
        }
    }

    /// The same holder, its lease starting now.
    pub fn renewed(&self, lease: Duration) -> Self {
        Self {
            expires: expiry(lease),
            ..self.clone()
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
            "expires": bson::DateTime::from_chrono(self.expires),
        };
        if let Some(t) = self.pid_start.and_then(|t| i64::try_from(t).ok()) {
            d.insert("pid_start", t);
        }
        if let Some(ns) = &self.pid_ns {
            d.insert("pid_ns", ns);
        }
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
            pid_start: d
                .get_i64("pid_start")
                .ok()
                .and_then(|t| u64::try_from(t).ok()),
            pid_ns: d.get_str("pid_ns").ok().map(str::to_string),
            started: d.get_datetime("started").ok()?.to_chrono(),
            boot_id: d.get_str("boot_id").ok().map(str::to_string),
            expires: d.get_datetime("expires").ok()?.to_chrono(),
            token: d.get_str("token").ok()?.to_string(),
        })
    }

    /// Whether this holder's process can be checked from here: the same
    /// host name, boot and PID namespace (what is unknown on either side
    /// is taken to agree).
    pub fn on_this_host(&self) -> bool {
        let agree = |a: &Option<String>, b: Option<String>| match (a, b) {
            (Some(a), Some(b)) => *a == b,
            _ => true,
        };
        self.host == host_name()
            && agree(&self.boot_id, boot_id())
            && agree(&self.pid_ns, pid_namespace())
    }

    /// Whether this holder is known to be gone. On this host: its process
    /// no longer runs, or its pid now belongs to a process started at
    /// another time. From another host (or an earlier boot, or another
    /// PID namespace): its lease has lapsed.
    pub fn is_gone(&self) -> bool {
        self.why_gone().is_some()
    }

    /// Why this holder is known to be gone (see [`Holder::is_gone`]), as
    /// the end of a sentence; `None` while it may still work. Its lease is
    /// judged by this host's clock: see [`Holder::why_gone_at`].
    pub fn why_gone(&self) -> Option<String> {
        self.why_gone_at(host_now())
    }

    /// [`Holder::why_gone`], its lease judged at `now` (the store's clock,
    /// see [`Store::now`]).
    pub fn why_gone_at(&self, now: DateTime<Utc>) -> Option<String> {
        if !self.on_this_host() {
            return (self.expires <= now).then(|| {
                format!(
                    "whose lease lapsed at {} unrenewed",
                    self.expires.format("%Y-%m-%dT%H:%M:%SZ")
                )
            });
        }
        if self.pid == std::process::id() {
            // Our own pid: either this very acquisition, or one of a process
            // that died before the pid came round to us.
            return (!self.token.starts_with(&this_token_prefix()))
                .then(|| "a process that is gone".into());
        }
        if !process_alive(self.pid) {
            return Some("a process that is gone".into());
        }
        match (self.pid_start, process_start(self.pid)) {
            (Some(then), Some(now)) if then != now => Some(format!(
                "a process that is gone (pid {} now belongs to a process started later)",
                self.pid
            )),
            _ => None,
        }
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
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // No signal (signal 0) checks for existence without sending anything;
    // EPERM means it exists under another user.
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) | Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    }
}

/// When process `pid` started, in clock ticks since boot: field 22 of
/// `/proc/PID/stat` (counted after the command name, which may hold spaces
/// and parentheses itself).
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    // `rest` starts at field 3 (the state).
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// The PID namespace of this process, as `/proc/self/ns/pid` names it.
fn pid_namespace() -> Option<String> {
    std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// The name of this host in locks: [`HOST_VAR`] when set, else the host's
/// name.
pub fn host_name() -> String {
    if let Some(id) = std::env::var(HOST_VAR)
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        return id.trim().to_string();
    }
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".into())
}

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

/// Linux's id of the current boot, if the system has one.
fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Renews a lock's lease from another thread than the one that works
/// under it (see [`Store::renewer`]).
pub trait Renew: Send {
    /// Move the expiry of `name`'s lock to `expires` if acquisition `token`
    /// still holds it; whether it does. An error says that the store could
    /// not be reached or was busy: the next renewal tries again.
    fn renew(&mut self, name: &str, token: &str, expires: DateTime<Utc>) -> Result<bool>;
}

/// A held lock's lease, renewed every third of it by a thread of its own
/// until this is dropped.
pub struct Lease {
    name: String,
    /// The acquisition's token (see [`Holder::token`]).
    token: String,
    /// Dropped to stop the renewals.
    _stop: mpsc::Sender<()>,
    lost: Arc<AtomicBool>,
}

impl Lease {
    fn keep(mut renewer: Box<dyn Renew>, name: &str, token: &str, lease: Duration) -> Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let lost = Arc::new(AtomicBool::new(false));
        let (n, t, l) = (name.to_string(), token.to_string(), Arc::clone(&lost));
        std::thread::Builder::new()
            .name(format!("lease of {name}"))
            .spawn(move || {
                // Stopped (the sender dropped) or the lock taken over: done.
                // A renewal after the lock is released finds another token
                // or none and changes nothing.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(lease / 3) {
                    if let Ok(false) = renewer.renew(&n, &t, expiry(lease)) {
                        l.store(true, Ordering::SeqCst);
                        break;
                    }
                }
            })
            .map_err(|e| {
                Error::collection(
                    name,
                    format!("cannot start the thread that renews its lock: {e}"),
                )
            })?;
        Ok(Self {
            name: name.to_string(),
            token: token.to_string(),
            _stop: stop,
            lost,
        })
    }

    /// The token of the acquisition this lease keeps: a store fences the
    /// load's commit with it (see [`Store::fence`]).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Whether another process has taken the lock over.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Fail if another process has taken the lock over (its lease lapsed
    /// unrenewed, as when this host lost the store for longer than the
    /// lease), or if a signal came.
    pub fn check(&self) -> Result<()> {
        crate::interrupt::check()?;
        if self.lost() {
            return Err(Error::collection(
                &self.name,
                "another process took its lock over (the lease lapsed before it was renewed); nothing of this load was kept",
            ));
        }
        Ok(())
    }
}

/// Take the lock of dataset `name` for `me`, waiting up to `timeout` for
/// another process to release it; a stale lock is taken over. Fails with a
/// message naming the holder when the time runs out, ending with `hint`
/// (what to do about it), or when a signal comes. The lease is renewed
/// until the [`Lease`] returned is dropped; release the lock with
/// [`Store::unlock`].
pub fn acquire(
    store: &mut dyn Store,
    name: &str,
    me: &Holder,
    timeout: Duration,
    hint: &str,
) -> Result<Lease> {
    acquire_leased(store, name, me, timeout, hint, lease()?)
}

/// [`acquire`], with a lease of `lease`.
pub fn acquire_leased(
    store: &mut dyn Store,
    name: &str,
    me: &Holder,
    timeout: Duration,
    hint: &str,
    lease: Duration,
) -> Result<Lease> {
    let renewer = store.renewer()?;
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(20);
    loop {
        crate::interrupt::check()?;
        // The store's own busy wait is part of the timeout: only what
        // remains of it, in slices short enough to notice a signal.
        let left = deadline.saturating_duration_since(Instant::now());
        let seen = match store.try_lock(name, &me.renewed(lease), left.min(ATTEMPT_SLICE))? {
            Attempt::Taken => {
                return Lease::keep(renewer, name, &me.token, lease).inspect_err(|_| {
                    let _ = store.unlock(name, me);
                })
            }
            Attempt::Held(h) => Some(h),
            Attempt::Busy => None,
        };
        let now = Instant::now();
        if now >= deadline {
            let secs = timeout.as_secs_f64();
            let seen = seen.or_else(|| holder_of(&*store, name, me));
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

/// Who holds the lock of `name` by the store's table of locks, read, not
/// written: where the store was too busy with another write to be locked
/// (a write waits for the writer; a read does not), the load holding the
/// lock is the one to name, most likely the very writer.
fn holder_of(store: &dyn Store, name: &str, me: &Holder) -> Option<Holder> {
    use super::Datasets;
    store
        .locks()
        .ok()?
        .into_iter()
        .find(|(n, h)| n == name && h.token != me.token)
        .map(|(_, h)| h)
}

/// Run `f` holding the locks of `names` (taken in sorted order, so that two
/// commands never wait for each other), each waited for up to
/// [`DEFAULT_LOCK_TIMEOUT`]; every lock is released afterwards.
pub fn with_locks<T>(
    store: &mut dyn Store,
    names: &[&str],
    f: impl FnOnce(&mut dyn Store) -> Result<T>,
) -> Result<T> {
    with_locks_waiting(
        store,
        names,
        DEFAULT_LOCK_TIMEOUT,
        "try again later",
        |s, _| f(s),
    )
}

/// [`with_locks`], waiting up to `timeout` for each lock and ending a
/// timeout's error with `hint`; `f` is given the leases, in the sorted
/// order of their names, to check (see [`Lease::check`]) as it goes.
pub fn with_locks_waiting<T>(
    store: &mut dyn Store,
    names: &[&str],
    timeout: Duration,
    hint: &str,
    f: impl FnOnce(&mut dyn Store, &[Lease]) -> Result<T>,
) -> Result<T> {
    let me = Holder::this_process();
    let mut sorted = names.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut held = Vec::new();
    let mut leases = Vec::new();
    let mut result = Ok(());
    for name in sorted {
        match acquire(store, name, &me, timeout, hint) {
            Ok(lease) => {
                leases.push(lease);
                held.push(name);
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let result = result
        .and_then(|_| leases.iter().try_for_each(Lease::check))
        .and_then(|_| f(store, &leases));
    // The renewals end before the locks go.
    drop(leases);
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
        // Where a host cannot tell its start times or namespaces.
        let mut old = d.clone();
        for k in ["pid_start", "pid_ns"] {
            old.remove(k);
        }
        let read = Holder::from_document(&old).unwrap();
        assert_eq!((read.pid_start, read.pid_ns), (None, None));
        // A lock always has a lease.
        let mut no_lease = d.clone();
        no_lease.remove("expires");
        assert!(Holder::from_document(&no_lease).is_none());
    }

    #[test]
    fn the_start_time_of_this_process_is_read_from_proc() {
        let me = process_start(std::process::id());
        if std::path::Path::new("/proc/self/stat").exists() {
            let t = me.expect("a start time");
            // Started after the host booted and before now.
            let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
                .unwrap()
                .unwrap() as u64;
            let uptime: f64 = std::fs::read_to_string("/proc/uptime")
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert!(t as f64 / ticks as f64 <= uptime + 1.0, "{t}");
        }
        assert_eq!(process_start(0x7fff_fff0), None);
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
        // pid 1 always runs (since it started).
        let init = Holder {
            pid: 1,
            pid_start: process_start(1),
            ..me.clone()
        };
        assert!(!init.is_gone());
        // Another host cannot be checked: its lease tells.
        let far = Holder {
            host: "elsewhere.example".into(),
            ..dead.clone()
        };
        assert!(!far.is_gone(), "its lease runs");
        let lapsed = Holder {
            expires: Utc::now() - chrono::Duration::seconds(1),
            ..far.clone()
        };
        assert!(lapsed.is_gone(), "its lease lapsed");
        // On this host a lapsed lease does not matter while the process runs.
        let init_lapsed = Holder {
            expires: lapsed.expires,
            ..init.clone()
        };
        assert!(!init_lapsed.is_gone());
        // pid 1 started at another time than it did: the pid was reused.
        if let Some(t) = process_start(1) {
            let same = Holder {
                pid_start: Some(t),
                ..init.clone()
            };
            assert!(!same.is_gone());
            let reused = Holder {
                pid_start: Some(t + 1),
                ..init.clone()
            };
            assert!(reused.is_gone());
        }
        // Another PID namespace: its pid means nothing here; the lease tells.
        let other_ns = Holder {
            pid_ns: Some("pid:[1]".into()),
            ..dead.clone()
        };
        if me.pid_ns.is_some() {
            assert!(!other_ns.is_gone());
            assert!(Holder {
                expires: lapsed.expires,
                ..other_ns
            }
            .is_gone());
        }
        // Our pid under a token this process did not make: a dead process
        // whose pid came round to us.
        let reused = Holder {
            token: "h:1:2".into(),
            ..me.clone()
        };
        assert!(reused.is_gone());
        if me.boot_id.is_some() {
            // An earlier boot: its pid means nothing now; the lease tells.
            let old_boot = Holder {
                boot_id: Some("an-earlier-boot".into()),
                pid: 1,
                ..me.clone()
            };
            assert!(!old_boot.is_gone(), "its lease runs");
            assert!(Holder {
                expires: lapsed.expires,
                ..old_boot.clone()
            }
            .is_gone());
        }
    }
}
