//! What the models have in common: the metadata fields every dataset
//! carries (`_id`, `title`, `units`, `precision`, the layout and the
//! summary of the documents), the summary of a document of per-cell arrays,
//! and the form of a model's defaults.

use bson::{doc, Bson, Document};

use super::{bbox, bboxmd5, fields, to_bson, Stats, Summary};
use crate::config::Config;
use crate::error::Result;
use crate::time::iso_date;

/// The config keys every model reads, or the config layer reads for every
/// model (each model's own are in its [`super::ModelSpec::keys`]). `header`,
/// `parameters` and `formats` are the old tool's, which change nothing
/// here (see [`super::ModelKind::ignored_keys`]).
pub(crate) const KEYS: &[&str] = &[
    "var_name",
    "timestamp",
    "regex",
    "title",
    "units",
    "precision",
    "units_to",
    "gridres",
    "grid",
    "header",
    "parameters",
    "formats",
];

/// The metadata every model writes, taken from the config (or, for CFGrid,
/// from the file).
pub(crate) struct Common {
    /// The dataset's name, the `_id` of its metadata entry.
    pub name: String,
    pub title: String,
    pub units: Bson,
    /// The decimals values are rounded to.
    pub precision: u32,
    /// The cell size of a grid (`gridres`); `None` for point data.
    pub gridres: Option<Bson>,
    /// The config keys no model understands, kept in the metadata.
    pub extra: Document,
}

impl Common {
    /// The common metadata of a grid (`grid: true`) or point dataset from
    /// the config: `title` (else the dataset name), `units`, `precision`
    /// (else `precision`), a grid's `gridres` and the unknown keys.
    pub fn from_config(name: &str, config: &Config, precision: u32, grid: bool) -> Result<Self> {
        Ok(Self {
            name: name.to_string(),
            title: title_of(config, name)?,
            precision: config.unsigned("precision", 15)?.unwrap_or(precision),
            gridres: if grid {
                Some(gridres_of(config)?)
            } else {
                None
            },
            units: units_of(config),
            extra: extra_keys(config),
        })
    }

    /// The unit of the values: `units.values`, or `units` when it is a
    /// string.
    pub fn values_unit(&self) -> Option<String> {
        match &self.units {
            Bson::String(u) => Some(u.clone()),
            Bson::Document(d) => d.get_str(fields::VALUES).ok().map(str::to_string),
            _ => None,
        }
    }

    /// Values stored converted: `units.values` is `c.to`, and the metadata
    /// records `units_conversion`.
    pub fn convert_units(&mut self, c: &crate::units::Conversion) {
        self.units = match std::mem::take(&mut self.units) {
            Bson::Document(mut d) => {
                d.insert(fields::VALUES, c.to.as_str());
                Bson::Document(d)
            }
            _ => Bson::String(c.to.clone()),
        };
        self.extra.insert(fields::UNITS_CONVERSION, c.document());
    }

    /// The `metadata` entry: the common fields, the layout (a grid's
    /// `gridres`, or the geometry of points), the model's `own` fields
    /// (its times), then the extent, the statistics and the unknown keys.
    pub fn metadata(&self, own: Document, coords: &[[f64; 2]], summary: &Summary) -> Document {
        let b = bbox(coords);
        let mut d = doc! {
            fields::ID: &self.name,
            fields::TITLE: &self.title,
            fields::UNITS: self.units.clone(),
            fields::PRECISION: self.precision as i32,
        };
        match &self.gridres {
            Some(g) => {
                d.insert(fields::GRIDDED, true);
                d.insert(fields::GRID, g.clone());
                d.insert(fields::GRIDRES, g.clone());
            }
            None => {
                d.insert(fields::GRIDDED, false);
                d.insert(fields::GEOMETRY, doc! {"type": "Point"});
            }
        }
        d.extend(own);
        d.insert(fields::BBOX, b.to_vec());
        d.insert(fields::BBOXMD5, bboxmd5(&b));
        d.insert(fields::STATS, summary.stats_document());
        d.extend(self.extra.clone());
        d
    }

    /// The summary of a gridded document `{_id: <date>, <param>: [...]}`:
    /// the statistics of each of `params` at this precision, and its time
    /// with `span` when it has one.
    pub fn summarize_arrays(&self, doc: &Document, params: &[&str], span: Option<f64>) -> Summary {
        let stats = params
            .iter()
            .map(|&p| {
                let mut s = Stats::new(self.precision);
                if let Ok(values) = doc.get_array(p) {
                    s.add_bson(values);
                }
                (p.to_string(), s)
            })
            .collect();
        let t = doc
            .get_datetime(fields::ID)
            .ok()
            .map(|t| t.timestamp_millis());
        Summary::of_document(t, t.and(span), stats)
    }
}

/// Every time of the summary, in order, as the metadata lists `dates`.
pub(crate) fn every_date(summary: &Summary) -> Vec<Bson> {
    summary.times.keys().map(|&t| iso_date(t).into()).collect()
}

/// A model's defaults, written as a JSON object.
pub(crate) fn defaults(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    v.as_object().cloned().expect("object")
}

/// The grid resolution (`gridres`, alias `grid`) as BSON for the metadata.
pub(crate) fn gridres_of(config: &Config) -> Result<Bson> {
    Ok(config
        .object(&["gridres", "grid"])?
        .map(|m| to_bson(&serde_json::Value::Object(m)))
        .unwrap_or(Bson::Null))
}

/// The `units` key as BSON, null when absent.
pub(crate) fn units_of(config: &Config) -> Bson {
    config
        .value("units")
        .map(|v| to_bson(&v))
        .unwrap_or(Bson::Null)
}

/// The display title: the config's `title`, else the dataset name.
pub(crate) fn title_of(config: &Config, name: &str) -> Result<String> {
    Ok(config.string("title")?.unwrap_or_else(|| name.to_string()))
}

/// The config keys no model understands, as BSON for the metadata document.
pub(crate) fn extra_keys(config: &Config) -> Document {
    config
        .unknown_keys(super::is_known_key)
        .iter()
        .map(|(k, v)| (k.clone(), to_bson(v)))
        .collect()
}
