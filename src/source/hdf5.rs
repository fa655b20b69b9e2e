//! HDF5 files: plain `.h5`/`.hdf5` and MATLAB v7.3 `.mat`, through the
//! `hdf5` crate (`hdf5-metno`) over the HDF5 C library.
//!
//! A v7.3 MAT-file is HDF5 behind a 512-byte user block holding MATLAB's
//! text header; the library finds the superblock behind it by itself. MATLAB
//! writes a matrix column-major, so a dataset carrying a `MATLAB_class`
//! attribute has the HDF5 shape `cols × rows` of the MATLAB matrix: a block
//! of MATLAB columns is a block of HDF5 rows, contiguous on disk, and the
//! array read back is transposed (without copying) to `rows × count`. In a
//! plain HDF5 dataset the rows are the cells and a block of columns is a
//! column hyperslab: a few values out of every row, which the library picks
//! at a cost per row far above the copy itself.
//!
//! Blocks are read with hyperslab selections, so only the block is ever in
//! memory; the library converts single and integer elements to `f64` as it
//! reads. A row-major matrix of little-endian doubles stored in one
//! contiguous piece without filters (what h5py and numpy write) is read
//! straight from the file instead, mapped a window of rows at a time (see
//! [`Mapped`]), once the library has shown where its values are.

use std::path::Path;

use ::hdf5::types::{FixedAscii, TypeDescriptor};
use ::hdf5::{Dataset, File, Group, LinkType, LocationType};
use ndarray::{s, Array2, ShapeBuilder};

use super::hdf5_origin::{link_type, resolve, Refusal, Visited};
use super::{check_shape, Matrix, MatrixInfo};
use crate::error::{Error, Result};

/// The numeric MATLAB classes a v7.3 variable may have.
const NUMERIC_CLASSES: &[&str] = &[
    "double", "single", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
];

/// Chunk cache per open dataset: enough to hold the chunks a block of columns
/// crosses, so a chunk split between two blocks is not decompressed twice
/// when it fits.
const CHUNK_CACHE_BYTES: usize = 32 << 20;
/// Sieve buffer for contiguous datasets: a column block of a plain HDF5
/// matrix is many short strided runs, read through this buffer.
const SIEVE_BYTES: usize = 4 << 20;
/// How much of a mapped matrix is mapped at a time: the pages of one window
/// are what a block of columns adds to the resident memory.
const WINDOW_BYTES: usize = 8 << 20;
/// How many bytes of columns of a mapped matrix are read in one pass over
/// it. Each pass maps every page of the matrix, whatever the number of
/// columns it copies, so fewer, wider passes read faster: the blocks asked
/// for are served from the columns read ahead.
const READ_AHEAD_BYTES: usize = 64 << 20;

pub struct Hdf5Matrix {
    info: MatrixInfo,
    dataset: Dataset,
    /// MATLAB orientation on disk: HDF5 dims are `cols × rows`.
    transposed: bool,
    /// A row-major matrix read from the file mapped in memory.
    mapped: Option<Mapped>,
    /// Of a mapped matrix: the columns read ahead, from the first one given.
    ahead: Option<(usize, Array2<f64>)>,
    /// Of a gzip-compressed matrix: the bytes each chunk must inflate to,
    /// checked by the inflate of the library's reads (see `hdf5_deflate`).
    inflates_to: Option<usize>,
    /// Kept open for as long as the dataset is read.
    _file: File,
    _opened: super::LibraryPath,
}

/// Make the library's own error printing silent, once: its messages become
/// our one-line errors instead of a stack dump on stderr.
pub(super) fn silence_library() {
    super::quiet_hdf5();
    super::hdf5_origin::forbid_external_links();
    super::hdf5_deflate::registered();
}

