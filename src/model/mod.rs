//! Models: turn a matrix and its config into documents.
//!
//! A model is pure: it reads blocks from a [`Matrix`] and hands batches of
//! BSON documents to its caller, and it builds the `coord_index` and
//! `metadata` entries from what the collection holds. It does no I/O of its
//! own, so it is tested with small in-memory matrices.

mod approx;
mod base;
mod cfgrid;
pub mod coarsen;
mod kind;
mod kriged;
mod spatiotemporal;
mod stats;
mod xco2;

use std::collections::BTreeMap;

use bson::{doc, Bson, Document, RawDocumentBuf};
use rayon::prelude::*;

use crate::config::Config;
use crate::doc::{self, fields};
use crate::error::{Error, Result};
use crate::source::{Matrix, MatrixInfo};

pub use cfgrid::CfGrid;
pub use kind::{is_known_key, known_keys, models_table, Mark, ModelKind, ModelSpec};
pub use kriged::Kriged;
pub use spatiotemporal::SpatioTemporal;
pub use stats::{Stats, MEDIAN_RELATIVE_ERROR, TABLE_LIMIT};
pub use xco2::Xco2;

/// What the documents of a collection add up to: the times they cover and
/// the statistics of each parameter. Built per document and merged, so it is
/// the same whether it comes from a fresh conversion or a rescan of the store;
/// and a document's summary can be taken out again ([`Summary::subtract`]),
/// so the stored summary of a dataset follows a load that replaces documents.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Time (ms since the epoch) → span in seconds, where the model has spans.
    pub times: BTreeMap<i64, Option<f64>>,
    /// Time → how many documents have it (point data has many per time).
    pub time_documents: BTreeMap<i64, u64>,
    /// Parameter → statistics, in the model's parameter order.
    pub stats: Vec<(String, Stats)>,
    /// How many documents this summarizes.
    pub documents: u64,
}

impl Summary {
    /// The summary of one document at time `ms` (if it has one).
    pub fn of_document(ms: Option<i64>, span: Option<f64>, stats: Vec<(String, Stats)>) -> Self {
        let mut s = Summary {
            stats,
            documents: 1,
            ..Default::default()
        };
        if let Some(t) = ms {
            s.times.insert(t, span);
            s.time_documents.insert(t, 1);
        }
        s
    }

    pub fn merge(mut self, other: Summary) -> Summary {
        self.times.extend(other.times);
        for (t, n) in other.time_documents {
            *self.time_documents.entry(t).or_default() += n;
        }
        self.documents += other.documents;
        for (name, s) in other.stats {
            match self.stats.iter_mut().find(|(n, _)| *n == name) {
                Some((_, mine)) => mine.merge(s),
                None => self.stats.push((name, s)),
            }
        }
        self
    }

    /// Take out the summary of documents that are part of this one (ones
    /// being replaced). `false`, leaving `self` unusable, when `other` is not
    /// part of it.
    #[must_use]
    pub fn subtract(&mut self, other: &Summary) -> bool {
        if other.documents > self.documents {
            return false;
        }
        self.documents -= other.documents;
        for (t, n) in &other.time_documents {
            match self.time_documents.get_mut(t) {
                Some(mine) if *mine > *n => *mine -= n,
                Some(mine) if *mine == *n => {
                    self.time_documents.remove(t);
                    self.times.remove(t);
                }
                _ => return false,
            }
        }
        other.stats.iter().all(
            |(name, s)| match self.stats.iter_mut().find(|(n, _)| n == name) {
                Some((_, mine)) => mine.subtract(s),
                None => s.count() == 0,
            },
        )
    }

    /// Whether `other` counts its parameters in the same units, so that
    /// merging them is exact (a parameter either lacks is compatible).
    pub fn compatible(&self, other: &Summary) -> bool {
        other.stats.iter().all(|(name, s)| {
            self.stats
                .iter()
                .find(|(n, _)| n == name)
                .is_none_or(|(_, mine)| mine.decimals() == s.decimals() || mine.count() == 0)
        })
    }

    /// `{param: {mean, min, max, std, median}, …}`.
    pub fn stats_document(&self) -> Document {
        self.stats
            .iter()
            .map(|(n, s)| (n.clone(), Bson::Document(s.document())))
            .collect()
    }

