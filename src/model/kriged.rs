//! `KrigedXCO2Matrix` (mediator Grid3D): one kriged XCO2 map per file.
//!
//! The matrix is N × 9: y, x, values, errors (a variance: its square root is
//! stored), then 5 columns that are not used. The file becomes one document
//! `{_id: <date>, _span: <seconds the map covers>, values: [N], errors: [N]}`.
//! The date is the config's `timestamp`, or is read from a file name such as
//! `Kriged_20090615_….mat`.

use bson::{doc, Bson, Document};
use chrono::{DateTime, Utc};
use serde_json::json;

use super::base::{self, every_date, Common};
use super::{
    check_columns, column_positions, fields, read_coordinates, seconds_bson, stored_value, Batch,
    Loss, Mark, Model, ModelSpec, Summary,
};
use crate::config::Config;
use crate::error::Result;
use crate::source::{Matrix, MatrixInfo};
use crate::time::bson_date;

/// KrigedXCO2Matrix in the table of models.
pub(crate) const SPEC: ModelSpec = ModelSpec {
    name: "KrigedXCO2Matrix",
    mediator: "Grid3D",
    steps_in_columns: false,
    writes_as: None,
    parameters: &[fields::VALUES, fields::ERRORS],
    keys: &["columns", "span", "spans"],
    mark: Some(Mark::List(fields::SPANS)),
    shape: "N x 9: y, x, values, errors, 5 unused; one time per file",
    required: "timestamp, or a file name the regex dates",
    example_config: include_str!("../../configs/KrigedXCO2Matrix.json"),
    defaults: Kriged::defaults,
    build: |name, config| Ok(Box::new(Kriged::from_config(name, config)?)),
};

pub struct Kriged {
    common: Common,
    time: DateTime<Utc>,
    span_seconds: f64,
    columns: Vec<String>,
    /// Positions of x, y, values and errors in `columns`.
    at: [usize; 4],
}

impl Kriged {
    pub fn defaults() -> serde_json::Map<String, serde_json::Value> {
        base::defaults(json!({
            "var_name": "krigedData",
            "title": "Kriged XCO2",
            "columns": ["y", "x", "values", "errors", "4", "5", "6", "7", "8"],
            "gridres": {"units": "degrees", "x": 1.0, "y": 1.0},
            "parameters": ["values", "errors"],
            "precision": 1,
            "spans": [518400],
            "units": {"x": "degrees", "y": "degrees", "values": "ppm", "errors": "ppm"},
            "regex": {"regex": "^Kriged_(\\d{8})_", "map": {"timestamp": "%Y%m%d"}},
        }))
    }

    pub fn from_config(name: &str, config: &Config) -> Result<Self> {
        let (columns, at) = column_positions(config, 9, ["x", "y", "values", "errors"])?;
        Ok(Self {
            time: config.require_timestamp()?,
            span_seconds: config.seconds(&["span", "spans"])?.unwrap_or(518400.0),
            common: Common::from_config(name, config, 1, true)?,
            columns,
            at,
        })
    }
}

/// The largest encoded size of the document of a map of `n` cells.
fn document_bytes(n: usize) -> usize {
    49 + 2 * crate::doc::bson_array_bytes(n, 8)
}

/// A stored number of seconds, whether written as an integer or a double.
fn seconds_of(b: &Bson) -> Option<f64> {
    match b {
        Bson::Int32(n) => Some(f64::from(*n)),
        Bson::Int64(n) => Some(*n as f64),
        Bson::Double(x) => Some(*x),
        _ => None,
    }
}

impl Model for Kriged {
    fn precision(&self) -> u32 {
        self.common.precision
    }

    fn name(&self) -> &str {
        &self.common.name
    }

    fn check(&self, info: &MatrixInfo) -> Result<()> {
        check_columns(info, SPEC.name, &self.columns)?;
        // {_id: date, _span: double, values: [N doubles], errors: [N doubles]} at most.
        super::check_document_sizes(info, &self.common.name, document_bytes)
    }

