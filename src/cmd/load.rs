//! `manage load -p PATH… -m MODEL -n NAME`: the arguments, the paths
//! expanded, each file handed to [`crate::ingest`], a report per file.
//!
//! `-p` takes several files, directories and glob patterns; files are
//! loaded in name order, each on its own, so that one bad file is reported
//! and the others still load. A file already loaded into NAME (same
//! content, same config) is skipped unless `--force`.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config;
use crate::error::{shown, Error, Result};
use crate::ingest::{Destination, Loader, Observer, Outcome, Request};
use crate::model::ModelKind;
use crate::store::validate_name;
use crate::text::plural;

/// Load matrix files into dataset NAME (adding their times if NAME exists).
#[derive(Debug, clap::Args)]
#[command(after_help = "\
CFGrid reads a NetCDF-3 or NetCDF-4 file with CF metadata: the variable var_name (or
the only one over time, latitude and longitude), the time of each step from the time
coordinate's units and calendar, units from the variable and title from the file
(config keys win), values unpacked with scale_factor/add_offset and fill values NaN.
It writes SpatioTemporalMatrix's documents; precision defaults to what the file holds
(float32: 7 significant digits of its smallest value; packed: its scale_factor), settled
at the dataset's first load. A load whose rounding would store over 1% of its non-zero
values as 0 is refused (a warning when precision is given).
drop_empty_cells=true leaves out the cells missing at every step (default: the full grid).

Several files load one after the other, in name order, each in its own atomic load;
a file already loaded into NAME with the same content and config is skipped.
Exit codes: 0 every file loaded or skipped, 1 any file failed.

Examples:
  manage load -p sample-data/flux_na_2004.mat -m SpatioTemporalMatrix -n flux_na
  manage load -p casa.mat -m SpatioTemporalMatrix -n casa_2004 \\
      -o \"timestamp=2004-06-30T00:00:00;title=CASA-GFED 2004\"
  manage load -p '/data/kriged/Kriged_*.mat' -m KrigedXCO2Matrix -n kriged --json
  manage load -p flux1x1_2004063000.nc -m CFGrid -n ct_bio -o var_name=bio_flux_opt")]
#[command(mut_arg("name", |a| a.help("The dataset (MongoDB collection) to load into")))]
pub struct Args {
    /// Data files: its help comes from the table of input formats
    /// (`source::formats::paths_help`)
    #[arg(
        short = 'p',
        long = "path",
        value_name = "PATH",
        required = true,
        num_args = 1..
    )]
    pub paths: Vec<std::path::PathBuf>,

    /// What the file holds (CFGrid: a NetCDF variable over time, latitude
    /// and longitude); `manage models` describes each
    #[arg(
        short = 'm',
        long = "model",
        value_name = "MODEL",
        value_parser = crate::cmd::args::ModelName
    )]
    pub model: String,

    #[command(flatten)]
    pub dataset: crate::cmd::args::Name,

    /// The JSON config file [default: the data file with a .json extension]
    #[arg(
        short = 'c',
        long = "config_file",
        visible_alias = "config-file",
        value_name = "CONFIG"
    )]
    pub config_file: Option<std::path::PathBuf>,

    /// Override config keys: "key=value;key=value", values as JSON or Python literals
    #[arg(short = 'o', long = "options", value_name = "k=v;k=v")]
    pub options: Option<String>,

    /// The old tool's mediator: Grid4D, Grid3D or Unstructured3D [default: the model's]
    #[arg(short = 'd', long = "mediator", value_name = "MEDIATOR")]
    pub mediator: Option<String>,

    /// Load files even if the ingest log says they were loaded into NAME
    /// (their documents and log entry are replaced, not duplicated)
    #[arg(long)]
    pub force: bool,

    /// Rewrite NAME from the first file, in one step: what NAME held goes
    /// (documents, coord_index, summary, metadata, ingest log); the other
    /// files append. The way to convert a point dataset the old manage.py
    /// wrote, which a load refuses to add to
    #[arg(long, conflicts_with = "dry_run")]
    pub replace: bool,

    /// Read, check and convert everything and report what would be
    /// written; write nothing (the store is only read)
    #[arg(long = "dry-run")]
    pub dry_run: bool,

    /// One JSON object per file on stdout (path, status, documents, dates,
    /// seconds, error) and nothing else
    #[arg(long)]
    pub json: bool,

    /// No progress, only errors
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,

    /// How long to wait for another load of NAME to finish before failing a file
    #[arg(
        long = "lock-timeout",
        value_name = "SECONDS",
        default_value = "30",
        value_parser = parse_seconds
    )]
    pub lock_timeout: Duration,
}

/// `load --help`'s closing text: the models' table (from the models' own
/// definitions), the config keys (from the same table) and `after`
/// (the text of [`Args`]).
pub fn after_help(after: &str) -> String {
    format!(
        "{}\nThe config is read from the JSON file beside each data file (data.mat -> data.json) \
         or from -c; -o overrides its keys. Keys: {}.\n\n{after}",
        crate::model::models_table(),
        crate::model::known_keys().join(", "),
    )
}

