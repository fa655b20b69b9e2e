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

use super::mat_structure::VarHeader;
use super::{check_shape, Matrix, MatrixInfo};
use crate::error::{Error, Result};

pub struct MatV5Matrix {
    info: MatrixInfo,
    /// The whole matrix, column-major as MATLAB stores it.
    data: Array2<f64>,
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
        check_shape(path, &var, &header.dims)?;

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
            data,
        })
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
        Ok(self.data.slice(s![.., start..start + count]).to_owned())
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