impl Hdf5Matrix {
    /// Open `var_name` (a dataset path, `group/name`), or the default
    /// dataset: see [`find_default`].
    pub fn open(path: &Path, var_name: Option<&str>) -> Result<Self> {
        silence_library();
        super::crash_guard::reading(path);
        let lib = |e: ::hdf5::Error| Error::format(path, describe_open_error(&e.to_string()));
        let opened = super::LibraryPath::new(path)?;
        let file = File::with_options()
            .with_fapl(|p| {
                p.sieve_buf_size(SIEVE_BYTES)
                    .chunk_cache(521, CHUNK_CACHE_BYTES, 1.0)
            })
            .open(opened.path())
            .map_err(lib)?;
        let var = match var_name {
            Some(v) => v.trim_matches('/').to_string(),
            None => find_default(&file, &file, "", &mut Visited::from_root(&file))
                .map_err(lib)?
                .ok_or_else(|| Error::format(path, "the HDF5 file holds no dataset"))?,
        };
        let dataset = open_dataset(path, &file, &var)?;

        let matlab_class = matlab_class(&dataset);
        let refuse = |what: &str| {
            Err(Error::variable(
                path,
                &var,
                format!("is {what}; a numeric matrix (double, single or integer) is needed"),
            ))
        };
        if let Some(c) = &matlab_class {
            if super::hdf5_origin::has_attr(dataset.id(), "MATLAB_empty") {
                return Err(Error::variable(path, &var, "is empty"));
            }
            match c.as_str() {
                c if NUMERIC_CLASSES.contains(&c) => {}
                "char" => return refuse("a char array (text)"),
                "logical" => return refuse("logical"),
                "cell" => return refuse("a cell array"),
                "struct" => return refuse("a struct"),
                other => return refuse(&format!("of MATLAB class '{other}'")),
            }
        }
        let class: &'static str = match dataset.dtype().and_then(|t| t.to_descriptor()) {
            Ok(t) => match element_class(&t) {
                Some(c) => c,
                None => return refuse(&describe_type(&t)),
            },
            Err(_) => return refuse("of an HDF5 type manage cannot read"),
        };
        let shape = dataset.shape();
        let transposed = matlab_class.is_some();
        let (rows, cols) = if transposed {
            let dims: Vec<usize> = shape.iter().rev().copied().collect();
            check_shape(path, &var, &dims)?
        } else {
            check_shape(path, &var, &shape)?
        };
        let sources = super::hdf5_origin::check_values_are_here(&file, &dataset)
            .map_err(|msg| Error::variable(path, &var, msg))?;
        let mut inflates_to = None;
        if sources.is_empty() {
            check_storage(path, &var, &dataset, rows, cols)?;
            check_filters_available(path, &var, &dataset)?;
            inflates_to = check_chunks(path, &var, &dataset, false)?;
        } else {
            // A virtual dataset of this file: its values are its sources'.
            let file_len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(u64::MAX);
            for src in &sources {
                if src.storage_size() > file_len {
                    return Err(Error::variable(
                        path,
                        &var,
                        format!(
                            "has a source of {} bytes in a file of {file_len} bytes: it is damaged",
                            src.storage_size()
                        ),
                    ));
                }
                check_filters_available(path, &var, src)?;
                // Read through the virtual dataset: inflated and checked here.
                check_chunks(path, &var, src, true)?;
            }
        }
        let mut matrix = Self {
            info: MatrixInfo {
                path: path.to_path_buf(),
                var_name: var,
                rows,
                cols,
                class,
            },
            dataset,
            transposed,
            mapped: None,
            ahead: None,
            inflates_to,
            _file: file,
            _opened: opened,
        };
        if !transposed && sources.is_empty() {
            matrix.mapped = Mapped::of(&matrix);
        }
        Ok(matrix)
    }
}

impl Drop for Hdf5Matrix {
    fn drop(&mut self) {
        super::crash_guard::clear();
    }
}

impl Matrix for Hdf5Matrix {
    fn info(&self) -> &MatrixInfo {
        &self.info
    }

    fn read_columns(&mut self, start: usize, count: usize) -> Result<Array2<f64>> {
        super::quiet_hdf5();
        let Some(m) = &self.mapped else {
            return self.read_slab(start, count);
        };
        let rows = self.info.rows;
        if let Some((first, ahead)) = &self.ahead {
            if start >= *first && start + count <= first + ahead.ncols() {
                // Column-major: the columns asked for are one run.
                let from = (start - first) * rows;
                let run = &ahead.as_slice_memory_order().expect("a whole block")
                    [from..from + count * rows];
                let mut out = super::blocks::buffer(run.len());
                out.extend_from_slice(run);
                return block_of(&self.info, rows, count, out);
            }
        }
        // The buffer of the columns read ahead before is read into again.
        let spare = self
            .ahead
            .take()
            .map(|(_, a)| a.into_raw_vec_and_offset().0);
        let wide = (READ_AHEAD_BYTES / (8 * rows))
            .max(count)
            .min(self.info.cols - start);
        let buf = match spare {
            Some(b) if wide > count => b,
            _ => super::blocks::buffer(rows * wide),
        };
        let block = m.read_rows(&self.info, 0, rows, start, wide, buf)?;
        if wide == count {
            return Ok(block);
        }
        let run = &block.as_slice_memory_order().expect("a whole block")[..count * rows];
        let mut out = super::blocks::buffer(run.len());
        out.extend_from_slice(run);
        self.ahead = Some((start, block));
        block_of(&self.info, rows, count, out)
    }
}

/// `values` as a column-major `rows × count` block.
fn block_of(info: &MatrixInfo, rows: usize, count: usize, values: Vec<f64>) -> Result<Array2<f64>> {
    Array2::from_shape_vec((rows, count).f(), values)
        .map_err(|e| Error::variable(&info.path, &info.var_name, format!("cannot be read: {e}")))
}

