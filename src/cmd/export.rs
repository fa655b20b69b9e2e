//! `manage export -n NAME`: read a dataset's documents back, as Extended
//! JSON lines or as a CSV table of cells or points.
//!
//! Both formats stream: one document is read, written and dropped before the
//! next, so a 259,200-cell × 248-step dataset never sits in memory whole
//! (only its coordinate list does, once).

use std::fmt::Write as _;
use std::io::Write;

use bson::Document;

use std::path::{Path, PathBuf};

use crate::cmd::{extended_json, stdout_lines, write_error};
use crate::doc::fields;
use crate::doc::packed::{Element, View};
use crate::error::{Error, Result};
use crate::read::{
    array_fields, describe_id, document_time, number, point_property, Bbox, Dataset, Kind,
    Selection,
};
use crate::store;
use crate::store::Stored;
use crate::time::iso_date;

/// Output formats of `export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One document per line as relaxed MongoDB Extended JSON
    Jsonl,
    /// One row per cell (gridded data) or per point, with a header row
    Csv,
    /// A CF NetCDF-4 file (gridded data; needs --output)
    Netcdf,
}

fn parse_bbox(s: &str) -> std::result::Result<Bbox, String> {
    let n: Vec<f64> = s
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| format!("'{s}' is not four numbers W,S,E,N (degrees), e.g. -130,20,-60,55"))?;
    let [west, south, east, north] = n[..] else {
        return Err(format!(
            "'{s}' is not four numbers W,S,E,N (degrees), e.g. -130,20,-60,55"
        ));
    };
    if n.iter().any(|x| !x.is_finite()) {
        return Err(format!("'{s}': the edges must be finite numbers"));
    }
    if west > east || south > north {
        return Err(format!(
            "'{s}': west must not be east of east, nor south north of north (a box across the antimeridian is two exports)"
        ));
    }
    Ok(Bbox {
        west,
        south,
        east,
        north,
    })
}

/// Write a dataset's documents in _id order, to stdout or to a file.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
CSV columns: gridded data `x,y,` then one column per parameter (values, errors)
for one time (--at), with a `timestamp` column first when every time is written;
point data `timestamp,x,y,value,error`. Numbers are the shortest decimal that
reads back to the stored double, missing values (NaN, ±Infinity, or null
in stores of earlier versions) are empty fields, times are UTC
`YYYY-MM-DDTHH:MM:SSZ`.

NetCDF: a CF-1.8 NetCDF-4 file of a gridded dataset: dimensions time, lat, lon
(the distinct cell coordinates, ascending), one double variable per parameter
(values, errors) over (time, lat, lon) with the dataset's units, _FillValue for
missing and absent cells, time in seconds since 1970-01-01, and the metadata
(title, precision, gridres, ...) as global attributes. It loads back with
`load -m CFGrid -o var_name=values`.

--from/--to keep the times between them, both included; --bbox the cells or
points inside the box, edges included (their coordinates are kept; JSON lines
of gridded data hold no coordinates, so --bbox needs csv or netcdf for them).
--output writes FILE atomically: into a temporary file beside it, renamed to
FILE once complete; on any failure nothing is left and FILE is untouched.

Examples:
  manage export -n casa_2004 > casa_2004.jsonl
  manage export -n casa_2004 --at 2004-06-30T03:00:00
  manage export -n casa_2004 --at 2004-06-30T03:00:00 --format csv --output casa_0300.csv
  manage export -n ct --from 2004-06-30T03:00 --to 2004-06-30T12:00 --bbox -130,20,-60,55 \\
      --format netcdf --output ct_na.nc")]
#[command(mut_arg("name", |a| a.help("The dataset to export")))]
#[command(mut_arg("at", |a| a.help("Only the document(s) of this time (ISO 8601, UTC unless an offset is given)")))]
pub struct Args {
    #[command(flatten)]
    pub dataset: crate::cmd::args::Name,

    #[command(flatten)]
    pub at: crate::cmd::args::At,

    /// Only the times from this one on (inclusive; ISO 8601)
    #[arg(long, value_name = "TIME", conflicts_with = "at")]
    pub from: Option<String>,

