//! Synthetic flux matrices and the files that hold them.
//!
//! The project's `sample-data/`, its tests and its benchmark use files made
//! here rather than copies of anybody's data. The values are deterministic
//! (no random state), smooth in space, with a diurnal cycle in time, so a
//! plot of them looks like a flux field and a test can recompute any cell.

use std::f64::consts::PI;
use std::path::Path;

use matrw::{MatFile, MatVariable, MatlabType, NumericArray};
use ndarray::{s, Array2, ShapeBuilder};
use serde_json::json;

use crate::error::{Error, Result};

/// A regular grid of cell centres, `res` degrees apart, covering
/// `[x0, x1] × [y0, y1]` (cell edges).
#[derive(Debug, Clone, Copy)]
pub struct Grid {
    pub x0: f64,
    pub x1: f64,
    pub y0: f64,
    pub y1: f64,
    pub res: f64,
}

impl Grid {
    /// The 0.5° global grid: 720 × 360 = 259,200 cells.
    pub const GLOBAL_HALF_DEGREE: Grid = Grid {
        x0: -180.0,
        x1: 180.0,
        y0: -90.0,
        y1: 90.0,
        res: 0.5,
    };

    /// The 1° North American window of the project's sample data.
    pub const NORTH_AMERICA: Grid = Grid {
        x0: -167.0,
        x1: -50.0,
        y0: 10.0,
        y1: 70.0,
        res: 1.0,
    };

    /// The same resolution over another window (cell edges).
    pub fn with_window(self, x0: f64, x1: f64, y0: f64, y1: f64) -> Grid {
        Grid {
            x0,
            x1,
            y0,
            y1,
            ..self
        }
    }

    pub fn nx(&self) -> usize {
        ((self.x1 - self.x0) / self.res).round() as usize
    }

    pub fn ny(&self) -> usize {
        ((self.y1 - self.y0) / self.res).round() as usize
    }

    pub fn cells(&self) -> usize {
        self.nx() * self.ny()
    }

    /// Centre of cell `i`, ordered by row of latitude then longitude.
    pub fn centre(&self, i: usize) -> (f64, f64) {
        let (ix, iy) = (i % self.nx(), i / self.nx());
        (
            self.x0 + (ix as f64 + 0.5) * self.res,
            self.y0 + (iy as f64 + 0.5) * self.res,
        )
    }
}

/// The synthetic flux of a cell at hour `h` after the first step, in
/// µmol m⁻² s⁻¹: uptake by day, release by night, stronger at mid latitudes.
pub fn flux(x: f64, y: f64, hours: f64) -> f64 {
    let season = (y.to_radians() * 2.0).sin().abs();
    let local_hour = hours + x / 15.0;
    let diurnal = (2.0 * PI * (local_hour - 13.0) / 24.0).cos();
    let pattern = 0.6 * (x.to_radians() * 3.0).sin() * (y.to_radians() * 4.0).cos();
    -4.0 * season * diurnal + pattern + 0.25
}

/// A SpatioTemporalMatrix: `cells × (2 + steps)`, columns x, y, then one per
/// step of `step_hours`.
pub fn flux_matrix(grid: &Grid, steps: usize, step_hours: f64) -> Array2<f64> {
    let n = grid.cells();
    let mut m = Array2::<f64>::zeros((n, 2 + steps).f());
    for i in 0..n {
        let (x, y) = grid.centre(i);
        m[[i, 0]] = x;
        m[[i, 1]] = y;
        for k in 0..steps {
            m[[i, 2 + k]] = flux(x, y, k as f64 * step_hours);
        }
    }
    m
}

/// The synthetic column-averaged CO₂ of a place on a day of the year, in
/// ppm: a north–south gradient, a seasonal draw-down and some longitude
/// structure, around 386 ppm as in 2009.
pub fn xco2(x: f64, y: f64, day_of_year: f64) -> f64 {
    let season = (2.0 * PI * (day_of_year - 120.0) / 365.0).cos();
    386.0 + 1.5 * y.to_radians().sin() + 1.2 * season * (y.to_radians().sin() + 1.0)
        - 0.4 * (x.to_radians() * 3.0).sin()
}

