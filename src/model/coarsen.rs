//! `coarsen`: a grid aggregated to a coarser one as it is read.
//!
//! The cells of the file lie on a lattice: its distinct longitudes (x) and
//! latitudes (y), each sorted ascending. A coarse cell is a block of
//! `factor × factor` lattice positions, counted from the south-west corner
//! (the smallest x and y); where the lattice does not divide by the factor,
//! the last block of a row or column is partial and kept, and averages the
//! cells it has (as `cdo gridboxmean` keeps its partial boxes, and as
//! xarray's `coarsen(boundary="pad")` followed by a NaN-skipping mean does).
//! A coarse cell exists when at least one of its cells is a row of the
//! file; its centre is the mean of the lattice positions of its block (so
//! a regular grid stays regular whatever the mask, but for the partial
//! blocks at the edges), rounded to 5 decimals.
//!
//! Its value at each step is the weighted mean of the values of its cells
//! that are not NaN (missing), `Σ w·v / Σ w` over those cells; a block with
//! no such cell is missing (NaN). ±Infinity is a value, as in numpy.
//! The weights (`weights`):
//!
//! - `area` (the default): the cell's area on the sphere, up to a constant,
//!   `Δlon · (sin(lat_north) − sin(lat_south))`, with each cell's bounds
//!   half-way to its neighbours' centres (the first and last extended by
//!   half their neighbour's spacing) and latitudes clamped to ±90°. On a
//!   regular grid that is `sin(lat + dy/2) − sin(lat − dy/2)`. Refused
//!   where a y coordinate is outside ±90 (not a latitude).
//! - `none`: every cell counts the same (a projected grid of equal cells).
//!
//! The config key takes an integer factor (`"coarsen": 4`) or an object:
//! `{"factor": 4}` or `{"resolution": 1.0}` (the coarse spacing, in the
//! grid's units, a whole multiple of the file's), with `"weights"`.
//!
//! Memory: the fine grid is read a few steps at a time (at most
//! [`FINE_VALUES`] values, or one step), and each step is reduced to the
//! coarse grid before the next is read; what is kept is one coarse-cell
//! index and one weight per fine cell.

use bson::{doc, Bson, Document};
use ndarray::Array2;

use super::round_to;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::source::{GridFacts, Matrix, MatrixInfo};

/// Fine values read per block at most (one step always).
const FINE_VALUES: usize = 2 << 20;

/// The config key.
pub const KEY: &str = "coarsen";

/// The metadata entry that records a coarsening.
pub const METADATA_KEY: &str = "coarsened";

/// What the refusal of a grid too large for one document says (followed by
/// the coarsening that fits, see [`with_fitting_factor`]).
pub const OVER_LIMIT: &str = "over MongoDB's 16 MiB document limit";

/// How cells are weighted in a block mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weights {
    Area,
    Equal,
}

/// What the factor is given as.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Size {
    Factor(usize),
    Resolution(f64),
}

/// The `coarsen` key, read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coarsening {
    size: Size,
    weights: Weights,
}

impl Coarsening {
    /// The `coarsen` key of the config, when given.
    pub fn from_config(config: &Config) -> Result<Option<Coarsening>> {
        let Some((value, origin)) = config.get(KEY) else {
            return Ok(None);
        };
        let bad = |msg: &str| Error::config(origin, KEY, msg.to_string());
        let factor = |v: &serde_json::Value| -> Result<usize> {
            match v.as_u64() {
                Some(f) if (1..=1_000_000).contains(&f) => Ok(f as usize),
                _ => Err(bad(
                    "must be a whole number of cells from 1 up, e.g. 4 (blocks of 4 × 4 cells), or {\"resolution\": 1.0}",
                )),
            }
        };
        match value {
            serde_json::Value::Object(o) => {
                for k in o.keys() {
                    if !["factor", "resolution", "weights"].contains(&k.as_str()) {
                        return Err(bad(&format!(
                            "has an unknown key '{k}' (it takes factor or resolution, and weights)"
                        )));
                    }
                }
                let size = match (o.get("factor"), o.get("resolution")) {
                    (Some(f), None) => Size::Factor(factor(f)?),
                    (None, Some(r)) => match r.as_f64() {
                        Some(r) if r.is_finite() && r > 0.0 => Size::Resolution(r),
                        _ => return Err(bad("'resolution' must be a positive number")),
                    },
                    _ => return Err(bad("takes one of 'factor' and 'resolution'")),
                };
                let weights = match o.get("weights").map(|w| w.as_str()) {
                    None | Some(Some("area")) => Weights::Area,
                    Some(Some("none")) => Weights::Equal,
                    _ => return Err(bad("'weights' must be \"area\" or \"none\"")),
                };
                Ok(Some(Coarsening { size, weights }))
            }
            v => Ok(Some(Coarsening {
                size: Size::Factor(factor(v)?),
                weights: Weights::Area,
            })),
        }
    }

