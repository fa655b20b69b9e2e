//! A deadline for every MongoDB operation, and the progress a lease's
//! renewals depend on.
//!
//! The driver (3.x) has no socket or operation timeout of its own (it
//! refuses `socketTimeoutMS`): an operation on a connection that stalls
//! (a hung server or network, no error) would wait forever. So every
//! operation runs here with a time limit: the URI's `timeoutMS`, else its
//! `socketTimeoutMS`, else [`DEFAULT_OPERATION_TIMEOUT`] (`0` in the URI:
//! none). An operation that runs out of time fails the command with one
//! line; so does every later one of the same connection, at once, since
//! the server stopped answering (what the command still tries on its way
//! out, such as dropping its staging collection or releasing its lock,
//! is left to `db -a` and the lease).
//!
//! The lease of a lock is renewed only while the connection makes
//! progress: not after an operation ran out of time, nor while one has
//! been waiting longer than the limit. A load stuck on its store thus
//! stops holding its dataset, and another host takes it over once the
//! lease lapses.

use std::future::IntoFuture;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use bson::Document;

/// The time limit of an operation when the URI sets neither `timeoutMS`
/// nor `socketTimeoutMS`.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(120);

/// The runtime the operations wait on (the driver's blocking API waits on
/// one of its own, without a time limit).
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    // As many workers as the driver's own blocking runtime has (one per
    // core): with one, the connections' I/O of a long insert and of the
    // lease renewer's update waited on the same thread, and a renewal
    // could come after the lease had lapsed.
    tokio::runtime::Builder::new_multi_thread()
        .thread_name("mongodb-deadline")
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot start the runtime of MongoDB operations: {e}"))
});

/// What a driver error carries when an operation ran out of time, or was
/// not tried because an earlier one had (see [`mongodb::error::Error::custom`]).
#[derive(Debug, Clone)]
pub(super) struct Stalled {
    pub limit: Duration,
    /// Not tried: an earlier operation ran out of time.
    pub earlier: bool,
}

#[derive(Default)]
struct State {
    /// When each operation in flight began, by number.
    in_flight: Vec<(u64, Instant)>,
    next: u64,
    /// An operation ran out of time.
    stalled: bool,
}

/// The time limit of a connection's operations, and what they are doing
/// (shared with the lease renewer).
#[derive(Clone)]
pub(super) struct Deadline {
    limit: Option<Duration>,
    state: Arc<Mutex<State>>,
}

impl Deadline {
    /// `None`: no limit.
    pub fn new(limit: Option<Duration>) -> Self {
        Self {
            limit,
            state: Arc::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run a driver action (or any future of a driver result) within the
    /// limit; an operation that runs out of time, or any after one did,
    /// fails with [`Stalled`].
    pub fn run<T, A>(&self, action: A) -> mongodb::error::Result<T>
    where
        A: IntoFuture<Output = mongodb::error::Result<T>>,
    {
        let id = {
            let mut s = self.state();
            if s.stalled {
                return Err(self.stalled(true));
            }
            s.next += 1;
            let id = s.next;
            s.in_flight.push((id, Instant::now()));
            id
        };
        let result = self.wait(action);
        let mut s = self.state();
        s.in_flight.retain(|(i, _)| *i != id);
        if result.is_none() {
            s.stalled = true;
        }
        result.unwrap_or_else(|| Err(self.stalled(false)))
    }

    /// [`Deadline::run`] for the lease renewer: not counted as progress or
    /// as an operation in flight, and not marking the connection stalled.
    pub fn run_aside<T, A>(&self, action: A) -> mongodb::error::Result<T>
    where
        A: IntoFuture<Output = mongodb::error::Result<T>>,
    {
        self.wait(action)
            .unwrap_or_else(|| Err(self.stalled(false)))
    }

    /// The action's result, or `None` when it ran out of time.
    fn wait<T, A>(&self, action: A) -> Option<mongodb::error::Result<T>>
    where
        A: IntoFuture<Output = mongodb::error::Result<T>>,
    {
        let fut = action.into_future();
        RUNTIME.block_on(async {
            match self.limit {
                Some(limit) => tokio::time::timeout(limit, fut).await.ok(),
                None => Some(fut.await),
            }
        })
    }

    fn stalled(&self, earlier: bool) -> mongodb::error::Error {
        mongodb::error::Error::custom(Stalled {
            limit: self.limit.unwrap_or_default(),
            earlier,
        })
    }

    /// Whether the connection is making progress: no operation ran out of
    /// time, and none has been waiting longer than the limit.
    pub fn making_progress(&self) -> bool {
        let s = self.state();
        if s.stalled {
            return false;
        }
        match self.limit {
            Some(limit) => s.in_flight.iter().all(|(_, t)| t.elapsed() < limit),
            None => true,
        }
    }

    /// Run `f` (which drops driver values, such as a cursor, that may
    /// start work of their own) inside the runtime.
    pub fn enter<T>(f: impl FnOnce() -> T) -> T {
        let _guard = RUNTIME.enter();
        f()
    }
}

/// A driver action run within a [`Deadline`] (instead of the blocking
/// API's `run`, which waits without a limit).
pub(super) trait Within<T>: IntoFuture<Output = mongodb::error::Result<T>> + Sized {
    fn within(self, deadline: &Deadline) -> mongodb::error::Result<T> {
        deadline.run(self)
    }
}

impl<T, A: IntoFuture<Output = mongodb::error::Result<T>>> Within<T> for A {}

/// A cursor read one batch at a time, each within the limit.
pub(super) struct Rows {
    cursor: Option<mongodb::Cursor<Document>>,
    deadline: Deadline,
}

impl Rows {
    pub fn new(cursor: mongodb::Cursor<Document>, deadline: &Deadline) -> Self {
        Self {
            cursor: Some(cursor),
            deadline: deadline.clone(),
        }
    }
}

impl Iterator for Rows {
    type Item = mongodb::error::Result<Document>;

    fn next(&mut self) -> Option<Self::Item> {
        let cursor = self.cursor.as_mut()?;
        match self.deadline.run(cursor.advance()) {
            Ok(true) => Some(cursor.deserialize_current()),
            Ok(false) => {
                self.drop_cursor();
                None
            }
            Err(e) => {
                self.drop_cursor();
                Some(Err(e))
            }
        }
    }
}

impl Rows {
    fn drop_cursor(&mut self) {
        // A cursor still open on the server is closed by a task it starts.
        if let Some(c) = self.cursor.take() {
            Deadline::enter(|| drop(c));
        }
    }
}

impl Drop for Rows {
    fn drop(&mut self) {
        self.drop_cursor();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operation_past_its_limit_fails_and_so_do_later_ones() {
        let d = Deadline::new(Some(Duration::from_millis(50)));
        assert!(d.making_progress());
        let quick: mongodb::error::Result<u8> = d.run(async { Ok(1) });
        assert_eq!(quick.unwrap(), 1);
        let started = Instant::now();
        let hung = d.run(std::future::pending::<mongodb::error::Result<u8>>());
        assert!(started.elapsed() < Duration::from_secs(5));
        let e = hung.unwrap_err();
        assert!(!e.get_custom::<Stalled>().unwrap().earlier);
        assert!(!d.making_progress());
        let after = d.run(async { Ok(2u8) }).unwrap_err();
        assert!(after.get_custom::<Stalled>().unwrap().earlier);
    }

    #[test]
    fn without_a_limit_nothing_times_out() {
        let d = Deadline::new(None);
        let r: mongodb::error::Result<u8> = d.run(async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(3)
        });
        assert_eq!(r.unwrap(), 3);
        assert!(d.making_progress());
    }
}