impl Hdf5Matrix {
    /// Columns `start..start + count` through the library: HDF5 rows of a
    /// MATLAB matrix, HDF5 columns of a row-major one. Read straight into a
    /// reused block buffer ([`super::blocks`]); where the library fails,
    /// read again through the crate for its message.
    fn read_slab(&self, start: usize, count: usize) -> Result<Array2<f64>> {
        let rows = self.info.rows;
        let _expecting = super::hdf5_deflate::expect(self.inflates_to);
        if let Some(buf) = self.read_slab_into(start, count) {
            return if self.transposed {
                // `count × rows` row-major: the block column-major.
                block_of(&self.info, rows, count, buf)
            } else {
                Array2::from_shape_vec((rows, count), buf).map_err(|e| {
                    Error::variable(
                        &self.info.path,
                        &self.info.var_name,
                        format!("cannot be read: {e}"),
                    )
                })
            };
        }
        let read = if self.transposed {
            self.dataset
                .read_slice_2d::<f64, _>(s![start..start + count, ..])
                .map(|a| a.reversed_axes())
        } else {
            self.dataset
                .read_slice_2d::<f64, _>(s![.., start..start + count])
        };
        if let Some((held, bytes)) = super::hdf5_deflate::take_short() {
            return Err(Error::variable(
                &self.info.path,
                &self.info.var_name,
                format!(
                    "has a damaged chunk in columns {}..{}: it holds {held} of its {bytes} bytes",
                    start + 1,
                    start + count
                ),
            ));
        }
        read.map_err(|e| {
            Error::variable(
                &self.info.path,
                &self.info.var_name,
                format!(
                    "columns {}..{} cannot be read (damaged or truncated file?): {e}",
                    start + 1,
                    start + count
                ),
            )
        })
    }

    /// The slab as [`Hdf5Matrix::read_slab`] reads it, by `H5Dread` into a
    /// reused buffer, converted to doubles by the library; `None` when it
    /// fails.
    fn read_slab_into(&self, start: usize, count: usize) -> Option<Vec<f64>> {
        use hdf5_sys::h5d::H5Dread;
        use hdf5_sys::h5p::H5P_DEFAULT;
        use hdf5_sys::h5t::H5T_NATIVE_DOUBLE;
        let rows = self.info.rows;
        let (selection, shape) = if self.transposed {
            (s![start..start + count, ..], [count, rows])
        } else {
            (s![.., start..start + count], [rows, count])
        };
        let selection: ::hdf5::Selection = selection.try_into().ok()?;
        let fspace = self.dataset.space().ok()?.select(selection).ok()?;
        let mspace = ::hdf5::Dataspace::try_new(shape).ok()?;
        if fspace.selection_size() != rows * count {
            return None;
        }
        let mut buf = super::blocks::buffer(rows * count);
        // SAFETY: the buffer holds `rows * count` doubles, the memory
        // space's size, which the library writes whole (as the crate's own
        // reads do) before the length is set.
        let status = ::hdf5::sync::sync(|| unsafe {
            H5Dread(
                self.dataset.id(),
                *H5T_NATIVE_DOUBLE,
                mspace.id(),
                fspace.id(),
                H5P_DEFAULT,
                buf.as_mut_ptr().cast(),
            )
        });
        if status < 0 {
            return None;
        }
        // SAFETY: written by the library, above.
        unsafe { buf.set_len(rows * count) };
        Some(buf)
    }
}

/// A row-major matrix of little-endian doubles stored in one contiguous
/// piece without filters, read from the file mapped in memory: a block of
/// columns is a few values out of each row, copied from a window of rows
/// mapped at a time (so that at most [`WINDOW_BYTES`] of the file is
/// resident), with the bits as stored, as the library would give them.
struct Mapped {
    file: std::fs::File,
    /// Where the values start in the file.
    offset: u64,
    /// How many bytes of rows are mapped at a time ([`WINDOW_BYTES`]).
    window: usize,
}

impl Mapped {
    /// The mapping of `m`'s dataset when it is stored so, and the library
    /// agrees, value for value, on the first and last rows it maps.
    fn of(m: &Hdf5Matrix) -> Option<Self> {
        use ::hdf5::dataset::Layout;
        use ::hdf5::datatype::ByteOrder;
        use ::hdf5::types::FloatSize;
        let d = &m.dataset;
        let dtype = d.dtype().ok()?;
        let plain = d.layout() == Layout::Contiguous
            && d.filters().is_empty()
            && dtype.to_descriptor().ok()? == TypeDescriptor::Float(FloatSize::U8)
            && dtype.byte_order() == ByteOrder::LittleEndian;
        let (rows, cols) = (m.info.rows, m.info.cols);
        let bytes = (rows as u64).checked_mul(cols as u64)?.checked_mul(8)?;
        // The file as the library opened it.
        let file = std::fs::File::open(m._opened.path()).ok()?;
        let offset = d.offset()?;
        let fits = offset
            .checked_add(bytes)
            .is_some_and(|end| end <= file.metadata().map_or(0, |md| md.len()));
        if !plain || rows == 0 || d.storage_size() != bytes || !fits {
            return None;
        }
        let mapped = Mapped {
            file,
            offset,
            window: WINDOW_BYTES,
        };
        let n = cols.min(16);
        for row in [0, rows - 1] {
            let ours = mapped.read_rows(&m.info, row, 1, 0, n, Vec::new()).ok()?;
            let library = d.read_slice_2d::<f64, _>(s![row..row + 1, 0..n]).ok()?;
            let same = ours
                .iter()
                .zip(library.iter())
                .all(|(a, b)| a.to_bits() == b.to_bits());
            if !same {
                return None;
            }
        }
        Some(mapped)
    }

