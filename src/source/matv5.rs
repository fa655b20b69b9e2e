//! MATLAB Level 5 MAT-files (MATLAB's `-v6` and `-v7`, SciPy's and Octave's
//! v5 files), through `matfile`.
//!
//! The 116-byte header text is free text (MATLAB, SciPy and Octave each write
//! their own); only the version and endian fields at bytes 124–127 mean
//! anything, and `matfile` reads nothing else of it. A v5 variable is one
//! (usually zlib-compressed) stream, so it is read whole; files too large for
//! that are saved by MATLAB as v7.3 (HDF5) anyway, and those are read in
//! blocks by the HDF5 source.
//!
//! Before the parser sees the file, [`super::mat_structure::check`] walks its
//! structure: it bounds every declared size by the bytes that hold it, and
//! lists every top-level variable with its class, so that a cell, struct,
//! char, sparse, logical or complex variable (which `matfile` skips or
//! cannot turn into a real matrix) is refused by name.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use matfile::NumericData;
use ndarray::{s, Array2, ShapeBuilder};

use super::mat_structure::{self, Inflating, Located, VarHeader};
use super::{check_shape, Matrix, MatrixInfo};
use crate::error::{Error, Result};

pub struct MatV5Matrix {
    info: MatrixInfo,
    values: Values,
}

enum Values {
    /// The whole matrix, column-major as MATLAB stores it.
    Whole(Array2<f64>),
    /// A large matrix, read a few columns at a time from the file.
    Streamed(Streamed),
}

/// A variable with at least this many bytes of values is read a few
/// columns at a time: from the file by offset when it is stored as it is,
/// inflated as a stream when it is compressed. Smaller ones are parsed
/// whole, as before.
const STREAM_FROM_BYTES: u64 = 32 << 20;

/// The values of a large variable, where [`mat_structure::locate`] found
/// them.
struct Streamed {
    file: std::fs::File,
    at: Located,
    /// The bytes of one value as stored.
    size: usize,
    /// A compressed variable's stream, inflated up to where the last read
    /// ended (columns are read in order; an earlier one starts it again).
    stream: Option<Inflating>,
    /// The bytes of the last columns read, reused.
    raw: Vec<u8>,
}

const DAMAGED: &str =
    "damaged MAT-file: its variables cannot be parsed; save it again from MATLAB or copy it again";

impl MatV5Matrix {
    pub fn open(path: &Path, var_name: Option<&str>) -> Result<Self> {
        let vars = super::mat_structure::check(path)?;
        let (index, header) = choose(path, &vars, var_name)?;
        let var = header.name.clone();
        if let Some(why) = header.refusal() {
            return Err(Error::variable(path, &var, why));
        }
        let (rows, cols) = check_shape(path, &var, &header.dims)?;
        if let Some(m) = Self::streamed(path, &var, index, header, rows, cols, STREAM_FROM_BYTES)? {
            return Ok(m);
        }

        // The parsers get the chosen variable, inflated, and nothing more:
        // memory is bounded by it, whatever a compressed stream holds, and
        // no other variable (which the walk bounded less closely: it is
        // not read) reaches them.
        let bytes = super::mat_structure::inflated(path, index)?;
        // The parser is not ours; a damaged file must still end in an error
        // message rather than a crash.
        let parsed = catch_unwind(AssertUnwindSafe(|| {
            matfile::MatFile::parse(std::io::Cursor::new(&bytes[..]))
        }));
        let (data, class) = match parsed {
            Ok(Ok(parsed)) => match parsed.find_by_name(&var) {
                Some(array) => to_matrix(path, &var, array)?,
                None => return Err(Error::format(path, DAMAGED)),
            },
            Ok(Err(matfile::Error::IOError(io))) => {
                return Err(Error::format(path, format!("cannot be read ({io})")))
            }
            // `matfile` refuses some valid storage choices (an integer class
            // stored in another integer type); `matrw` reads those.
            _ => read_with_matrw(path, &bytes, &var)?,
        };
        Ok(Self {
            info: MatrixInfo {
                path: path.to_path_buf(),
                var_name: var,
                rows: data.nrows(),
                cols: data.ncols(),
                class,
            },
            values: Values::Whole(data),
        })
    }

