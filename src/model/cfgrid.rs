//! `CFGrid` (mediator Grid4D): a NetCDF variable over time, latitude and
//! longitude with CF metadata, written as a SpatioTemporalMatrix dataset.
//!
//! The documents are SpatioTemporalMatrix's, built by the same code: a
//! `coord_index` of `[lon, lat]` cell centres, one `{_id: time, values}`
//! document per step, and the same metadata layout. What the old model takes
//! from the config, this one takes from the file: the time of each step
//! (from the time coordinate's CF `units` and `calendar`), `units` (the
//! variable's), `title` (the file's), `gridres` (the coordinate spacing) and
//! `steps`. Config keys still win where given.
//!
//! `steps` in the metadata: the one spacing of a regular time axis; for an
//! irregular one, every distinct spacing between consecutive times, the most
//! frequent first (the web map steps by the first); for a single time, the
//! config's `step` if given, else an empty list.
//!
//! `drop_empty_cells: true` leaves out of `coord_index` (and of every
//! document) the cells that are missing at every step of the file, such as
//! the ocean of a land flux. The default keeps the full grid: it is what
//! the file describes, a later file of the same product with a different
//! mask still appends to the dataset (its grid is the same), and the
//! finding costs one more pass over the file.

use bson::{Bson, Document};
use ndarray::{Array2, Axis};
use serde_json::json;

use super::base::{self, extra_keys, gridres_of, Common};
use super::spatiotemporal::GridParts;
use super::{fields, round_to, Batch, Model, ModelSpec, SpatioTemporal, Summary};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::source::{Matrix, MatrixInfo};

/// CFGrid in the table of models.
pub(crate) const SPEC: ModelSpec = ModelSpec {
    name: "CFGrid",
    mediator: "Grid4D",
    steps_in_columns: true,
    writes_as: Some(&super::spatiotemporal::SPEC),
    parameters: &[fields::VALUES],
    keys: &["step", "steps", "drop_empty_cells", super::coarsen::KEY],
    mark: None,
    shape: "a NetCDF variable over time, latitude and longitude (CF); one document per time",
    required: "none (times, grid and units come from the file)",
    example_config: include_str!("../../configs/CFGrid.json"),
    defaults: CfGrid::defaults,
    build: |name, config| Ok(Box::new(CfGrid::from_config(name, config)?)),
};

/// Values read per block when looking for empty cells.
const SCAN_VALUES: usize = 2 << 20;

pub struct CfGrid {
    name: String,
    title: Option<String>,
    units: Option<Bson>,
    gridres: Option<Bson>,
    step: Option<f64>,
    /// `precision` as given; else settled from the file (see
    /// [`Model::settle_precision`]) or the dataset.
    precision: Option<u32>,
    settled: Option<u32>,
    drop_empty: bool,
    extra: Document,
    /// Set by [`Model::inspect`] from the file.
    grid: Option<Inspected>,
}

struct Inspected {
    inner: SpatioTemporal,
    /// The rows kept, when empty cells are dropped.
    keep: Option<Vec<usize>>,
}

/// A matrix seen through a subset of its rows.
struct Rows<'a> {
    inner: &'a mut dyn Matrix,
    keep: &'a [usize],
    info: MatrixInfo,
}

impl<'a> Rows<'a> {
    fn new(inner: &'a mut dyn Matrix, keep: &'a [usize]) -> Self {
        let mut info = inner.info().clone();
        info.rows = keep.len();
        Self { inner, keep, info }
    }
}

impl Matrix for Rows<'_> {
    fn info(&self) -> &MatrixInfo {
        &self.info
    }
    fn read_columns(&mut self, start: usize, count: usize) -> Result<Array2<f64>> {
        Ok(self
            .inner
            .read_columns(start, count)?
            .select(Axis(0), self.keep))
    }
}

impl CfGrid {
    pub fn defaults() -> serde_json::Map<String, serde_json::Value> {
        base::defaults(json!({
            "parameters": ["values"],
            "drop_empty_cells": false,
        }))
    }