    /// Columns `start..start + count` of rows `first..first + rows`.
    fn read_rows(
        &self,
        info: &MatrixInfo,
        first: usize,
        rows: usize,
        start: usize,
        count: usize,
        mut out: Vec<f64>,
    ) -> Result<Array2<f64>> {
        let row_bytes = info.cols * 8;
        let per_window = (self.window / row_bytes).max(1);
        // Column-major, as a MATLAB matrix's blocks are: each column (a
        // time step) is contiguous for the conversion that walks it.
        out.clear();
        out.resize(rows * count, 0.0);
        for r0 in (0..rows).step_by(per_window) {
            let n = per_window.min(rows - r0);
            let at = self.offset + ((first + r0) * row_bytes + start * 8) as u64;
            let len = (n - 1) * row_bytes + count * 8;
            // SAFETY: the mapping is read only while `map` lives, and only
            // within its length. Another process truncating the file while
            // it is read ends this one with SIGBUS, which the crash guard
            // reports as a damaged file; one writing it changes the values,
            // as it would under the library's reads.
            let map = unsafe {
                memmap2::MmapOptions::new()
                    .offset(at)
                    .len(len)
                    .populate()
                    .map(&self.file)
            }
            .map_err(|e| {
                Error::variable(
                    &info.path,
                    &info.var_name,
                    format!(
                        "columns {}..{} cannot be read: {e}",
                        start + 1,
                        start + count
                    ),
                )
            })?;
            for i in 0..n {
                let src = &map[i * row_bytes..i * row_bytes + count * 8];
                for (j, b) in src.chunks_exact(8).enumerate() {
                    out[j * rows + r0 + i] = f64::from_le_bytes(b.try_into().expect("8 bytes"));
                }
            }
        }
        Array2::from_shape_vec((rows, count).f(), out).map_err(|e| {
            Error::variable(&info.path, &info.var_name, format!("cannot be read: {e}"))
        })
    }
}

/// The dataset at `var`, or an error that says what is there instead.
/// The library's reason a dataset cannot be opened. A message of a version
/// this library does not know was written by a newer HDF5 (2.0 writes
/// layout messages 1.10 cannot read): the file is not damaged.
fn describe_dataset_error(e: &str) -> String {
    if e.contains("bad version number") {
        let (major, minor, release) = ::hdf5::library_version();
        format!(
            "cannot be opened: it was written by a newer HDF5 than this build's library ({major}.{minor}.{release}) reads ({}); write it again with an older format (h5py: libver=('earliest', 'v110')), or `h5repack` it with HDF5 {major}.{minor}",
            e.rsplit(": ").next().unwrap_or(e)
        )
    } else {
        format!("cannot be opened: {e}")
    }
}

/// The library's reason a file cannot be opened, as a sentence that says
/// what to do: a truncated file (the common case: a copy or download cut
/// short) says how much of it is there.
fn describe_open_error(e: &str) -> String {
    let number = |key: &str| {
        e.split(key)
            .nth(1)
            .and_then(|rest| {
                rest.trim_start()
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
            })
            .and_then(|n| n.parse::<u64>().ok())
    };
    match (
        e.contains("truncated file"),
        number("eof = "),
        number("stored_eof = "),
    ) {
        (true, Some(have), Some(want)) => format!(
            "truncated HDF5 file: {have} of its {want} bytes are there; copy or download it again"
        ),
        _ if e.contains("unable to lock file") => format!(
            "is locked by a program writing it (HDF5 file locking: {}); try again when it is written, or set HDF5_USE_FILE_LOCKING=FALSE to read it anyway",
            e.split("error message = ").nth(1).unwrap_or("locked").trim_matches(['\'', ')', ' '])
        ),
        _ => format!("cannot be read as HDF5 ({e}); the file may be damaged"),
    }
}

/// Refuse a dataset whose values are not all in the file before anything
/// is read or allocated for it: a size that cannot be, a contiguous dataset
/// larger than its file (truncated), or a chunked one whose chunks were not
/// all written (HDF5 would hand back fill values for the missing ones).
fn check_storage(path: &Path, var: &str, d: &Dataset, rows: usize, cols: usize) -> Result<()> {
    let refuse = |msg: String| Err(Error::variable(path, var, msg));
    let element = d.dtype().map(|t| t.size() as u64).unwrap_or(8);
    let Some(declared) = (rows as u64)
        .checked_mul(cols as u64)
        .and_then(|n| n.checked_mul(element))
    else {
        return refuse(format!("declares an impossible size ({rows} × {cols})"));
    };
    let file_len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(u64::MAX);
    if d.is_chunked() {
        let (shape, chunk) = (d.shape(), d.chunk().unwrap_or_default());
        super::check_chunk_size(path, var, &chunk, element as usize)?;
        let expected = shape
            .iter()
            .zip(&chunk)
            .map(|(s, c)| s.div_ceil((*c).max(1)))
            .fold(1usize, usize::saturating_mul);
        match d.num_chunks() {
            Some(written) if written < expected => {
                return refuse(format!(
                    "has only {written} of its {expected} chunks in the file: it was not written completely"
                ));
            }
            Some(_) => {}
            // The library cannot count the chunks (a fuzzed file declared
            // more rows than its maximum): nothing says they are there.
            None => {
                return refuse(format!(
                    "has a chunk index the library cannot read (shape {shape:?}, chunks {chunk:?}): the file is damaged"
                ));
            }
        }
    } else if declared > file_len {
        return refuse(format!(
            "declares {rows} × {cols} values ({declared} bytes) but the file holds only {file_len} bytes: it is truncated or damaged"
        ));
    } else if d.storage_size() < declared {
        // Contiguous or compact: the data is one piece of exactly this size.
        return refuse(format!(
            "declares {rows} × {cols} values ({declared} bytes) but holds {} bytes of data: it is damaged or was not written completely",
            d.storage_size()
        ));
    }
    if d.storage_size() > file_len {
        return refuse(format!(
            "claims {} bytes of data in a file of {file_len} bytes: it is damaged",
            d.storage_size()
        ));
    }
    Ok(())
}