    /// The variable read a few columns at a time, when its values are at
    /// least `from` bytes stored as one plain run of a numeric type.
    fn streamed(
        path: &Path,
        var: &str,
        index: usize,
        header: &VarHeader,
        rows: usize,
        cols: usize,
        from: u64,
    ) -> Result<Option<Self>> {
        let Some(class) = class_name(header.class) else {
            return Ok(None);
        };
        let values = (rows as u64).saturating_mul(cols as u64);
        if values.saturating_mul(8) < from {
            return Ok(None);
        }
        let Some(at) = mat_structure::locate(path, index)? else {
            return Ok(None);
        };
        let Some(size) = mat_structure::storage_size(at.storage) else {
            return Ok(None);
        };
        if at.data_bytes != values.saturating_mul(size as u64) {
            return Ok(None);
        }
        let file = std::fs::File::open(path).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        Ok(Some(Self {
            info: MatrixInfo {
                path: path.to_path_buf(),
                var_name: var.to_string(),
                rows,
                cols,
                class,
            },
            values: Values::Streamed(Streamed {
                file,
                at,
                size,
                stream: None,
                raw: Vec::new(),
            }),
        }))
    }
}

/// The MATLAB class of a numeric class number.
pub(crate) fn class_name(class: u8) -> Option<&'static str> {
    Some(match class {
        6 => "double",
        7 => "single",
        8 => "int8",
        9 => "uint8",
        10 => "int16",
        11 => "uint16",
        12 => "int32",
        13 => "uint32",
        14 => "int64",
        15 => "uint64",
        _ => return None,
    })
}

impl Streamed {
    fn read_columns(
        &mut self,
        info: &MatrixInfo,
        start: usize,
        count: usize,
    ) -> Result<Array2<f64>> {
        let rows = info.rows;
        let column = (rows * self.size) as u64;
        let to = self.at.data_at + start as u64 * column;
        self.raw.resize(count * rows * self.size, 0);
        let read = match self.at.compressed {
            None => {
                use std::os::unix::fs::FileExt;
                self.file.read_exact_at(&mut self.raw, to)
            }
            Some((at, len)) => {
                if self.stream.as_ref().is_none_or(|s| s.at > to) {
                    let file = self.file.try_clone().map_err(|e| Error::Io {
                        path: info.path.clone(),
                        source: e,
                    })?;
                    self.stream = Some(Inflating::new(file, at, len));
                }
                let stream = self.stream.as_mut().expect("opened above");
                stream.read_at(to, &mut self.raw)
            }
        };
        read.map_err(|e| {
            Error::format(
                &info.path,
                format!(
                    "{DAMAGED} (columns {}..{} of '{}' cannot be read: {e})",
                    start + 1,
                    start + count,
                    info.var_name
                ),
            )
        })?;
        let mut out = super::blocks::buffer(rows * count);
        decode(&self.raw, self.at.storage, self.at.little, &mut out);
        Array2::from_shape_vec((rows, count).f(), out).map_err(|e| {
            Error::variable(&info.path, &info.var_name, format!("cannot be read: {e}"))
        })
    }
}

/// Append the values `raw` holds, of MAT data type `storage`, as doubles.
fn decode(raw: &[u8], storage: u32, little: bool, out: &mut Vec<f64>) {
    macro_rules! each {
        ($t:ty) => {{
            const N: usize = std::mem::size_of::<$t>();
            out.extend(raw.chunks_exact(N).map(|c| {
                let b: [u8; N] = c.try_into().expect("N bytes");
                (if little {
                    <$t>::from_le_bytes(b)
                } else {
                    <$t>::from_be_bytes(b)
                }) as f64
            }))
        }};
    }
    match storage {
        1 => each!(i8),
        2 => each!(u8),
        3 => each!(i16),
        4 => each!(u16),
        5 => each!(i32),
        6 => each!(u32),
        7 => each!(f32),
        12 => each!(i64),
        13 => each!(u64),
        _ => each!(f64),
    }
}

