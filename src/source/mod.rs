//! Sources: open a data file by its content and hand out its matrix.
//!
//! A source knows nothing of models or stores. It finds the variable, checks
//! that it is a real, numeric, two-dimensional matrix, and yields it in
//! MATLAB orientation (rows are cells, columns are coordinates then steps) in
//! blocks of columns, so that a model can convert a file larger than memory
//! one block at a time.

pub mod blocks;
mod crash_guard;
pub mod formats;
mod hdf5;
mod hdf5_deflate;
mod hdf5_heaps;
mod hdf5_origin;
pub mod listing;
mod mat_structure;
mod matv4;
mod matv5;
mod netcdf;
mod netcdf3_header;
pub mod scan;

use std::io::Read;
use std::path::{Path, PathBuf};

use ndarray::Array2;

use crate::error::{Error, Result};

pub use self::netcdf::{parse_time_units, GridFacts};

/// A path the C libraries (HDF5, NetCDF) can open, which take UTF-8 text
/// only: the path itself when it is UTF-8; otherwise, on Linux, the file
/// opened here and named by its `/proc/self/fd` entry, kept open as long as
/// this value lives. Elsewhere a path that is not UTF-8 is refused, saying
/// so (it is not a damaged file).
pub(crate) struct LibraryPath {
    path: PathBuf,
    _held: Option<std::fs::File>,
}

impl LibraryPath {
    pub(crate) fn new(path: &Path) -> Result<Self> {
        if path.to_str().is_some() {
            return Ok(Self {
                path: path.to_path_buf(),
                _held: None,
            });
        }
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let f = std::fs::File::open(path).map_err(|e| Error::Io {
                path: path.to_path_buf(),
                source: e,
            })?;
            let alias = PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()));
            if alias.exists() {
                return Ok(Self {
                    path: alias,
                    _held: Some(f),
                });
            }
        }
        Err(Error::format(
            path,
            "its path is not UTF-8, which the HDF5 and NetCDF libraries cannot open; rename the file",
        ))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// The HDF5 library prints its error stack (`HDF5-DIAG` lines) on stderr
/// by default, and that setting is per thread in a thread-safe build:
/// every thread that calls into HDF5 or NetCDF-4 turns it off first, so
/// that a damaged file ends in the one-line refusal only.
pub(crate) fn quiet_hdf5() {
    thread_local!(static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
    QUIET.with(|q| {
        if !q.get() {
            ::hdf5::silence_errors(true);
            q.set(true);
        }
    });
}

/// The largest chunk (uncompressed) of an HDF5 or NetCDF-4 variable that
/// is read: the library inflates a whole chunk to read any part of it,
/// so a small file of one enormous compressed chunk (zeros compress a
/// thousandfold) would take that much memory, and its time again for each
/// block of columns. Real products' chunks are a few MiB.
pub(crate) const MAX_CHUNK_BYTES: u64 = 64 << 20;

/// Refuse a variable stored in chunks larger than [`MAX_CHUNK_BYTES`]
/// before any of it is inflated.
pub(crate) fn check_chunk_size(
    path: &Path,
    var: &str,
    chunk: &[usize],
    element: usize,
) -> Result<()> {
    let bytes = chunk
        .iter()
        .try_fold(element as u64, |a, &c| a.checked_mul(c as u64))
        .unwrap_or(u64::MAX);
    if bytes > MAX_CHUNK_BYTES {
        return Err(Error::variable(
            path,
            var,
            format!(
                "is stored in chunks of {} MiB each (chunk shape {chunk:?}), more than the {} MiB manage inflates at a time; rechunk it (nccopy -c, h5repack -l) into smaller chunks",
                bytes >> 20,
                MAX_CHUNK_BYTES >> 20
            ),
        ));
    }
    Ok(())
}

/// What a source found in the file.
#[derive(Debug, Clone)]
pub struct MatrixInfo {
    pub path: PathBuf,
    pub var_name: String,
    /// Rows of the matrix in MATLAB orientation: one per grid cell or point.
    pub rows: usize,
    /// Columns: the coordinate columns, then the value or step columns.
    pub cols: usize,
    /// The numeric class as MATLAB names it (`double`, `single`, `int16`, …).
    pub class: &'static str,
}

/// A two-dimensional numeric matrix, read column blocks at a time.
pub trait Matrix: Send {
    fn info(&self) -> &MatrixInfo;

    /// Columns `start..start + count` as a `rows × count` array of `f64`.
    fn read_columns(&mut self, start: usize, count: usize) -> Result<Array2<f64>>;

    /// What the file's CF metadata says of its grid (times, units, title,
    /// spacing): only NetCDF files have it.
    fn grid_facts(&self) -> Option<&GridFacts> {
        None
    }

    /// The least magnitude of the non-zero finite values of columns
    /// `start..start + count` ([`f64::INFINITY`] if there is none), as
    /// [`Matrix::read_columns`] gives them. A reader may find it without
    /// building the block.
    fn smallest_magnitude(&mut self, start: usize, count: usize) -> Result<f64> {
        let block = self.read_columns(start, count)?;
        let smallest = block
            .iter()
            .fold(f64::INFINITY, |s, &x| least_magnitude(s, x));
        // The next block reuses its memory instead of faulting in more.
        blocks::recycle(block);
        Ok(smallest)
    }
}

/// `smallest`, or `|x|` where that is non-zero and smaller.
#[inline]
pub fn least_magnitude(smallest: f64, x: f64) -> f64 {
    let a = x.abs();
    if a > 0.0 && a < smallest {
        a
    } else {
        smallest
    }
}

/// The container formats `manage` reads, told apart by their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// MATLAB Level 5 MAT-file (versions 5 to 7), compressed or not.
    MatV5,
    /// MATLAB Level 4 MAT-file: no file header, told by its first variable's.
    MatV4,
    /// MATLAB v7.3: HDF5 behind a 512-byte MATLAB header.
    MatV73,
    /// Plain HDF5.
    Hdf5,
    /// NetCDF-3 (classic, 64-bit offset or 64-bit data): `CDF` and a version byte.
    NetCdf3,
    /// NetCDF-4: HDF5 that libnetcdf wrote.
    NetCdf4,
}

