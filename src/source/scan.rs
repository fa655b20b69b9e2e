//! One pass over a file for what a load needs of all of its bytes: its
//! size and SHA-256 (the ingest log's identity of the input) and where the
//! signatures of HDF5 global heap collections are (the structural check
//! of [`super::hdf5_heaps`]). A load hashes a file beside opening it; both
//! wanted the whole file, and each read it: now whichever asks first reads
//! it, once, and the other waits for that pass.
//!
//! A pass is shared only while [`share`]'s guard lives, and only for the
//! file as it was when the guard was made (the same inode, size and
//! modification and change times): otherwise each asker reads on its own.

use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// What one pass over a file found.
#[derive(Debug)]
pub struct Scan {
    pub size: u64,
    pub sha256: [u8; 32],
    /// Offsets of every `GCOL` in the file, in order.
    pub heaps: Vec<u64>,
}

/// The signature of a global heap collection.
pub(crate) const HEAP_SIGNATURE: &[u8] = b"GCOL";
const PIECE: usize = 1 << 20;

/// What identifies a file's content for as long as a pass is shared.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Key {
    fn of(path: &Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let md = std::fs::metadata(path).ok()?;
        md.is_file().then(|| Key {
            dev: md.dev(),
            ino: md.ino(),
            size: md.size(),
            mtime: (md.mtime(), md.mtime_nsec()),
            ctime: (md.ctime(), md.ctime_nsec()),
        })
    }
}

type Pass = Arc<OnceLock<Option<Arc<Scan>>>>;

static SHARED: Mutex<Vec<(Key, Pass)>> = Mutex::new(Vec::new());

/// While this lives, [`shared`] of the same file reads it once.
pub struct Shared {
    key: Option<Key>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let mut all = SHARED.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = all.iter().position(|(k, _)| *k == key) {
                all.swap_remove(i);
            }
        }
    }
}

/// Share one pass over `path` among those who ask for it until the guard
/// is dropped.
pub fn share(path: &Path) -> Shared {
    let key = Key::of(path);
    if let Some(k) = &key {
        let mut all = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if all.iter().any(|(x, _)| x == k) {
            // Shared already (by an outer guard): that one removes it.
            return Shared { key: None };
        }
        all.push((k.clone(), Pass::default()));
    }
    Shared { key }
}

/// The shared pass over `path`, made now by this caller if it is the first
/// to ask: `None` when the file is not being shared (or is no longer the
/// file it was), or when the pass failed (a read error, or a signal came;
/// the caller's own read then says so).
pub fn shared(path: &Path) -> Option<Arc<Scan>> {
    let key = Key::of(path)?;
    let pass = {
        let all = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        all.iter().find(|(k, _)| *k == key)?.1.clone()
    };
    pass.get_or_init(|| scan(path).ok().map(Arc::new)).clone()
}

/// Read the whole of `path` once, in pieces, stopping at a signal between
/// two pieces.
pub fn scan(path: &Path) -> Result<Scan> {
    let io = |e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let finder = memchr::memmem::Finder::new(HEAP_SIGNATURE);
    let keep = HEAP_SIGNATURE.len() - 1;
    let mut hasher = Sha256::new();
    let mut heaps = Vec::new();
    // The last bytes of the previous piece stay before this one, so that a
    // signature across two pieces is found.
    let mut buf = vec![0u8; keep + PIECE];
    let (mut kept, mut size) = (0usize, 0u64);
    loop {
        crate::interrupt::check()?;
        let n = match f.read(&mut buf[kept..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(e)),
        };
        hasher.update(&buf[kept..kept + n]);
        let filled = kept + n;
        let start = size - kept as u64;
        heaps.extend(finder.find_iter(&buf[..filled]).map(|at| start + at as u64));
        size += n as u64;
        let k = keep.min(filled);
        buf.copy_within(filled - k..filled, 0);
        kept = k;
    }
    Ok(Scan {
        size,
        sha256: hasher.finalize().into(),
        heaps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_across_pieces_are_found_once_and_the_hash_is_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut bytes = vec![7u8; 3 * PIECE + 10];
        // At the start, across the first boundary, at the very end.
        let at = [0, PIECE - 2, 2 * PIECE + 5, bytes.len() - 4];
        for &a in &at {
            bytes[a..a + 4].copy_from_slice(HEAP_SIGNATURE);
        }
        std::fs::write(&path, &bytes).unwrap();
        let s = scan(&path).unwrap();
        assert_eq!(s.heaps, at.iter().map(|&a| a as u64).collect::<Vec<_>>());
        assert_eq!(s.size, bytes.len() as u64);
        assert_eq!(s.sha256, <[u8; 32]>::from(Sha256::digest(&bytes)));
        // Shared: one pass, given to each asker; none once the guard is gone.
        let guard = share(&path);
        let a = shared(&path).unwrap();
        let b = shared(&path).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        drop(guard);
        assert!(shared(&path).is_none());
    }
}
