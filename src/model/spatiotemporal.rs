//! `SpatioTemporalMatrix` (mediator Grid4D): a grid that varies in time.
//!
//! The matrix is N × (2 + T): the coordinate columns named by `columns`
//! (`x`, `y`), then one column per time step. Each step becomes one document
//! `{_id: <date of the step>, values: [N numbers]}`.

use std::sync::mpsc::sync_channel;

use bson::{doc, Bson, Document};
use chrono::{DateTime, Utc};
use ndarray::{Array2, ArrayView1};
use rayon::prelude::*;
use serde_json::json;

use super::base::{self, Common};
use super::{
    fields, read_coordinates, round_to, seconds_bson, units_of, value_of_units, Batch, Loss, Mark,
    Model, ModelSpec, Stats, Summary,
};
use crate::config::Config;
use crate::doc::packed::{PackedDoc, StepWriter};
use crate::error::{Error, Result};
use crate::source::{Matrix, MatrixInfo};
use crate::time::{date_after, iso_date};

/// Values read per block: 2 Mi doubles (16 MiB) at most, whatever the grid.
/// A block is held three times over at most (being read, being converted,
/// and as ~32 MiB of encoded documents being written), so a load stays near
/// 100 MiB however many steps the file has; larger blocks gain nothing
/// measurable.
const BLOCK_VALUES: usize = 2 << 20;

/// SpatioTemporalMatrix in the table of models.
pub(crate) const SPEC: ModelSpec = ModelSpec {
    name: "SpatioTemporalMatrix",
    mediator: "Grid4D",
    steps_in_columns: true,
    writes_as: None,
    parameters: &[fields::VALUES],
    keys: &["columns", "step", "steps", super::coarsen::KEY],
    mark: Some(Mark::List(fields::STEPS)),
    shape: "N x (2+T): x, y, then T time steps",
    required: "timestamp (time of the first step)",
    example_config: include_str!("../../configs/SpatioTemporalMatrix.json"),
    defaults: SpatioTemporal::defaults,
    build: |name, config| Ok(Box::new(SpatioTemporal::from_config(name, config)?)),
};

/// What a grid with its own times is built from (see [`SpatioTemporal::with_times`]).
pub(crate) struct GridParts {
    pub common: Common,
    pub times_ms: Vec<i64>,
    pub steps: Vec<f64>,
}

pub struct SpatioTemporal {
    common: Common,
    start: DateTime<Utc>,
    step_seconds: f64,
    /// Where `step` was given, for the error that says it runs out of years.
    step_origin: String,
    /// The time of each step (ms since the epoch) when the file gives them
    /// (CFGrid); otherwise step k is at `start + k * step_seconds`.
    times: Option<Vec<i64>>,
    /// The metadata's `steps`.
    steps: Vec<f64>,
    columns: Vec<String>,
    x_col: usize,
    y_col: usize,
    block_values: usize,
}

impl SpatioTemporal {
    pub fn defaults() -> serde_json::Map<String, serde_json::Value> {
        base::defaults(json!({
            "columns": ["x", "y"],
            "gridres": {"units": "degrees", "x": 1.0, "y": 1.0},
            "header": ["lng", "lat"],
            "parameters": ["values"],
            "precision": 2,
            "steps": [10800],
            "units": {"x": "degrees", "y": "degrees"},
        }))
    }

    pub fn from_config(name: &str, config: &Config) -> Result<Self> {
        let columns = config.string_list("columns")?.unwrap_or_default();
        let find = |c: &str| {
            columns.iter().position(|k| k == c).ok_or_else(|| {
                Error::config(
                    config.origin(&["columns"]),
                    "columns",
                    format!("must name an '{c}' column, e.g. [\"x\", \"y\"]"),
                )
            })
        };
        let (x_col, y_col) = (find("x")?, find("y")?);
        let step_seconds = config.seconds(&["step", "steps"])?.unwrap_or(10800.0);
        Ok(Self {
            start: config.require_timestamp()?,
            common: Common::from_config(name, config, 2, true)?,
            step_seconds,
            step_origin: config.origin(&["step", "steps"]),
            times: None,
            steps: vec![step_seconds],
            x_col,
            y_col,
            columns,
            block_values: BLOCK_VALUES,
        })
    }

