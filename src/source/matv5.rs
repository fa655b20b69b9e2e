//! MATLAB Level 5 MAT-files (MATLAB's `-v6` and `-v7`), through `matrw`.
//!
//! A v5 variable is one (usually zlib-compressed) stream, so it is read whole;
//! files too large for that are saved by MATLAB as v7.3 (HDF5) anyway, and
//! those are read in blocks by the HDF5 source.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use matrw::{MatVariable, MatlabType};
use ndarray::{s, Array2, ShapeBuilder};

use super::{check_shape, Matrix, MatrixInfo};
use crate::error::{Error, Result};

pub struct MatV5Matrix {
    info: MatrixInfo,
    /// The whole matrix, column-major as MATLAB stores it.
    data: Array2<f64>,
}

impl MatV5Matrix {
    pub fn open(path: &Path, var_name: Option<&str>) -> Result<Self> {
        super::mat_structure::check(path)?;
        // The parser gets the declared variables, inflated, and nothing more.
        let bytes = super::mat_structure::inflated(path)?;
        // The parser is not ours; a damaged file must still end in an error
        // message rather than a crash.
        let file = catch_unwind(AssertUnwindSafe(|| matrw::load_matfile_from_u8(&bytes)))
            .map_err(|_| Error::format(path, "damaged MAT-file: its contents cannot be parsed; save it again from MATLAB or copy it again"))?
            .map_err(|e| Error::format(path, describe_matrw_error(&e)))?;

        let names: Vec<String> = file.iter().map(|(k, _)| k.clone()).collect();
        let var = match var_name {
            Some(v) => v.to_string(),
            None => names
                .iter()
                .find(|n| !n.starts_with("__"))
                .cloned()
                .ok_or_else(|| Error::format(path, "the MAT-file holds no variable"))?,
        };
        let Some((_, value)) = file.iter().find(|(k, _)| **k == var) else {
            return Err(Error::variable(
                path,
                &var,
                format!(
                    "is not in the file; it holds: {}",
                    if names.is_empty() {
                        "nothing".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            ));
        };
        drop(bytes);
        let (data, class) = to_matrix(path, &var, value)?;
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

impl Matrix for MatV5Matrix {
    fn info(&self) -> &MatrixInfo {
        &self.info
    }

    fn read_columns(&mut self, start: usize, count: usize) -> Result<Array2<f64>> {
        Ok(self.data.slice(s![.., start..start + count]).to_owned())
    }
}

fn describe_matrw_error(e: &matrw::MatrwError) -> String {
    match e {
        matrw::MatrwError::IoError(io) => format!("cannot be read ({io})"),
        matrw::MatrwError::MatFile73Error => "is a MATLAB v7.3 file but was read as v5".into(),
        // The parser's own report is a multi-line trace; the user needs to
        // know the file is damaged, not where the parser gave up.
        _ => "damaged MAT-file: its variables cannot be parsed; save it again from MATLAB or copy it again".into(),
    }
}

/// Turn a MAT variable into an `f64` matrix, refusing what is not a real,
/// numeric, two-dimensional array with a message that says what it is.
fn to_matrix(path: &Path, var: &str, v: &MatVariable) -> Result<(Array2<f64>, &'static str)> {
    let refuse = |what: &str| {
        Err(Error::variable(
            path,
            var,
            format!("is {what}; a numeric matrix (double, single or integer) is needed"),
        ))
    };
    let a = match v {
        MatVariable::NumericArray(a) => a,
        MatVariable::Compressed(c) => return to_matrix(path, var, &c.value),
        MatVariable::SparseArray(_) => return refuse("a sparse matrix"),
        MatVariable::CellArray(_) => return refuse("a cell array"),
        MatVariable::Structure(_) | MatVariable::StructureArray(_) => return refuse("a struct"),
        MatVariable::Null => return refuse("empty"),
        MatVariable::Unsupported => {
            return refuse("of a MATLAB class manage cannot read (an object?)")
        }
    };
    if a.value_cmp.is_some() {
        return refuse("complex");
    }
    let (class, values): (&'static str, Vec<f64>) = match &a.value {
        MatlabType::F64(x) => ("double", x.clone()),
        MatlabType::F32(x) => ("single", widen(x)),
        MatlabType::I8(x) => ("int8", widen(x)),
        MatlabType::U8(x) => ("uint8", widen(x)),
        MatlabType::I16(x) => ("int16", widen(x)),
        MatlabType::U16(x) => ("uint16", widen(x)),
        MatlabType::I32(x) => ("int32", widen(x)),
        MatlabType::U32(x) => ("uint32", widen(x)),
        MatlabType::I64(x) => ("int64", x.iter().map(|&v| v as f64).collect()),
        MatlabType::U64(x) => ("uint64", x.iter().map(|&v| v as f64).collect()),
        MatlabType::UTF8(_) | MatlabType::UTF16(_) => return refuse("a char array (text)"),
        MatlabType::BOOL(_) => return refuse("logical"),
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

fn widen<T: Copy + Into<f64>>(x: &[T]) -> Vec<f64> {
    x.iter().map(|&v| v.into()).collect()
}