    /// A factor with the default (area) weights.
    pub fn factor(f: usize) -> Coarsening {
        Coarsening {
            size: Size::Factor(f),
            weights: Weights::Area,
        }
    }
}

/// What was done, for the model's metadata.
#[derive(Debug, Clone)]
pub struct Applied {
    pub factor: usize,
    pub weights: Weights,
    /// The spacing of the file's lattice (x, y), where it is regular.
    pub source_spacing: [Option<f64>; 2],
    pub source_cells: usize,
    pub cells: usize,
}

impl Applied {
    /// The coarse spacing along axis `a`, where the file's is regular.
    pub fn spacing(&self, a: usize) -> Option<f64> {
        self.source_spacing[a].map(|d| round_to(d * self.factor as f64, 5))
    }

    /// The metadata's `coarsened` entry.
    pub fn document(&self, source_gridres: Option<&Bson>) -> Document {
        let method = match self.weights {
            Weights::Area => format!(
                "mean of the non-missing values of each block of {f} x {f} cells, weighted by cell area dlon*(sin(lat_north)-sin(lat_south))",
                f = self.factor
            ),
            Weights::Equal => format!(
                "mean of the non-missing values of each block of {f} x {f} cells, unweighted",
                f = self.factor
            ),
        };
        let spacing =
            |a: usize| self.source_spacing[a].map_or(Bson::Null, |d| round_to(d, 5).into());
        let mut d = doc! {
            "factor": self.factor as i64,
            "method": method,
            "weights": match self.weights { Weights::Area => "area", Weights::Equal => "none" },
            "source_cells": self.source_cells as i64,
            "cells": self.cells as i64,
        };
        let mut res = match source_gridres {
            Some(Bson::Document(g)) => g.clone(),
            _ => Document::new(),
        };
        res.insert("x", spacing(0));
        res.insert("y", spacing(1));
        d.insert("source_gridres", res);
        d
    }
}

/// The coarse grid's `gridres`: the given one with the coarse spacing.
pub fn coarse_gridres(given: Option<&Bson>, a: &Applied) -> Bson {
    let mut g = match given {
        Some(Bson::Document(g)) => g.clone(),
        _ => doc! { "units": "degrees" },
    };
    for (axis, key) in ["x", "y"].iter().enumerate() {
        let v = match a.spacing(axis) {
            Some(d) => Bson::Double(d),
            None => match g.get(*key).and_then(Bson::as_f64) {
                Some(v) => Bson::Double(round_to(v * a.factor as f64, 5)),
                None => Bson::Null,
            },
        };
        g.insert(*key, v);
    }
    Bson::Document(g)
}

/// The positions of one axis: the distinct values of the rows, and where
/// they lie on a regular spacing, every position of that spacing from the
/// smallest to the largest (so a column of cells absent from the file
/// does not shift the blocks after it).
struct Axis {
    values: Vec<f64>,
    /// The first value and the spacing of a regular axis.
    regular: Option<(f64, f64)>,
}

