//! `manage export -n NAME`: read a dataset's documents back, as Extended
//! JSON lines or as a CSV table of cells or points.
//!
//! Both formats stream: one document is read, written and dropped before the
//! next, so a 259,200-cell × 248-step dataset never sits in memory whole
//! (only its coordinate list does, once).

use std::fmt::Write as _;
use std::io::Write;

use bson::Document;

use crate::cmd::dataset::{
    array_fields, describe_id, document_time, number, point_property, Dataset, Kind,
};
use crate::cmd::{extended_json, stdout_lines, write_error};
use crate::error::{Error, Result};
use crate::model::{fields, iso_date};
use crate::store;

/// Output formats of `export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One document per line as relaxed MongoDB Extended JSON
    Jsonl,
    /// One row per cell (gridded data) or per point, with a header row
    Csv,
}

/// Write a dataset's documents to stdout in _id order.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
CSV columns: gridded data `x,y,` then one column per parameter (values, errors)
for one time (--at), with a `timestamp` column first when every time is written;
point data `timestamp,x,y,value,error`. Numbers are the shortest decimal that
reads back to the stored double, missing values (NaN, ±Infinity, or null
in stores of earlier versions) are empty fields, times are UTC
`YYYY-MM-DDTHH:MM:SSZ`.

Examples:
  manage export -n casa_2004 > casa_2004.jsonl
  manage export -n casa_2004 --at 2004-06-30T03:00:00
  manage export -n casa_2004 --at 2004-06-30T03:00:00 --format csv > casa_0300.csv")]
#[command(mut_arg("name", |a| a.help("The dataset to export")))]
#[command(mut_arg("at", |a| a.help("Only the document(s) of this time (ISO 8601, UTC unless an offset is given)")))]
pub struct Args {
    #[command(flatten)]
    pub dataset: crate::cmd::args::Name,

    #[command(flatten)]
    pub at: crate::cmd::args::At,

    /// Output format
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: Format,
}

pub fn run(db: Option<&str>, args: &Args) -> Result<()> {
    let at = args.at.millis()?;
    let store = store::open_for_reading(db)?;
    let dataset = Dataset::open(&*store, &args.dataset.name)?;
    let mut written = 0u64;
    stdout_lines(|out| match args.format {
        Format::Jsonl => dataset.scan(at, &mut |doc| {
            written += 1;
            writeln!(out, "{}", extended_json(doc)).map_err(write_error)
        }),
        Format::Csv => write_csv(&dataset, at, out, &mut written),
    })?;
    match at {
        Some(ms) if written == 0 => Err(dataset.nothing_at(ms)),
        _ => Ok(()),
    }
}

/// Write the rows of `dataset` (at one time, or all) as CSV, counting the
/// documents read in `documents`.
pub fn write_csv(
    dataset: &Dataset,
    at: Option<i64>,
    out: &mut dyn Write,
    documents: &mut u64,
) -> Result<()> {
    let mut csv = Csv {
        out: std::io::BufWriter::with_capacity(1 << 16, out),
        field: String::with_capacity(32),
        cells_xy: Vec::new(),
    };
    let with_time = at.is_none();
    // Settled by the first document: its layout, the gridded parameters
    // and the cell coordinates.
    let mut layout: Option<(Kind, Vec<String>, Vec<[f64; 2]>)> = None;
    dataset.scan(at, &mut |doc| {
        *documents += 1;
        if layout.is_none() {
            let kind = dataset.kind(&doc);
            let (params, coords) = match kind {
                Kind::Gridded => (array_fields(&doc), dataset.coordinates()?),
                Kind::Points => (vec![], vec![]),
            };
            csv.header(kind, with_time, &params)?;
            layout = Some((kind, params, coords));
        }
        let (kind, params, coords) = layout.as_ref().expect("set above");
        match kind {
            Kind::Gridded => csv.cells(dataset, &doc, params, coords, with_time),
            Kind::Points => csv.point(dataset, &doc),
        }
    })?;
    if layout.is_none() {
        // No document: the header alone, from what the metadata says.
        let kind = dataset.declared_kind().unwrap_or(Kind::Gridded);
        let params = dataset
            .metadata
            .as_ref()
            .and_then(|m| m.get_document(fields::STATS).ok())
            .map(|s| s.keys().cloned().collect())
            .filter(|p: &Vec<String>| !p.is_empty())
            .unwrap_or_else(|| vec![fields::VALUES.to_string()]);
        csv.header(kind, with_time, &params)?;
    }
    csv.out.flush().map_err(write_error)
}

/// The CSV writer. Only the header can hold text that needs quoting (a
/// parameter's name), so it alone goes through the `csv` crate; the rows
/// are numbers and times, written as they are.
struct Csv<W: Write> {
    out: std::io::BufWriter<W>,
    /// Reused for every number, so a row allocates nothing.
    field: String,
    /// Each cell's `x,y`, formatted once.
    cells_xy: Vec<String>,
}

