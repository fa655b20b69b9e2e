//! `manage info PATH…`: what a data file holds and what a load would make
//! of it, before anything is loaded; `--config` prints a starter config.
//!
//! The variables are listed from the file's headers
//! ([`crate::source::listing`]). Which models fit is not guessed: each
//! model is tried with the starter config `info` writes for it, by the
//! load's own dry run, and a model fits when that run succeeds (the error
//! says why when it does not). What a load would store comes from a real
//! load of the chosen model into a temporary embedded store, removed
//! afterwards: its documents, cells, times, bounding box and the sizes of
//! its largest documents against MongoDB's limit.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::doc::{fields, COORD_INDEX, MAX_DOCUMENT_BYTES};
use crate::error::{shown, Error, Result};
use crate::ingest::{Loader, Observer, Outcome, Request};
use crate::model::ModelKind;
use crate::read::{Dataset, Kind};
use crate::source::listing::Listing;
use crate::store::{self};
use crate::time::iso_date;

/// Describe data files: format, variables, time axis, the models that fit
/// and what a load would store.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Reads MATLAB v4, v5/v7 and v7.3 MAT-files, HDF5 and NetCDF-3/NetCDF-4 files.
Each model is tried with the starter config info writes for it, by the load's
own dry run: a model fits when that run succeeds. What a load would store comes
from loading the chosen model (-m, else the one that fits best) into a
temporary embedded store, removed afterwards; nothing else is written.

--config prints the starter config of one file for `load -c`: filled from the
file (variable, grid spacing, time from a CF time axis or from a date in the
file name, a precision that keeps the smallest values); a timestamp the file
does not give is a placeholder, marked so, to be set before loading.

Examples:
  manage info flux1x1_2004063000.nc
  manage info casa.mat --json
  manage info casa.mat --config > casa.json
  manage load -p casa.mat -m SpatioTemporalMatrix -n casa -c casa.json")]
pub struct Args {
    /// Data files: its help comes from the table of input formats
    /// (`source::formats::paths_help`)
    #[arg(value_name = "PATH", required = true, num_args = 1..)]
    pub paths: Vec<PathBuf>,

