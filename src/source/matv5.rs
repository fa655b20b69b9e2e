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
        let header = choose(path, &vars, var_name)?;
        let var = header.name.clone();
        if let Some(why) = header.refusal() {
            return Err(Error::variable(path, &var, why));
        }
        check_shape(path, &var, &header.dims)?;

        // The parser gets the declared variables, inflated, and nothing more:
        // memory is bounded by them, whatever a compressed stream holds.
        let bytes = super::mat_structure::inflated(path)?;
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
/// with `__` (as `scipy.io.loadmat` lists them, in file order).
pub(crate) fn choose<'a>(
    path: &Path,
    vars: &'a [VarHeader],
    var_name: Option<&str>,
) -> Result<&'a VarHeader> {
    let found = match var_name {
        Some(v) => vars.iter().find(|h| h.name == v),
        None => vars.iter().find(|h| !h.name.starts_with("__")),
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