impl<W: Write> Csv<W> {
    fn header(&mut self, kind: Kind, with_time: bool, params: &[String]) -> Result<()> {
        let mut cols: Vec<&str> = Vec::new();
        if with_time || kind == Kind::Points {
            cols.push("timestamp");
        }
        cols.extend(["x", "y"]);
        match kind {
            Kind::Gridded => cols.extend(params.iter().map(String::as_str)),
            Kind::Points => cols.extend(["value", "error"]),
        }
        let mut line = csv::Writer::from_writer(Vec::new());
        line.write_record(&cols).map_err(csv_error)?;
        let line = line
            .into_inner()
            .map_err(|e| Error::Usage(format!("cannot write CSV: {e}")))?;
        self.out.write_all(&line).map_err(write_error)
    }

    /// A field after the first of a row: a comma, then the number (nothing for null).
    fn number(&mut self, x: Option<f64>) -> Result<()> {
        self.field.clear();
        self.field.push(',');
        if let Some(x) = x {
            shortest(x, &mut self.field);
        }
        self.out
            .write_all(self.field.as_bytes())
            .map_err(write_error)
    }

    fn text(&mut self, s: &str) -> Result<()> {
        self.out.write_all(s.as_bytes()).map_err(write_error)
    }

    fn end(&mut self) -> Result<()> {
        self.out.write_all(b"\n").map_err(write_error)
    }

    fn cells(
        &mut self,
        dataset: &Dataset,
        doc: &Document,
        params: &[String],
        coords: &[[f64; 2]],
        with_time: bool,
    ) -> Result<()> {
        let time = time_field(doc);
        let mut arrays = Vec::with_capacity(params.len());
        for p in params {
            let a = doc.get_array(p).ok();
            if let Some(a) = a.filter(|a| a.len() != coords.len()) {
                return Err(Error::collection(
                    &dataset.name,
                    format!(
                        "document {} has {} {p} but its coord_index has {} cells",
                        describe_id(doc),
                        a.len(),
                        coords.len()
                    ),
                ));
            }
            arrays.push(a);
        }
        // Nothing in a gridded row needs quoting (numbers and a time), so
        // rows are written as bytes, each cell's "x,y" formatted once per
        // export, not once per row.
        if self.cells_xy.len() != coords.len() {
            self.cells_xy = coords
                .iter()
                .map(|[x, y]| {
                    let mut f = String::new();
                    shortest(*x, &mut f);
                    f.push(',');
                    shortest(*y, &mut f);
                    f
                })
                .collect();
        }
        for (i, xy) in self.cells_xy.iter().enumerate() {
            let out = &mut self.out;
            if with_time {
                out.write_all(time.as_bytes()).map_err(write_error)?;
                out.write_all(b",").map_err(write_error)?;
            }
            out.write_all(xy.as_bytes()).map_err(write_error)?;
            for a in &arrays {
                self.field.clear();
                self.field.push(',');
                if let Some(x) = a.and_then(|a| number(&a[i])) {
                    shortest(x, &mut self.field);
                }
                out.write_all(self.field.as_bytes()).map_err(write_error)?;
            }
            out.write_all(b"\n").map_err(write_error)?;
        }
        Ok(())
    }

    fn point(&mut self, dataset: &Dataset, doc: &Document) -> Result<()> {
        let [x, y] = dataset.point_xy(doc)?;
        self.text(&time_field(doc))?;
        self.number(Some(x))?;
        self.number(Some(y))?;
        self.number(point_property(doc, fields::VALUE))?;
        self.number(point_property(doc, fields::ERROR))?;
        self.end()
    }
}

/// A document's time as `YYYY-MM-DDTHH:MM:SSZ`, or empty when it has none.
fn time_field(doc: &Document) -> String {
    document_time(doc)
        .map(|ms| format!("{}Z", iso_date(ms)))
        .unwrap_or_default()
}

fn csv_error(e: csv::Error) -> Error {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => write_error(io),
        other => Error::Usage(format!("cannot write CSV: {other:?}")),
    }
}

/// The shortest decimal that reads back as `x`: positional from 1e-5 to
/// 1e16 (`0.08`, `-166.5`, `7`), exponent form beyond (`1e-7`, `2.5e20`),
/// as spreadsheets and CSV readers parse both.
pub fn shortest(x: f64, out: &mut String) {
    let a = x.abs();
    if a == 0.0 || (1e-5..1e16).contains(&a) {
        write!(out, "{x}")
    } else {
        write!(out, "{x:e}")
    }
    .expect("writing to a String");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: f64) -> String {
        let mut out = String::new();
        shortest(x, &mut out);
        out
    }

    #[test]
    fn numbers_are_the_shortest_that_round_trip() {
        assert_eq!(s(0.08), "0.08");
        assert_eq!(s(-166.5), "-166.5");
        assert_eq!(s(7.0), "7");
        assert_eq!(s(0.0), "0");
        assert_eq!(s(1e-7), "1e-7");
        assert_eq!(s(2.5e20), "2.5e20");
        assert_eq!(s(0.1 + 0.2), "0.30000000000000004");
        for x in [0.1 + 0.2, 1e-7, 123456.789, -3.3e-300, f64::MAX, 5e-324] {
            assert_eq!(s(x).parse::<f64>().unwrap(), x, "{x:e}");
        }
    }
}