    /// Only the times up to this one (inclusive; ISO 8601)
    #[arg(long, value_name = "TIME", conflicts_with = "at")]
    pub to: Option<String>,

    /// Only the cells or points inside this box, in degrees: west,south,east,north
    #[arg(
        long,
        value_name = "W,S,E,N",
        value_parser = parse_bbox,
        allow_hyphen_values = true
    )]
    pub bbox: Option<Bbox>,

    /// Write to FILE, atomically, instead of stdout (needed for netcdf)
    #[arg(short = 'O', long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Output format
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: Format,
}

pub fn run(db: Option<&str>, args: &Args) -> Result<()> {
    let sel = Selection {
        at: args.at.millis()?,
        from: Selection::time(&args.from, "--from")?,
        to: Selection::time(&args.to, "--to")?,
        bbox: args.bbox,
    };
    if let (Some(a), Some(b)) = (sel.from, sel.to) {
        if a > b {
            return Err(Error::Usage(format!(
                "--from {} is after --to {}",
                args.from.as_deref().unwrap_or(""),
                args.to.as_deref().unwrap_or("")
            )));
        }
    }
    if args.format == Format::Netcdf && args.output.is_none() {
        return Err(Error::Usage(
            "--format netcdf writes a file: name it with --output FILE.nc".into(),
        ));
    }
    let store = store::open_for_reading(db)?;
    let dataset = Dataset::open(&*store, &args.dataset.name)?;
    if sel.bbox.is_some()
        && args.format == Format::Jsonl
        && dataset.declared_kind() != Some(Kind::Points)
    {
        return Err(Error::Usage(format!(
            "--bbox on gridded dataset '{}' needs --format csv or netcdf: its JSON documents hold arrays in coord_index order, without coordinates",
            dataset.name
        )));
    }
    let mut written = 0u64;
    let write = |out: &mut dyn Write, written: &mut u64| -> Result<()> {
        match args.format {
            Format::Jsonl => write_jsonl(&dataset, &sel, out, written),
            Format::Csv => write_csv(&dataset, &sel, out, written),
            Format::Netcdf => unreachable!("written to a path"),
        }?;
        match sel.nothing(&dataset) {
            Some(e) if *written == 0 => Err(e),
            _ => Ok(()),
        }
    };
    match (&args.output, args.format) {
        (Some(path), Format::Netcdf) => atomically(path, |tmp| {
            let n = crate::cmd::netcdf_out::write(&dataset, &sel, tmp)?;
            match sel.nothing(&dataset) {
                Some(e) if n == 0 => Err(e),
                _ => Ok(()),
            }
        }),
        (Some(path), _) => atomically(path, |tmp| {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(tmp)
                .map_err(|e| io_error(tmp, e))?;
            let mut out = std::io::BufWriter::with_capacity(1 << 16, f);
            write(&mut out, &mut written)?;
            out.flush().map_err(|e| io_error(tmp, e))?;
            out.get_ref().sync_all().map_err(|e| io_error(tmp, e))
        }),
        (None, _) => stdout_lines(|out| write(out, &mut written)),
    }
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

/// Make `path` by `f`, which writes the file it is given: a temporary file
/// in the same folder, renamed to `path` when `f` succeeds; removed, and
/// `path` untouched, when it fails. The file gets the permissions a new
/// file gets (0666 less the umask), not the temporary file's 0600.
pub fn atomically(path: &Path, f: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if path.is_dir() {
        return Err(Error::Usage(format!(
            "--output {} is a directory; name a file",
            crate::error::shown(path)
        )));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".part")
        .tempfile_in(dir)
        .map_err(|e| io_error(dir, e))?;
    let _on_signal = crate::interrupt::remove_on_signal(tmp.path());
    f(tmp.path())?;
    {
        use std::os::unix::fs::PermissionsExt;
        // SAFETY: umask only sets and returns the process's file mode mask;
        // it is put back at once.
        let mask = unsafe {
            let m = libc::umask(0o022);
            libc::umask(m);
            m
        };
        let mode = 0o666 & !(mask as u32);
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))
            .map_err(|e| io_error(tmp.path(), e))?;
    }
    tmp.persist(path).map_err(|e| io_error(path, e.error))?;
    Ok(())
}