impl Axis {
    fn of(coords: impl Iterator<Item = f64>) -> Axis {
        let mut values: Vec<f64> = coords.collect();
        values.sort_by(f64::total_cmp);
        values.dedup();
        let step = values
            .windows(2)
            .map(|w| w[1] - w[0])
            .fold(f64::INFINITY, f64::min);
        if values.len() >= 2 && step > 0.0 {
            let (v0, span) = (values[0], values[values.len() - 1] - values[0]);
            let n = (span / step).round() as usize + 1;
            // The spacing over the whole span, less touched by rounding.
            let step = span / (n - 1) as f64;
            let on_grid = values.iter().all(|&v| {
                let k = (v - v0) / step;
                (k - k.round()).abs() <= 1e-3
            });
            // At most ten times the distinct values: a few stray
            // coordinates do not make a vast lattice.
            if on_grid && n <= 10 * values.len() {
                let values = (0..n).map(|k| round_to(v0 + k as f64 * step, 5)).collect();
                return Axis {
                    values,
                    regular: Some((v0, step)),
                };
            }
        }
        Axis {
            values,
            regular: None,
        }
    }

    fn position(&self, v: f64) -> usize {
        match self.regular {
            Some((v0, d)) => ((v - v0) / d).round() as usize,
            None => self
                .values
                .binary_search_by(|p| p.total_cmp(&v))
                .expect("every coordinate is on its axis"),
        }
    }

    /// The spacing of a regular axis.
    fn spacing(&self) -> Option<f64> {
        self.regular.map(|(_, d)| d)
    }

    /// Each position's bounds, half-way to its neighbours.
    fn bounds(&self) -> Vec<(f64, f64)> {
        let v = &self.values;
        let n = v.len();
        (0..n)
            .map(|i| {
                let lo = if i > 0 {
                    (v[i - 1] + v[i]) / 2.0
                } else if n > 1 {
                    v[0] - (v[1] - v[0]) / 2.0
                } else {
                    v[0] - 0.5
                };
                let hi = if i + 1 < n {
                    (v[i] + v[i + 1]) / 2.0
                } else if n > 1 {
                    v[n - 1] + (v[n - 1] - v[n - 2]) / 2.0
                } else {
                    v[0] + 0.5
                };
                (lo, hi)
            })
            .collect()
    }

    /// The mean of the positions of block `b`.
    fn block_centre(&self, b: usize, f: usize) -> f64 {
        let lo = b * f;
        let hi = ((b + 1) * f).min(self.values.len());
        let s: f64 = self.values[lo..hi].iter().sum();
        round_to(s / (hi - lo) as f64, 5)
    }

    fn blocks(&self, f: usize) -> usize {
        self.values.len().div_ceil(f)
    }
}

/// The coarse cells of a grid of `xy` (one per row) at factor `f`: each
/// row's coarse cell and the coarse cells' blocks, in order of first row.
fn blocks_of(xs: &Axis, ys: &Axis, xy: &[[f64; 2]], f: usize) -> (Vec<u32>, Vec<(usize, usize)>) {
    let nbx = xs.blocks(f);
    let mut index: std::collections::HashMap<usize, u32> = Default::default();
    let mut blocks = Vec::new();
    let of_row = xy
        .iter()
        .map(|&[x, y]| {
            let (bx, by) = (xs.position(x) / f, ys.position(y) / f);
            *index.entry(by * nbx + bx).or_insert_with(|| {
                blocks.push((bx, by));
                (blocks.len() - 1) as u32
            })
        })
        .collect();
    (of_row, blocks)
}

/// The number of coarse cells at each factor, for the smallest that gives
/// at most `most` cells (`None` when none does, up to a single cell).
pub fn smallest_factor(xy: &[[f64; 2]], most: usize) -> Option<(usize, usize)> {
    let xs = Axis::of(xy.iter().map(|c| c[0]));
    let ys = Axis::of(xy.iter().map(|c| c[1]));
    let top = xs.values.len().max(ys.values.len()).max(1);
    let count = |f: usize| -> usize {
        let nbx = xs.blocks(f);
        let mut seen: std::collections::HashSet<usize> = Default::default();
        for &[x, y] in xy {
            seen.insert((ys.position(y) / f) * nbx + xs.position(x) / f);
        }
        seen.len()
    };
    for f in 2..=top {
        // A block holds f × f cells at most: no need to count until that
        // many could fit.
        if xy.len().div_ceil(f * f) > most {
            continue;
        }
        let n = count(f);
        if n <= most {
            return Some((f, n));
        }
    }
    None
}

/// The size of a grid's step document `{_id: date, values: [n doubles]}`.
pub fn step_bytes(n: usize) -> usize {
    26 + crate::doc::bson_array_bytes(n, 8)
}