/// Names of the registered HDF5 filters a user may meet, by id (from The HDF
/// Group's filter registry), for when the file does not name the filter.
const KNOWN_FILTERS: &[(i32, &str)] = &[
    (1, "deflate (gzip)"),
    (2, "shuffle"),
    (3, "Fletcher-32"),
    (4, "szip"),
    (5, "n-bit"),
    (6, "scale-offset"),
    (307, "bzip2"),
    (32000, "LZF"),
    (32001, "Blosc"),
    (32004, "LZ4"),
    (32008, "bitshuffle"),
    (32013, "ZFP"),
    (32015, "Zstandard"),
    (32017, "SZ"),
    (32026, "Blosc2"),
];

/// Refuse a dataset compressed with a filter this build cannot decode
/// (neither built in nor found as a plugin), naming the filter and saying
/// how to rewrite the file, before the library fails on the first chunk
/// with a message about plugin directories.
fn check_filters_available(path: &Path, var: &str, d: &Dataset) -> Result<()> {
    use hdf5_sys::h5p::{H5Pget_filter2, H5Pget_nfilters};
    use hdf5_sys::h5z::H5Zfilter_avail;
    use std::ffi::CStr;

    let Ok(dcpl) = d.create_plist() else {
        return Ok(()); // nothing to check against; the library will say
    };
    let pid = dcpl.id();
    let n = ::hdf5::sync::sync(|| unsafe { H5Pget_nfilters(pid) });
    for i in 0..n.max(0) as u32 {
        let mut flags = 0u32;
        let mut nelmts: usize = 0;
        let mut name = [0 as std::ffi::c_char; 128];
        let mut config = 0u32;
        // SAFETY: `name` holds the 128 bytes passed; no client data is
        // asked for (`cd_nelmts` 0, null array).
        let id = ::hdf5::sync::sync(|| unsafe {
            H5Pget_filter2(
                pid,
                i,
                &mut flags,
                &mut nelmts,
                std::ptr::null_mut(),
                name.len(),
                name.as_mut_ptr(),
                &mut config,
            )
        });
        if id < 0 {
            continue;
        }
        let available = ::hdf5::sync::sync(|| unsafe { H5Zfilter_avail(id) }) > 0;
        if available {
            continue;
        }
        // SAFETY: the library NUL-terminates within the buffer it was given.
        let stored = unsafe { CStr::from_ptr(name.as_ptr()) }
            .to_string_lossy()
            .trim()
            .to_string();
        let known = KNOWN_FILTERS
            .iter()
            .find(|(k, _)| *k == id)
            .map(|(_, n)| *n);
        let what = match (known, stored.is_empty()) {
            (Some(k), _) => k.to_string(),
            (None, false) => stored.chars().take(60).collect(),
            (None, true) => "unnamed".to_string(),
        };
        return Err(Error::variable(
            path,
            var,
            format!(
                "is compressed with HDF5 filter {id} ({what}), which this build of manage cannot decode; rewrite the file with gzip, e.g. `h5repack -f GZIP=4 in.h5 out.h5`, and load that"
            ),
        ));
    }
    Ok(())
}

/// Check a chunked dataset's chunks as far as the library's reads of them
/// depend on what the file says, before the library reads any: the index
/// must list each chunk once, on the chunk grid; a chunk stored without
/// filters must hold exactly the chunk's bytes (libhdf5 1.10 reads the
/// stored size into a buffer, then copies a whole chunk out of it); and a
/// gzip-compressed chunk must inflate to exactly the chunk's bytes (given
/// a chunk that inflates short, libhdf5 1.10 reads past its buffer). All
/// three were found by fuzzing. The last is checked by the inflate of the
/// library's own reads (see `hdf5_deflate`): this gives the bytes a chunk
/// must inflate to, for the reader to name while it reads. With `inflate`
/// (the sources of a virtual dataset, read through it) each chunk is
/// inflated here instead, one at a time. Pipelines with filters other than
/// deflate and shuffle are left to the library.
/// Above this many chunks, [`check_chunks`] is skipped (see there).
const MAX_CHECKED_CHUNKS: usize = 4096;