const HDF5_SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// Tell the format of a file from its first bytes, and check what must be
/// checked of it before a library opens it: an HDF5 file's global heaps,
/// a NetCDF-3 header; an HDF5 file that libnetcdf wrote is NetCDF-4.
pub fn detect(path: &Path) -> Result<FileFormat> {
    let sniffed = sniffed(path)?;
    (formats::of(sniffed.format).check)(path, &sniffed)
}

/// The format of a file as its first bytes tell it, without the checks of
/// [`detect`] (which read the whole of an HDF5 file): what a file is, and
/// that it can be read, before anything else is said of it. An HDF5 file
/// is `Hdf5` here, whether libnetcdf wrote it or not.
pub fn sniff(path: &Path) -> Result<FileFormat> {
    sniffed(path).map(|s| s.format)
}

/// What the first bytes of a file say.
pub struct Sniffed {
    pub format: FileFormat,
    /// The version byte of a NetCDF-3 file (1, 2 or 5).
    pub netcdf_version: u8,
    /// Where the superblock of an HDF5 file starts: 0, or the size of its
    /// user block (512 behind a MATLAB header; any power of two from 512
    /// up, as h5py's `userblock_size` makes it).
    pub hdf5_base: u64,
}

/// Where an HDF5 file whose first bytes are a user block has its
/// signature: the library looks at 0, 512, 1024, 2048 and so on up to the
/// end of the file, and so does this.
fn hdf5_after_user_block(f: &std::fs::File) -> std::io::Result<Option<u64>> {
    use std::os::unix::fs::FileExt;
    let len = f.metadata()?.len();
    let mut at = 512u64;
    while at.saturating_add(8) <= len {
        let mut sig = [0u8; 8];
        f.read_exact_at(&mut sig, at)?;
        if &sig == HDF5_SIGNATURE {
            return Ok(Some(at));
        }
        at *= 2;
    }
    Ok(None)
}