    /// A grid whose every step has its own time, and whose matrix columns
    /// are `x`, `y`, then the steps (the NetCDF source's layout).
    pub(crate) fn with_times(parts: GridParts) -> Self {
        Self {
            common: parts.common,
            start: DateTime::<Utc>::UNIX_EPOCH,
            step_seconds: parts.steps.first().copied().unwrap_or(0.0),
            step_origin: "the file's time axis".into(),
            times: Some(parts.times_ms),
            steps: parts.steps,
            columns: vec!["x".into(), "y".into()],
            x_col: 0,
            y_col: 1,
            block_values: BLOCK_VALUES,
        }
    }

    /// Round values to `precision` decimals (CFGrid's, settled from the file).
    pub(crate) fn set_precision(&mut self, precision: u32) {
        self.common.precision = precision;
    }

    /// Read at most this many values per block (tests use small blocks).
    pub fn with_block_values(mut self, n: usize) -> Self {
        self.block_values = n.max(1);
        self
    }

    /// The date of step `k`; [`Model::check`] has made sure that every step
    /// of the file has one in years 1 to 9999.
    fn date_of_step(&self, k: usize) -> bson::DateTime {
        if let Some(t) = &self.times {
            return bson::DateTime::from_millis(t[k]);
        }
        date_after(self.start, self.step_seconds * k as f64)
            .expect("step dates checked against the file's number of steps")
    }

    /// Steps `k..k + block.ncols()` as documents and their summary; with
    /// `sketch`, their statistics counted in a sketch from the start (see
    /// [`Stats::approximate`]).
    fn convert_block(&self, k: usize, block: &Array2<f64>, sketch: bool) -> Batch {
        let parts: Vec<(PackedDoc, Summary, Loss)> = (0..block.ncols())
            .into_par_iter()
            .map(|j| self.step_document(self.date_of_step(k + j), block.column(j), sketch))
            .collect();
        let mut batch = Batch::default();
        for (doc, summary, loss) in parts {
            batch.packed.push(doc);
            batch.summary = std::mem::take(&mut batch.summary).merge(summary);
            batch.loss.merge(loss);
        }
        batch
    }