    fn coordinates(&self, m: &mut dyn Matrix) -> Result<Vec<[f64; 2]>> {
        read_coordinates(m, self.columns.len(), self.at[0], self.at[1])
    }

    fn convert(&self, m: &mut dyn Matrix, out: &mut dyn FnMut(Batch) -> Result<()>) -> Result<()> {
        let block = m.read_columns(0, self.columns.len())?;
        let p = self.common.precision;
        let mut loss = Loss::default();
        let mut stored = |v: f64| {
            let s = stored_value(v, p);
            loss.count(v, s);
            Bson::Double(s)
        };
        let values: Vec<Bson> = block
            .column(self.at[2])
            .iter()
            .map(|&v| stored(v))
            .collect();
        // The file holds variances; a negative one has no root: NaN.
        let errors: Vec<Bson> = block
            .column(self.at[3])
            .iter()
            .map(|&v| stored(v.sqrt()))
            .collect();
        let doc = doc! {
            fields::ID: bson_date(self.time),
            fields::SPAN: seconds_bson(self.span_seconds),
            fields::VALUES: values,
            fields::ERRORS: errors,
        };
        let mut batch = Batch::from_documents(self, vec![doc])?;
        batch.loss = loss;
        out(batch)
    }

    fn expected_documents(&self, _info: &MatrixInfo) -> usize {
        1
    }

    fn summarize(&self, doc: &Document) -> Summary {
        let span = doc.get(fields::SPAN).and_then(seconds_of);
        self.common
            .summarize_arrays(doc, &[fields::VALUES, fields::ERRORS], span)
    }