fn check_chunks(path: &Path, var: &str, d: &Dataset, inflate: bool) -> Result<Option<usize>> {
    use ::hdf5::filters::Filter;
    use hdf5_sys::h5::hsize_t;
    use hdf5_sys::h5d::H5Dread_chunk;
    use hdf5_sys::h5p::H5P_DEFAULT;
    use std::io::Read;

    let Some(chunk) = d.chunk() else {
        return Ok(None);
    };
    let filters = d.filters();
    let element = d.dtype().map(|t| t.size()).unwrap_or(8);
    let chunk_bytes = chunk.iter().fold(element, |a, &c| a.saturating_mul(c));
    let damaged = |at: &[hsize_t], msg: String| {
        Err(Error::variable(
            path,
            var,
            format!("has a damaged chunk at {at:?}: {msg}"),
        ))
    };
    let deflate_at = filters.iter().position(|f| matches!(f, Filter::Deflate(_)));
    let gzip = deflate_at.is_some()
        && filters
            .iter()
            .all(|f| matches!(f, Filter::Deflate(_) | Filter::Shuffle));
    // Inflated here where the library's reads cannot check them.
    let inflate = inflate || !super::hdf5_deflate::registered();
    // What the library's reads check, whether or not the index is walked.
    let inflates_to = (gzip && !inflate).then_some(chunk_bytes);
    // The library finds a chunk by walking its index, so checking n chunks
    // costs n² steps: datasets of very many chunks are left unchecked.
    let Some(count) = d.num_chunks().filter(|&n| n <= MAX_CHECKED_CHUNKS) else {
        return Ok(inflates_to);
    };
    let mut chunks = Vec::with_capacity(count);
    for index in 0..count {
        let Some(info) = d.chunk_info(index) else {
            return Err(Error::variable(
                path,
                var,
                format!("has a chunk ({index}) that cannot be located: the file is damaged"),
            ));
        };
        chunks.push((info.offset, info.size, info.filter_mask));
    }
    // `H5Dread_chunk` finds a chunk by its offset, and writes as many bytes
    // as the entry it finds gives, whatever the buffer holds. An index that
    // lists one offset twice (or an offset between chunks, which the lookup
    // rounds to another chunk's) makes that entry another than the walk's:
    // a fuzzed file had it write 29 bytes into a buffer of 26.
    let mut offsets: Vec<&[hsize_t]> = chunks.iter().map(|(at, _, _)| &at[..]).collect();
    if let Some(at) = offsets.iter().find(|at| {
        at.iter()
            .zip(&chunk)
            .any(|(&o, &c)| c == 0 || o % c as hsize_t != 0)
    }) {
        return damaged(at, format!("it is not on the chunk grid {chunk:?}"));
    }
    offsets.sort_unstable();
    if let Some(w) = offsets.windows(2).find(|w| w[0] == w[1]) {
        return damaged(w[0], "the index lists it more than once".into());
    }
    if filters.is_empty() {
        return match chunks
            .iter()
            .find(|(_, size, _)| *size != chunk_bytes as u64)
        {
            Some((at, size, _)) => damaged(
                at,
                format!("{size} bytes stored for a chunk of {chunk_bytes}, without compression"),
            ),
            None => Ok(None),
        };
    }
    let Some(deflate_at) = deflate_at.filter(|_| gzip) else {
        return Ok(None);
    };
    let file_len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut buf = Vec::new();
    for (at, size, mask) in chunks {
        if size == 0 {
            continue;
        }
        if size > file_len || size as usize > chunk_bytes.saturating_mul(2) + (1 << 20) {
            return damaged(
                &at,
                format!("{size} bytes stored for a chunk of {chunk_bytes}"),
            );
        }
        let written_plain = mask & (1 << deflate_at) != 0;
        if !inflate && !written_plain {
            // Inflated and checked by the library's read.
            continue;
        }
        if written_plain && !inflate {
            // Written without compression: the stored bytes are the chunk's.
            if size != chunk_bytes as u64 {
                return damaged(&at, format!("it holds {size} of its {chunk_bytes} bytes"));
            }
            continue;
        }
        buf.resize(size as usize, 0);
        let mut applied = 0u32;
        // SAFETY: `buf` holds the chunk's stored size, as the library asks.
        let read = ::hdf5::sync::sync(|| unsafe {
            H5Dread_chunk(
                d.id(),
                H5P_DEFAULT,
                at.as_ptr(),
                &mut applied,
                buf.as_mut_ptr().cast(),
            )
        });
        if read < 0 {
            return damaged(&at, "it cannot be read".into());
        }
        let inflated = if applied & (1 << deflate_at) != 0 {
            buf.len() as u64 // written without compression
        } else {
            let mut z = flate2::read::ZlibDecoder::new(&buf[..]).take(chunk_bytes as u64 + 1);
            std::io::copy(&mut z, &mut std::io::sink()).map_err(|e| {
                Error::variable(path, var, format!("has a damaged chunk at {at:?}: {e}"))
            })?
        };
        if inflated != chunk_bytes as u64 {
            return damaged(
                &at,
                format!("it holds {inflated} of its {chunk_bytes} bytes"),
            );
        }
    }
    Ok(inflates_to)
}