    /// The summary as kept in the store beside a dataset (see
    /// [`Summary::from_stored`]): times as little-endian (ms, span or NaN,
    /// documents) triples, and each parameter's table of value counts.
    pub fn to_stored(&self) -> Document {
        let mut times = Vec::with_capacity(self.time_documents.len() * 24);
        for (t, n) in &self.time_documents {
            let span = self.times.get(t).copied().flatten().unwrap_or(f64::NAN);
            times.extend_from_slice(&t.to_le_bytes());
            times.extend_from_slice(&span.to_le_bytes());
            times.extend_from_slice(&n.to_le_bytes());
        }
        let stats: Vec<Bson> = self
            .stats
            .iter()
            .map(|(name, s)| {
                let mut d = s.to_stored();
                d.insert("name", name.as_str());
                Bson::Document(d)
            })
            .collect();
        doc! {
            "documents": self.documents as i64,
            "times": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: times },
            "stats": stats,
        }
    }

    /// The summary [`Summary::to_stored`] wrote; `None` when `d` is not one.
    pub fn from_stored(d: &Document) -> Option<Summary> {
        let mut s = Summary {
            documents: u64::try_from(d.get_i64("documents").ok()?).ok()?,
            ..Default::default()
        };
        let times = d.get_binary_generic("times").ok()?;
        if times.len() % 24 != 0 {
            return None;
        }
        for e in times.chunks_exact(24) {
            let t = i64::from_le_bytes(e[..8].try_into().ok()?);
            let span = f64::from_le_bytes(e[8..16].try_into().ok()?);
            let n = u64::from_le_bytes(e[16..].try_into().ok()?);
            s.times.insert(t, (!span.is_nan()).then_some(span));
            s.time_documents.insert(t, n);
        }
        for p in d.get_array("stats").ok()? {
            let p = p.as_document()?;
            s.stats
                .push((p.get_str("name").ok()?.to_string(), Stats::from_stored(p)?));
        }
        Some(s)
    }
}

/// What rounding did to the finite non-zero values of a file: how many
/// there were, how many it turned into 0, and how many of those there were
/// of each binary exponent (to find a precision that would keep them).
/// Filled as documents are built, merged per file, so that a load that
/// would zero too many values is refused (see [`Loss::too_much`]) without a
/// pass more.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loss {
    pub nonzero: u64,
    pub zeroed: u64,
    /// Count of the values rounded to 0 per biased binary exponent
    /// (`bits >> 52 & 0x7ff`); empty until one is counted. Those are the smallest
    /// values, so they are all [`Loss::precision_for_4_digits`] needs
    /// where it is asked (more than 1% of the values zeroed), and counting
    /// only them keeps a table update out of the loop over every value.
    exponents: Vec<u64>,
}

impl Loss {
    /// Count an input value `x` stored as `stored`.
    #[inline]
    pub fn count(&mut self, x: f64, stored: f64) {
        self.count_zeroed(x, stored == 0.0);
    }

    /// [`Loss::count`] where the caller knows whether the stored value is
    /// zero (its integer of units is), without the value.
    #[inline]
    pub fn count_zeroed(&mut self, x: f64, zeroed: bool) {
        let counted = x != 0.0 && x.is_finite();
        self.nonzero += u64::from(counted);
        if zeroed && counted {
            self.zeroed_one(x);
        }
    }

    #[cold]
    fn zeroed_one(&mut self, x: f64) {
        self.zeroed += 1;
        if self.exponents.is_empty() {
            self.exponents = vec![0; 2048];
        }
        self.exponents[((x.to_bits() >> 52) & 0x7ff) as usize] += 1;
    }

    pub fn merge(&mut self, o: Loss) {
        self.nonzero += o.nonzero;
        self.zeroed += o.zeroed;
        if self.exponents.is_empty() {
            self.exponents = o.exponents;
        } else {
            for (a, b) in self.exponents.iter_mut().zip(o.exponents) {
                *a += b;
            }
        }
    }

    /// The share of the non-zero values rounded to 0, in percent.
    pub fn percent_zeroed(&self) -> f64 {
        if self.nonzero == 0 {
            0.0
        } else {
            100.0 * self.zeroed as f64 / self.nonzero as f64
        }
    }

    /// Whether more than 1% of the non-zero values became 0.
    pub fn too_much(&self) -> bool {
        self.zeroed * 100 > self.nonzero
    }