/// The most cells of a grid of `n` cells whose step documents and
/// `coord_index` entry (of dataset `name`) fit one document each.
pub fn cells_that_fit(name: &str, n: usize) -> usize {
    crate::doc::most_that_fit(n, &step_bytes).min(crate::doc::most_that_fit(n, &|k| {
        crate::doc::coord_index_bytes(name, k)
    }))
}

/// The refusal `e` of a grid too large for one document, with the
/// smallest `coarsen` factor whose grid fits (`most` cells at most), found
/// from the coordinates of `m` (whose first `width` columns are
/// coordinates, x in `x_col`, y in `y_col`). Other errors are returned as
/// they are.
pub fn with_fitting_factor(
    e: Error,
    m: &mut dyn Matrix,
    (width, x_col, y_col): (usize, usize, usize),
    most: usize,
) -> Error {
    let Error::Variable { path, var, msg } = e else {
        return e;
    };
    let Some(head) = msg
        .contains(OVER_LIMIT)
        .then(|| msg.strip_suffix("; nothing was written"))
        .flatten()
    else {
        return Error::Variable { path, var, msg };
    };
    let xy: Option<Vec<[f64; 2]>> = m.read_columns(0, width).ok().and_then(|c| {
        c.rows()
            .into_iter()
            .map(|r| {
                let (x, y) = (r[x_col], r[y_col]);
                (x.is_finite() && y.is_finite()).then(|| [round_to(x, 5), round_to(y, 5)])
            })
            .collect()
    });
    let hint = match xy.as_deref().and_then(|xy| smallest_factor(xy, most)) {
        Some((f, n)) => format!(
            "; \"{KEY}\": {f} in the config (area-weighted means of blocks of {f} x {f} cells) stores {n} cells, which fit"
        ),
        None => String::new(),
    };
    Error::Variable {
        path,
        var,
        msg: format!("{head}{hint}; nothing was written"),
    }
}

/// The factor a refusal made by [`with_fitting_factor`] names.
pub fn suggested_factor(msg: &str) -> Option<usize> {
    let (_, rest) = msg.split_once(&format!("\"{KEY}\": "))?;
    let (f, rest) = rest.split_once(' ')?;
    rest.starts_with("in the config").then(|| f.parse().ok())?
}

/// A matrix of the coarse grid, read from the fine one.
pub struct Coarsened {
    inner: Box<dyn Matrix>,
    info: MatrixInfo,
    /// The coordinate columns: their count, x's and y's.
    width: usize,
    x_col: usize,
    y_col: usize,
    of_row: Vec<u32>,
    weight: Vec<f64>,
    coarse_xy: Vec<[f64; 2]>,
    applied: Applied,
}