fn open_dataset(path: &Path, file: &File, var: &str) -> Result<Dataset> {
    let missing = || {
        let names = all_datasets(file, "", &mut Visited::from_root(file)).unwrap_or_default();
        Error::variable(
            path,
            var,
            format!(
                "is not in the file; it holds: {}",
                if names.is_empty() {
                    "no dataset".to_string()
                } else {
                    names.join(", ")
                }
            ),
        )
    };
    let at = match super::hdf5_origin::resolve(file, var) {
        Ok(at) => at,
        Err(Refusal::Missing) => return Err(missing()),
        Err(Refusal::Refused(msg)) => return Err(Error::variable(path, var, msg)),
    };
    match file.loc_type_by_name(&at) {
        Ok(LocationType::Dataset) => file
            .dataset(&at)
            .map_err(|e| Error::variable(path, var, describe_dataset_error(&e.to_string()))),
        Ok(LocationType::Group) => {
            let g = file.group(&at).ok();
            let what = match g.as_ref().and_then(matlab_class_of_group) {
                Some(c) if c == "struct" => "a struct".to_string(),
                Some(c) => format!("of MATLAB class '{c}'"),
                None if g
                    .is_some_and(|g| super::hdf5_origin::has_attr(g.id(), "MATLAB_sparse")) =>
                {
                    "a sparse matrix".to_string()
                }
                None => "a group, not a dataset".to_string(),
            };
            Err(Error::variable(
                path,
                var,
                format!("is {what}; a numeric matrix (double, single or integer) is needed"),
            ))
        }
        _ => Err(missing()),
    }
}

fn hidden(name: &str) -> bool {
    name.starts_with("__") || name.starts_with('#')
}

/// The default dataset: the first dataset in a depth-first walk of the
/// groups in name order, skipping names that start with `__` or `#` (MATLAB's
/// `#refs#` and `#subsystem#`) and not entering MATLAB structs or sparse
/// matrices (groups with a `MATLAB_class` attribute).
fn find_default(
    file: &File,
    g: &Group,
    prefix: &str,
    seen: &mut Visited,
) -> ::hdf5::Result<Option<String>> {
    for name in g.member_names()? {
        if hidden(&name) {
            continue;
        }
        let full = format!("{prefix}{name}");
        match link_type(g, &name) {
            // Chosen, to be refused by name when it is opened.
            Some(LinkType::External) => return Ok(Some(full)),
            Some(LinkType::Soft) => match resolve(file, &full) {
                Ok(at) => {
                    // Soft links to groups are not entered: no loops.
                    if let Ok(LocationType::Dataset) = file.loc_type_by_name(&at) {
                        return Ok(Some(full));
                    }
                }
                Err(Refusal::Refused(_)) => return Ok(Some(full)),
                Err(Refusal::Missing) => {}
            },
            Some(LinkType::Hard) => match g.loc_type_by_name(&name)? {
                LocationType::Dataset => return Ok(Some(full)),
                // A group reached before (a hard link back up) is not
                // entered again.
                LocationType::Group if seen.first(g, &name) => {
                    let sub = g.group(&name)?;
                    if matlab_class_of_group(&sub).is_none() {
                        if let Some(found) = find_default(file, &sub, &format!("{full}/"), seen)? {
                            return Ok(Some(found));
                        }
                    }
                }
                _ => {}
            },
            None => {}
        }
    }
    Ok(None)
}

/// Every dataset path, for the "not in the file" message.
pub(super) fn all_datasets(
    g: &Group,
    prefix: &str,
    seen: &mut Visited,
) -> ::hdf5::Result<Vec<String>> {
    let mut out = vec![];
    for name in g.member_names()? {
        if hidden(&name) {
            continue;
        }
        let full = format!("{prefix}{name}");
        // Only hard links: listing opens nothing a link points to.
        if link_type(g, &name) != Some(LinkType::Hard) {
            continue;
        }
        match g.loc_type_by_name(&name)? {
            LocationType::Dataset => out.push(full),
            LocationType::Group if seen.first(g, &name) => {
                out.extend(all_datasets(&g.group(&name)?, &format!("{full}/"), seen)?)
            }
            _ => {}
        }
    }
    Ok(out)
}

fn read_class(attr: ::hdf5::Result<::hdf5::Attribute>) -> Option<String> {
    let a = attr.ok()?;
    let s = a.read_scalar::<FixedAscii<64>>().ok()?;
    Some(s.as_str().trim_end_matches('\0').to_string())
}

/// The `MATLAB_class` attribute of a dataset, when MATLAB wrote it.
pub(super) fn matlab_class(d: &Dataset) -> Option<String> {
    super::hdf5_origin::has_attr(d.id(), "MATLAB_class")
        .then(|| read_class(d.attr("MATLAB_class")))
        .flatten()
}

fn matlab_class_of_group(g: &Group) -> Option<String> {
    super::hdf5_origin::has_attr(g.id(), "MATLAB_class")
        .then(|| read_class(g.attr("MATLAB_class")))
        .flatten()
}