    fn metadata(&self, coords: &[[f64; 2]], summary: &Summary) -> Document {
        let spans: Vec<Bson> = summary
            .times
            .values()
            .map(|s| s.map(seconds_bson).unwrap_or(Bson::Null))
            .collect();
        let own = doc! { fields::SPANS: spans, fields::DATES: every_date(summary) };
        self.common.metadata(own, coords, summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_overrides;
    use crate::model::testing::mem;
    use ndarray::Array2;

    fn config(o: &str, file: &str) -> Config {
        let mut c = Config::new().for_file(std::path::Path::new(file));
        c.push("defaults", Kriged::defaults());
        if !o.is_empty() {
            c.push("-o", parse_overrides(o).unwrap());
        }
        c
    }

    fn model(o: &str) -> Kriged {
        Kriged::from_config("k", &config(o, "/data/map.mat")).unwrap()
    }

    fn map() -> Array2<f64> {
        let u = 0.0;
        ndarray::array![
            [82.5, -64.5, 386.909, 0.6066, u, u, u, u, u],
            [82.5, -63.5, 386.75, 0.25, u, u, u, u, u],
            [-54.5, 179.5, f64::NAN, -1.0, u, u, u, u, u],
        ]
    }

    fn docs(m: &Kriged) -> Vec<Document> {
        let mut out = vec![];
        m.convert(&mut mem(map()), &mut |b| {
            out.extend(b.raw_documents().iter().map(|d| d.to_document().unwrap()));
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn one_document_with_rounded_values_and_root_errors() {
        let m = model("timestamp=2009-06-15");
        let d = docs(&m);
        assert_eq!(d.len(), 1);
        let d = &d[0];
        assert_eq!(
            d.get_datetime("_id").unwrap().to_chrono().to_rfc3339(),
            "2009-06-15T00:00:00+00:00"
        );
        assert_eq!(d.get("_span"), Some(&Bson::Int32(518400)));
        // NaN as a double (compared by its bits: NaN is not equal to itself).
        let bits = |a: &bson::Array| -> Vec<Option<u64>> {
            a.iter().map(|v| v.as_f64().map(f64::to_bits)).collect()
        };
        let want = |a: f64, b: f64| {
            vec![
                Some(a.to_bits()),
                Some(b.to_bits()),
                Some(f64::NAN.to_bits()),
            ]
        };
        assert_eq!(bits(d.get_array("values").unwrap()), want(386.9, 386.8));
        // sqrt(0.6066) = 0.779, sqrt(0.25) = 0.5, sqrt(-1) has none: NaN.
        assert_eq!(bits(d.get_array("errors").unwrap()), want(0.8, 0.5));
        assert_eq!(
            m.coordinates(&mut mem(map())).unwrap(),
            vec![[-64.5, 82.5], [-63.5, 82.5], [179.5, -54.5]]
        );
    }

    #[test]
    fn the_time_comes_from_the_file_name_unless_given() {
        let from_name = |file: &str, o: &str| {
            Kriged::from_config("k", &config(o, file)).map(|k| k.time.to_rfc3339())
        };
        assert_eq!(
            from_name("/d/Kriged_20090621_v2.mat", "").unwrap(),
            "2009-06-21T00:00:00+00:00"
        );
        assert_eq!(
            from_name("/d/Kriged_20090621_v2.mat", "timestamp=2010-01-01").unwrap(),
            "2010-01-01T00:00:00+00:00"
        );
        let e = from_name("/d/kriged.mat", "").err().unwrap().to_string();
        assert!(
            e.contains("'timestamp' is missing") && e.contains("^Kriged_(\\d{8})_"),
            "{e}"
        );
        let e = from_name("/d/Kriged_20091345_v2.mat", "")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("'20091345'"), "{e}");
        // The old tool's form: a named group and its format.
        let o = r#"regex={"regex": "^xco2_(?P<timestamp>\\d{4}-\\d{2}-\\d{2})\\.mat$", "map": {"timestamp": "%Y-%m-%d"}}"#;
        assert_eq!(
            from_name("/d/xco2_2009-06-27.mat", o).unwrap(),
            "2009-06-27T00:00:00+00:00"
        );
    }

    #[test]
    fn metadata_lists_every_date_with_its_span_in_order() {
        let late = model("timestamp=2009-06-21;span=86400");
        let early = model("timestamp=2009-06-15");
        let summary = docs(&late)
            .iter()
            .chain(docs(&early).iter())
            .map(|d| late.summarize(d))
            .fold(Summary::default(), Summary::merge);
        let coords = late.coordinates(&mut mem(map())).unwrap();
        let md = late.metadata(&coords, &summary);
        assert_eq!(
            md.get_array("dates").unwrap(),
            &vec![
                Bson::from("2009-06-15T00:00:00"),
                Bson::from("2009-06-21T00:00:00")
            ]
        );
        assert_eq!(
            md.get_array("spans").unwrap(),
            &vec![Bson::Int32(518400), Bson::Int32(86400)]
        );
        assert_eq!(md.get_str("title").unwrap(), "Kriged XCO2");
        assert!(md.get_bool("gridded").unwrap());
        let stats = md.get_document("stats").unwrap();
        let errors = stats.get_document("errors").unwrap();
        assert_eq!(errors.get_f64("min").unwrap(), 0.5);
        assert_eq!(errors.get_f64("max").unwrap(), 0.8);
        assert_eq!(
            stats
                .get_document("values")
                .unwrap()
                .get_f64("median")
                .unwrap(),
            386.85
        );
    }

    #[test]
    fn the_largest_document_size_is_computed_exactly() {
        for n in [0, 1, 10, 11, 1000] {
            let doc = doc! {
                "_id": bson::DateTime::from_millis(0),
                "_span": 0.5,
                "values": vec![Bson::Double(1.0); n],
                "errors": vec![Bson::Double(1.0); n],
            };
            assert_eq!(document_bytes(n), bson::to_vec(&doc).unwrap().len(), "{n}");
        }
    }

    #[test]
    fn other_column_counts_are_refused() {
        let m = model("timestamp=2009-06-15");
        let src = mem(ndarray::array![[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]]);
        let e = m.check(&src.0).unwrap_err().to_string();
        assert!(e.contains("has 4 columns; KrigedXCO2Matrix needs 9"), "{e}");
    }
}