/// [`sniff`], with what [`detect`] needs to know beyond the format.
fn sniffed(path: &Path) -> Result<Sniffed> {
    let found = |format, netcdf_version, hdf5_base| {
        Ok(Sniffed {
            format,
            netcdf_version,
            hdf5_base,
        })
    };
    let io = |e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    };
    // Opened without blocking: opening a FIFO for reading would otherwise
    // wait for a writer forever. What was opened is then checked to be a
    // regular file before a byte is read.
    let mut f = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(io)?
    };
    let kind = f.metadata().map_err(io)?.file_type();
    if kind.is_dir() {
        return Err(Error::format(path, "is a directory, not a data file"));
    }
    if !kind.is_file() {
        use std::os::unix::fs::FileTypeExt;
        let what = if kind.is_fifo() {
            "a FIFO (named pipe)"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else {
            "not a regular file"
        };
        return Err(Error::format(
            path,
            format!("is {what}, not a data file; manage reads regular files only"),
        ));
    }
    // Back to ordinary blocking reads (a regular file never blocks anyway).
    {
        use std::os::fd::AsRawFd;
        let fd = f.as_raw_fd();
        // SAFETY: plain fcntl calls on a descriptor this function owns.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
            }
        }
    }
    let mut head = [0u8; 520];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]).map_err(io)? {
            0 => break,
            k => n += k,
        }
    }
    let head = &head[..n];
    if n == 0 {
        return Err(Error::format(path, "the file is empty"));
    }
    if head.starts_with(HDF5_SIGNATURE) {
        return found(FileFormat::Hdf5, 0, 0);
    }
    if head.len() >= 4 && &head[..3] == b"CDF" && matches!(head[3], 1 | 2 | 5) {
        return found(FileFormat::NetCdf3, head[3], 0);
    }
    if head.starts_with(b"MATLAB") && n < 128 {
        return Err(Error::format(
            path,
            "truncated MAT-file: the 128-byte header is incomplete",
        ));
    }
    if head.starts_with(b"MATLAB") {
        let version = [head[124], head[125]];
        // The version is written in the file's byte order; the endian
        // indicator at 126 ("IM" or "MI") tells which.
        let v = if &head[126..128] == b"IM" {
            u16::from_le_bytes(version)
        } else {
            u16::from_be_bytes(version)
        };
        return match v {
            0x0100 => found(FileFormat::MatV5, 0, 0),
            0x0200 if head.len() >= 520 && &head[512..520] == HDF5_SIGNATURE => {
                found(FileFormat::MatV73, 0, 512)
            }
            0x0200 => Err(Error::format(
                path,
                "MATLAB v7.3 header without the HDF5 data after it: the file is truncated or damaged",
            )),
            _ => Err(Error::format(
                path,
                format!("MAT-file of unknown version 0x{v:04x}: save it with -v7 or -v7.3"),
            )),
        };
    }
    // A user block of the writer's own (h5py's `userblock_size`), not
    // MATLAB's header: the HDF5 signature follows it.
    if let Some(base) = hdf5_after_user_block(&f).map_err(io)? {
        return found(FileFormat::Hdf5, 0, base);
    }
    if matv4::looks_like_v4(head) {
        return found(FileFormat::MatV4, 0, 0);
    }
    Err(Error::format(path, formats::unknown_format_text()))
}

/// Open the matrix held in `path` under `var_name` (a dataset path such as
/// `group/name` in HDF5), or the default variable when no name is given: in a
/// MAT v5 file the first whose name does not start with `__`; in HDF5 the
/// first dataset of a depth-first walk in name order that skips names
/// starting with `__` or `#`.
pub fn open(path: &Path, var_name: Option<&str>) -> Result<Box<dyn Matrix>> {
    (formats::of(detect(path)?).open)(path, var_name)
}

/// Check the shape every model needs: a 2-D matrix with at least one row.
pub(crate) fn check_shape(path: &Path, var: &str, dims: &[usize]) -> Result<(usize, usize)> {
    match dims {
        [r, c] if *r > 0 && *c > 0 => {
            if *r == 1 || *c == 1 {
                Err(Error::variable(
                    path,
                    var,
                    format!("is a vector ({r}×{c}); a matrix of cells × columns is needed"),
                ))
            } else {
                Ok((*r, *c))
            }
        }
        [_, _] | [0] => Err(Error::variable(path, var, "is empty")),
        [n] => Err(Error::variable(
            path,
            var,
            format!("is a vector ({n} values); a matrix of cells × columns is needed"),
        )),
        d => Err(Error::variable(
            path,
            var,
            format!(
                "has {} dimensions ({}); a 2-D matrix of cells × columns is needed",
                d.len(),
                d.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join("×")
            ),
        )),
    }
}