    /// The precision (decimals) at which at least 99% of the non-zero
    /// values keep 4 significant digits: 3 − the decimal exponent of the
    /// smallest of them, the 1% smallest left aside. Loaded at it, at most
    /// 1% of the values can be rounded to 0, so it passes the check.
    ///
    /// Asked only where more than 1% of the values were zeroed
    /// ([`Loss::too_much`]): then the value at that rank is one of the
    /// zeroed ones, the smallest of all, and so are all values of smaller
    /// exponents, so that the exponents of the zeroed values alone give it.
    pub fn precision_for_4_digits(&self) -> u32 {
        let aside = self.nonzero / 100;
        let mut seen = 0;
        for (e, &c) in self.exponents.iter().enumerate() {
            seen += c;
            if seen > aside {
                // A value of biased exponent e is at least 2^(e - 1023)
                // (subnormals: 2^-1074), so its decimal exponent is at
                // least floor((e - 1023) · log10 2).
                let e2 = (e as i32 - 1023).max(-1074);
                let e10 = (f64::from(e2) * std::f64::consts::LOG10_2).floor() as i32;
                return u32::try_from(3 - e10).unwrap_or(0);
            }
        }
        0
    }
}

/// What a model hands on per block: the documents, already encoded as BSON
/// (once, in parallel, so no store re-encodes them), and their contribution
/// to the collection's summary (the same as [`Model::summarize`] of each).
#[derive(Debug, Default)]
pub struct Batch {
    pub docs: Vec<RawDocumentBuf>,
    /// Documents written straight in the embedded store's compact form
    /// (step documents), which a store that wants BSON joins back.
    pub packed: Vec<doc::packed::PackedDoc>,
    pub summary: Summary,
    /// What rounding did to the block's values.
    pub loss: Loss,
}