/// The synthetic kriging variance of a cell (ppm²): larger far from the
/// tropics' dense retrievals.
pub fn kriging_variance(x: f64, y: f64) -> f64 {
    let e = 0.3 + 0.9 * (y / 90.0).abs() + 0.1 * (x.to_radians() * 2.0).cos().abs();
    e * e
}

/// A KrigedXCO2Matrix: `cells × 9` with columns y, x, XCO2, kriging
/// variance, then 5 columns the loader does not use, for the map of
/// `day_of_year`.
pub fn kriged_matrix(grid: &Grid, day_of_year: f64) -> Array2<f64> {
    let n = grid.cells();
    let mut m = Array2::<f64>::zeros((n, 9).f());
    for i in 0..n {
        let (x, y) = grid.centre(i);
        let v = xco2(x, y, day_of_year);
        let row = [
            y,
            x,
            v,
            kriging_variance(x, y),
            3.5,
            1000.0 + i as f64,
            n as f64,
            1.5,
            v + 0.01,
        ];
        for (j, value) in row.into_iter().enumerate() {
            m[[i, j]] = value;
        }
    }
    m
}

/// An XCO2Matrix: `n` retrievals spread over `days` days from day
/// `first_day` (1 = 1 January) of `year`, as `n × 6` with columns x, y,
/// XCO2, day of year, year, retrieval error. Points follow low-discrepancy
/// sequences, so no two share a position and a test can recompute any row.
pub fn xco2_matrix(n: usize, year: i32, first_day: u32, days: u32) -> Array2<f64> {
    let frac = |v: f64| v - v.floor();
    let mut m = Array2::<f64>::zeros((n, 6).f());
    for i in 0..n {
        let t = i as f64 + 1.0;
        let x = -179.9 + 359.8 * frac(t * 0.618_033_988_749_895);
        let y = -60.0 + 140.0 * frac(t * std::f64::consts::SQRT_2);
        let day = f64::from(first_day) + (i * days as usize / n) as f64;
        let row = [
            x,
            y,
            xco2(x, y, day),
            day,
            f64::from(year),
            0.4 + 0.8 * frac(t * 0.754_877_666),
        ];
        for (j, value) in row.into_iter().enumerate() {
            m[[i, j]] = value;
        }
    }
    m
}

/// Write one matrix as a MATLAB v5 MAT-file (what MATLAB's `save -v7` writes).
pub fn write_mat_v5(path: &Path, var: &str, data: &Array2<f64>, compress: bool) -> Result<()> {
    write_mat_v5_value(
        path,
        var,
        data.dim(),
        MatlabType::F64(column_major(data)),
        compress,
    )
}

/// Write one numeric array of any class as a MATLAB v5 MAT-file.
pub fn write_mat_v5_value(
    path: &Path,
    var: &str,
    (rows, cols): (usize, usize),
    values: MatlabType,
    compress: bool,
) -> Result<()> {
    let array = NumericArray::new(vec![rows, cols], values, None)
        .map_err(|e| Error::format(path, format!("cannot build the MAT variable: {e}")))?;
    write_mat_v5_variables(
        path,
        vec![(var.to_string(), MatVariable::NumericArray(array))],
        compress,
    )
}

/// Write any MAT variables (tests use this for cells, structs and the like).
pub fn write_mat_v5_variables(
    path: &Path,
    vars: Vec<(String, MatVariable)>,
    compress: bool,
) -> Result<()> {
    let text = path
        .to_str()
        .ok_or_else(|| Error::format(path, "the path is not valid UTF-8"))?;
    let names: Vec<String> = vars.iter().map(|(name, _)| name.clone()).collect();
    let mut file = MatFile::new();
    for (name, v) in vars {
        file.insert(&name, v);
    }
    matrw::save_matfile_v7(text, file, compress)
        .map_err(|e| Error::format(path, format!("cannot write the MAT-file: {e}")))?;
    fixed_header_text(path)?;
    // The writer does not report every I/O error; walking the file written
    // with the project's own MAT v5 reader (every element, every size) does.
    let unreadable =
        |why: String| Error::format(path, format!("the MAT-file written is unreadable: {why}"));
    let listed = crate::source::formats::list(path).map_err(|e| unreadable(e.to_string()))?;
    let found: Vec<&str> = listed.variables.iter().map(|v| v.name.as_str()).collect();
    if listed.format != crate::source::FileFormat::MatV5
        || names.iter().any(|n| !found.contains(&n.as_str()))
    {
        return Err(unreadable(format!(
            "it lists {found:?} as {:?}, not {names:?} as MAT v5",
            listed.format
        )));
    }
    Ok(())
}