    pub fn from_config(name: &str, config: &Config) -> Result<Self> {
        let drop_empty = match config.get("drop_empty_cells") {
            None => false,
            Some((serde_json::Value::Bool(b), _)) => *b,
            Some((_, origin)) => {
                return Err(Error::config(
                    origin,
                    "drop_empty_cells",
                    "must be true or false",
                ))
            }
        };
        Ok(Self {
            name: name.to_string(),
            title: config.string("title")?,
            units: config.value("units").map(|v| super::to_bson(&v)),
            gridres: match gridres_of(config)? {
                Bson::Null => None,
                b => Some(b),
            },
            step: config.seconds(&["step", "steps"])?,
            precision: config.unsigned("precision", 15)?,
            settled: None,
            drop_empty,
            extra: extra_keys(config),
            grid: None,
        })
    }

    fn grid(&self) -> &Inspected {
        self.grid
            .as_ref()
            .expect("CFGrid: the file is inspected before it is converted")
    }

    /// The metadata `steps` of a time axis (see the module's notes).
    fn steps_of(&self, times_ms: &[i64]) -> Vec<f64> {
        if let Some(s) = self.step {
            return vec![s];
        }
        let mut counts: Vec<(i64, usize)> = Vec::new();
        for w in times_ms.windows(2) {
            let d = w[1] - w[0];
            match counts.iter_mut().find(|(s, _)| *s == d) {
                Some((_, n)) => *n += 1,
                None => counts.push((d, 1)),
            }
        }
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        counts.into_iter().map(|(d, _)| d as f64 / 1000.0).collect()
    }

    /// The rows with a value at some step.
    fn cells_with_values(m: &mut dyn Matrix) -> Result<Vec<usize>> {
        let (rows, cols) = (m.info().rows, m.info().cols);
        let mut seen = vec![false; rows];
        let per_block = (SCAN_VALUES / rows.max(1)).max(1);
        let mut k = 2;
        while k < cols {
            let n = per_block.min(cols - k);
            let block = m.read_columns(k, n)?;
            for (r, row) in block.rows().into_iter().enumerate() {
                seen[r] |= row.iter().any(|x| x.is_finite());
            }
            k += n;
        }
        Ok((0..rows).filter(|&r| seen[r]).collect())
    }
}

/// The precision before it is settled (what unit tests that convert
/// without settling it get).
const UNSETTLED_PRECISION: u32 = 10;

/// Decimals that keep `digits` significant digits of `smallest` (the
/// smallest non-zero magnitude), and so of every larger value.
fn decimals_for(smallest: f64, digits: i32) -> u32 {
    // The decimal exponent, exactly, from the shortest digits.
    let e: i32 = format!("{smallest:e}")
        .split_once('e')
        .and_then(|(_, e)| e.parse().ok())
        .unwrap_or(0);
    u32::try_from((digits - 1 - e).clamp(0, MAX_DECIMALS)).unwrap_or(0)
}

/// The most decimals a settled precision has: enough for 7 significant
/// digits of the smallest float32 (1.4e-45).
const MAX_DECIMALS: i32 = 52;

impl CfGrid {
    /// The precision that keeps what the file holds: a float32 variable's
    /// 7 significant digits (15 for float64) of its smallest non-zero
    /// magnitude, and so of every value; a packed variable's packing step
    /// (decimals down to its `scale_factor`); an integer variable's units.
    fn precision_of_file(&self, m: &mut dyn Matrix) -> Result<u32> {
        let facts = m.grid_facts().cloned();
        if let Some(step) = facts.as_ref().and_then(|f| f.packing_step) {
            let d = (-step.abs().log10() - 1e-9).ceil();
            return Ok(if d.is_finite() && d > 0.0 {
                d as u32
            } else {
                0
            });
        }
        let digits = match m.info().class {
            "single" => 7,
            "double" => 15,
            _ => return Ok(0),
        };
        let (rows, cols) = (m.info().rows, m.info().cols);
        let per_block = (SCAN_VALUES / rows.max(1)).max(1);
        let mut smallest = f64::INFINITY;
        let mut k = 2;
        while k < cols {
            let n = per_block.min(cols - k);
            smallest = smallest.min(m.smallest_magnitude(k, n)?);
            k += n;
        }
        Ok(if smallest.is_finite() {
            decimals_for(smallest, digits)
        } else {
            0
        })
    }
}

impl Model for CfGrid {
    fn precision(&self) -> u32 {
        self.precision
            .or(self.settled)
            .unwrap_or(UNSETTLED_PRECISION)
    }

    fn settle_precision(&mut self, stored: Option<u32>, m: &mut dyn Matrix) -> Result<bool> {
        if self.precision.is_some() {
            return Ok(false);
        }
        let (p, adopted) = match stored {
            Some(p) => (p, true),
            None => (self.precision_of_file(m)?, false),
        };
        self.settled = Some(p);
        if let Some(g) = &mut self.grid {
            g.inner.set_precision(p);
        }
        Ok(adopted)
    }

