//! `XCO2Matrix` (mediator Unstructured3D): satellite XCO2 retrievals, one
//! point per row.
//!
//! The matrix is N × 6: x, y, value, day of year, year, error. Each row is a
//! point at its own date and becomes one document
//! `{_id, timestamp, coordinates: [x, y], properties: {value, error}}`.
//!
//! The `_id` is `"YYYY-MM-DD/x/y"` (the point's date, then its coordinates
//! with 5 decimals), so loading a file again replaces its points instead of
//! adding them twice, and `_id` order is date order.

use std::collections::HashSet;

use bson::{doc, Bson, Document};
use chrono::{DateTime, NaiveDate, Utc};
use rayon::prelude::*;
use serde_json::json;

use super::base::{self, every_date, Common};
use super::{
    check_columns, column_positions, fields, read_coordinates, round_to, stored_value, value_bson,
    Batch, Mark, Model, ModelSpec, Stats, Summary,
};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::source::{Matrix, MatrixInfo};
use crate::time::bson_date;

/// XCO2Matrix in the table of models.
pub(crate) const SPEC: ModelSpec = ModelSpec {
    name: "XCO2Matrix",
    mediator: "Unstructured3D",
    steps_in_columns: false,
    writes_as: None,
    parameters: &[fields::VALUE, fields::ERROR],
    keys: &["columns"],
    mark: Some(Mark::Points),
    shape: "N x 6: x, y, value, day of year, year, error; a point per row",
    required: "none (each row carries its date)",
    example_config: include_str!("../../configs/XCO2Matrix.json"),
    defaults: Xco2::defaults,
    build: |name, config| Ok(Box::new(Xco2::from_config(name, config)?)),
};
/// Decimals kept in the retrieval errors.
const ERROR_DECIMALS: u32 = 4;
/// Documents handed to the store at a time.
const BATCH: usize = 20_000;

pub struct Xco2 {
    common: Common,
    /// The file's time (`timestamp` or file name), for rows without a date.
    file_time: Option<DateTime<Utc>>,
    columns: Vec<String>,
    /// Positions of x, y, value, day, year and error in `columns`.
    at: [usize; 6],
}

impl Xco2 {
    pub fn defaults() -> serde_json::Map<String, serde_json::Value> {
        base::defaults(json!({
            "columns": ["x", "y", "value", "day", "year", "error"],
            "parameters": ["value", "error"],
            "precision": 2,
            "units": {"x": "degrees", "y": "degrees", "value": "ppm", "error": "ppm"},
            "regex": {"regex": "^XCO2_(\\d{8})_", "map": {"timestamp": "%Y%m%d"}},
        }))
    }

    pub fn from_config(name: &str, config: &Config) -> Result<Self> {
        let (columns, at) =
            column_positions(config, 6, ["x", "y", "value", "day", "year", "error"])?;
        Ok(Self {
            file_time: config.timestamp()?,
            common: Common::from_config(name, config, 2, false)?,
            columns,
            at,
        })
    }

    /// The date of a row: its year and 1-based day of year (day 1 is
    /// 1 January). A row with neither takes the file's time.
    fn date_of(&self, info: &MatrixInfo, row: usize, year: f64, day: f64) -> Result<DateTime<Utc>> {
        if year.is_nan() && day.is_nan() {
            if let Some(t) = self.file_time {
                return Ok(t);
            }
        }
        let whole = |v: f64| v.is_finite() && v.fract() == 0.0;
        // Years 1 to 9999 only: what stored dates and their readers hold.
        (whole(year) && whole(day) && (1.0..=9999.0).contains(&year))
            .then(|| NaiveDate::from_yo_opt(year as i32, day as u32))
            .flatten()
            .filter(|_| day >= 1.0)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc())
            .ok_or_else(|| {
                Error::variable(
                    &info.path,
                    &info.var_name,
                    format!(
                        "row {}: day {day} of year {year} is not a date (days count from 1 = 1 January, \
                         years from 1 to 9999; a row without both takes the file's timestamp)",
                        row + 1
                    ),
                )
            })
    }
}

/// The `_id` of a point: its date and its coordinates with 5 decimals.
pub fn point_id(date: DateTime<Utc>, x: f64, y: f64) -> String {
    format!("{}/{:.5}/{:.5}", date.format("%Y-%m-%d"), x, y)
}

/// Coordinates as exact bit patterns, to tell points apart.
fn key(p: &[f64; 2]) -> (u64, u64) {
    (p[0].to_bits(), p[1].to_bits())
}

impl Model for Xco2 {
    fn precision(&self) -> u32 {
        self.common.precision
    }

    fn name(&self) -> &str {
        &self.common.name
    }