/// Write the selected documents of `dataset` as relaxed Extended JSON
/// lines, counting them in `written`.
pub fn write_jsonl(
    dataset: &Dataset,
    sel: &Selection,
    out: &mut dyn Write,
    written: &mut u64,
) -> Result<()> {
    let mut line = JsonLine::default();
    sel.scan_stored(dataset, &mut |stored| {
        if let Some(b) = &sel.bbox {
            if !b.contains(dataset.point_xy(stored.outline())?) {
                return Ok(());
            }
        }
        *written += 1;
        line.write(&dataset.name, stored, out)
    })
}

/// What the first document of a CSV export settles: its layout, the
/// gridded parameters, the cell coordinates and the cells written.
type Layout = (Kind, Vec<String>, Vec<[f64; 2]>, Vec<usize>);

/// Write the rows of the selected documents of `dataset` as CSV, counting
/// the documents read in `documents`.
pub fn write_csv(
    dataset: &Dataset,
    sel: &Selection,
    out: &mut dyn Write,
    documents: &mut u64,
) -> Result<()> {
    let mut csv = Csv {
        out: std::io::BufWriter::with_capacity(1 << 16, out),
        field: String::with_capacity(32),
        cells_xy: Vec::new(),
        elements: Vec::new(),
    };
    let with_time = sel.at.is_none();
    // Settled by the first document: its layout, the gridded parameters,
    // the cell coordinates and the cells written.
    let mut layout: Option<Layout> = None;
    sel.scan_stored(dataset, &mut |stored| {
        let doc = stored.outline();
        let kind = dataset.kind(doc);
        if kind == Kind::Points {
            if let Some(b) = &sel.bbox {
                if !b.contains(dataset.point_xy(doc)?) {
                    return Ok(());
                }
            }
        }
        *documents += 1;
        if layout.is_none() {
            let (params, coords) = match kind {
                Kind::Gridded => (array_fields(doc), dataset.coordinates()?),
                Kind::Points => (vec![], vec![]),
            };
            let keep = (0..coords.len())
                .filter(|&i| sel.bbox.is_none_or(|b| b.contains(coords[i])))
                .collect();
            csv.header(kind, with_time, &params)?;
            layout = Some((kind, params, coords, keep));
        }
        let (kind, params, coords, keep) = layout.as_ref().expect("set above");
        match kind {
            Kind::Gridded => csv.cells(dataset, &stored, params, coords, keep, with_time),
            Kind::Points => csv.point(dataset, doc),
        }
    })?;
    if layout.is_none() && sel.nothing(dataset).is_none() {
        // No document (and none asked for by time): the header alone, from
        // what the metadata says.
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
    /// The elements of a compact array, reused for every document.
    elements: Vec<Element>,
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
        stored: &Stored<'_>,
        params: &[String],
        coords: &[[f64; 2]],
        keep: &[usize],
        with_time: bool,
    ) -> Result<()> {
        let doc = stored.outline();
        let time = time_field(doc);
        let mismatch = |p: &str, n: usize| {
            Error::collection(
                &dataset.name,
                format!(
                    "document {} has {n} {p} but its coord_index has {} cells",
                    describe_id(doc),
                    coords.len()
                ),
            )
        };
        // The compact array (if any) is read as it is stored: its numbers
        // are written from their integers, not from BSON doubles.
        let compact = match stored {
            Stored::Compact { array, .. } => {
                let key = array.key().unwrap_or_default();
                if params.iter().any(|p| p == key) {
                    if array.len() != coords.len() {
                        return Err(mismatch(key, array.len()));
                    }
                    array.elements_into(&mut self.elements).ok_or_else(|| {
                        Error::collection(
                            &dataset.name,
                            format!("document {} is damaged", describe_id(doc)),
                        )
                    })?;
                }
                Some((key, array.places()))
            }
            Stored::Document(_) => None,
        };
        let mut arrays = Vec::with_capacity(params.len());
        for p in params {
            if let Some((_, places)) = compact.filter(|(k, _)| k == p) {
                arrays.push(Column::Compact(places));
                continue;
            }
            let a = doc.get_array(p).ok();
            if let Some(a) = a.filter(|a| a.len() != coords.len()) {
                return Err(mismatch(p, a.len()));
            }
            arrays.push(match a {
                Some(a) => Column::Bson(a),
                None => Column::Missing,
            });
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
        let mut row: Vec<u8> = Vec::with_capacity(128);
        for &i in keep {
            row.clear();
            if with_time {
                row.extend_from_slice(time.as_bytes());
                row.push(b',');
            }
            row.extend_from_slice(self.cells_xy[i].as_bytes());
            for a in &arrays {
                row.push(b',');
                match a {
                    Column::Compact(places) => match self.elements[i] {
                        Element::Units(k) => write_units(k, *places, false, &mut row),
                        Element::Double(x) if x.is_finite() => {
                            self.field.clear();
                            shortest(x, &mut self.field);
                            row.extend_from_slice(self.field.as_bytes());
                        }
                        Element::Double(_) | Element::Null => {}
                    },
                    Column::Bson(a) => {
                        if let Some(x) = number(&a[i]) {
                            self.field.clear();
                            shortest(x, &mut self.field);
                            row.extend_from_slice(self.field.as_bytes());
                        }
                    }
                    Column::Missing => {}
                }
            }
            row.push(b'\n');
            self.out.write_all(&row).map_err(write_error)?;
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

/// Where a gridded parameter's numbers come from in a CSV row.
enum Column<'a> {
    /// The document's compact array (its elements in `Csv::elements`), of
    /// these places.
    Compact(u32),
    Bson(&'a bson::Array),
    /// The document has no such array: empty fields.
    Missing,
}

/// Writes documents as lines of relaxed Extended JSON.
#[derive(Default)]
struct JsonLine {
    line: Vec<u8>,
    elements: Vec<Element>,
}

/// Stands for a compact array in the JSON of its document's other fields,
/// where the array's text then goes.
const ARRAY_MARK: &str = "\u{1}fluxpy compact array\u{1}";

impl JsonLine {
    /// One document as a line: as [`extended_json`] writes it, a compact
    /// array's numbers written from their stored integers (the same text).
    fn write(&mut self, name: &str, stored: Stored<'_>, out: &mut dyn Write) -> Result<()> {
        let (mut outline, array) = match stored {
            Stored::Document(doc) => {
                return writeln!(out, "{}", extended_json(doc)).map_err(write_error)
            }
            Stored::Compact { outline, array } => (outline, array),
        };
        let damaged = || {
            Error::collection(
                name,
                format!("document {} is damaged", describe_id(&outline)),
            )
        };
        let key = array.key().ok_or_else(damaged)?.to_string();
        array
            .elements_into(&mut self.elements)
            .ok_or_else(damaged)?;
        outline.insert(key, ARRAY_MARK);
        let text = extended_json(outline);
        let mark = serde_json::to_string(ARRAY_MARK).expect("a string");
        let at = text
            .find(&mark)
            .expect("the mark is in the document's JSON");
        self.line.clear();
        self.line.extend_from_slice(&text.as_bytes()[..at]);
        json_array(&self.elements, &array, &mut self.line);
        self.line
            .extend_from_slice(&text.as_bytes()[at + mark.len()..]);
        self.line.push(b'\n');
        out.write_all(&self.line).map_err(write_error)
    }
}

/// The relaxed Extended JSON of a compact array's elements, as
/// `Bson::into_relaxed_extjson` and `serde_json` write them.
fn json_array(elements: &[Element], array: &View<'_>, out: &mut Vec<u8>) {
    out.push(b'[');
    for (i, e) in elements.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match *e {
            Element::Null => out.extend_from_slice(b"null"),
            Element::Units(k) => write_units(k, array.places(), true, out),
            Element::Double(x) => out.extend_from_slice(
                bson::Bson::Double(x)
                    .into_relaxed_extjson()
                    .to_string()
                    .as_bytes(),
            ),
        }
    }
    out.push(b']');
}

/// The shortest decimal that reads back as the double `k / 10^places`
/// (`places` at most 22, `k` of at most 15 significant digits, as the
/// compact form gives them): the digits of `k` themselves, since that
/// double is the correct rounding of the decimal `k·10^-places`, and no
/// two decimals of at most 15 significant digits round to the same double. Written as [`shortest`] writes
/// the double (`json` false), or as `serde_json` does (`json`: `.0` after a
/// whole number); both switch to the exponent form below 1e-5.
fn write_units(k: i64, places: u32, json: bool, out: &mut Vec<u8>) {
    if k == 0 {
        out.extend_from_slice(if json { b"0.0" } else { b"0" });
        return;
    }
    if k < 0 {
        out.push(b'-');
    }
    let mut buf = [0u8; 20];
    let mut n = k.unsigned_abs();
    let mut len = 0;
    while n > 0 {
        buf[19 - len] = b'0' + (n % 10) as u8;
        n /= 10;
        len += 1;
    }
    let all = &buf[20 - len..];
    // The exponent of the first digit, then the digits without trailing zeros.
    let first = len as i32 - 1 - places as i32;
    let end = all.iter().rposition(|&d| d != b'0').map_or(1, |i| i + 1);
    let digits = &all[..end];
    if first < -5 {
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.extend_from_slice(first.to_string().as_bytes());
    } else if first < 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', (-first - 1) as usize));
        out.extend_from_slice(digits);
    } else {
        let whole = first as usize + 1;
        if digits.len() <= whole {
            out.extend_from_slice(digits);
            out.extend(std::iter::repeat_n(b'0', whole - digits.len()));
            if json {
                out.extend_from_slice(b".0");
            }
        } else {
            out.extend_from_slice(&digits[..whole]);
            out.push(b'.');
            out.extend_from_slice(&digits[whole..]);
        }
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

    /// The text written from a compact integer is the text of the double
    /// it stands for, written as before: by `shortest` for CSV, by
    /// `Bson::into_relaxed_extjson` for JSON lines.
    #[test]
    fn numbers_from_compact_integers_are_those_of_their_doubles() {
        let mut ks: Vec<i32> = vec![
            0,
            1,
            -1,
            5,
            9,
            10,
            12,
            100,
            1000,
            99999,
            100000,
            123456,
            1000000,
            i16::MAX.into(),
            i16::MIN.into(),
            i32::MAX,
            i32::MIN,
            i32::MIN + 1,
            1_000_000_000,
            -2_000_000_000,
        ];
        let mut x = 0x2545_f491u32;
        for _ in 0..4000 {
            // xorshift: integers of every length, both signs.
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let k = (x as i32) >> (x % 31);
            ks.push(k);
        }
        // And the wide form's: up to 15 digits, up to 22 places.
        let mut wide: Vec<i64> = vec![999_999_999_999_999, -123_456_789_012_345, 1 << 40];
        let mut y = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..4000 {
            y ^= y << 13;
            y ^= y >> 7;
            y ^= y << 17;
            let k = (((y >> 14) as i64) % 1_000_000_000_000_000) >> (y % 50);
            wide.push(if y & 1 == 1 { -k } else { k });
        }
        let cases = ks
            .iter()
            .flat_map(|&k| (0..=9u32).map(move |p| (i64::from(k), p)))
            .chain(wide.iter().flat_map(|&k| (0..=22u32).map(move |p| (k, p))));
        for (k, places) in cases {
            let scale: f64 = format!("1e{places}").parse().unwrap();
            let v = k as f64 / scale;
            let mut csv = Vec::new();
            write_units(k, places, false, &mut csv);
            assert_eq!(String::from_utf8(csv).unwrap(), s(v), "{k} / 10^{places}");
            let mut json = Vec::new();
            write_units(k, places, true, &mut json);
            assert_eq!(
                String::from_utf8(json).unwrap(),
                bson::Bson::Double(v).into_relaxed_extjson().to_string(),
                "{k} / 10^{places}"
            );
        }
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