impl Batch {
    /// How many documents it holds.
    pub fn len(&self) -> usize {
        self.docs.len() + self.packed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every document as BSON.
    pub fn raw_documents(&self) -> Vec<RawDocumentBuf> {
        self.docs
            .iter()
            .cloned()
            .chain(self.packed.iter().map(|p| p.to_raw()))
            .collect()
    }

    /// A batch of documents built as BSON documents (models with few
    /// documents per file): encoded and summarized in parallel.
    pub fn from_documents(model: &dyn Model, docs: Vec<Document>) -> Result<Batch> {
        let parts = docs
            .par_iter()
            .map(|d| {
                let raw = RawDocumentBuf::from_document(d)
                    .map_err(|e| Error::store("write", format!("cannot encode a document: {e}")))?;
                Ok((raw, model.summarize(d)))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut batch = Batch::default();
        for (raw, summary) in parts {
            batch.docs.push(raw);
            batch.summary = std::mem::take(&mut batch.summary).merge(summary);
        }
        Ok(batch)
    }
}

/// One kind of science output.
pub trait Model: Sync {
    /// Take what the model needs from the opened file before anything else
    /// (CFGrid: times, units, title, grid spacing from the CF metadata).
    fn inspect(&mut self, _m: &mut dyn Matrix) -> Result<()> {
        Ok(())
    }

    /// Refuse a matrix of the wrong shape before anything is converted.
    fn check(&self, info: &MatrixInfo) -> Result<()>;

    /// The `[x, y]` of every row, rounded to 5 decimals, in file order
    /// (for point data: every distinct point, in the order of its first
    /// document by `_id`).
    fn coordinates(&self, m: &mut dyn Matrix) -> Result<Vec<[f64; 2]>>;

    /// The `coord_index` after adding a file whose coordinates are `new` to
    /// a dataset whose stored ones are `stored`; `None` refuses the file.
    /// A grid must be the same grid: same cells in the same order, because
    /// each document's values are listed in that order.
    fn join_coordinates(&self, stored: Vec<[f64; 2]>, new: Vec<[f64; 2]>) -> Option<Vec<[f64; 2]>> {
        (stored == new).then_some(new)
    }

    /// Convert the matrix, handing batches of documents to `out` in order.
    /// The next block is read and converted while `out` writes a batch.
    fn convert(&self, m: &mut dyn Matrix, out: &mut dyn FnMut(Batch) -> Result<()>) -> Result<()>;

    /// How many documents `convert` will hand out for this matrix (for
    /// progress reporting).
    fn expected_documents(&self, info: &MatrixInfo) -> usize;

    /// The contribution of one stored document to the collection's summary.
    fn summarize(&self, doc: &Document) -> Summary;

    /// The `metadata` entry for the whole collection.
    fn metadata(&self, coords: &[[f64; 2]], summary: &Summary) -> Document;

    /// The dataset name the model was built for.
    fn name(&self) -> &str;

    /// The decimals its values are rounded to (the metadata's `precision`).
    fn precision(&self) -> u32;

    /// Settle the precision, where the model chooses it rather than takes
    /// it from the config (CFGrid without `precision`), before `convert`:
    /// `stored` is the dataset's, when it exists. `true` when the
    /// precision is the dataset's (so it is not the model's choice).
    fn settle_precision(&mut self, _stored: Option<u32>, _m: &mut dyn Matrix) -> Result<bool> {
        Ok(false)
    }

    /// For `units_to`: the unit of the values as the file (CFGrid) or the
    /// config's `units.values` gives it (`None` when neither does), and the
    /// first column of the matrix that holds values (the ones before are
    /// coordinates). `None` for a model whose values are not converted.
    fn values_unit(&self) -> Option<(Option<String>, usize)> {
        None
    }

    /// Store the values converted as `c` says: `units.values` becomes
    /// `c.to`, and the metadata records the conversion (`units_conversion`).
    /// Called after [`Model::inspect`], only where [`Model::values_unit`]
    /// is `Some`; the values themselves are converted as they are read.
    fn convert_units(&mut self, _c: &crate::units::Conversion) {}

    /// For `coarsen`: a grid's coordinate columns (their count, x's and
    /// y's); `None` for point data, which is not coarsened.
    fn grid_columns(&self) -> Option<(usize, usize, usize)> {
        None
    }

    /// The matrix is the coarse grid [`coarsen::Coarsened`] made, called
    /// after [`Model::inspect`]: `gridres` describes the coarse grid and
    /// the metadata records how it was made (`coarsened`).
    fn coarsened(&mut self, _a: &coarsen::Applied) {}
}

/// Read the `[x, y]` of every row from the first `width` columns, rounded to
/// 5 decimals; a coordinate that is not a finite number is refused.
pub(crate) fn read_coordinates(
    m: &mut dyn Matrix,
    width: usize,
    x_col: usize,
    y_col: usize,
) -> Result<Vec<[f64; 2]>> {
    let block = m.read_columns(0, width)?;
    let info = m.info();
    block
        .rows()
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let (x, y) = (r[x_col], r[y_col]);
            if x.is_finite() && y.is_finite() {
                Ok([round_to(x, 5), round_to(y, 5)])
            } else {
                Err(Error::variable(
                    &info.path,
                    &info.var_name,
                    format!("row {} has a coordinate that is not a finite number", i + 1),
                ))
            }
        })
        .collect()
}

/// The position of each named column in the config's `columns`, which must
/// list exactly as many names as the model expects.
pub(crate) fn column_positions<const N: usize>(
    config: &Config,
    expected: usize,
    names: [&str; N],
) -> Result<(Vec<String>, [usize; N])> {
    let columns = config.string_list("columns")?.unwrap_or_default();
    let bad = |msg: String| Error::config(config.origin(&["columns"]), "columns", msg);
    if columns.len() != expected {
        return Err(bad(format!(
            "must name the {expected} columns of the matrix, e.g. [\"{}\", …]",
            names.join("\", \"")
        )));
    }
    let mut at = [0; N];
    for (slot, name) in at.iter_mut().zip(names) {
        *slot = columns
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| bad(format!("must name a '{name}' column")))?;
    }
    Ok((columns, at))
}

/// Refuse a matrix whose column count is not the model's.
pub(crate) fn check_columns(info: &MatrixInfo, model: &str, columns: &[String]) -> Result<()> {
    if info.cols == columns.len() {
        return Ok(());
    }
    Err(Error::variable(
        &info.path,
        &info.var_name,
        format!(
            "has {} columns; {model} needs {} ({})",
            info.cols,
            columns.len(),
            columns.join(", ")
        ),
    ))
}

/// JSON from the config as BSON, for the metadata document.
pub(crate) fn to_bson(v: &serde_json::Value) -> Bson {
    bson::to_bson(v).unwrap_or(Bson::Null)
}