impl Coarsened {
    /// The coarse grid of `inner`, whose first `width` columns are
    /// coordinates (x in `x_col`, y in `y_col`), as `c` says; `origin`
    /// names where the key was given, for errors.
    pub fn new(
        mut inner: Box<dyn Matrix>,
        c: Coarsening,
        (width, x_col, y_col): (usize, usize, usize),
        origin: &str,
    ) -> Result<Coarsened> {
        let info = inner.info().clone();
        if info.cols < width {
            return Err(Error::variable(
                &info.path,
                &info.var_name,
                format!(
                    "has {} columns, fewer than the {width} coordinate columns",
                    info.cols
                ),
            ));
        }
        let coords = inner.read_columns(0, width)?;
        let mut xy = Vec::with_capacity(info.rows);
        for (i, r) in coords.rows().into_iter().enumerate() {
            let (x, y) = (r[x_col], r[y_col]);
            if !(x.is_finite() && y.is_finite()) {
                return Err(Error::variable(
                    &info.path,
                    &info.var_name,
                    format!("row {} has a coordinate that is not a finite number", i + 1),
                ));
            }
            xy.push([round_to(x, 5), round_to(y, 5)]);
        }
        drop(coords);
        let xs = Axis::of(xy.iter().map(|c| c[0]));
        let ys = Axis::of(xy.iter().map(|c| c[1]));
        let spacing = [xs.spacing(), ys.spacing()];
        let factor = match c.size {
            Size::Factor(f) => f,
            Size::Resolution(r) => {
                let Some(d) = spacing[0]
                    .filter(|dx| spacing[1].is_some_and(|dy| (dx - dy).abs() <= 1e-6 * dx))
                else {
                    return Err(Error::config(
                        origin,
                        KEY,
                        format!(
                            "gives a resolution, but the grid of '{}' has no single regular spacing: give a factor instead",
                            crate::error::shown(&info.path)
                        ),
                    ));
                };
                let f = (r / d).round();
                if f < 1.0 || ((r / d) - f).abs() > 1e-6 * f {
                    return Err(Error::config(
                        origin,
                        KEY,
                        format!(
                            "resolution {r} is not a whole multiple of the file's spacing {}",
                            round_to(d, 6)
                        ),
                    ));
                }
                f as usize
            }
        };
        if c.weights == Weights::Area {
            if let Some(&y) = ys.values.iter().find(|y| y.abs() > 90.0) {
                return Err(Error::config(
                    origin,
                    KEY,
                    format!(
                        "weights cells by their area on the sphere, but the grid of '{}' has y = {y}, not a latitude: use {{\"factor\": {factor}, \"weights\": \"none\"}}",
                        crate::error::shown(&info.path)
                    ),
                ));
            }
        }
        let (of_row, blocks) = blocks_of(&xs, &ys, &xy, factor);
        let (wx, wy): (Vec<f64>, Vec<f64>) = match c.weights {
            Weights::Area => (
                xs.bounds().iter().map(|(lo, hi)| hi - lo).collect(),
                ys.bounds()
                    .iter()
                    .map(|&(lo, hi)| {
                        let (lo, hi) = (lo.clamp(-90.0, 90.0), hi.clamp(-90.0, 90.0));
                        hi.to_radians().sin() - lo.to_radians().sin()
                    })
                    .collect(),
            ),
            Weights::Equal => (vec![1.0; xs.values.len()], vec![1.0; ys.values.len()]),
        };
        let weight = xy
            .iter()
            .map(|&[x, y]| wx[xs.position(x)] * wy[ys.position(y)])
            .collect();
        let coarse_xy: Vec<[f64; 2]> = blocks
            .iter()
            .map(|&(bx, by)| [xs.block_centre(bx, factor), ys.block_centre(by, factor)])
            .collect();
        let applied = Applied {
            factor,
            weights: c.weights,
            source_spacing: spacing,
            source_cells: info.rows,
            cells: coarse_xy.len(),
        };
        let mut coarse_info = info;
        coarse_info.rows = coarse_xy.len();
        Ok(Coarsened {
            inner,
            info: coarse_info,
            width,
            x_col,
            y_col,
            of_row,
            weight,
            coarse_xy,
            applied,
        })
    }

    pub fn applied(&self) -> &Applied {
        &self.applied
    }

    /// Value columns `start..start + count` of the fine grid, reduced.
    fn values(
        &mut self,
        start: usize,
        count: usize,
        out: &mut Array2<f64>,
        at: usize,
    ) -> Result<()> {
        let fine_rows = self.of_row.len().max(1);
        let per_read = (FINE_VALUES / fine_rows).max(1);
        let n = self.coarse_xy.len();
        let (mut num, mut den) = (vec![0.0f64; n], vec![0.0f64; n]);
        let mut k = 0;
        while k < count {
            let m = per_read.min(count - k);
            let block = self.inner.read_columns(start + k, m)?;
            for (j, column) in block.columns().into_iter().enumerate() {
                num.iter_mut().for_each(|v| *v = 0.0);
                den.iter_mut().for_each(|v| *v = 0.0);
                for ((&v, &c), &w) in column.iter().zip(&self.of_row).zip(&self.weight) {
                    if !v.is_nan() {
                        num[c as usize] += w * v;
                        den[c as usize] += w;
                    }
                }
                let mut col = out.column_mut(at + k + j);
                for (o, (&s, &w)) in col.iter_mut().zip(num.iter().zip(&den)) {
                    *o = if w > 0.0 { s / w } else { f64::NAN };
                }
            }
            crate::source::blocks::recycle(block);
            k += m;
        }
        Ok(())
    }
}

impl Matrix for Coarsened {
    fn info(&self) -> &MatrixInfo {
        &self.info
    }