    /// The model to describe a load of [default: the one that fits]
    #[arg(
        short = 'm',
        long = "model",
        value_name = "MODEL",
        value_parser = crate::cmd::args::ModelName
    )]
    pub model: Option<String>,

    /// One JSON object per file on stdout
    #[arg(long, conflicts_with = "config")]
    pub json: bool,

    /// Print a starter config (JSON) of the one file for `load -c`
    #[arg(long)]
    pub config: bool,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let chosen = args.model.as_deref().map(ModelKind::parse).transpose()?;
    let (files, unmatched) = crate::expand::expand(&args.paths);
    if let Some((_, e)) = unmatched.first() {
        return Err(Error::Usage(e.clone()));
    }
    if args.config && files.len() != 1 {
        return Err(Error::Usage(format!(
            "--config describes one file; {} were given",
            files.len()
        )));
    }
    let mut failed = false;
    for path in &files {
        crate::interrupt::check()?;
        match describe(path, chosen) {
            Ok(d) if args.config => match (&d.model, &d.config, &d.stored) {
                (Some(_), Some(cfg), Ok(_)) => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(cfg).expect("JSON of JSON")
                    );
                }
                (Some(kind), _, Err(e)) => {
                    eprintln!(
                        "manage: error: {}: a load with -m {} fails: {e}",
                        shown(path),
                        kind.name()
                    );
                    failed = true;
                }
                _ => {
                    eprintln!(
                        "manage: error: {}: no model can load it: {}",
                        shown(path),
                        d.refusals()
                    );
                    failed = true;
                }
            },
            Ok(d) if args.json => println!("{}", d.to_json()),
            Ok(d) => print!("{}", d.to_text()),
            Err(e) => {
                failed = true;
                if args.json {
                    println!(
                        "{}",
                        json!({"path": shown(path).to_string(), "error": e.to_string()})
                    );
                }
                eprintln!("manage: error: {}", e.to_string().trim());
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// One model tried on a file.
struct Trial {
    kind: ModelKind,
    config: Map<String, Value>,
    /// `Ok(why it fits)` or `Err(why not)`.
    verdict: std::result::Result<String, String>,
}

/// What a load of the chosen model stored in the temporary store.
struct Stored {
    documents: u64,
    cells: Option<usize>,
    dates: Vec<i64>,
    bbox: Option<Value>,
    gridres: Option<Value>,
    precision: Option<i32>,
    largest_document: usize,
    coord_index_bytes: Option<usize>,
}

struct Description {
    path: PathBuf,
    listing: Listing,
    trials: Vec<Trial>,
    model: Option<ModelKind>,
    config: Option<Value>,
    stored: std::result::Result<Option<Stored>, String>,
}

impl Description {
    fn refusals(&self) -> String {
        self.trials
            .iter()
            .map(|t| match &t.verdict {
                Err(e) => format!("{}: {}", t.kind.name(), e),
                Ok(_) => format!("{}: fits", t.kind.name()),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn time_axis(&self) -> Option<Value> {
        let s = self.stored.as_ref().ok()?.as_ref()?;
        let (first, last) = (*s.dates.first()?, *s.dates.last()?);
        let mut steps: Vec<i64> = s.dates.windows(2).map(|w| w[1] - w[0]).collect();
        steps.sort_unstable();
        steps.dedup();
        let step = match steps.as_slice() {
            [] => Value::Null,
            [one] => json!(*one as f64 / 1000.0),
            _ => json!("irregular"),
        };
        let from_file = self.model == Some(ModelKind::parse("CFGrid").expect("a model"));
        Some(json!({
            "first": format!("{}Z", iso_date(first)),
            "last": format!("{}Z", iso_date(last)),
            "count": s.dates.len(),
            "step_seconds": step,
            "from": if from_file { "the file's CF time coordinate" } else { "the config (the file holds no time axis)" },
        }))
    }

    fn to_json(&self) -> Value {
        let variables: Vec<Value> = self
            .listing
            .variables
            .iter()
            .map(|v| {
                let mut o = json!({
                    "name": v.name,
                    "shape": v.shape,
                    "type": v.class,
                    "attributes": v.attributes,
                });
                if !v.dimensions.is_empty() {
                    o["dimensions"] = json!(v.dimensions);
                }
                for key in ["units", "_FillValue", "missing_value"] {
                    if let Some(x) = v.attributes.get(key) {
                        o[key] = x.clone();
                    }
                }
                o
            })
            .collect();
        let models: Vec<Value> = self
            .trials
            .iter()
            .map(|t| match &t.verdict {
                Ok(why) => json!({"model": t.kind.name(), "fits": true, "why": why}),
                Err(why) => json!({"model": t.kind.name(), "fits": false, "why": why}),
            })
            .collect();
        let load = match &self.stored {
            Ok(Some(s)) => json!({
                "documents": s.documents,
                "cells": s.cells,
                "times": s.dates.len(),
                "bbox": s.bbox,
                "gridres": s.gridres,
                "precision": s.precision,
                "largest_document_bytes": s.largest_document,
                "coord_index_bytes": s.coord_index_bytes,
                "document_limit_bytes": MAX_DOCUMENT_BYTES,
            }),
            Ok(None) => Value::Null,
            Err(e) => json!({"error": e}),
        };
        json!({
            "path": shown(&self.path).to_string(),
            "format": crate::source::formats::of(self.listing.format).label,
            "attributes": self.listing.attributes,
            "variables": variables,
            "time": self.time_axis(),
            "models": models,
            "model": self.model.map(|k| k.name()),
            "load": load,
            "config": self.config,
        })
    }

    fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "{}: {}",
            shown(&self.path),
            crate::source::formats::of(self.listing.format).label
        );
        for (k, v) in &self.listing.attributes {
            let _ = writeln!(o, "  :{k} = {}", short(v));
        }
        let _ = writeln!(o, "variables:");
        for v in &self.listing.variables {
            let shape = v
                .shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("×");
            let dims = if v.dimensions.is_empty() {
                String::new()
            } else {
                format!(" ({})", v.dimensions.join(", "))
            };
            let _ = writeln!(o, "  {} {} {shape}{dims}", v.class, v.name);
            for (k, a) in &v.attributes {
                let _ = writeln!(o, "      {k} = {}", short(a));
            }
        }
        match self.time_axis() {
            Some(t) => {
                let _ = writeln!(
                    o,
                    "time: {} steps from {} to {}, step {} s (from {})",
                    t["count"],
                    t["first"].as_str().unwrap_or(""),
                    t["last"].as_str().unwrap_or(""),
                    t["step_seconds"],
                    t["from"].as_str().unwrap_or("")
                );
            }
            None => {
                let _ = writeln!(o, "time: none that a load would store");
            }
        }
        let _ = writeln!(o, "models:");
        for t in &self.trials {
            match &t.verdict {
                Ok(why) => {
                    let _ = writeln!(o, "  {:<21} fits: {why}", t.kind.name());
                }
                Err(why) => {
                    let _ = writeln!(o, "  {:<21} does not fit: {why}", t.kind.name());
                }
            }
        }
        match (&self.model, &self.stored) {
            (Some(k), Ok(Some(s))) => {
                let _ = writeln!(o, "a load with -m {} would store:", k.name());
                let _ = writeln!(
                    o,
                    "  {} documents, {} times{}",
                    s.documents,
                    s.dates.len(),
                    s.cells.map(|c| format!(", {c} cells")).unwrap_or_default()
                );
                if let Some(b) = &s.bbox {
                    let _ = writeln!(o, "  bbox (W, S, E, N): {b}");
                }
                if let Some(g) = &s.gridres {
                    let _ = writeln!(o, "  gridres: {g}");
                }
                if let Some(p) = s.precision {
                    let _ = writeln!(o, "  precision: {p} decimals");
                }
                let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
                let _ = writeln!(
                    o,
                    "  largest document {:.3} MiB{}, of MongoDB's 16 MiB limit",
                    mib(s.largest_document),
                    s.coord_index_bytes
                        .map(|c| format!(", coord_index {:.3} MiB", mib(c)))
                        .unwrap_or_default()
                );
                let _ = writeln!(
                    o,
                    "  starter config: manage info {} --config -m {}",
                    shown(&self.path),
                    k.name()
                );
            }
            (Some(k), Err(e)) => {
                let _ = writeln!(o, "a load with -m {} fails: {e}", k.name());
            }
            _ => {
                let _ = writeln!(o, "no model can load it");
            }
        }
        o
    }
}

/// A value on one line, long lists cut short.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 100 {
        format!("{}…", s.chars().take(100).collect::<String>())
    } else {
        s
    }
}

