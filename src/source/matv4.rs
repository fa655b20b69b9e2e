//! MATLAB Level 4 MAT-files (`save -v4` in MATLAB or Octave,
//! `scipy.io.savemat(..., format='4')`), read by a small reader of our own:
//! no maintained crate reads them.
//!
//! A v4 file is a sequence of variables, each a 20-byte header of five
//! 32-bit integers (type `MOPT`, rows, columns, imaginary flag, name length
//! including its NUL), the name, then the real part column-major and the
//! imaginary part if any. There is no file header, so a file is recognised
//! by its first variable's header being plausible ([`looks_like_v4`]).
//!
//! Every declared size is checked against the bytes left in the file before
//! anything is allocated. The data is uncompressed and column-major, so a
//! block of columns is one contiguous run of the file: it is read by seeking
//! there, and only the block is ever in memory.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use ndarray::Array2;

use super::{check_shape, Matrix, MatrixInfo};
use crate::error::{Error, Result};

/// Longest variable name accepted, NUL included (MATLAB's limit is 63
/// characters; Octave and SciPy write longer ones).
const MAX_NAME_BYTES: u32 = 4096;

/// One variable as its header declares it.
#[derive(Debug, Clone)]
pub(super) struct Header {
    pub(super) name: String,
    big_endian: bool,
    /// The `P` digit: element type.
    precision: u32,
    /// The `T` digit: 0 numeric full, 1 text, 2 sparse.
    pub(super) kind: u32,
    pub(super) rows: u64,
    pub(super) cols: u64,
    pub(super) imaginary: bool,
    /// Offset of the real part in the file.
    data_at: u64,
}

impl Header {
    fn element_bytes(&self) -> u64 {
        match self.precision {
            0 => 8,
            1 | 2 => 4,
            3 | 4 => 2,
            _ => 1,
        }
    }

    pub(super) fn class(&self) -> &'static str {
        match self.precision {
            0 => "double",
            1 => "single",
            2 => "int32",
            3 => "int16",
            4 => "uint16",
            _ => "uint8",
        }
    }
}

/// The five header integers read in both byte orders, and which one makes
/// sense: the `M` digit of `MOPT` says the order (0 little-endian IEEE, 1
/// big-endian IEEE), so a header read in the wrong order has a type far
/// outside 0..=4052.
fn parse_header(raw: &[u8; 20]) -> Option<(bool, [i32; 5])> {
    let ints = |big: bool| {
        let mut v = [0i32; 5];
        for (i, c) in raw.chunks_exact(4).enumerate() {
            let b = [c[0], c[1], c[2], c[3]];
            v[i] = if big {
                i32::from_be_bytes(b)
            } else {
                i32::from_le_bytes(b)
            };
        }
        v
    };
    let le = ints(false);
    if (0..1000).contains(&le[0]) {
        return Some((false, le));
    }
    let be = ints(true);
    if (1000..2000).contains(&be[0]) {
        return Some((true, be));
    }
    None
}

/// Whether `head` (the first bytes of a file) starts with a plausible v4
/// variable header: a type with `O` = 0, a known precision and kind, sizes
/// that are not negative, an imaginary flag of 0 or 1, and a NUL-terminated
/// name of sensible length where the header says it ends.
pub fn looks_like_v4(head: &[u8]) -> bool {
    let Some(raw) = head.get(..20) else {
        return false;
    };
    let Some((_, [mopt, rows, cols, imagf, namlen])) = parse_header(raw.try_into().unwrap()) else {
        return false;
    };
    let (o, p, t) = ((mopt / 100) % 10, (mopt / 10) % 10, mopt % 10);
    if o != 0 || p > 5 || t > 2 || rows < 0 || cols < 0 || !(0..=1).contains(&imagf) {
        return false;
    }
    if namlen < 2 || namlen as u32 > MAX_NAME_BYTES {
        return false;
    }
    // The name ends in a NUL where the header says, when that is in `head`;
    // a name must be printable text before it.
    let end = 20 + namlen as usize;
    match head.get(20..end) {
        Some(name) => {
            name[name.len() - 1] == 0
                && name[..name.len() - 1].iter().all(|&b| b.is_ascii_graphic())
        }
        None => head[20..].iter().all(|&b| b.is_ascii_graphic()),
    }
}