/// The longest `--lock-timeout`: a week, far more than any load takes, and
/// well inside what every timer below it can count.
const MAX_LOCK_TIMEOUT_SECONDS: f64 = 7.0 * 24.0 * 3600.0;

fn parse_seconds(s: &str) -> std::result::Result<Duration, String> {
    match s.trim().parse::<f64>() {
        Ok(n) if (0.0..=MAX_LOCK_TIMEOUT_SECONDS).contains(&n) => Ok(Duration::from_secs_f64(n)),
        Ok(n) if n > MAX_LOCK_TIMEOUT_SECONDS => Err(format!(
            "'{s}' seconds is more than a week ({MAX_LOCK_TIMEOUT_SECONDS} s), the longest wait"
        )),
        _ => Err(format!(
            "'{s}' is not a number of seconds from 0 to {MAX_LOCK_TIMEOUT_SECONDS}"
        )),
    }
}

/// A progress bar on stderr that appears only when a load takes more than
/// a moment, only on a terminal, and is cleared when the load ends (or fails).
struct Progress {
    bar: ProgressBar,
    started: Instant,
    shown: bool,
    enabled: bool,
}

impl Progress {
    const DELAY: Duration = Duration::from_millis(700);

    fn new(name: &str, total: usize, quiet: bool) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::hidden());
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {pos}/{len} steps, {elapsed} elapsed, about {eta} left",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_message(format!("loading {name}"));
        Self {
            bar,
            started: Instant::now(),
            shown: false,
            enabled: !quiet && std::io::stderr().is_terminal(),
        }
    }

    fn inc(&mut self, n: usize) {
        self.bar.inc(n as u64);
        if self.enabled && !self.shown && self.started.elapsed() >= Self::DELAY {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
            self.shown = true;
        }
    }
}

impl Progress {
    /// The documents are written; what is left is the commit (and, when
    /// appending, the rescan of the stored times), which shows no steps of
    /// its own: say so, with a spinner, until the bar is dropped.
    fn committing(&mut self, name: &str) {
        if !self.enabled {
            return;
        }
        self.bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}, {elapsed} elapsed")
                .expect("valid template"),
        );
        self.bar.set_message(format!("committing {name}"));
        if !self.shown && self.started.elapsed() >= Self::DELAY {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
            self.shown = true;
        }
        self.bar.enable_steady_tick(Duration::from_millis(120));
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// What became of one file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Status {
    Loaded,
    Skipped,
    Failed,
    /// `--dry-run`: it would be loaded.
    WouldLoad,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Loaded => "loaded",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
            Status::WouldLoad => "would_load",
        }
    }
}

/// The outcome of one file, as `--json` prints it.
#[derive(Debug, Clone)]
pub struct Report {
    pub path: std::path::PathBuf,
    pub status: Status,
    /// Documents this run wrote (or, with `--dry-run`, would write).
    pub documents: usize,
    /// The distinct times of those documents, `YYYY-MM-DDTHH:MM:SS`, sorted.
    pub dates: Vec<String>,
    pub seconds: f64,
    pub error: Option<String>,
    /// The line printed without `--json`.
    message: String,
}

impl Report {
    fn failed(path: &Path, error: String, started: Instant) -> Self {
        Self {
            path: path.to_path_buf(),
            status: Status::Failed,
            documents: 0,
            dates: Vec::new(),
            seconds: started.elapsed().as_secs_f64(),
            message: String::new(),
            error: Some(error),
        }
    }

    /// The report of what [`Loader::load`] did with `path` into `name`.
    fn of(name: &str, path: &Path, outcome: Outcome, started: Instant) -> Self {
        let seconds = started.elapsed().as_secs_f64();
        // `8 times (2004-06-30T00:00:00 to 2004-06-30T21:00:00)`.
        let times_and_span = |times: usize, span: &Option<(String, String)>| match span {
            Some((a, b)) => format!("{} ({a} to {b})", plural(times as u64, "time")),
            None => plural(times as u64, "time"),
        };
        let (status, documents, dates, message) = match outcome {
            Outcome::Loaded {
                documents,
                dates,
                times,
                span: s,
            } => (
                Status::Loaded,
                documents,
                dates,
                format!(
                    "loaded {name}: {} from {} in {seconds:.2} s; the collection now spans {}",
                    plural(documents as u64, "document"),
                    shown(path),
                    times_and_span(times, &s),
                ),
            ),
            Outcome::Skipped { loaded_at } => (
                Status::Skipped,
                0,
                Vec::new(),
                format!(
                    "skipped {}: already loaded into {name}{} (same content and config); --force loads it again",
                    shown(path),
                    loaded_at.map(|t| format!(" on {t}")).unwrap_or_default(),
                ),
            ),
            Outcome::WouldLoad {
                documents,
                dates,
                times,
                span: s,
                into,
            } => {
                let into = match into {
                    Destination::NewDataset => "a new dataset",
                    Destination::EarlierInputs => "adding to what the files before it would load",
                    Destination::ExistingDataset => "adding to the existing dataset",
                };
                (
                    Status::WouldLoad,
                    documents,
                    dates,
                    format!(
                        "dry run: would load {} from {} into {name} ({into}), {}; nothing written",
                        plural(documents as u64, "document"),
                        shown(path),
                        times_and_span(times, &s),
                    ),
                )
            }
        };
        Self {
            path: path.to_path_buf(),
            status,
            documents,
            dates,
            seconds,
            error: None,
            message,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "path": shown(&self.path).to_string(),
            "status": self.status.as_str(),
            "documents": self.documents,
            "dates": self.dates,
            "seconds": (self.seconds * 1000.0).round() / 1000.0,
            "error": self.error,
        })
    }
}