/// The name the trial loads use for their dataset.
const TRIAL: &str = "manage_info";

fn describe(path: &Path, chosen: Option<ModelKind>) -> Result<Description> {
    let listing = crate::source::formats::list(path)?;
    let tmp = tempfile::Builder::new()
        .prefix("manage-info")
        .tempdir()
        .map_err(|e| Error::Io {
            path: std::env::temp_dir(),
            source: e,
        })?;
    let _on_signal = crate::interrupt::remove_on_signal(tmp.path());
    let kinds: Vec<ModelKind> = match chosen {
        Some(k) => vec![k],
        None => ModelKind::ALL.to_vec(),
    };
    let mut trials = Vec::new();
    for (i, kind) in kinds.into_iter().enumerate() {
        crate::interrupt::check()?;
        let mut config = starter_config(kind, path, &listing);
        let dry_run = |config: &Map<String, Value>, attempt: &str| {
            let cfg_path = tmp.path().join(format!("config{i}{attempt}.json"));
            std::fs::write(
                &cfg_path,
                serde_json::to_string_pretty(&Value::Object(config.clone())).expect("JSON"),
            )
            .map_err(|e| e.to_string())
            .and_then(|()| {
                let db = tmp.path().join(format!("dry{i}{attempt}.db"));
                trial_load(kind, path, &cfg_path, &db, true)
                    .map_err(|e| without_path(path, &one_line(&e)))
                    .map(|o| why_it_fits(kind, &o))
            })
        };
        let mut verdict = dry_run(&config, "");
        // A grid too large for one document fits coarsened: the starter
        // config then has the factor the refusal names.
        if let Some(f) = verdict
            .as_ref()
            .err()
            .and_then(|why| crate::model::coarsen::suggested_factor(why))
        {
            let mut coarse = config.clone();
            coarse.insert(crate::model::coarsen::KEY.into(), Value::from(f));
            if let Ok(why) = dry_run(&coarse, "-coarse") {
                verdict = Ok(format!(
                    "{why}, with \"{}\": {f} (the file's grid is too large for one document)",
                    crate::model::coarsen::KEY
                ));
                config = coarse;
            }
        }
        trials.push(Trial {
            kind,
            config,
            verdict,
        });
    }
    let model = pick(path, &listing, &trials);
    let (config, stored) = match model {
        None => (None, Ok(None)),
        Some(kind) => {
            let t = trials.iter().find(|t| t.kind == kind).expect("tried");
            let cfg_path = tmp.path().join("chosen.json");
            let text = serde_json::to_string_pretty(&Value::Object(t.config.clone()))
                .expect("JSON of JSON");
            std::fs::write(&cfg_path, &text).map_err(|e| Error::Io {
                path: cfg_path.clone(),
                source: e,
            })?;
            let db = tmp.path().join("trial.db");
            let stored = trial_load(kind, path, &cfg_path, &db, false)
                .and_then(|_| stored(&db))
                .map(Some)
                .map_err(|e| one_line(&e));
            (Some(Value::Object(t.config.clone())), stored)
        }
    };
    Ok(Description {
        path: path.to_path_buf(),
        listing,
        trials,
        model,
        config,
        stored,
    })
}