/// A number of seconds as the old tool stored it: an integer when whole.
pub(crate) fn seconds_bson(s: f64) -> Bson {
    if s.fract() == 0.0 && s.abs() < f64::from(i32::MAX) {
        Bson::Int32(s as i32)
    } else {
        Bson::Double(s)
    }
}

/// Refuse a grid of `cells` whose documents (one per step of `step_bytes(n)`
/// bytes, and the `coord_index` entry) would not fit MongoDB's document
/// limit, before anything is converted or written.
pub(crate) fn check_document_sizes(
    info: &MatrixInfo,
    name: &str,
    step_bytes: impl Fn(usize) -> usize,
) -> Result<()> {
    use doc::MAX_DOCUMENT_BYTES;
    let n = info.rows;
    let most = |size: &dyn Fn(usize) -> usize| doc::most_that_fit(n, size);
    let ci = |k: usize| doc::coord_index_bytes(name, k);
    let fit = most(&step_bytes).min(most(&ci));
    for (what, size) in [
        ("each time step", &step_bytes as &dyn Fn(usize) -> usize),
        ("its coord_index entry", &ci),
    ] {
        let bytes = size(n);
        if bytes > MAX_DOCUMENT_BYTES {
            return Err(Error::variable(
                &info.path,
                &info.var_name,
                format!(
                    "has {n} cells: {what} would be a {:.1} MiB document, {} (at most {fit} cells fit both a time step's document and the coord_index entry); nothing was written",
                    bytes as f64 / (1024.0 * 1024.0),
                    coarsen::OVER_LIMIT,
                ),
            ));
        }
    }
    Ok(())
}

/// Powers of ten that are exact in `f64` (10^22 is the last).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Round to `decimals` places as the old tool's `float('%.Nf' % x)` did:
/// the exact binary value of `x` correctly rounded to `decimals` places,
/// halves to even, then read back as the nearest `f64`. That is what
/// `format!("{:.N}", x)` followed by `parse` gives, and what this returns
/// (without negative zero), faster.
///
/// The fast path computes `y = x · 10^N` (one rounding, so `y` is within
/// 2^-53·|y| of the exact product), and when `y` is clearly away from a
/// half-integer the nearest integer `r` of `y` is the nearest integer of the
/// exact product; `r / 10^N`, one correctly rounded division of two exact
/// values, is then the nearest `f64` to the decimal `r·10^-N`, which is
/// exactly what parsing the formatted text gives. What neither this nor
/// the two shortcuts below settle (exact ties, more than 22 places with
/// fewer than 17 significant digits kept) is formatted and parsed back.
///
/// Two more exact shortcuts serve the high precisions CFGrid settles from
/// a file (a float64 variable stores 22 places and more), where `y` is too
/// large for that margin:
///
/// - Below 2^53 the exact product is `y + lo`, with `lo = fma(x, 10^N, -y)`
///   exact and smaller than the distance of `y`'s fraction from one half
///   unless the product is a tie: the sign of `(frac - 0.5) + lo` says
///   which integer is nearest (zero, a tie, is left to the reference).
/// - Where `N` places keep at least 17 significant digits
///   (`|x| ≥ 10^(16-N)`), the formatted text parses back to `x` itself
///   (17 significant digits identify every `f64`), so `x` is returned.
pub fn round_to(x: f64, decimals: u32) -> f64 {
    if let Some((_, v)) = round_units(x, decimals) {
        return v;
    }
    if decimals <= 300 && x.abs() >= keeps_17_digits(decimals) {
        return x;
    }
    round_exact(x, decimals)
}

/// [`round_to`]'s fast path, with the integer it rounds to: `(k, v)` where
/// `k` is `x` rounded to a whole number of `10^-decimals` units and `v`,
/// the stored value, is `k / 10^decimals` (computed as exactly that one
/// division, [`value_of_units`], so that whatever writes `k` and computes
/// the value back from it gets `v` bit for bit). `None` where the fast path
/// does not settle the rounding (more than 22 places, `|x|·10^N` from 2^53,
/// an exact tie, non-finite `x`): [`round_to`] settles those.
#[inline]
pub fn round_units(x: f64, decimals: u32) -> Option<(i64, f64)> {
    units_of(x, decimals).map(|k| (k, value_of_units(k, decimals)))
}