/// The variable named `var_name`, else the first whose name does not start
/// with `__` (as `scipy.io.loadmat` lists them, in file order), with its
/// place in that order.
fn choose<'a>(
    path: &Path,
    vars: &'a [VarHeader],
    var_name: Option<&str>,
) -> Result<(usize, &'a VarHeader)> {
    let found = match var_name {
        Some(v) => vars.iter().enumerate().find(|(_, h)| h.name == v),
        None => vars
            .iter()
            .enumerate()
            .find(|(_, h)| !h.name.starts_with("__")),
    };
    found.ok_or_else(|| match var_name {
        None => Error::format(path, "the MAT-file holds no variable"),
        Some(v) => {
            let names: Vec<&str> = vars.iter().map(|h| h.name.as_str()).collect();
            Error::variable(
                path,
                v,
                format!(
                    "is not in the file; it holds: {}",
                    if names.is_empty() {
                        "nothing".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            )
        }
    })
}

impl Matrix for MatV5Matrix {
    fn info(&self) -> &MatrixInfo {
        &self.info
    }

    fn read_columns(&mut self, start: usize, count: usize) -> Result<Array2<f64>> {
        match &mut self.values {
            Values::Whole(data) => Ok(data.slice(s![.., start..start + count]).to_owned()),
            Values::Streamed(s) => s.read_columns(&self.info, start, count),
        }
    }
}

/// The variable read by `matrw`, for files `matfile` cannot convert (the
/// structure walk has already bounded every size and checked the class).
fn read_with_matrw(path: &Path, bytes: &[u8], var: &str) -> Result<(Array2<f64>, &'static str)> {
    use matrw::{MatVariable, MatlabType};
    let file = catch_unwind(AssertUnwindSafe(|| matrw::load_matfile_from_u8(bytes)))
        .map_err(|_| Error::format(path, DAMAGED))?
        .map_err(|_| Error::format(path, DAMAGED))?;
    let Some((_, mut v)) = file.iter().find(|(k, _)| *k == var) else {
        return Err(Error::format(path, DAMAGED));
    };
    while let MatVariable::Compressed(c) = v {
        v = &c.value;
    }
    let MatVariable::NumericArray(a) = v else {
        return Err(Error::format(path, DAMAGED));
    };
    let w = |x: &[f64]| x.to_vec();
    let (class, values): (&'static str, Vec<f64>) = match &a.value {
        MatlabType::F64(x) => ("double", w(x)),
        MatlabType::F32(x) => ("single", x.iter().map(|&v| v as f64).collect()),
        MatlabType::I8(x) => ("int8", x.iter().map(|&v| v as f64).collect()),
        MatlabType::U8(x) => ("uint8", x.iter().map(|&v| v as f64).collect()),
        MatlabType::I16(x) => ("int16", x.iter().map(|&v| v as f64).collect()),
        MatlabType::U16(x) => ("uint16", x.iter().map(|&v| v as f64).collect()),
        MatlabType::I32(x) => ("int32", x.iter().map(|&v| v as f64).collect()),
        MatlabType::U32(x) => ("uint32", x.iter().map(|&v| v as f64).collect()),
        MatlabType::I64(x) => ("int64", x.iter().map(|&v| v as f64).collect()),
        MatlabType::U64(x) => ("uint64", x.iter().map(|&v| v as f64).collect()),
        _ => return Err(Error::format(path, DAMAGED)),
    };
    let (rows, cols) = check_shape(path, var, &a.dim)?;
    let data = Array2::from_shape_vec((rows, cols).f(), values).map_err(|_| {
        Error::variable(
            path,
            var,
            "declares more elements than it holds: the file is damaged",
        )
    })?;
    Ok((data, class))
}

/// Turn a numeric MAT variable into an `f64` matrix.
fn to_matrix(path: &Path, var: &str, a: &matfile::Array) -> Result<(Array2<f64>, &'static str)> {
    let complex = || {
        Err(Error::variable(
            path,
            var,
            "is complex; a numeric matrix (double, single or integer) is needed",
        ))
    };
    macro_rules! widen {
        ($class:literal, $real:expr, $imag:expr) => {{
            if $imag.is_some() {
                return complex();
            }
            (
                $class,
                $real.iter().map(|&v| v as f64).collect::<Vec<f64>>(),
            )
        }};
    }
    let (class, values) = match a.data() {
        NumericData::Double { real, imag } => widen!("double", real, imag),
        NumericData::Single { real, imag } => widen!("single", real, imag),
        NumericData::Int8 { real, imag } => widen!("int8", real, imag),
        NumericData::UInt8 { real, imag } => widen!("uint8", real, imag),
        NumericData::Int16 { real, imag } => widen!("int16", real, imag),
        NumericData::UInt16 { real, imag } => widen!("uint16", real, imag),
        NumericData::Int32 { real, imag } => widen!("int32", real, imag),
        NumericData::UInt32 { real, imag } => widen!("uint32", real, imag),
        NumericData::Int64 { real, imag } => widen!("int64", real, imag),
        NumericData::UInt64 { real, imag } => widen!("uint64", real, imag),
    };
    let (rows, cols) = check_shape(path, var, a.size())?;
    let data = Array2::from_shape_vec((rows, cols).f(), values).map_err(|_| {
        Error::variable(
            path,
            var,
            "declares more elements than it holds: the file is damaged",
        )
    })?;
    Ok((data, class))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Matrix;

    /// A little-endian MAT v5 matrix element: a `rows × cols` double array
    /// named `name`, values `0, 1, 2, …` in column-major order.
    fn matrix_element(name: &[u8], rows: u32, cols: u32) -> Vec<u8> {
        let mut body = vec![];
        let tag = |b: &mut Vec<u8>, kind: u32, bytes: u32| {
            b.extend_from_slice(&kind.to_le_bytes());
            b.extend_from_slice(&bytes.to_le_bytes());
        };
        tag(&mut body, 6, 8); // array flags (miUINT32), class double
        body.extend_from_slice(&6u32.to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes());
        tag(&mut body, 5, 8); // dimensions (miINT32)
        body.extend_from_slice(&rows.to_le_bytes());
        body.extend_from_slice(&cols.to_le_bytes());
        tag(&mut body, 1, name.len() as u32); // name (miINT8)
        body.extend_from_slice(name);
        body.resize(body.len().div_ceil(8) * 8, 0);
        let n = rows * cols;
        tag(&mut body, 9, n * 8); // real part (miDOUBLE)
        for v in 0..n {
            body.extend_from_slice(&f64::from(v).to_le_bytes());
        }
        let mut e = vec![];
        tag(&mut e, 14, body.len() as u32);
        e.extend_from_slice(&body);
        e
    }

    fn mat_file(elements: &[Vec<u8>]) -> Vec<u8> {
        let mut f = b"MATLAB 5.0 MAT-file, written by a test".to_vec();
        f.resize(124, b' ');
        f.extend_from_slice(&[0, 1, b'I', b'M']);
        for e in elements {
            f.extend_from_slice(e);
        }
        f
    }

    /// A large variable is read a few columns at a time, from the file or
    /// from its inflated stream, in any order: the same values, bit for
    /// bit, as the parser's whole matrix, for each storage type.
    #[test]
    fn streamed_columns_are_the_parsed_matrix() {
        use matrw::{MatVariable, MatlabType, NumericArray};
        let dir = tempfile::tempdir().unwrap();
        let (rows, cols) = (37usize, 11usize);
        let doubles: Vec<f64> = (0..rows * cols)
            .map(|i| {
                if i % 13 == 0 {
                    f64::NAN
                } else {
                    (i as f64 * 0.37).sin() * 1e-6
                }
            })
            .collect();
        let variables = [
            ("double", MatlabType::F64(doubles.clone())),
            (
                "single",
                MatlabType::F32(doubles.iter().map(|&v| v as f32).collect()),
            ),
            (
                "int16",
                MatlabType::I16((0..rows * cols).map(|i| i as i16 - 200).collect()),
            ),
            (
                "uint8",
                MatlabType::U8((0..rows * cols).map(|i| (i % 251) as u8).collect()),
            ),
        ];
        for (class, values) in variables {
            for compress in [false, true] {
                let path = dir.path().join(format!("{class}_{compress}.mat"));
                let var = MatVariable::NumericArray(
                    NumericArray::new(vec![rows, cols], values.clone(), None).unwrap(),
                );
                let mut file = matrw::MatFile::new();
                let small = NumericArray::new(vec![1, 2], MatlabType::F64(vec![1.0, 2.0]), None);
                file.insert("before", MatVariable::NumericArray(small.unwrap()));
                file.insert("m", var);
                matrw::save_matfile_v7(path.to_str().unwrap(), file, compress).unwrap();
                let mut whole = MatV5Matrix::open(&path, Some("m")).unwrap();
                assert!(matches!(whole.values, Values::Whole(_)));
                let vars = mat_structure::check(&path).unwrap();
                let (index, header) = choose(&path, &vars, Some("m")).unwrap();
                let mut streamed = MatV5Matrix::streamed(&path, "m", index, header, rows, cols, 0)
                    .unwrap()
                    .expect("streamed");
                assert_eq!(streamed.info().class, whole.info().class, "{class}");
                assert_eq!(streamed.info().class, class);
                for (start, count) in [(0, 2), (2, 4), (6, 5), (1, 3), (0, 11)] {
                    let a = whole.read_columns(start, count).unwrap();
                    let b = streamed.read_columns(start, count).unwrap();
                    assert_eq!(a.dim(), b.dim());
                    for (x, y) in a.iter().zip(b.iter()) {
                        assert_eq!(
                            x.to_bits(),
                            y.to_bits(),
                            "{class} {compress} {start}+{count}"
                        );
                    }
                }
            }
        }
    }

    /// An element of a type MAT v5 does not define, beside the variable:
    /// the structure walk skips it, and the parsers never see it. (Found by
    /// fuzzing: given the whole file, the fallback parser took the element
    /// for a variable whose name declared 2 GiB, and allocated it.)
    #[test]
    fn an_unknown_element_beside_the_variable_does_not_reach_the_parsers() {
        let good = matrix_element(b"flux", 2, 3);
        let mut odd = matrix_element(b"x", 1, 1);
        odd[..4].copy_from_slice(&0xE504u32.to_le_bytes());
        // The odd element's name tag declares 0x80000000 bytes.
        odd[8 + 32 + 4..8 + 32 + 8].copy_from_slice(&0x8000_0000u32.to_le_bytes());
        let dir = tempfile::tempdir().unwrap();
        for (name, elements) in [
            ("after.mat", [good.clone(), odd.clone()]),
            ("before.mat", [odd, good]),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, mat_file(&elements)).unwrap();
            let mut m = MatV5Matrix::open(&path, Some("flux")).unwrap();
            assert_eq!((m.info().rows, m.info().cols), (2, 3), "{name}");
            let got = m.read_columns(0, 3).unwrap();
            // Column-major 0..6: row r, column c holds 2c + r.
            for r in 0..2 {
                for c in 0..3 {
                    assert_eq!(got[[r, c]], (2 * c + r) as f64, "{name} [{r},{c}]");
                }
            }
        }
    }
}