    fn read_columns(&mut self, start: usize, count: usize) -> Result<Array2<f64>> {
        let mut out = Array2::<f64>::zeros((self.coarse_xy.len(), count));
        let coord_end = (start + count).min(self.width).max(start);
        for j in start..coord_end {
            let mut col = out.column_mut(j - start);
            if j == self.x_col || j == self.y_col {
                let a = usize::from(j == self.y_col);
                for (o, c) in col.iter_mut().zip(&self.coarse_xy) {
                    *o = c[a];
                }
            }
        }
        if start + count > coord_end {
            let first = coord_end;
            self.values(first, start + count - first, &mut out, first - start)?;
        }
        Ok(out)
    }

    fn grid_facts(&self) -> Option<&GridFacts> {
        self.inner.grid_facts()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::mem;

    fn coarse(data: Array2<f64>, c: Coarsening) -> Coarsened {
        Coarsened::new(Box::new(mem(data)), c, (2, 0, 1), "-o").unwrap()
    }

    #[test]
    fn partial_blocks_are_kept_and_missing_cells_skipped() {
        // A 3 x 2 lattice (x 0,1,2; y 0,1) at factor 2: blocks x {0,1}, {2}.
        let nan = f64::NAN;
        let data = ndarray::array![
            [0.0, 0.0, 1.0],
            [1.0, 0.0, 3.0],
            [2.0, 0.0, 5.0],
            [0.0, 1.0, nan],
            [1.0, 1.0, 4.0],
            [2.0, 1.0, nan],
        ];
        let mut m = coarse(
            data,
            Coarsening {
                size: Size::Factor(2),
                weights: Weights::Equal,
            },
        );
        assert_eq!(m.info().rows, 2);
        let all = m.read_columns(0, 3).unwrap();
        assert_eq!(all.column(0).to_vec(), [0.5, 2.0]);
        assert_eq!(all.column(1).to_vec(), [0.5, 0.5]);
        assert_eq!(all.column(2).to_vec(), [8.0 / 3.0, 5.0]);
        assert_eq!(m.applied().spacing(0), Some(2.0));
    }

    #[test]
    fn area_weights_follow_the_sine_of_the_latitude_bounds() {
        // Two cells at lat 0.5 and 60.5 (spacing 60: bounds -29.5..30.5..90.5).
        let data = ndarray::array![[0.0, 0.5, 1.0], [0.0, 60.5, 3.0]];
        let mut m = coarse(data, Coarsening::factor(2));
        let s = |d: f64| d.to_radians().sin();
        let (w0, w1) = (s(30.5) - s(-29.5), s(90.0) - s(30.5));
        let got = m.read_columns(2, 1).unwrap()[[0, 0]];
        let want = (w0 * 1.0 + w1 * 3.0) / (w0 + w1);
        assert!((got - want).abs() < 1e-12, "{got} {want}");
    }

    #[test]
    fn the_factor_a_refusal_names_is_read_back() {
        let e = Error::variable(
            "a.nc",
            "v",
            format!("has 9 cells: x, {OVER_LIMIT}; nothing was written"),
        );
        let xy: Vec<[f64; 2]> = (0..6)
            .flat_map(|i| (0..6).map(move |j| [i as f64, j as f64]))
            .collect();
        let mut m = mem(ndarray::Array2::from_shape_fn((36, 3), |(r, c)| match c {
            0 => xy[r][0],
            1 => xy[r][1],
            _ => 1.0,
        }));
        let msg = with_fitting_factor(e, &mut m, (2, 0, 1), 9).to_string();
        assert!(
            msg.ends_with("stores 9 cells, which fit; nothing was written"),
            "{msg}"
        );
        assert_eq!(suggested_factor(&msg), Some(2));
        assert_eq!(suggested_factor("no factor"), None);
    }

    #[test]
    fn the_smallest_factor_that_fits() {
        let xy: Vec<[f64; 2]> = (0..10)
            .flat_map(|i| (0..10).map(move |j| [i as f64, j as f64]))
            .collect();
        assert_eq!(smallest_factor(&xy, 100), Some((2, 25)));
        assert_eq!(smallest_factor(&xy, 24), Some((3, 16)));
        assert_eq!(smallest_factor(&xy, 0), None);
    }
}