/// [`round_units`]'s integer alone: a loop that keeps the integer (the
/// compact form, the statistics key) needs the division for the value only
/// where it keeps the value itself, which is rare.
///
/// The floor is taken by converting to an integer (exact below 2^53 for a
/// non-negative `y`), not by a call of libm's `floor`.
#[inline]
pub fn units_of(x: f64, decimals: u32) -> Option<i64> {
    let &scale = POW10.get(decimals as usize)?;
    let ax = x.abs();
    let y = ax * scale;
    if y.is_nan() || y >= 9_007_199_254_740_992.0 {
        return None;
    }
    let i = y as i64;
    let f = i as f64;
    let d = (y - f) - 0.5;
    // Comfortably more than the product's rounding error.
    let up = if d.abs() > y * (1.0 / 1_125_899_906_842_624.0) {
        d > 0.0
    } else {
        let t = d + ax.mul_add(scale, -y);
        if t == 0.0 {
            return None;
        }
        t > 0.0
    };
    let k = i + i64::from(up);
    Some(if x < 0.0 { -k } else { k })
}

/// The stored value of `k` units of `10^-decimals` ([`units_of`] gave `k`):
/// `k / 10^decimals`, correctly rounded, and `0.0` (never `-0.0`) for 0.
#[inline]
pub fn value_of_units(k: i64, decimals: u32) -> f64 {
    k as f64 / POW10[decimals as usize]
}

/// The least magnitude at which `decimals` places keep 17 significant
/// digits, `10^(16 - decimals)`, raised by a margin over the error of
/// `powi` (a normal number for `decimals` up to 300).
#[inline]
fn keeps_17_digits(decimals: u32) -> f64 {
    10f64.powi(16 - decimals as i32) * (1.0 + 1e-12)
}

/// The reference rounding: format with `decimals` places (exact, halves to
/// even) and parse back.
#[cold]
fn round_exact(x: f64, decimals: u32) -> f64 {
    let v: f64 = format!("{:.*}", decimals as usize, x).parse().unwrap_or(x);
    if v == 0.0 {
        0.0 // no negative zero in the documents
    } else {
        v
    }
}

/// A stored value: rounded; NaN and ±Inf as the doubles NaN and
/// ±Infinity, as the old tool stored them (every NaN as the one quiet NaN,
/// `f64::NAN`, whatever bits the file had: MATLAB's has its sign bit set).
/// Never null: the Carbon Data Explorer's server calls `toFixed` on every
/// value, which `NaN` has and `null` has not.
pub fn value_bson(x: f64, decimals: u32) -> Bson {
    Bson::Double(stored_value(x, decimals))
}

/// [`value_bson`]'s number.
#[inline]
pub fn stored_value(x: f64, decimals: u32) -> f64 {
    if x.is_finite() {
        round_to(x, decimals)
    } else if x.is_nan() {
        f64::NAN
    } else {
        x
    }
}

/// `[minx, miny, maxx, maxy]` of the coordinates.
pub fn bbox(coords: &[[f64; 2]]) -> [f64; 4] {
    coords.iter().fold(
        [
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        ],
        |b, [x, y]| [b[0].min(*x), b[1].min(*y), b[2].max(*x), b[3].max(*y)],
    )
}

/// The MD5 hex digest of the bbox written as a Python tuple, as the old tool
/// (and the web client that compares grids by it) computes it.
pub fn bboxmd5(b: &[f64; 4]) -> String {
    use md5::{Digest, Md5};
    let text = format!(
        "({})",
        b.iter()
            .map(|&v| py_float_repr(v))
            .collect::<Vec<_>>()
            .join(", ")
    );
    format!("{:x}", Md5::digest(text.as_bytes()))
}