    fn check(&self, info: &MatrixInfo) -> Result<()> {
        check_columns(info, SPEC.name, &self.columns)
    }

    /// Every distinct point of the file, in the order of the first document
    /// (in `_id` order, the order the store keeps them in) that has it. The
    /// Carbon Data Explorer's geometry path takes the document at a point's
    /// position in `coord_index` for that point; with every point once,
    /// this is exactly that document.
    fn coordinates(&self, m: &mut dyn Matrix) -> Result<Vec<[f64; 2]>> {
        let all = read_coordinates(m, self.columns.len(), self.at[0], self.at[1])?;
        let block = m.read_columns(0, self.columns.len())?;
        let info = m.info().clone();
        let [_, _, _, dc, yrc, _] = self.at;
        let mut rows = all
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let r = block.row(i);
                Ok((
                    point_id(self.date_of(&info, i, r[yrc], r[dc])?, p[0], p[1]),
                    i,
                    p,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        // Two rows of one point on one day would be one document: the
        // store would keep one of them while the report and the statistics
        // counted both. The file is refused instead, naming them.
        if let Some(w) = rows.windows(2).find(|w| w[0].0 == w[1].0) {
            let (a, b) = (w[0].1.min(w[1].1), w[0].1.max(w[1].1));
            return Err(Error::variable(
                &info.path,
                &info.var_name,
                format!(
                    "rows {} and {} are the same point on the same day (document '{}', coordinates to 5 decimals); each point is one document, so remove one of the rows",
                    a + 1,
                    b + 1,
                    w[0].0
                ),
            ));
        }
        let mut seen = HashSet::new();
        Ok(rows
            .into_iter()
            .map(|(_, _, p)| p)
            .filter(|p| seen.insert(key(p)))
            .collect())
    }

    /// Points are not a grid: every file brings its own, so the index is
    /// the union of the stored points and the file's.
    fn join_coordinates(
        &self,
        mut stored: Vec<[f64; 2]>,
        new: Vec<[f64; 2]>,
    ) -> Option<Vec<[f64; 2]>> {
        let mut seen: HashSet<_> = stored.iter().map(key).collect();
        stored.extend(new.into_iter().filter(|p| seen.insert(key(p))));
        Some(stored)
    }

    fn convert(&self, m: &mut dyn Matrix, out: &mut dyn FnMut(Batch) -> Result<()>) -> Result<()> {
        let block = m.read_columns(0, self.columns.len())?;
        let info = m.info().clone();
        let [xc, yc, vc, dc, yrc, ec] = self.at;
        let rows = block.nrows();
        let mut start = 0;
        while start < rows {
            let end = (start + BATCH).min(rows);
            let docs = (start..end)
                .into_par_iter()
                .map(|i| {
                    let r = block.row(i);
                    let (x, y) = (round_to(r[xc], 5), round_to(r[yc], 5));
                    let date = self.date_of(&info, i, r[yrc], r[dc])?;
                    Ok(doc! {
                        fields::ID: point_id(date, x, y),
                        fields::TIMESTAMP: bson_date(date),
                        fields::COORDINATES: [x, y],
                        fields::PROPERTIES: {
                            fields::VALUE: value_bson(r[vc], self.common.precision),
                            fields::ERROR: value_bson(r[ec], ERROR_DECIMALS),
                        },
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let mut batch = Batch::from_documents(self, docs)?;
            for &v in block.column(vc).slice(ndarray::s![start..end]) {
                batch.loss.count(v, stored_value(v, self.common.precision));
            }
            out(batch)?;
            start = end;
        }
        Ok(())
    }

    fn expected_documents(&self, info: &MatrixInfo) -> usize {
        info.rows
    }

    fn summarize(&self, doc: &Document) -> Summary {
        let mut value = Stats::new(self.common.precision);
        let mut error = Stats::new(ERROR_DECIMALS);
        if let Ok(p) = doc.get_document(fields::PROPERTIES) {
            if let Some(v) = p.get(fields::VALUE).and_then(Bson::as_f64) {
                value.add(v);
            }
            if let Some(e) = p.get(fields::ERROR).and_then(Bson::as_f64) {
                error.add(e);
            }
        }
        Summary::of_document(
            doc.get_datetime(fields::TIMESTAMP)
                .ok()
                .map(|t| t.timestamp_millis()),
            None,
            vec![(fields::VALUE.into(), value), (fields::ERROR.into(), error)],
        )
    }

    fn metadata(&self, coords: &[[f64; 2]], summary: &Summary) -> Document {
        let own = doc! { fields::DATES: every_date(summary) };
        self.common.metadata(own, coords, summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_overrides;
    use crate::model::testing::mem;
    use ndarray::Array2;

    fn model(o: &str, file: &str) -> Xco2 {
        let mut c = Config::new().for_file(std::path::Path::new(file));
        c.push("defaults", Xco2::defaults());
        if !o.is_empty() {
            c.push("-o", parse_overrides(o).unwrap());
        }
        Xco2::from_config("x", &c).unwrap()
    }

    fn points() -> Array2<f64> {
        ndarray::array![
            [
                -169.0566101,
                15.3138456,
                386.791870,
                166.0,
                2009.0,
                0.915073513
            ],
            [
                -169.3711395,
                13.9698591,
                386.498779,
                167.0,
                2009.0,
                0.997723877
            ],
            [-169.0566101, 15.3138456, 387.006, 1.0, 2008.0, 0.5],
        ]
    }

    fn docs(m: &Xco2, data: Array2<f64>) -> Result<Vec<Document>> {
        let mut out = vec![];
        m.convert(&mut mem(data), &mut |b| {
            out.extend(b.raw_documents().iter().map(|d| d.to_document().unwrap()));
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn one_document_per_row_dated_by_its_own_day_of_year() {
        let m = model("", "/d/xco2.mat");
        let d = docs(&m, points()).unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(
            d[0],
            doc! {
                "_id": "2009-06-15/-169.05661/15.31385",
                "timestamp": bson::DateTime::parse_rfc3339_str("2009-06-15T00:00:00Z").unwrap(),
                "coordinates": [-169.05661, 15.31385],
                "properties": {"value": 386.79, "error": 0.9151},
            }
        );
        // Day 1 is 1 January.
        assert_eq!(
            d[2].get_str("_id").unwrap(),
            "2008-01-01/-169.05661/15.31385"
        );
        // A point seen on two dates is one coordinate.
        assert_eq!(m.coordinates(&mut mem(points())).unwrap().len(), 2);
    }

    #[test]
    fn impossible_dates_are_refused_and_undated_rows_take_the_files_time() {
        let m = model("", "/d/xco2.mat");
        let mut bad = points();
        bad[[1, 3]] = 366.0; // 2009 has 365 days
        let e = docs(&m, bad).unwrap_err().to_string();
        assert!(e.contains("row 2: day 366 of year 2009"), "{e}");
        // Years the store and its readers cannot hold, chrono could.
        for year in [0.0, -1.0, 10000.0, 262000.0, 1e13] {
            let mut far = points();
            far[[0, 4]] = year;
            let e = docs(&m, far).unwrap_err().to_string();
            assert!(
                e.contains("row 1") && e.contains("years from 1 to 9999"),
                "{e}"
            );
        }
        let mut undated = points();
        undated[[1, 3]] = f64::NAN;
        undated[[1, 4]] = f64::NAN;
        assert!(docs(&m, undated.clone()).is_err());
        let m = model("", "/d/XCO2_20090620_v1.mat");
        let d = docs(&m, undated).unwrap();
        assert_eq!(
            d[1].get_str("_id").unwrap(),
            "2009-06-20/-169.37114/13.96986"
        );
    }

    #[test]
    fn metadata_has_distinct_dates_and_points_join_as_a_union() {
        let m = model("title=Retrievals", "/d/xco2.mat");
        let summary = docs(&m, points())
            .unwrap()
            .iter()
            .map(|d| m.summarize(d))
            .fold(Summary::default(), Summary::merge);
        let coords = m
            .join_coordinates(
                vec![[0.5, 0.5], [-169.05661, 15.31385]],
                m.coordinates(&mut mem(points())).unwrap(),
            )
            .unwrap();
        assert_eq!(
            coords,
            vec![[0.5, 0.5], [-169.05661, 15.31385], [-169.37114, 13.96986]]
        );
        let md = m.metadata(&coords, &summary);
        assert_eq!(
            md.get_array("dates").unwrap(),
            &vec![
                Bson::from("2008-01-01T00:00:00"),
                Bson::from("2009-06-15T00:00:00"),
                Bson::from("2009-06-16T00:00:00"),
            ]
        );
        assert!(!md.get_bool("gridded").unwrap());
        assert_eq!(
            md.get_document("geometry").unwrap(),
            &doc! {"type": "Point"}
        );
        assert_eq!(
            md.get_array("bbox").unwrap(),
            &vec![
                Bson::Double(-169.37114),
                Bson::Double(0.5),
                Bson::Double(0.5),
                Bson::Double(15.31385)
            ]
        );
        let stats = md.get_document("stats").unwrap();
        assert_eq!(
            stats.get_document("value").unwrap().get_f64("max").unwrap(),
            387.01
        );
        assert_eq!(
            stats.get_document("error").unwrap().get_f64("min").unwrap(),
            0.5
        );
    }
}