    fn values_unit(&self) -> Option<(Option<String>, usize)> {
        self.grid().inner.values_unit()
    }

    fn convert_units(&mut self, c: &crate::units::Conversion) {
        if let Some(g) = &mut self.grid {
            g.inner.convert_units(c);
        }
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn grid_columns(&self) -> Option<(usize, usize, usize)> {
        Some((2, 0, 1))
    }

    fn coarsened(&mut self, a: &super::coarsen::Applied) {
        if let Some(g) = &mut self.grid {
            g.inner.coarsened(a);
        }
    }

    fn inspect(&mut self, m: &mut dyn Matrix) -> Result<()> {
        let info = m.info().clone();
        let facts = m.grid_facts().cloned().ok_or_else(|| {
            Error::format(
                &info.path,
                "CFGrid reads NetCDF files with CF coordinates; this file is MATLAB or plain HDF5: load it with SpatioTemporalMatrix",
            )
        })?;
        let degrees = |d: Option<f64>| d.map_or(Bson::Null, |d| Bson::Double(round_to(d, 5)));
        let gridres = self.gridres.clone().unwrap_or_else(|| {
            bson::doc! { "units": "degrees", "x": degrees(facts.dx), "y": degrees(facts.dy) }.into()
        });
        // The layout of a MATLAB-loaded grid's units: the coordinates' and
        // the values', so a reader cannot tell where the dataset came from.
        let units = match self.units.clone() {
            Some(Bson::String(values)) => {
                bson::doc! { "x": "degrees", "y": "degrees", fields::VALUES: values }.into()
            }
            Some(given) => given,
            None => {
                let mut u = bson::doc! { "x": "degrees", "y": "degrees" };
                if let Some(values) = &facts.units {
                    u.insert(fields::VALUES, values.clone());
                }
                u.into()
            }
        };
        let title = self
            .title
            .clone()
            .or_else(|| facts.title.clone())
            .unwrap_or_else(|| self.name.clone());
        let steps = self.steps_of(&facts.times_ms);
        let inner = SpatioTemporal::with_times(GridParts {
            common: Common {
                name: self.name.clone(),
                title,
                units,
                precision: self.precision(),
                gridres: Some(gridres),
                extra: self.extra.clone(),
            },
            times_ms: facts.times_ms,
            steps,
        });
        let keep = if self.drop_empty {
            let keep = Self::cells_with_values(m)?;
            if keep.is_empty() {
                return Err(Error::variable(
                    &info.path,
                    &info.var_name,
                    "has no value at any cell and step (every value is missing); nothing to load",
                ));
            }
            Some(keep)
        } else {
            None
        };
        self.grid = Some(Inspected { inner, keep });
        Ok(())
    }

    fn check(&self, info: &MatrixInfo) -> Result<()> {
        let g = self.grid();
        let mut info = info.clone();
        if let Some(k) = &g.keep {
            info.rows = k.len();
        }
        g.inner.check(&info)
    }

    fn coordinates(&self, m: &mut dyn Matrix) -> Result<Vec<[f64; 2]>> {
        let g = self.grid();
        match &g.keep {
            Some(keep) => g.inner.coordinates(&mut Rows::new(m, keep)),
            None => g.inner.coordinates(m),
        }
    }

    fn convert(&self, m: &mut dyn Matrix, out: &mut dyn FnMut(Batch) -> Result<()>) -> Result<()> {
        let g = self.grid();
        match &g.keep {
            Some(keep) => g.inner.convert(&mut Rows::new(m, keep), out),
            None => g.inner.convert(m, out),
        }
    }

    fn expected_documents(&self, info: &MatrixInfo) -> usize {
        info.cols.saturating_sub(2)
    }

    fn summarize(&self, doc: &Document) -> Summary {
        self.grid().inner.summarize(doc)
    }

    fn metadata(&self, coords: &[[f64; 2]], summary: &Summary) -> Document {
        self.grid().inner.metadata(coords, summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_overrides;
    use crate::model::testing::mem;
    use crate::source::GridFacts;

    struct WithFacts(crate::model::testing::Mem, GridFacts);
    impl Matrix for WithFacts {
        fn info(&self) -> &MatrixInfo {
            self.0.info()
        }
        fn read_columns(&mut self, start: usize, count: usize) -> Result<Array2<f64>> {
            self.0.read_columns(start, count)
        }
        fn grid_facts(&self) -> Option<&GridFacts> {
            Some(&self.1)
        }
    }

    fn model(o: &str) -> CfGrid {
        let mut c = Config::new();
        c.push("defaults", CfGrid::defaults());
        if !o.is_empty() {
            c.push("-o", parse_overrides(o).unwrap());
        }
        CfGrid::from_config("cf", &c).unwrap()
    }

    fn matrix(times_ms: Vec<i64>) -> WithFacts {
        let nan = f64::NAN;
        let data = ndarray::array![
            [-0.5, -0.5, 1.25, nan, 3.0],
            [0.5, -0.5, nan, nan, nan],
            [-0.5, 0.5, 2.0, 2.5, nan],
        ];
        WithFacts(
            mem(data),
            GridFacts {
                times_ms,
                title: Some("From the file".into()),
                units: Some("mol m-2 s-1".into()),
                dx: Some(1.0),
                dy: Some(1.0),
                packing_step: None,
            },
        )
    }

    fn docs(m: &CfGrid, src: &mut dyn Matrix) -> Vec<Document> {
        let mut out = vec![];
        m.convert(src, &mut |b| {
            out.extend(b.raw_documents().iter().map(|d| d.to_document().unwrap()));
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn times_units_title_and_steps_come_from_the_file() {
        let hour = 3_600_000;
        let mut src = matrix(vec![0, 3 * hour, 9 * hour]);
        let mut m = model("");
        m.inspect(&mut src).unwrap();
        m.check(src.info()).unwrap();
        let d = docs(&m, &mut src);
        let ids: Vec<i64> = d
            .iter()
            .map(|d| d.get_datetime("_id").unwrap().timestamp_millis())
            .collect();
        assert_eq!(ids, [0, 3 * hour, 9 * hour]);
        let coords = m.coordinates(&mut src).unwrap();
        assert_eq!(coords, [[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5]]);
        let summary = d
            .iter()
            .map(|x| m.summarize(x))
            .fold(Summary::default(), Summary::merge);
        let md = m.metadata(&coords, &summary);
        assert_eq!(md.get_str("title").unwrap(), "From the file");
        let units = md.get_document("units").unwrap();
        assert_eq!(units.get_str("values").unwrap(), "mol m-2 s-1");
        assert_eq!(units.get_str("x").unwrap(), "degrees");
        // Spacings 3 h and 6 h, once each: the smaller first.
        assert_eq!(
            md.get_array("steps").unwrap(),
            &vec![Bson::Int32(10800), Bson::Int32(21600)]
        );
        let gr = md.get_document("gridres").unwrap();
        assert_eq!(gr.get_f64("x").unwrap(), 1.0);
    }

    #[test]
    fn config_wins_and_empty_cells_can_be_dropped() {
        let mut src = matrix(vec![0, 1000, 2000]);
        let mut m = model("title=Mine;units=kg;drop_empty_cells=true;step=1");
        m.inspect(&mut src).unwrap();
        let coords = m.coordinates(&mut src).unwrap();
        assert_eq!(
            coords,
            [[-0.5, -0.5], [-0.5, 0.5]],
            "the cell without values is left out"
        );
        let d = docs(&m, &mut src);
        assert_eq!(
            d[0].get_array("values").unwrap(),
            &vec![Bson::Double(1.25), Bson::Double(2.0)]
        );
        let md = m.metadata(&coords, &Summary::default());
        assert_eq!(md.get_str("title").unwrap(), "Mine");
        let units = md.get_document("units").unwrap();
        assert_eq!(units.get_str("values").unwrap(), "kg");
        assert_eq!(md.get_array("steps").unwrap(), &vec![Bson::Int32(1)]);
    }

    #[test]
    fn a_file_without_cf_facts_is_refused() {
        let mut m = model("");
        let mut src = mem(ndarray::array![[1.0, 2.0, 3.0]]);
        let e = m.inspect(&mut src).unwrap_err().to_string();
        assert!(e.contains("SpatioTemporalMatrix"), "{e}");
        let e = CfGrid::from_config("x", &{
            let mut c = Config::new();
            c.push("-o", parse_overrides("drop_empty_cells=3").unwrap());
            c
        })
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("drop_empty_cells"), "{e}");
    }
}