    /// `{_id: date, values: [N numbers]}`, values rounded to the precision
    /// (NaN and ±Inf kept as such), with the same summary [`Model::summarize`]
    /// gives for the stored document.
    fn step_document(
        &self,
        id: bson::DateTime,
        column: ArrayView1<f64>,
        sketch: bool,
    ) -> (PackedDoc, Summary, Loss) {
        let precision = self.common.precision;
        let mut loss = Loss::default();
        let mut stats = if sketch {
            Stats::approximate(precision)
        } else {
            Stats::new(precision)
        };
        // The keys' buffer of this thread's last step (megabytes for a
        // global grid, faulted in afresh for every step otherwise).
        let mut keys = STEP_KEYS.with(|k| k.take());
        keys.clear();
        keys.reserve(column.len());
        // Written straight in the compact form: the embedded store keeps
        // it as it is, MongoDB gets the BSON it stands for.
        let mut w = StepWriter::new(column.len(), precision);
        // One pass over the step computes each value's integer (where the
        // fast rounding settles it: nearly everywhere), what rounding
        // lost and the integers' bounds; then each run of integers between
        // the values it leaves (NaN, the infinities, exact ties) moves
        // into the compact form at once.
        let mut left = Vec::new();
        keys.resize(column.len(), 0);
        // The least and greatest integer (none yet: `lo > hi`).
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        let mut integer = |i: usize, x: f64, k: &mut i64| match units_of(x, precision) {
            Some(units) => {
                *k = units;
                loss.count_zeroed(x, units == 0);
                lo = lo.min(units);
                hi = hi.max(units);
            }
            None => left.push(i),
        };
        match column.as_slice() {
            // A block's columns are contiguous: a plain loop over the slice.
            Some(values) => {
                for (i, (&x, k)) in values.iter().zip(keys.iter_mut()).enumerate() {
                    integer(i, x, k);
                }
            }
            None => {
                for (i, (&x, k)) in column.iter().zip(keys.iter_mut()).enumerate() {
                    integer(i, x, k);
                }
            }
        }
        if lo > hi || Stats::units_are_keys(lo, hi) {
            let n = keys.len();
            let mut keyless = Vec::new();
            let mut from = 0;
            for &at in left.iter().chain([&n]) {
                let run = &keys[from..at];
                // The step's bounds where it is one run, else the run's own.
                let (run_lo, run_hi) = if left.is_empty() {
                    (lo, hi)
                } else {
                    bounds(run)
                };
                w.push_all_units(run, run_lo, run_hi);
                if at < n {
                    // As the loop below takes a value the fast path leaves.
                    let x = column[at];
                    if !x.is_finite() {
                        w.push(Some(x), None);
                        keyless.push(at);
                    } else {
                        let v = round_to(x, precision);
                        loss.count(x, v);
                        let key = stats.key(v);
                        match key {
                            Some(k) => {
                                keys[at] = k;
                                lo = lo.min(k);
                                hi = hi.max(k);
                            }
                            None => {
                                stats.add(v);
                                keyless.push(at);
                            }
                        }
                        w.push(Some(v), key);
                    }
                }
                from = at + 1;
            }
            if !keyless.is_empty() {
                let mut i = 0;
                let mut next = keyless.iter().peekable();
                keys.retain(|_| {
                    let skip = next.next_if_eq(&&i).is_some();
                    i += 1;
                    !skip
                });
            }
            // The keys' bounds: the integers', and those of the values left.
            return self.finish_step(id, w, stats, keys, Some((lo, hi)), loss);
        }
        keys.clear();
        self.step_by_value(id, column, w, stats, keys)
    }

    /// [`SpatioTemporal::step_document`] value by value: for a step whose
    /// integers are not all statistics keys (values from 2^50 units on),
    /// and the reference its passes are tested against.
    fn step_by_value(
        &self,
        id: bson::DateTime,
        column: ArrayView1<f64>,
        mut w: StepWriter,
        mut stats: Stats,
        mut keys: Vec<i64>,
    ) -> (PackedDoc, Summary, Loss) {
        let precision = self.common.precision;
        let mut loss = Loss::default();
        for &x in column {
            // One integer per value: the stored value, its statistics key
            // and its compact form all come from it.
            if let Some(k) = units_of(x, precision) {
                loss.count_zeroed(x, k == 0);
                match stats.key_of_units(k) {
                    Some(key) => keys.push(key),
                    None => stats.add(value_of_units(k, precision)),
                }
                w.push_units(k);
                continue;
            }
            if !x.is_finite() {
                // Stored as the double NaN or ±Infinity, left out of the statistics.
                w.push(Some(x), None);
                continue;
            }
            let v = round_to(x, precision);
            loss.count(x, v);
            let key = stats.key(v);
            match key {
                Some(k) => keys.push(k),
                None => stats.add(v),
            }
            w.push(Some(v), key);
        }
        self.finish_step(id, w, stats, keys, None, loss)
    }

    /// The step's document and summary, from its writer and the keys of
    /// its values (with their least and greatest where known).
    fn finish_step(
        &self,
        id: bson::DateTime,
        w: StepWriter,
        mut stats: Stats,
        keys: Vec<i64>,
        bounds: Option<(i64, i64)>,
        loss: Loss,
    ) -> (PackedDoc, Summary, Loss) {
        match bounds {
            Some((lo, hi)) => stats.add_keys_within(&keys, lo, hi),
            None => stats.add_keys(&keys),
        }
        STEP_KEYS.with(|k| *k.borrow_mut() = keys);
        let doc = w.finish(id.timestamp_millis(), fields::VALUES);
        let summary = Summary::of_document(
            Some(id.timestamp_millis()),
            None,
            vec![(fields::VALUES.into(), stats)],
        );
        (doc, summary, loss)
    }
}