/// A message about `path` without the path it starts with.
fn without_path(path: &Path, msg: &str) -> String {
    let p = format!("{}: ", shown(path));
    msg.strip_prefix(&p).unwrap_or(msg).to_string()
}

fn one_line(e: &Error) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Load `path` as `kind` with the config file `cfg` into the embedded
/// store `db` (a dry run reads it only).
fn trial_load(
    kind: ModelKind,
    path: &Path,
    cfg: &Path,
    db: &Path,
    dry_run: bool,
) -> Result<Outcome> {
    struct Quiet;
    impl Observer for Quiet {}
    let db = db.to_string_lossy().into_owned();
    let mut loader = Loader::new(
        Some(&db),
        Request {
            name: TRIAL,
            kind,
            model: kind.name(),
            config_file: Some(cfg),
            options: None,
            mediator: None,
            force: false,
            replace: false,
            dry_run,
            lock_timeout: Duration::from_secs(30),
        },
    );
    loader.load(path, &mut Quiet)
}

fn why_it_fits(kind: ModelKind, o: &Outcome) -> String {
    let (documents, times, span) = match o {
        Outcome::WouldLoad {
            documents,
            times,
            span,
            ..
        }
        | Outcome::Loaded {
            documents,
            times,
            span,
            ..
        } => (*documents, *times, span.clone()),
        Outcome::Skipped { .. } => (0, 0, None),
    };
    let span = span
        .map(|(a, b)| format!(" from {a} to {b}"))
        .unwrap_or_default();
    format!(
        "{} ({}); a load would write {documents} documents of {times} times{span}",
        kind.shape(),
        kind.mediator()
    )
}

/// The model a load would use: CFGrid for a CF grid; the kriged model for
/// a 9-column `krigedData` matrix (or a `Kriged_…` file); the point model
/// for a 6-column matrix whose 4th and 5th columns are days of the year
/// and years; else SpatioTemporalMatrix; always one whose trial succeeded.
fn pick(path: &Path, listing: &Listing, trials: &[Trial]) -> Option<ModelKind> {
    let fits: Vec<ModelKind> = trials
        .iter()
        .filter(|t| t.verdict.is_ok())
        .map(|t| t.kind)
        .collect();
    let has = |name: &str| fits.iter().copied().find(|k| k.name() == name);
    if fits.len() <= 1 {
        return fits.first().copied();
    }
    if let Some(k) = has("CFGrid") {
        return Some(k);
    }
    let var = default_var(path, listing);
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(k) = has("KrigedXCO2Matrix") {
        if var.as_deref() == Some("krigedData") || file.starts_with("Kriged_") {
            return Some(k);
        }
    }
    if let Some(k) = has("XCO2Matrix") {
        if looks_like_points(path, var.as_deref()) {
            return Some(k);
        }
    }
    has("SpatioTemporalMatrix").or_else(|| fits.first().copied())
}