/// The MAT v5 header's 116 bytes of free text (the writer puts today's date
/// there): a fixed text instead, so that the same matrix gives the same
/// file and regenerating `sample-data/` leaves the tree clean.
fn fixed_header_text(path: &Path) -> Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let text = *b"MATLAB 5.0 MAT-file, Platform: GLNXA64, written by fluxpy::synth (manage's sample generator)";
    let mut header = [b' '; 116];
    header[..text.len()].copy_from_slice(&text);
    let io = |e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io)?;
    f.seek(SeekFrom::Start(0)).map_err(io)?;
    f.write_all(&header).map_err(io)
}

/// The elements of a matrix in MATLAB's column-major order.
pub fn column_major(data: &Array2<f64>) -> Vec<f64> {
    data.t().iter().copied().collect()
}

/// Columns `start..start + count` of [`flux_matrix`], computed without the
/// rest of the matrix, so files larger than memory can be written.
pub fn flux_columns(grid: &Grid, step_hours: f64, start: usize, count: usize) -> Array2<f64> {
    use rayon::prelude::*;
    let n = grid.cells();
    let values: Vec<f64> = (start..start + count)
        .into_par_iter()
        .flat_map_iter(|c| {
            (0..n).map(move |i| {
                let (x, y) = grid.centre(i);
                match c {
                    0 => x,
                    1 => y,
                    k => flux(x, y, (k - 2) as f64 * step_hours),
                }
            })
        })
        .collect();
    Array2::from_shape_vec((n, count).f(), values).expect("n × count values")
}

/// The element class of a generated HDF5 dataset. Values are converted as
/// Rust's `as` does (integers truncate toward zero and saturate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Element {
    Double,
    Single,
    Int8,
    UInt8,
    Int16,
    UInt16,
    Int32,
    UInt32,
    Int64,
    UInt64,
}

impl Element {
    /// The class as MATLAB names it (the `MATLAB_class` attribute).
    pub fn matlab_class(self) -> &'static str {
        match self {
            Element::Double => "double",
            Element::Single => "single",
            Element::Int8 => "int8",
            Element::UInt8 => "uint8",
            Element::Int16 => "int16",
            Element::UInt16 => "uint16",
            Element::Int32 => "int32",
            Element::UInt32 => "uint32",
            Element::Int64 => "int64",
            Element::UInt64 => "uint64",
        }
    }
}

/// How a generated HDF5 dataset is laid out.
#[derive(Debug, Clone, Copy)]
pub struct H5Layout {
    pub element: Element,
    /// Chunk shape in MATLAB orientation (cells × columns); contiguous if `None`.
    pub chunk: Option<(usize, usize)>,
    /// gzip (deflate) level 1–9; needs `chunk`.
    pub gzip: Option<u8>,
    /// Columns generated and written at a time (bounds the writer's memory).
    pub columns_per_write: usize,
}

impl Default for H5Layout {
    fn default() -> Self {
        Self {
            element: Element::Double,
            chunk: None,
            gzip: None,
            columns_per_write: 16,
        }
    }
}

/// Where a generated matrix comes from: its shape and a function giving
/// columns `start..start + count` as a `rows × count` array.
pub struct Columns<'a> {
    pub rows: usize,
    pub cols: usize,
    pub read: Box<dyn Fn(usize, usize) -> Array2<f64> + 'a>,
}

impl<'a> Columns<'a> {
    /// The columns of a matrix held in memory.
    pub fn of(m: &'a Array2<f64>) -> Self {
        Self {
            rows: m.nrows(),
            cols: m.ncols(),
            read: Box::new(move |start, count| m.slice(s![.., start..start + count]).to_owned()),
        }
    }

    /// The synthetic flux matrix of `grid` with `steps` steps, computed a
    /// block at a time.
    pub fn flux(grid: Grid, steps: usize, step_hours: f64) -> Columns<'static> {
        Columns {
            rows: grid.cells(),
            cols: 2 + steps,
            read: Box::new(move |start, count| flux_columns(&grid, step_hours, start, count)),
        }
    }
}