/// Read every variable header, skipping the data, each size checked against
/// the bytes left in the file.
pub(super) fn headers(path: &Path) -> Result<(File, Vec<Header>)> {
    let io = |e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let damaged = |msg: String| {
        Error::format(
            path,
            format!("damaged MAT v4 file: {msg}; save it again or copy it again"),
        )
    };
    let file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut r = BufReader::new(file);
    let mut at = 0u64;
    let mut out = Vec::new();
    while at < len {
        if len - at < 20 {
            return Err(damaged(format!(
                "it ends inside a variable header (truncated at byte {len})"
            )));
        }
        let mut raw = [0u8; 20];
        r.read_exact(&mut raw).map_err(io)?;
        let Some((big_endian, [mopt, rows, cols, imagf, namlen])) = parse_header(&raw) else {
            return Err(damaged(format!(
                "the variable header at byte {at} is not a MAT v4 header (or is of a VAX or Cray number format)"
            )));
        };
        let (o, p, t) = ((mopt / 100) % 10, (mopt / 10) % 10, mopt % 10);
        if o != 0 || p > 5 || t > 2 {
            return Err(damaged(format!(
                "the variable at byte {at} has an unknown type {mopt}"
            )));
        }
        if rows < 0 || cols < 0 || !(0..=1).contains(&imagf) {
            return Err(damaged(format!(
                "the variable at byte {at} declares {rows} × {cols} values"
            )));
        }
        if namlen < 1 || namlen as u32 > MAX_NAME_BYTES || (namlen as u64) > len - at - 20 {
            return Err(damaged(format!(
                "the variable at byte {at} declares a name of {namlen} bytes"
            )));
        }
        let mut name = vec![0u8; namlen as usize];
        r.read_exact(&mut name).map_err(io)?;
        if name.last() == Some(&0) {
            name.pop();
        }
        let mut h = Header {
            name: String::from_utf8_lossy(&name).into_owned(),
            big_endian,
            precision: p as u32,
            kind: t as u32,
            rows: rows as u64,
            cols: cols as u64,
            imaginary: imagf == 1,
            data_at: at + 20 + namlen as u64,
        };
        // Sparse data is stored as a (nnz+1) × 3 or 4 matrix of doubles; the
        // declared rows and columns already say that.
        let parts = if h.imaginary { 2 } else { 1 };
        let Some(bytes) = h
            .rows
            .checked_mul(h.cols)
            .and_then(|n| n.checked_mul(h.element_bytes() * parts))
        else {
            return Err(damaged(format!(
                "variable '{}' declares an impossible size ({rows} × {cols})",
                h.name
            )));
        };
        let left = len - h.data_at;
        if bytes > left {
            return Err(Error::format(
                path,
                format!(
                    "truncated MAT v4 file: variable '{}' declares {rows} × {cols} values ({bytes} bytes) but only {left} bytes follow; copy or save it again",
                    h.name
                ),
            ));
        }
        at = h.data_at + bytes;
        r.seek(SeekFrom::Start(at)).map_err(io)?;
        if h.name.is_empty() {
            h.name = format!("(unnamed at byte {})", h.data_at);
        }
        out.push(h);
    }
    if out.is_empty() {
        return Err(Error::format(path, "the MAT-file holds no variable"));
    }
    Ok((r.into_inner(), out))
}

pub struct MatV4Matrix {
    info: MatrixInfo,
    header: Header,
    file: File,
}

impl MatV4Matrix {
    pub fn open(path: &Path, var_name: Option<&str>) -> Result<Self> {
        let (file, vars) = headers(path)?;
        let found = match var_name {
            Some(v) => vars.iter().find(|h| h.name == v),
            None => vars.iter().find(|h| !h.name.starts_with("__")),
        };
        let Some(h) = found.cloned() else {
            return Err(match var_name {
                None => Error::format(path, "the MAT-file holds no variable"),
                Some(v) => Error::variable(
                    path,
                    v,
                    format!(
                        "is not in the file; it holds: {}",
                        vars.iter()
                            .map(|h| h.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
            });
        };
        let refuse = |what: &str| {
            Err(Error::variable(
                path,
                &h.name,
                format!("is {what}; a numeric matrix (double, single or integer) is needed"),
            ))
        };
        match h.kind {
            1 => return refuse("a char array (text)"),
            2 => return refuse("a sparse matrix"),
            _ => {}
        }
        if h.imaginary {
            return refuse("complex");
        }
        let (rows, cols) = check_shape(path, &h.name, &[h.rows as usize, h.cols as usize])?;
        Ok(Self {
            info: MatrixInfo {
                path: path.to_path_buf(),
                var_name: h.name.clone(),
                rows,
                cols,
                class: h.class(),
            },
            header: h,
            file,
        })
    }
}

impl Matrix for MatV4Matrix {
    fn info(&self) -> &MatrixInfo {
        &self.info
    }

    fn read_columns(&mut self, start: usize, count: usize) -> Result<Array2<f64>> {
        let h = &self.header;
        let rows = self.info.rows;
        let size = h.element_bytes() as usize;
        let at = h.data_at + (start * rows * size) as u64;
        let mut raw = vec![0u8; count * rows * size];
        let fail = |e: std::io::Error| {
            Error::variable(
                &self.info.path,
                &self.info.var_name,
                format!(
                    "columns {}..{} cannot be read: {e}",
                    start + 1,
                    start + count
                ),
            )
        };
        self.file.seek(SeekFrom::Start(at)).map_err(fail)?;
        self.file.read_exact(&mut raw).map_err(fail)?;
        let big = h.big_endian;
        macro_rules! decode {
            ($t:ty, $n:literal) => {
                raw.chunks_exact($n)
                    .map(|c| {
                        let b: [u8; $n] = c.try_into().unwrap();
                        (if big {
                            <$t>::from_be_bytes(b)
                        } else {
                            <$t>::from_le_bytes(b)
                        }) as f64
                    })
                    .collect::<Vec<f64>>()
            };
        }
        let values = match h.precision {
            0 => decode!(f64, 8),
            1 => decode!(f32, 4),
            2 => decode!(i32, 4),
            3 => decode!(i16, 2),
            4 => decode!(u16, 2),
            _ => decode!(u8, 1),
        };
        // Column-major: `count` columns of `rows` values each.
        Ok(Array2::from_shape_vec((count, rows), values)
            .expect("the block holds count × rows values")
            .reversed_axes()
            .to_owned())
    }
}
