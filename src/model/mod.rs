//! Models: turn a matrix and its config into documents.
//!
//! A model is pure: it reads blocks from a [`Matrix`] and hands batches of
//! BSON documents to its caller, and it builds the `coord_index` and
//! `metadata` entries from what the collection holds. It does no I/O of its
//! own, so it is tested with small in-memory matrices.

mod encode;
mod spatiotemporal;
mod stats;

use std::collections::BTreeMap;

use bson::{doc, Bson, Document, RawDocumentBuf};
use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::source::{Matrix, MatrixInfo};

pub use spatiotemporal::SpatioTemporal;
pub use stats::Stats;

/// The `-m` values, as the old tool named its model classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    SpatioTemporalMatrix,
    KrigedXco2Matrix,
    Xco2Matrix,
}

impl ModelKind {
    pub const NAMES: &'static [&'static str] =
        &["SpatioTemporalMatrix", "KrigedXCO2Matrix", "XCO2Matrix"];

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "SpatioTemporalMatrix" => Ok(Self::SpatioTemporalMatrix),
            "KrigedXCO2Matrix" => Ok(Self::KrigedXco2Matrix),
            "XCO2Matrix" => Ok(Self::Xco2Matrix),
            _ => Err(Error::Usage(format!(
                "unknown model '{s}': use one of {}",
                Self::NAMES.join(", ")
            ))),
        }
    }

    /// The mediator the old tool paired with the model (`-d` default).
    pub fn mediator(self) -> &'static str {
        match self {
            Self::SpatioTemporalMatrix => "Grid4D",
            Self::KrigedXco2Matrix => "Grid3D",
            Self::Xco2Matrix => "Unstructured3D",
        }
    }

    /// The model's default config, the bottom layer under the user's.
    pub fn defaults(self) -> serde_json::Map<String, serde_json::Value> {
        match self {
            Self::SpatioTemporalMatrix => SpatioTemporal::defaults(),
            _ => serde_json::Map::new(),
        }
    }

    /// Build the model from its config; every config error surfaces here,
    /// before any file or store is touched.
    pub fn build(self, name: &str, config: &Config) -> Result<Box<dyn Model>> {
        match self {
            Self::SpatioTemporalMatrix => Ok(Box::new(SpatioTemporal::from_config(name, config)?)),
            other => Err(Error::Usage(format!(
                "model {} is not supported by this build yet",
                Self::NAMES[other as usize]
            ))),
        }
    }
}

/// What the documents of a collection add up to: the times they cover and
/// the statistics of each parameter. Built per document and merged, so it is
/// the same whether it comes from a fresh conversion or a rescan of the store.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Time (ms since the epoch) → span in seconds, where the model has spans.
    pub times: BTreeMap<i64, Option<f64>>,
    /// Parameter → statistics, in the model's parameter order.
    pub stats: Vec<(String, Stats)>,
}

impl Summary {
    pub fn merge(mut self, other: Summary) -> Summary {
        self.times.extend(other.times);
        for (name, s) in other.stats {
            match self.stats.iter_mut().find(|(n, _)| *n == name) {
                Some((_, mine)) => mine.merge(s),
                None => self.stats.push((name, s)),
            }
        }
        self
    }

    /// `{param: {mean, min, max, std, median}, …}`.
    pub fn stats_document(&self) -> Document {
        self.stats
            .iter()
            .map(|(n, s)| (n.clone(), Bson::Document(s.document())))
            .collect()
    }
}

/// What a model hands on per block: the documents, already encoded as BSON
/// (once, in parallel, so no store re-encodes them), and their contribution
/// to the collection's summary (the same as [`Model::summarize`] of each).
#[derive(Debug, Default)]
pub struct Batch {
    pub docs: Vec<RawDocumentBuf>,
    pub summary: Summary,
}

/// One kind of science output.
pub trait Model: Sync {
    /// Refuse a matrix of the wrong shape before anything is converted.
    fn check(&self, info: &MatrixInfo) -> Result<()>;

    /// The `[x, y]` of every row, rounded to 5 decimals, in file order.
    fn coordinates(&self, m: &mut dyn Matrix) -> Result<Vec<[f64; 2]>>;

    /// Convert the matrix, handing batches of documents to `out` in order.
    /// The next block is read and converted while `out` writes a batch.
    fn convert(&self, m: &mut dyn Matrix, out: &mut dyn FnMut(Batch) -> Result<()>) -> Result<()>;

    /// The contribution of one stored document to the collection's summary.
    fn summarize(&self, doc: &Document) -> Summary;

    /// The `metadata` entry for the whole collection.
    fn metadata(&self, coords: &[[f64; 2]], summary: &Summary) -> Document;

    /// The dataset name the model was built for.
    fn name(&self) -> &str;
}

/// The `coord_index` entry: `{_id: NAME, i: [[x, y], …]}`.
pub fn coord_index_document(name: &str, coords: &[[f64; 2]]) -> Document {
    let i: Vec<Bson> = coords
        .iter()
        .map(|[x, y]| Bson::Array(vec![Bson::Double(*x), Bson::Double(*y)]))
        .collect();
    doc! { "_id": name, "i": i }
}

/// The coordinates of a `coord_index` entry, to compare with a new file's.
pub fn coordinates_of(entry: &Document) -> Option<Vec<[f64; 2]>> {
    entry
        .get_array("i")
        .ok()?
        .iter()
        .map(|p| match p {
            Bson::Array(a) if a.len() == 2 => Some([a[0].as_f64()?, a[1].as_f64()?]),
            _ => None,
        })
        .collect()
}

/// Round half away from zero to `decimals` places, as Python 2's `round`.
pub fn round_to(x: f64, decimals: u32) -> f64 {
    let scale = 10f64.powi(decimals as i32);
    let r = (x * scale).round() / scale;
    if r == 0.0 {
        0.0 // no negative zero in the documents
    } else {
        r
    }
}

/// A stored value: rounded, or null for NaN and ±Inf.
pub fn value_bson(x: f64, decimals: u32) -> Bson {
    if x.is_finite() {
        Bson::Double(round_to(x, decimals))
    } else {
        Bson::Null
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

/// A BSON date from a chrono time.
pub fn bson_date(t: DateTime<Utc>) -> bson::DateTime {
    bson::DateTime::from_millis(t.timestamp_millis())
}

/// The metadata form of a time: `YYYY-MM-DDTHH:MM:SS`.
pub fn iso_date(ms: i64) -> String {
    bson::DateTime::from_millis(ms)
        .to_chrono()
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn rounding_is_half_away_from_zero_without_negative_zero() {
        assert_eq!(round_to(0.125, 2), 0.13);
        assert_eq!(round_to(-0.125, 2), -0.13);
        assert_eq!(round_to(0.0849, 2), 0.08);
        assert_eq!(round_to(-0.001, 2).to_bits(), 0.0f64.to_bits());
        assert_eq!(value_bson(f64::NAN, 2), Bson::Null);
        assert_eq!(value_bson(f64::INFINITY, 2), Bson::Null);
    }
}