/// The first 128 bytes MATLAB writes in the 512-byte user block of a v7.3
/// file: descriptive text, the version 0x0200 and the endian indicator "IM".
fn mat_v73_header() -> [u8; 128] {
    let mut h = [b' '; 128];
    let text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created by: the manage generator, HDF5 schema 1.00 .";
    h[..text.len()].copy_from_slice(text);
    h[116..124].fill(0);
    h[124..126].copy_from_slice(&0x0200u16.to_le_bytes());
    h[126..128].copy_from_slice(b"IM");
    h
}

/// Write a matrix as a MATLAB v7.3 MAT-file: HDF5 behind a 512-byte user
/// block, the variable `var` at the root stored transposed (HDF5 dims
/// `cols × rows`, as MATLAB's column-major layout gives) with its
/// `MATLAB_class` attribute.
pub fn write_mat_v73(path: &Path, var: &str, m: &Columns, layout: &H5Layout) -> Result<()> {
    write_h5(path, var, m, layout, true)?;
    use std::io::{Seek, SeekFrom, Write};
    let io = |e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io)?;
    f.seek(SeekFrom::Start(0)).map_err(io)?;
    f.write_all(&mat_v73_header()).map_err(io)?;
    f.sync_data().ok();
    Ok(())
}

/// Write a matrix as a plain HDF5 file: the dataset at `dataset_path`
/// (`group/name`, groups created as needed), rows are cells.
pub fn write_hdf5(path: &Path, dataset_path: &str, m: &Columns, layout: &H5Layout) -> Result<()> {
    write_h5(path, dataset_path, m, layout, false)
}

fn write_h5(path: &Path, name: &str, m: &Columns, layout: &H5Layout, matlab: bool) -> Result<()> {
    let h5 = |e: hdf5::Error| Error::format(path, format!("cannot write the HDF5 file: {e}"));
    let file = if matlab {
        hdf5::File::with_options()
            .with_fcpl(|p| p.userblock(512))
            .create(path)
    } else {
        hdf5::File::create(path)
    }
    .map_err(h5)?;
    macro_rules! write_as {
        ($t:ty) => {{
            let shape = if matlab {
                [m.cols, m.rows]
            } else {
                [m.rows, m.cols]
            };
            let mut b = file.new_dataset::<$t>().shape(shape);
            if let Some((r, c)) = layout.chunk {
                let chunk = if matlab {
                    [c.min(m.cols), r.min(m.rows)]
                } else {
                    [r.min(m.rows), c.min(m.cols)]
                };
                b = b.chunk(chunk);
                if let Some(level) = layout.gzip {
                    b = b.deflate(level);
                }
            }
            let ds = b.create(name).map_err(h5)?;
            let per = layout.columns_per_write.max(1);
            let mut start = 0;
            while start < m.cols {
                let n = per.min(m.cols - start);
                let block = (m.read)(start, n).mapv(|v| v as $t);
                if matlab {
                    ds.write_slice(&block.t().as_standard_layout(), s![start..start + n, ..])
                } else {
                    ds.write_slice(&block.as_standard_layout(), s![.., start..start + n])
                }
                .map_err(h5)?;
                start += n;
            }
            ds
        }};
    }
    let ds = match layout.element {
        Element::Double => write_as!(f64),
        Element::Single => write_as!(f32),
        Element::Int8 => write_as!(i8),
        Element::UInt8 => write_as!(u8),
        Element::Int16 => write_as!(i16),
        Element::UInt16 => write_as!(u16),
        Element::Int32 => write_as!(i32),
        Element::UInt32 => write_as!(u32),
        Element::Int64 => write_as!(i64),
        Element::UInt64 => write_as!(u64),
    };
    if matlab {
        let class = hdf5::types::FixedAscii::<16>::from_ascii(layout.element.matlab_class())
            .expect("ASCII class name");
        ds.new_attr::<hdf5::types::FixedAscii<16>>()
            .create("MATLAB_class")
            .and_then(|a| a.write_scalar(&class))
            .map_err(h5)?;
    }
    file.close().map_err(h5)
}

/// The project's sample: a 1° North American grid, one day of 3-hourly steps.
pub struct Sample;