/// Whether a 6-column matrix holds a day of the year (1..=366) and a year
/// (1800..=2200) in its 4th and 5th columns, as whole numbers.
fn looks_like_points(path: &Path, var: Option<&str>) -> bool {
    let Ok(mut m) = crate::source::open(path, var) else {
        return false;
    };
    if m.info().cols != 6 {
        return false;
    }
    let Ok(c) = m.read_columns(3, 2) else {
        return false;
    };
    let whole_in = |col: usize, lo: f64, hi: f64| {
        c.column(col)
            .iter()
            .filter(|x| !x.is_nan())
            .all(|&x| x.fract() == 0.0 && (lo..=hi).contains(&x))
    };
    whole_in(0, 1.0, 366.0) && whole_in(1, 1800.0, 2200.0)
}

/// The variable a load reads without a var_name, else the first numeric
/// matrix of the listing.
fn default_var(path: &Path, listing: &Listing) -> Option<String> {
    if let Ok(m) = crate::source::open(path, None) {
        return Some(m.info().var_name.clone());
    }
    const NUMERIC: &[&str] = &[
        "double", "single", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64",
        "uint64",
    ];
    listing
        .variables
        .iter()
        .filter(|v| !v.name.starts_with("__") && NUMERIC.contains(&v.class.as_str()))
        .find(|v| v.shape.len() >= 2 && v.shape.iter().filter(|&&d| d > 1).count() >= 2)
        .map(|v| v.name.clone())
}

/// A date in a file name (`20040630`, `2004-06-30`, `2004063003`), as ISO 8601.
fn date_in_name(path: &Path) -> Option<String> {
    let name = path.file_stem()?.to_string_lossy().into_owned();
    let re = regex::Regex::new(r"(?:^|\D)((?:19|20)\d{2})-?(\d{2})-?(\d{2})(?:T?(\d{2}))?(?:\D|$)")
        .expect("a valid regex");
    let c = re.captures(&name)?;
    let (y, m, d) = (&c[1], &c[2], &c[3]);
    let h = c.get(4).map(|h| h.as_str()).unwrap_or("00");
    let text = format!("{y}-{m}-{d}T{h}:00:00");
    crate::config::parse_timestamp(&text).map(|_| text)
}

/// The smallest positive spacing of sorted distinct values, rounded to 6
/// significant digits.
fn spacing(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v.dedup();
    let d = v
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|d| *d > 1e-9)
        .fold(f64::INFINITY, f64::min);
    if !d.is_finite() {
        return None;
    }
    let e = d.abs().log10().floor() as i32;
    let scale = 10f64.powi(5 - e);
    Some((d * scale).round() / scale)
}

/// Decimals that keep at least 99% of the non-zero values from rounding
/// to 0 with 3 significant digits: 2 − the decimal exponent of the value
/// at the 1st percentile of their magnitudes; at least `floor`, at most 15.
fn precision_for(values: impl Iterator<Item = f64>, floor: u32) -> u32 {
    let mut a: Vec<f64> = values
        .filter(|x| x.is_finite() && *x != 0.0)
        .map(f64::abs)
        .collect();
    if a.is_empty() {
        return floor;
    }
    a.sort_by(f64::total_cmp);
    let p1 = a[a.len() / 100];
    let e = p1.log10().floor() as i32;
    (2 - e).clamp(floor as i32, 15) as u32
}