/// What a load shows on the terminal while it runs: warnings (unless
/// `-q`), and the progress bar.
struct Shown<'a> {
    args: &'a Args,
    progress: Option<Progress>,
}

impl Observer for Shown<'_> {
    fn warn(&mut self, line: &str) {
        if !self.args.quiet {
            eprintln!("{line}");
        }
    }

    fn started(&mut self, total: usize) {
        self.progress = Some(Progress::new(
            &self.args.dataset.name,
            total,
            self.args.quiet || self.args.json,
        ));
    }

    fn advanced(&mut self, n: usize) {
        if let Some(p) = &mut self.progress {
            p.inc(n);
        }
    }

    fn committing(&mut self) {
        if let Some(p) = &mut self.progress {
            p.committing(&self.args.dataset.name);
        }
    }
}

pub fn run(db: Option<&str>, args: &Args) -> Result<ExitCode> {
    // What is wrong for every file is refused once, before any file.
    validate_name(&args.dataset.name)?;
    let kind = ModelKind::parse(&args.model)?;
    if let Some(m) = &args.mediator {
        kind.check_mediator(m, None)?;
    }
    if let Some(o) = &args.options {
        config::parse_overrides(o)?;
    }

    let (files, unmatched) = crate::expand::expand(&args.paths);
    let mut loader = Loader::new(
        db,
        Request {
            name: &args.dataset.name,
            kind,
            model: &args.model,
            config_file: args.config_file.as_deref(),
            options: args.options.as_deref(),
            mediator: args.mediator.as_deref(),
            force: args.force,
            replace: args.replace,
            dry_run: args.dry_run,
            lock_timeout: args.lock_timeout,
        },
    );
    let mut reports = Vec::new();
    for (pattern, e) in unmatched {
        let r = Report::failed(&pattern, e, Instant::now());
        print_report(args, &r);
        reports.push(r);
    }
    for path in files {
        crate::interrupt::check()?;
        let started = Instant::now();
        let mut observer = Shown {
            args,
            progress: None,
        };
        let outcome = loader.load(&path, &mut observer);
        // The bar is cleared before anything is said of the file.
        drop(observer);
        let r = match outcome {
            Ok(o) => Report::of(&args.dataset.name, &path, o, started),
            // A signal ends the run, not only this file.
            Err(e @ Error::Interrupted { .. }) => return Err(e),
            Err(e) => Report::failed(&path, naming_the_file(&path, &e), started),
        };
        print_report(args, &r);
        reports.push(r);
    }
    print_summary(args, &reports);
    Ok(if reports.iter().any(|r| r.status == Status::Failed) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The error's sentence, led by the file when it does not name it already.
fn naming_the_file(path: &Path, e: &Error) -> String {
    let msg = e.to_string();
    let file_name = path.file_name().map(|n| shown(Path::new(n)));
    if msg.contains(&shown(path)) || file_name.is_some_and(|n| msg.contains(&n)) {
        msg
    } else {
        format!("{}: {msg}", shown(path))
    }
}

/// Standard output, where a closed pipe is not an error.
fn say(line: impl std::fmt::Display) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

fn print_report(args: &Args, r: &Report) {
    if let Some(e) = &r.error {
        eprintln!("manage: error: {e}");
    }
    if args.json {
        say(r.to_json());
    } else if !args.quiet && r.error.is_none() {
        say(&r.message);
    }
}

fn print_summary(args: &Args, reports: &[Report]) {
    if args.json || args.quiet || reports.len() < 2 {
        return;
    }
    let n = |s: Status| reports.iter().filter(|r| r.status == s).count();
    let done = if args.dry_run {
        format!("{} would load", n(Status::WouldLoad))
    } else {
        format!("{} loaded", n(Status::Loaded))
    };
    let failed: Vec<String> = reports
        .iter()
        .filter(|r| r.status == Status::Failed)
        .map(|r| shown(&r.path).to_string())
        .collect();
    let failed = if failed.is_empty() {
        "0 failed".to_string()
    } else {
        format!("{} failed ({})", failed.len(), failed.join(", "))
    };
    say(format_args!(
        "{}: {}: {done}, {} skipped, {failed}",
        args.dataset.name,
        plural(reports.len() as u64, "file"),
        n(Status::Skipped)
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_timeouts_parse() {
        assert_eq!(parse_seconds("2.5").unwrap(), Duration::from_millis(2500));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("soon").is_err());
    }
}