impl Sample {
    pub const MAT: &'static str = "flux_na_2004.mat";
    pub const VAR: &'static str = "flux_na_2004";
    pub const STEPS: usize = 8;

    pub fn matrix() -> Array2<f64> {
        flux_matrix(&Grid::NORTH_AMERICA, Self::STEPS, 3.0)
    }

    pub fn config() -> serde_json::Value {
        json!({
            "var_name": Self::VAR,
            "timestamp": "2004-06-30T00:00:00",
            "steps": [10800],
            "columns": ["x", "y"],
            "gridres": {"units": "degrees", "x": 1.0, "y": 1.0},
            "header": ["lng", "lat"],
            "parameters": ["values"],
            "title": "Synthetic surface carbon flux (sample)",
            "units": {"x": "degrees", "y": "degrees", "values": "&mu;mol/m&sup2;"},
        })
    }

    /// Write the sample MAT-file and its JSON config into `dir`.
    pub fn write(dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io {
            path: dir.to_path_buf(),
            source: e,
        })?;
        let mat = dir.join(Self::MAT);
        write_mat_v5(&mat, Self::VAR, &Self::matrix(), true)?;
        let json = crate::config::sidecar_path(&mat);
        let text = serde_json::to_string_pretty(&Self::config()).expect("json") + "\n";
        std::fs::write(&json, text).map_err(|e| Error::Io {
            path: json,
            source: e,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_have_the_documented_sizes() {
        assert_eq!(Grid::GLOBAL_HALF_DEGREE.cells(), 259_200);
        assert_eq!(Grid::NORTH_AMERICA.cells(), 117 * 60);
        assert_eq!(Grid::NORTH_AMERICA.centre(0), (-166.5, 10.5));
        assert_eq!(Grid::NORTH_AMERICA.centre(117 * 60 - 1), (-50.5, 69.5));
    }

    #[test]
    fn mat_v5_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let m = flux_matrix(&Grid::NORTH_AMERICA, 3, 3.0);
        for compress in [false, true] {
            let p = dir.path().join(format!("m{compress}.mat"));
            write_mat_v5(&p, "flux", &m, compress).unwrap();
            let mut src = crate::source::open(&p, None).unwrap();
            assert_eq!(src.info().var_name, "flux");
            assert_eq!(src.read_columns(0, 5).unwrap(), m);
        }
    }

    #[test]
    fn flux_columns_are_the_matrix_columns() {
        let g = Grid::NORTH_AMERICA;
        let m = flux_matrix(&g, 4, 3.0);
        assert_eq!(flux_columns(&g, 3.0, 1, 4), m.slice(s![.., 1..5]));
    }

    #[test]
    fn hdf5_round_trips_in_every_layout() {
        use crate::source::{detect, FileFormat};
        let dir = tempfile::tempdir().unwrap();
        let m = flux_matrix(
            &Grid::NORTH_AMERICA.with_window(-100.0, -90.0, 30.0, 36.0),
            5,
            3.0,
        );
        let layouts = [
            H5Layout::default(),
            H5Layout {
                chunk: Some((17, 3)),
                gzip: Some(4),
                columns_per_write: 2,
                ..Default::default()
            },
        ];
        for (i, layout) in layouts.iter().enumerate() {
            let v73 = dir.path().join(format!("m{i}.mat"));
            write_mat_v73(&v73, "flux", &Columns::of(&m), layout).unwrap();
            assert_eq!(detect(&v73).unwrap(), FileFormat::MatV73);
            let h5 = dir.path().join(format!("m{i}.h5"));
            write_hdf5(&h5, "fluxes/2004/flux", &Columns::of(&m), layout).unwrap();
            assert_eq!(detect(&h5).unwrap(), FileFormat::Hdf5);
            for (p, var) in [(&v73, "flux"), (&h5, "fluxes/2004/flux")] {
                let mut src = crate::source::open(p, None).unwrap();
                assert_eq!(src.info().var_name, var);
                assert_eq!((src.info().rows, src.info().cols), m.dim());
                assert_eq!(src.read_columns(0, 7).unwrap(), m, "{}", p.display());
                assert_eq!(src.read_columns(3, 2).unwrap(), m.slice(s![.., 3..5]));
            }
        }
    }
}