/// The MATLAB name of a numeric element type, or `None` if not numeric.
pub(super) fn element_class(t: &TypeDescriptor) -> Option<&'static str> {
    use ::hdf5::types::{FloatSize, IntSize};
    Some(match t {
        TypeDescriptor::Float(FloatSize::U8) => "double",
        TypeDescriptor::Float(FloatSize::U4) => "single",
        TypeDescriptor::Integer(IntSize::U1) => "int8",
        TypeDescriptor::Integer(IntSize::U2) => "int16",
        TypeDescriptor::Integer(IntSize::U4) => "int32",
        TypeDescriptor::Integer(IntSize::U8) => "int64",
        TypeDescriptor::Unsigned(IntSize::U1) => "uint8",
        TypeDescriptor::Unsigned(IntSize::U2) => "uint16",
        TypeDescriptor::Unsigned(IntSize::U4) => "uint32",
        TypeDescriptor::Unsigned(IntSize::U8) => "uint64",
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

/// What a non-numeric dataset is, in a user's words.
fn describe_type(t: &TypeDescriptor) -> String {
    match t {
        TypeDescriptor::Compound(c) => {
            let names: Vec<&str> = c.fields.iter().map(|f| f.name.as_str()).collect();
            if names == ["real", "imag"] {
                "complex".into()
            } else {
                format!("a compound dataset ({})", names.join(", "))
            }
        }
        TypeDescriptor::Boolean => "boolean".into(),
        TypeDescriptor::Enum(_) => "an enumeration".into(),
        TypeDescriptor::FixedAscii(_)
        | TypeDescriptor::FixedUnicode(_)
        | TypeDescriptor::VarLenAscii
        | TypeDescriptor::VarLenUnicode => "text".into(),
        TypeDescriptor::Reference(_) => "a dataset of references (a MATLAB cell array?)".into(),
        TypeDescriptor::FixedArray(..) | TypeDescriptor::VarLenArray(_) => {
            "an array-typed dataset".into()
        }
        other => format!("of HDF5 type {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row-major matrix of doubles, contiguous, read straight from the
    /// file in windows of a few rows (the last one shorter), in blocks of
    /// columns served from the columns read ahead, gives the library's
    /// values bit for bit.
    #[test]
    fn mapped_reads_give_the_library_values() {
        std::env::set_var("HDF5_USE_FILE_LOCKING", "FALSE");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.h5");
        let (rows, cols) = (1001, 13);
        let m = Array2::from_shape_fn((rows, cols), |(r, c)| {
            ((r * 31 + c * 7) as f64).sin() * 1e3 + if c == 5 { f64::NAN } else { 0.0 }
        });
        {
            let f = File::create(&path).unwrap();
            f.new_dataset_builder().with_data(&m).create("m").unwrap();
        }
        let mut h = Hdf5Matrix::open(&path, Some("m")).unwrap();
        assert!(
            h.mapped.is_some(),
            "a contiguous little-endian matrix is mapped"
        );
        // Windows of 3 rows and a bit: 334 windows, the last of 2 rows.
        h.mapped.as_mut().unwrap().window = 3 * cols * 8 + 5;
        for (start, count) in [(0, 2), (2, 4), (6, 7), (0, 13), (12, 1), (3, 3)] {
            let ours = h.read_columns(start, count).unwrap();
            let library = h.read_slab(start, count).unwrap();
            assert_eq!(ours.dim(), (rows, count));
            for (a, b) in ours.iter().zip(library.iter()) {
                assert_eq!(a.to_bits(), b.to_bits(), "columns {start}..+{count}");
            }
        }
    }

    /// A gzip-compressed matrix (shuffled too) read through the filter that
    /// checks each chunk's size gives the values written, with transposed
    /// (MATLAB) and plain orientation alike; a chunk that inflates short
    /// fails the read, saying so.
    #[test]
    fn gzip_chunks_are_inflated_once_and_checked() {
        std::env::set_var("HDF5_USE_FILE_LOCKING", "FALSE");
        assert!(super::super::hdf5_deflate::registered());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.h5");
        let (rows, cols) = (1001, 13);
        let m = Array2::from_shape_fn((rows, cols), |(r, c)| {
            ((r * 31 + c * 7) as f64).sin() * 1e3 + if c == 5 { f64::NAN } else { 0.0 }
        });
        {
            let f = File::create(&path).unwrap();
            f.new_dataset_builder()
                .with_data(&m)
                .chunk((100, 4))
                .shuffle()
                .deflate(4)
                .create("m")
                .unwrap();
        }
        let mut h = Hdf5Matrix::open(&path, Some("m")).unwrap();
        assert!(h.mapped.is_none());
        assert_eq!(h.inflates_to, Some(100 * 4 * 8));
        for (start, count) in [(0, 2), (2, 4), (6, 7), (0, 13), (12, 1)] {
            let got = h.read_columns(start, count).unwrap();
            assert_eq!(got.dim(), (rows, count));
            for ((r, c), v) in got.indexed_iter() {
                assert_eq!(
                    v.to_bits(),
                    m[[r, start + c]].to_bits(),
                    "[{r}, {}]",
                    start + c
                );
            }
        }

        let short = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fuzz-regressions/hdf5-chunk-inflates-short.h5");
        let refused = Hdf5Matrix::open(&short, None).and_then(|mut m| {
            let cols = m.info().cols;
            m.read_columns(0, cols)
        });
        let e = refused.expect_err("refused").to_string();
        assert!(e.contains("damaged chunk") && e.contains(" of its "), "{e}");
    }
}