/// The least and the greatest of `keys` (`(i64::MAX, i64::MIN)` for none).
fn bounds(keys: &[i64]) -> (i64, i64) {
    keys.iter()
        .fold((i64::MAX, i64::MIN), |(lo, hi), &k| (lo.min(k), hi.max(k)))
}

thread_local! {
    /// The statistics keys of the step a converter thread is on, reused.
    static STEP_KEYS: std::cell::RefCell<Vec<i64>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Model for SpatioTemporal {
    fn precision(&self) -> u32 {
        self.common.precision
    }

    fn values_unit(&self) -> Option<(Option<String>, usize)> {
        Some((self.common.values_unit(), self.columns.len()))
    }

    fn convert_units(&mut self, c: &crate::units::Conversion) {
        self.common.convert_units(c);
    }

    fn grid_columns(&self) -> Option<(usize, usize, usize)> {
        Some((self.columns.len(), self.x_col, self.y_col))
    }

    fn coarsened(&mut self, a: &super::coarsen::Applied) {
        let given = self.common.gridres.take();
        self.common
            .extra
            .insert(super::coarsen::METADATA_KEY, a.document(given.as_ref()));
        self.common.gridres = Some(super::coarsen::coarse_gridres(given.as_ref(), a));
    }

    fn name(&self) -> &str {
        &self.common.name
    }

    fn check(&self, info: &MatrixInfo) -> Result<()> {
        if info.cols <= self.columns.len() {
            return Err(Error::variable(
                &info.path,
                &info.var_name,
                format!(
                    "has {} columns; SpatioTemporalMatrix needs the {} coordinate columns ({}) and at least one time step",
                    info.cols,
                    self.columns.len(),
                    self.columns.join(", ")
                ),
            ));
        }
        let last = info.cols - self.columns.len() - 1;
        // Times given by the file (CFGrid) were checked by its source.
        if self.times.is_none() && date_after(self.start, self.step_seconds * last as f64).is_none()
        {
            return Err(Error::config(
                &self.step_origin,
                "step",
                format!(
                    "{} s puts the last of the {} steps of '{}' after the year 9999, the last a stored date can have",
                    if self.step_seconds < 1e15 {
                        self.step_seconds.to_string()
                    } else {
                        format!("{:e}", self.step_seconds)
                    },
                    last + 1,
                    crate::error::shown(&info.path)
                ),
            ));
        }
        // {_id: date, values: [N doubles]}.
        super::check_document_sizes(info, &self.common.name, super::coarsen::step_bytes)
    }

    fn coordinates(&self, m: &mut dyn Matrix) -> Result<Vec<[f64; 2]>> {
        read_coordinates(m, self.columns.len(), self.x_col, self.y_col)
    }

    fn convert(&self, m: &mut dyn Matrix, out: &mut dyn FnMut(Batch) -> Result<()>) -> Result<()> {
        let first = self.columns.len();
        let (rows, cols) = (m.info().rows, m.info().cols);
        let steps = cols - first;
        let per_block = (self.block_values / rows.max(1)).clamp(1, steps);
        // Three stages overlap: a reader thread reads block k + 2 while a
        // converter thread turns block k + 1 into BSON (in parallel with
        // rayon) and this thread hands block k to `out`. The channels hold
        // nothing (rendezvous), so at most one block is in each stage. When
        // a stage fails or `out` returns an error, dropping its end of the
        // channel stops the stages before it.
        std::thread::scope(|scope| {
            let (blocks_tx, blocks_rx) = sync_channel::<Result<(usize, Array2<f64>)>>(0);
            let (batches_tx, batches_rx) = sync_channel::<Result<Batch>>(0);
            scope.spawn(move || {
                let mut k = 0;
                while k < steps {
                    let n = per_block.min(steps - k);
                    let block = m.read_columns(first + k, n).map(|b| (k, b));
                    let failed = block.is_err();
                    if blocks_tx.send(block).is_err() || failed {
                        return;
                    }
                    k += n;
                }
            });
            scope.spawn(move || {
                // Once a block's statistics are past the table's limit
                // (values with many decimals, nearly all distinct), so are
                // the load's: the next blocks count in a sketch at once
                // instead of first filling a table per step.
                let mut sketch = false;
                for block in blocks_rx {
                    let batch = block.map(|(k, b)| {
                        let batch = self.convert_block(k, &b, sketch);
                        crate::source::blocks::recycle(b);
                        sketch |= batch.summary.stats.iter().any(|(_, s)| s.is_approximate());
                        batch
                    });
                    let failed = batch.is_err();
                    if batches_tx.send(batch).is_err() || failed {
                        return;
                    }
                }
            });
            for batch in batches_rx {
                out(batch?)?;
            }
            Ok(())
        })
    }

    fn expected_documents(&self, info: &MatrixInfo) -> usize {
        info.cols.saturating_sub(self.columns.len())
    }

    fn summarize(&self, doc: &Document) -> Summary {
        self.common.summarize_arrays(doc, &[fields::VALUES], None)
    }

    fn metadata(&self, coords: &[[f64; 2]], summary: &Summary) -> Document {
        let dates: Vec<Bson> = match (summary.times.keys().next(), summary.times.keys().last()) {
            (Some(&first), Some(&last)) => vec![iso_date(first).into(), iso_date(last).into()],
            _ => vec![],
        };
        let steps: Vec<Bson> = self.steps.iter().map(|&s| seconds_bson(s)).collect();
        let own = doc! { fields::STEPS: steps, fields::DATES: dates };
        self.common.metadata(own, coords, summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_overrides;
    use crate::model::testing::mem;
    use ndarray::Array2;

    fn model(o: &str) -> SpatioTemporal {
        let mut c = Config::new();
        c.push("defaults", SpatioTemporal::defaults());
        c.push("-o", parse_overrides(o).unwrap());
        SpatioTemporal::from_config("t", &c).unwrap()
    }

    fn grid() -> Array2<f64> {
        ndarray::array![
            [-100.5, 40.5, 0.084, 1.0, f64::NAN],
            [-99.5, 40.5, -0.125, 2.0, 3.0],
            [-98.5, 41.5, 7.0, f64::INFINITY, 4.0],
        ]
    }

    /// The step's passes give the document, summary and loss that taking
    /// its values one by one gives: integers of 16, 32 and 50 bits, values
    /// past the statistics keys, NaN and the infinities at the ends and
    /// in runs, exact ties the fast rounding leaves, zeros and values
    /// rounded to zero, at several precisions.
    #[test]
    fn a_step_in_passes_equals_a_step_value_by_value() {
        let base: Vec<f64> = (0..3000)
            .map(|i| ((i * 7919 % 10007) as f64 - 5000.0) * 0.000_37)
            .collect();
        let mut columns: Vec<Vec<f64>> = vec![base.clone()];
        let mut with = base.clone();
        for at in [0, 1, 2, 500, 501, 2999] {
            with[at] = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY][at % 3];
        }
        columns.push(with);
        let mut band = base.clone();
        band[..700].fill(f64::NAN);
        columns.push(band);
        let mut ties = base.clone();
        ties[10] = 0.125; // a tie at 2 places
        ties[11] = -2.5e-3;
        ties[12] = 1e-9;
        ties[13] = 0.0;
        ties[14] = -0.0;
        columns.push(ties);
        let mut large = base.clone();
        large[20] = 3e13; // past 2^50 units at 2 places
        columns.push(large);
        columns.push(base.iter().map(|x| x * 1e4).collect());
        columns.push(vec![f64::NAN; 5]);
        columns.push(Vec::new());
        for precision in [0u32, 2, 5, 10, 18] {
            let mut m = model("timestamp=2004-06-30");
            // As CFGrid settles it: past the config's 15 places too.
            m.set_precision(precision);
            for (c, column) in columns.iter().enumerate() {
                for sketch in [false, true] {
                    let id = bson::DateTime::from_millis(1_000 * c as i64);
                    let column = ndarray::ArrayView1::from(&column[..]);
                    let passes = m.step_document(id, column, sketch);
                    let stats = if sketch {
                        Stats::approximate(precision)
                    } else {
                        Stats::new(precision)
                    };
                    let w = StepWriter::new(column.len(), precision);
                    let by_value = m.step_by_value(id, column, w, stats, Vec::new());
                    let what = format!("column {c} at {precision} places (sketch {sketch})");
                    assert_eq!(passes.0.packed, by_value.0.packed, "{what}");
                    assert_eq!(passes.1, by_value.1, "{what}");
                    assert_eq!(passes.2, by_value.2, "{what}");
                }
            }
        }
    }

    fn batches(m: &SpatioTemporal, data: Array2<f64>) -> Vec<Batch> {
        let mut src = mem(data);
        let mut out = vec![];
        m.convert(&mut src, &mut |b| {
            out.push(b);
            Ok(())
        })
        .unwrap();
        out
    }

    fn all_docs(m: &SpatioTemporal, data: Array2<f64>) -> Vec<Document> {
        batches(m, data)
            .iter()
            .flat_map(|b| {
                b.raw_documents()
                    .into_iter()
                    .map(|d| d.to_document().unwrap())
            })
            .collect()
    }

    #[test]
    fn one_document_per_step_with_rounded_values_nan_and_infinity() {
        let m = model("timestamp=2004-06-30T00:00:00");
        let docs = all_docs(&m, grid());
        assert_eq!(docs.len(), 3);
        assert_eq!(
            docs[1]
                .get_datetime("_id")
                .unwrap()
                .to_chrono()
                .to_rfc3339(),
            "2004-06-30T03:00:00+00:00"
        );
        let v0 = docs[0].get_array("values").unwrap();
        // -0.125 is an exact tie: '%.2f' % -0.125 is '-0.12' (halves to even).
        assert_eq!(
            v0,
            &vec![Bson::Double(0.08), Bson::Double(-0.12), Bson::Double(7.0)]
        );
        // Stored as doubles, as the old tool stored NaN; never null.
        assert_eq!(
            docs[1].get_array("values").unwrap()[2],
            Bson::Double(f64::INFINITY)
        );
        let nan = &docs[2].get_array("values").unwrap()[0];
        assert_eq!(nan.as_f64().map(f64::to_bits), Some(f64::NAN.to_bits()));
    }

    #[test]
    fn small_blocks_give_the_same_documents_as_one_block() {
        let m = model("timestamp=2004-06-30");
        let whole = all_docs(&m, grid());
        let m = model("timestamp=2004-06-30").with_block_values(1);
        // Compared as bytes: NaN is not equal to itself.
        let bytes = |d: Vec<Document>| -> Vec<Vec<u8>> {
            d.iter().map(|d| bson::to_vec(d).unwrap()).collect()
        };
        assert_eq!(bytes(all_docs(&m, grid())), bytes(whole));
    }

    #[test]
    fn documents_are_the_bson_of_the_old_builder_and_summaries_match() {
        let m = model("timestamp=2004-06-30").with_block_values(4);
        let data = grid();
        let mut k = 0;
        for b in batches(&m, data.clone()) {
            let mut per_doc = Summary::default();
            for raw in &b.raw_documents() {
                let values: Vec<Bson> = data
                    .column(2 + k)
                    .iter()
                    .map(|&x| super::super::value_bson(x, 2))
                    .collect();
                let want = doc! { "_id": m.date_of_step(k), "values": values };
                assert_eq!(raw.as_bytes(), bson::to_vec(&want).unwrap(), "step {k}");
                per_doc = per_doc.merge(m.summarize(&raw.to_document().unwrap()));
                k += 1;
            }
            assert_eq!(b.summary.times, per_doc.times);
            assert_eq!(
                b.summary.stats_document(),
                per_doc.stats_document(),
                "batch statistics equal those of its stored documents"
            );
        }
        assert_eq!(k, 3);
    }

    #[test]
    fn a_read_error_stops_the_conversion_with_that_error() {
        struct Failing(MatrixInfo);
        impl Matrix for Failing {
            fn info(&self) -> &MatrixInfo {
                &self.0
            }
            fn read_columns(&mut self, start: usize, count: usize) -> Result<Array2<f64>> {
                if start >= 3 {
                    return Err(Error::variable("f.h5", "m", "columns cannot be read"));
                }
                Ok(Array2::zeros((2, count)))
            }
        }
        let m = model("timestamp=2004-06-30").with_block_values(2);
        let info = mem(Array2::zeros((2, 6))).0;
        let mut written = 0;
        let e = m
            .convert(&mut Failing(info), &mut |b| {
                written += b.len();
                Ok(())
            })
            .unwrap_err();
        assert!(e.to_string().contains("cannot be read"), "{e}");
        assert_eq!(written, 1, "only the step before the failing block");
        // An error from the writer stops the reader too.
        let m = model("timestamp=2004-06-30").with_block_values(1);
        let e = m
            .convert(&mut mem(grid()), &mut |_| {
                Err(Error::Usage("disk full".into()))
            })
            .unwrap_err();
        assert_eq!(e.to_string(), "disk full");
    }

    #[test]
    fn metadata_covers_the_collection() {
        let m = model("timestamp=2004-06-30;step=3600;title=Test");
        let mut src = mem(grid());
        let coords = m.coordinates(&mut src).unwrap();
        let summary = all_docs(&m, grid())
            .iter()
            .map(|d| m.summarize(d))
            .fold(Summary::default(), Summary::merge);
        let md = m.metadata(&coords, &summary);
        assert_eq!(md.get_str("title").unwrap(), "Test");
        assert_eq!(md.get_array("steps").unwrap(), &vec![Bson::Int32(3600)]);
        assert_eq!(
            md.get_array("dates").unwrap(),
            &vec![
                Bson::from("2004-06-30T00:00:00"),
                Bson::from("2004-06-30T02:00:00")
            ]
        );
        assert_eq!(
            md.get_array("bbox").unwrap(),
            &vec![
                Bson::Double(-100.5),
                Bson::Double(40.5),
                Bson::Double(-98.5),
                Bson::Double(41.5)
            ]
        );
        let stats = md
            .get_document("stats")
            .unwrap()
            .get_document("values")
            .unwrap();
        // Stored values: 0.08 -0.12 7 1 2 3 4 (NaN and Inf left out).
        assert_eq!(stats.get_f64("min").unwrap(), -0.12);
        assert_eq!(stats.get_f64("max").unwrap(), 7.0);
        assert_eq!(stats.get_f64("median").unwrap(), 2.0);
    }

    #[test]
    fn missing_or_impossible_timestamp_is_a_config_error() {
        let mut c = Config::new();
        c.push("defaults", SpatioTemporal::defaults());
        let e = SpatioTemporal::from_config("t", &c).err().unwrap();
        assert!(e.to_string().contains("'timestamp' is missing"), "{e}");
        c.push("-o", parse_overrides("timestamp=2004-13-45").unwrap());
        let e = SpatioTemporal::from_config("t", &c).err().unwrap();
        assert!(
            e.to_string().starts_with("-o: config key 'timestamp'"),
            "{e}"
        );
    }

    #[test]
    fn too_few_columns_are_refused() {
        let m = model("timestamp=2004-06-30");
        let src = mem(ndarray::array![[1.0, 2.0], [3.0, 4.0]]);
        assert!(m.check(src.info()).is_err());
    }
}