/// Python's `repr(float)`: the shortest round-trip digits, always with a
/// decimal point or an exponent; exponent form below 1e-4 and from 1e16.
pub fn py_float_repr(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // `{:e}` gives the shortest round-trip digits: "1.5e-5", "1e16".
    let e = format!("{v:e}");
    let (mantissa, exp) = e.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("exponent");
    if (-4..16).contains(&exp) {
        let s = format!("{v}");
        if s.contains('.') {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

/// An in-memory matrix for the models' unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use ndarray::{s, Array2};

    use crate::error::Result;
    use crate::source::{Matrix, MatrixInfo};

    /// An in-memory matrix, read in blocks like a file.
    pub struct Mem(pub MatrixInfo, pub Array2<f64>);

    impl Matrix for Mem {
        fn info(&self) -> &MatrixInfo {
            &self.0
        }
        fn read_columns(&mut self, start: usize, count: usize) -> Result<Array2<f64>> {
            Ok(self.1.slice(s![.., start..start + count]).to_owned())
        }
    }

    pub fn mem(data: Array2<f64>) -> Mem {
        Mem(
            MatrixInfo {
                path: "mem.mat".into(),
                var_name: "m".into(),
                rows: data.nrows(),
                cols: data.ncols(),
                class: "double",
            },
            data,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_too_large_for_one_document_are_refused() {
        let info = |rows| MatrixInfo {
            path: "big.mat".into(),
            var_name: "flux".into(),
            rows,
            cols: 10,
            class: "double",
        };
        let step = |n| 26 + doc::bson_array_bytes(n, 8);
        check_document_sizes(&info(400_000), "x", step).unwrap();
        let e = check_document_sizes(&info(1_100_000), "x", |n| step(n.min(10)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("coord_index") && e.contains("big.mat"), "{e}");
        let e = check_document_sizes(&info(1_100_000), "x", step)
            .unwrap_err()
            .to_string();
        assert!(e.contains("each time step") && e.contains("16 MiB"), "{e}");
        // The count it names is the largest whose step document and
        // coord_index entry both fit (here the coord_index's bound).
        let most: usize = e
            .split("at most ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let ci = |n| doc::coord_index_bytes("x", n);
        assert!(step(most) <= doc::MAX_DOCUMENT_BYTES);
        assert!(ci(most) <= doc::MAX_DOCUMENT_BYTES);
        assert!(ci(most + 1) > doc::MAX_DOCUMENT_BYTES);
        assert!(e.contains("fit both"), "{e}");
    }

    #[test]
    fn python_float_repr() {
        assert_eq!(py_float_repr(-166.5), "-166.5");
        assert_eq!(py_float_repr(10.0), "10.0");
        assert_eq!(py_float_repr(-50.0), "-50.0");
        assert_eq!(py_float_repr(0.1), "0.1");
        assert_eq!(py_float_repr(1e-5), "1e-05");
        assert_eq!(py_float_repr(0.0001), "0.0001");
        assert_eq!(py_float_repr(1e16), "1e+16");
        assert_eq!(py_float_repr(123456789012345.0), "123456789012345.0");
        assert_eq!(py_float_repr(0.0), "0.0");
    }

    #[test]
    fn bboxmd5_of_the_old_tools_fixture() {
        // The old tool's test suite: bbox (-166.5, 10.5, -50.5, 69.5).
        assert_eq!(
            bboxmd5(&[-166.5, 10.5, -50.5, 69.5]),
            "6f3e33c145010bc74c5ccd3ba772f504"
        );
        // Integral floats keep their ".0", as Python writes them.
        let md5_of = |s: &str| {
            use md5::{Digest, Md5};
            format!("{:x}", Md5::digest(s.as_bytes()))
        };
        assert_eq!(
            bboxmd5(&[-180.0, -90.0, 180.0, 90.0]),
            md5_of("(-180.0, -90.0, 180.0, 90.0)")
        );
    }

    /// Values of many magnitudes and both signs, near ties among them.
    fn sample_values() -> Vec<f64> {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut out = vec![0.0, -0.0, 0.5, -0.5, 1.5, 2.675, -2.675, 0.125, 1e-30];
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
            let magnitude = 10f64.powi((state % 31) as i32 - 15);
            let x = (unit - 0.5) * magnitude;
            out.push(x);
            // A decimal tie in text, and its neighbours.
            let tie = ((x * 1e4).trunc() + 0.5) / 1e4;
            out.extend([
                tie,
                f64::from_bits(tie.to_bits() + 1),
                f64::from_bits(tie.to_bits() - 1),
            ]);
        }
        out
    }

    /// Where more than 1% of the values are zeroed, the precision named
    /// from the exponents of the zeroed values alone is the one the rule
    /// gives over every value: the exponent of the value of rank 1% among
    /// all non-zero ones, sorted (the reference, computed from the values).
    #[test]
    fn the_precision_for_4_digits_comes_from_the_zeroed_values() {
        let mut checked = 0;
        for (spread, precision) in [(3, 2u32), (9, 4), (14, 6), (20, 10), (2, 3)] {
            let values: Vec<f64> = (0..20_000)
                .map(|i| {
                    let e = (i * 7 % (spread * 10)) as f64 / 10.0;
                    let sign = if i % 3 == 0 { -1.0 } else { 1.0 };
                    sign * 10f64.powf(-e) * (1.0 + (i % 13) as f64 / 17.0)
                })
                .chain([0.0, f64::NAN, f64::INFINITY])
                .collect();
            let mut loss = Loss::default();
            for &x in &values {
                loss.count(x, round_to(x, precision));
            }
            let mut nonzero: Vec<f64> = values
                .iter()
                .filter(|x| **x != 0.0 && x.is_finite())
                .map(|x| x.abs())
                .collect();
            nonzero.sort_by(f64::total_cmp);
            assert_eq!(loss.nonzero as usize, nonzero.len());
            let zeroed = values
                .iter()
                .filter(|x| **x != 0.0 && x.is_finite() && round_to(**x, precision) == 0.0)
                .count();
            assert_eq!(loss.zeroed as usize, zeroed);
            if !loss.too_much() {
                continue;
            }
            let at = nonzero[nonzero.len() / 100];
            let e2 = ((at.to_bits() >> 52) & 0x7ff) as i32 - 1023;
            let e10 = (f64::from(e2) * std::f64::consts::LOG10_2).floor() as i32;
            assert_eq!(
                loss.precision_for_4_digits(),
                (3 - e10) as u32,
                "{spread} {precision}"
            );
            checked += 1;
        }
        assert!(checked >= 3, "{checked}");
    }

    #[test]
    fn one_integer_gives_the_value_the_key_and_the_compact_form() {
        use crate::doc::packed::StepWriter;
        let values = sample_values();
        for decimals in 0..=22u32 {
            let stats = Stats::new(decimals);
            let (mut settled, mut left) = (0, 0);
            let mut by_units = StepWriter::new(values.len(), decimals);
            let mut by_value = StepWriter::new(values.len(), decimals);
            for &x in &values {
                let Some((k, v)) = round_units(x, decimals) else {
                    left += 1;
                    continue;
                };
                settled += 1;
                // The reference: the text formatted, parsed back.
                assert_eq!(
                    v.to_bits(),
                    round_exact(x, decimals).to_bits(),
                    "{x:e} at {decimals}"
                );
                assert_eq!(v.to_bits(), (k as f64 / POW10[decimals as usize]).to_bits());
                assert_eq!(units_of(x, decimals), Some(k));
                assert_eq!(value_of_units(k, decimals).to_bits(), v.to_bits());
                assert_eq!(stats.key_of_units(k), stats.key(v), "{x:e} at {decimals}");
                by_units.push_units(k);
                by_value.push(Some(v), stats.key(v));
            }
            assert!(
                settled > 1_000,
                "{settled} settled, {left} left at {decimals}"
            );
            assert_eq!(
                by_units.finish(0, "values").packed,
                by_value.finish(0, "values").packed,
                "at {decimals}"
            );
        }
    }

    #[test]
    fn rounding_is_half_away_from_zero_without_negative_zero() {
        // Exact ties go to even, as Python's '%.2f' % x does.
        assert_eq!(round_to(0.125, 2), 0.12);
        assert_eq!(round_to(-0.125, 2), -0.12);
        assert_eq!(round_to(0.375, 2), 0.38);
        // Not ties: 2.675 is 2.67499999999999982236431605997495353221893310546875.
        assert_eq!(round_to(2.675, 2), 2.67);
        assert_eq!(round_to(4.35, 1), 4.3);
        assert_eq!(round_to(0.0849, 2), 0.08);
        assert_eq!(round_to(-0.001, 2).to_bits(), 0.0f64.to_bits());
        let nan = |b: Bson| b.as_f64().unwrap().to_bits();
        assert_eq!(nan(value_bson(f64::NAN, 2)), f64::NAN.to_bits());
        assert_eq!(nan(value_bson(-f64::NAN, 2)), f64::NAN.to_bits());
        assert_eq!(value_bson(f64::INFINITY, 2), Bson::Double(f64::INFINITY));
        assert_eq!(
            value_bson(f64::NEG_INFINITY, 2),
            Bson::Double(f64::NEG_INFINITY)
        );
    }
}