/// The starter config of `kind` for `path`, from what the file says.
fn starter_config(kind: ModelKind, path: &Path, listing: &Listing) -> Map<String, Value> {
    let mut c = Map::new();
    let file = shown(path).to_string();
    c.insert(
        "//".into(),
        json!(format!(
            "Starter config for {} written by `manage info` from {file}. Load with: manage load -p {file} -m {} -n NAME -c THIS_FILE.json",
            kind.name(),
            kind.name()
        )),
    );
    let var = default_var(path, listing);
    if let Some(v) = &var {
        c.insert("var_name".into(), json!(v));
    }
    let matrix = crate::source::open(path, var.as_deref()).ok();
    let dated = date_in_name(path);
    let placeholder = |c: &mut Map<String, Value>| match &dated {
        Some(t) => {
            c.insert(
                "//timestamp".into(),
                json!("Read from the file name: check it is the time of the first step."),
            );
            c.insert("timestamp".into(), json!(t));
        }
        None => {
            c.insert(
                    "//timestamp".into(),
                    json!("PLACEHOLDER: the file holds no time; set the time of the first step (ISO 8601, UTC) before loading."),
                );
            c.insert("timestamp".into(), json!("2000-01-01T00:00:00"));
        }
    };
    match kind.name() {
        "CFGrid" => {
            if let Some(f) = matrix.as_ref().and_then(|m| m.grid_facts()) {
                if let Some(t) = &f.title {
                    c.insert("//title".into(), json!(format!("From the file: {t}")));
                }
                if let Some(u) = &f.units {
                    c.insert("//units".into(), json!(format!("From the file: {u}")));
                }
            }
            c.insert("drop_empty_cells".into(), json!(false));
        }
        "SpatioTemporalMatrix" => {
            placeholder(&mut c);
            c.insert("steps".into(), json!([10800]));
            c.insert(
                "//steps".into(),
                json!("Seconds between the steps (columns 3 on): the file does not say; 10800 is 3 hours."),
            );
            if let Some(mut m) = matrix {
                let cols = m.info().cols;
                if let Ok(xy) = m.read_columns(0, 2) {
                    let dx = spacing(&xy.column(0).to_vec());
                    let dy = spacing(&xy.column(1).to_vec());
                    c.insert(
                        "gridres".into(),
                        json!({"units": "degrees", "x": dx.unwrap_or(1.0), "y": dy.unwrap_or(1.0)}),
                    );
                }
                if cols > 2 {
                    let n = (cols - 2).min(16);
                    if let Ok(v) = m.read_columns(2, n) {
                        let p = precision_for(v.iter().copied(), 2);
                        if p != 2 {
                            c.insert("precision".into(), json!(p));
                        }
                    }
                }
            }
        }
        "KrigedXCO2Matrix" => {
            let file_name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let by_regex = regex::Regex::new(r"^Kriged_(\d{8})_")
                .expect("a valid regex")
                .is_match(&file_name);
            if !by_regex {
                placeholder(&mut c);
            }
        }
        _ => {}
    }
    c
}

/// What the trial load stored in the embedded store `db`.
fn stored(db: &Path) -> Result<Stored> {
    let db = db.to_string_lossy().into_owned();
    let store = store::open_for_reading(Some(&db))?;
    let dataset = Dataset::open(&*store, TRIAL)?;
    let md = dataset.metadata.clone().unwrap_or_default();
    let coord_entry = store.entry(COORD_INDEX, TRIAL)?;
    let coord_index_bytes = coord_entry
        .as_ref()
        .and_then(|d| bson::to_vec(d).ok())
        .map(|b| b.len());
    let gridded = dataset.declared_kind() != Some(Kind::Points);
    let cells = if gridded {
        coord_entry
            .as_ref()
            .and_then(crate::doc::coordinates_of)
            .map(|c| c.len())
    } else {
        None
    };
    let mut documents = 0u64;
    let mut largest = 0usize;
    let mut dates = std::collections::BTreeSet::new();
    dataset.scan(None, &mut |doc| {
        documents += 1;
        largest = largest.max(bson::to_vec(&doc).map(|b| b.len()).unwrap_or(0));
        if let Some(t) = crate::read::document_time(&doc) {
            dates.insert(t);
        }
        Ok(())
    })?;
    let to_json = |k: &str| {
        md.get(k)
            .map(|b| b.clone().into_relaxed_extjson())
            .filter(|v| !v.is_null())
    };
    Ok(Stored {
        documents,
        cells,
        dates: dates.into_iter().collect(),
        bbox: to_json(fields::BBOX),
        gridres: to_json(fields::GRIDRES),
        precision: md.get_i32(fields::PRECISION).ok(),
        largest_document: largest,
        coord_index_bytes,
    })
}
