//! `manage load -p PATH… -m MODEL -n NAME`: read matrices, convert them to
//! documents in parallel, and write each file with the dataset's
//! `coord_index` and `metadata` entries in one atomic load.
//!
//! `-p` takes several files, directories and glob patterns; files are
//! loaded in name order, each on its own, so that one bad file is reported
//! and the others still load. Every loaded file is recorded in the ingest
//! log with the load itself; a file already loaded into NAME (same content,
//! same config) is skipped unless `--force`. A load holds NAME's lock in the
//! store, so that two runs into one NAME take turns.
//!
//! Everything that can be refused (name, model, config, file, variable,
//! shape, coordinates that differ from the stored ones) is refused before
//! the store is written.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use std::collections::HashSet;

use bson::{doc, Bson, Document, RawDocumentBuf};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::cmd::plural;
use crate::config::{self, Config};
use crate::error::{shown, shown_text, Error, Result};
use crate::model::{self, coordinates_of, Batch, Model, ModelKind, Summary};
use crate::source::{self, Matrix};
use crate::store::lock::{self, Lease};
use crate::store::{
    self, ingest_id, sort_key, validate_name, Holder, Load, Store, COORD_INDEX, MAX_DOCUMENT_BYTES,
    METADATA, SUMMARY,
};

/// Load matrix files into dataset NAME (adding their times if NAME exists).
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The config is read from the JSON file beside each data file (data.mat -> data.json)
or from -c; -o overrides its keys. Keys: var_name, timestamp, step/steps, span/spans,
columns, gridres/grid, header, parameters, title, units, precision, formats, regex,
drop_empty_cells (CFGrid).

CFGrid reads a NetCDF-3 or NetCDF-4 file with CF metadata: the variable var_name (or
the only one over time, latitude and longitude), the time of each step from the time
coordinate's units and calendar, units from the variable and title from the file
(config keys win), values unpacked with scale_factor/add_offset and fill values null.
It writes SpatioTemporalMatrix's documents; precision defaults to 10 decimals.
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
pub struct Args {
    /// Data files (MATLAB .mat v5 to v7.3, HDF5, NetCDF): paths, directories
    /// (their .mat/.h5/.hdf5/.nc files) or quoted glob patterns; several
    /// after one -p, or -p repeated
    #[arg(
        short = 'p',
        long = "path",
        value_name = "PATH",
        required = true,
        num_args = 1..
    )]
    pub paths: Vec<PathBuf>,

    /// What the file holds: SpatioTemporalMatrix, KrigedXCO2Matrix, XCO2Matrix,
    /// or CFGrid (a NetCDF variable over time, latitude and longitude)
    #[arg(short = 'm', long = "model", value_name = "MODEL")]
    pub model: String,

    /// The dataset (MongoDB collection) to load into
    #[arg(
        short = 'n',
        long = "collection_name",
        visible_alias = "collection-name",
        value_name = "NAME"
    )]
    pub name: String,

    /// The JSON config file [default: the data file with a .json extension]
    #[arg(
        short = 'c',
        long = "config_file",
        visible_alias = "config-file",
        value_name = "CONFIG"
    )]
    pub config_file: Option<PathBuf>,

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

/// The least a load's writes wait for another process's write to finish.
const MIN_WRITE_WAIT: Duration = Duration::from_secs(5);

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

/// Large buffers (blocks of columns, batches of documents) are allocated and
/// freed by several threads in turn. glibc's malloc raises its mmap
/// threshold after each such free and then keeps the freed megabytes in
/// per-thread arenas, which made the resident size of a load about double
/// what it holds. A fixed threshold returns every large buffer when freed.
fn return_large_buffers_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before the
    // load starts its threads.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// The stacked config of one load: model defaults, file, then `-o`.
pub fn build_config(
    kind: ModelKind,
    data: &Path,
    file: Option<&Path>,
    options: Option<&str>,
) -> Result<Config> {
    let mut c = Config::new().for_file(data);
    c.push("defaults", kind.defaults());
    match file {
        Some(f) => c.push_file(f)?,
        None => {
            let sidecar = config::sidecar_path(data);
            if sidecar.is_file() {
                c.push_file(&sidecar)?;
            }
        }
    }
    if let Some(o) = options {
        c.push("-o", config::parse_overrides(o)?);
    }
    Ok(c)
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
    pub path: PathBuf,
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

pub fn run(db: Option<&str>, args: &Args) -> Result<ExitCode> {
    return_large_buffers_to_the_system();
    // What is wrong for every file is refused once, before any file.
    validate_name(&args.name)?;
    let kind = ModelKind::parse(&args.model)?;
    if let Some(m) = &args.mediator {
        kind.check_mediator(m, None)?;
    }
    if let Some(o) = &args.options {
        config::parse_overrides(o)?;
    }

    let (files, unmatched) = expand(&args.paths);
    let mut stores = Stores::new(db, args.dry_run);
    let mut reports = Vec::new();
    for (pattern, e) in unmatched {
        let r = Report::failed(&pattern, e, Instant::now());
        print_report(args, &r);
        reports.push(r);
    }
    for path in files {
        crate::interrupt::check()?;
        let started = Instant::now();
        let r = match load_file(&mut stores, args, kind, &path) {
            Ok(r) => r,
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
        args.name,
        plural(reports.len() as u64, "file"),
        n(Status::Skipped)
    ));
}

/// The data files `-p` names, in name order (file name, then path), each
/// once; and the arguments that name none, with why.
pub fn expand(args: &[PathBuf]) -> (Vec<PathBuf>, Vec<(PathBuf, String)>) {
    let mut files = Vec::new();
    let mut unmatched = Vec::new();
    for arg in args {
        if arg.is_dir() {
            let found = data_files_in(arg);
            match found {
                Ok(f) if !f.is_empty() => files.extend(f),
                Ok(_) => unmatched.push((
                    arg.clone(),
                    format!(
                        "{}: directory holds no .mat, .h5, .hdf5 or .nc file",
                        shown(arg)
                    ),
                )),
                Err(e) => unmatched.push((arg.clone(), format!("{}: {e}", shown(arg)))),
            }
            continue;
        }
        let text = arg.to_string_lossy();
        if arg.exists() || !text.contains(['*', '?', '[']) {
            // A missing plain path is reported when it is loaded, by name.
            files.push(arg.clone());
            continue;
        }
        if arg.to_str().is_none() {
            unmatched.push((
                arg.clone(),
                format!(
                    "{}: a pattern is matched as text, and this one is not UTF-8; name its folder or its files instead",
                    shown(arg)
                ),
            ));
            continue;
        }
        let mut matched = 0;
        match glob::glob(&text) {
            Err(e) => unmatched.push((
                arg.clone(),
                format!("{}: not a valid pattern: {e}", shown_text(&text)),
            )),
            Ok(paths) => {
                for p in paths {
                    match p {
                        Ok(p) if p.is_dir() => {}
                        Ok(p) => {
                            matched += 1;
                            files.push(p);
                        }
                        Err(e) => {
                            matched += 1;
                            let msg = format!("{}: {}", shown(e.path()), e.error());
                            unmatched.push((e.path().to_path_buf(), msg));
                        }
                    }
                }
                // The glob crate matches only names that are UTF-8: the
                // others it skips, silently. They are files like any other.
                for p in not_utf8_matches(&text) {
                    matched += 1;
                    files.push(p);
                }
                if matched == 0 {
                    unmatched.push((
                        arg.clone(),
                        format!("{}: no file matches this pattern", shown_text(&text)),
                    ));
                }
            }
        }
    }
    files.sort_by(|a, b| (a.file_name(), a).cmp(&(b.file_name(), b)));
    files.dedup();
    (files, unmatched)
}

/// The files whose names are not UTF-8 that `pattern`'s last component
/// matches (as text, each byte that is not UTF-8 read as U+FFFD), in the
/// folders its other components name.
fn not_utf8_matches(pattern: &str) -> Vec<PathBuf> {
    let (dirs, last) = match pattern.rsplit_once('/') {
        Some((d, last)) => (Some(if d.is_empty() { "/" } else { d }), last),
        None => (None, pattern),
    };
    let Ok(last) = glob::Pattern::new(last) else {
        return Vec::new();
    };
    let folders: Vec<Option<PathBuf>> = match dirs {
        None => vec![None],
        Some(d) if !d.contains(['*', '?', '[']) => vec![Some(PathBuf::from(d))],
        Some(d) => glob::glob(d)
            .map(|g| g.flatten().filter(|p| p.is_dir()).map(Some).collect())
            .unwrap_or_default(),
    };
    let mut out = Vec::new();
    for folder in folders {
        let Ok(entries) = std::fs::read_dir(folder.as_deref().unwrap_or(Path::new("."))) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            if name.to_str().is_some() || !last.matches(&name.to_string_lossy()) {
                continue;
            }
            let p = match &folder {
                Some(f) => f.join(&name),
                None => PathBuf::from(&name),
            };
            if !p.is_dir() {
                out.push(p);
            }
        }
    }
    out
}

fn data_files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        let ext = p
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        if p.is_file() && matches!(ext.as_deref(), Some("mat" | "h5" | "hdf5" | "nc")) {
            out.push(p);
        }
    }
    Ok(out)
}

/// The store, opened on first use: for writing, or with `--dry-run` for
/// reading only. A store that cannot be opened fails every file that needs
/// it, with the same message, without trying again.
struct Stores<'a> {
    db: Option<&'a str>,
    read_only: bool,
    opened: Option<Option<Box<dyn Store>>>,
    failure: Option<String>,
    /// `--dry-run`: what the files before this one would have made of NAME.
    dry: Pending,
}

/// What the files a dry run has checked so far would have loaded into
/// NAME, had it not been a dry run: so that each file is checked against
/// the dataset as the real run would find it (their coordinates, model and
/// precision, and the inputs the ingest log would hold).
#[derive(Default)]
struct Pending {
    coords: Option<Vec<[f64; 2]>>,
    metadata: Option<Document>,
    inputs: HashSet<String>,
}

impl<'a> Stores<'a> {
    fn new(db: Option<&'a str>, read_only: bool) -> Self {
        Self {
            db,
            read_only,
            opened: None,
            failure: None,
            dry: Pending::default(),
        }
    }

    /// The store; `None` only for `--dry-run` on an embedded store that does not exist yet.
    fn get(&mut self) -> Result<Option<&mut (dyn Store + 'static)>> {
        if let Some(f) = &self.failure {
            return Err(Error::Usage(f.clone()));
        }
        if self.opened.is_none() {
            let opened = if self.read_only {
                store::open_read_only(self.db)
            } else {
                store::open(self.db).map(Some)
            };
            match opened {
                Ok(s) => self.opened = Some(s),
                Err(e) => {
                    self.failure = Some(e.to_string());
                    return Err(e);
                }
            }
        }
        Ok(self.opened.as_mut().and_then(|s| s.as_deref_mut()))
    }
}

/// A file's size and SHA-256, read in pieces (never held whole).
pub fn hash_file(path: &Path) -> Result<(u64, String)> {
    let io = |e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        crate::interrupt::check()?;
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(e)),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex(&hasher.finalize())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What identifies one load's input: the file's content, the model and
/// the config (see [`Config::identity`]).
fn input_digest(sha256: &str, kind: ModelKind, config: &Config) -> String {
    let what = serde_json::json!({
        "sha256": sha256,
        "model": kind.name(),
        "config": config.identity(),
    });
    hex(&Sha256::digest(what.to_string().as_bytes()))
}

/// One file, read and checked, ready to convert.
struct Prepared {
    kind: ModelKind,
    model: Box<dyn Model>,
    matrix: Box<dyn Matrix>,
    coords: Vec<[f64; 2]>,
}

/// The ingest-log facts of one file.
struct Input {
    size: u64,
    sha256: String,
    /// The ingest-log `_id` of this input in NAME.
    id: String,
    input: String,
}

/// Load (or with `--dry-run`, check) one file.
fn load_file(stores: &mut Stores, args: &Args, kind: ModelKind, path: &Path) -> Result<Report> {
    let started = Instant::now();
    // A missing or unreadable file is named before anything is said of its config.
    source::detect(path)?;
    let config = build_config(
        kind,
        path,
        args.config_file.as_deref(),
        args.options.as_deref(),
    )?;
    let unknown = config.unknown_keys();
    if !unknown.is_empty() && !args.quiet {
        let keys: Vec<_> = unknown.keys().map(String::as_str).collect();
        eprintln!(
            "warning: {}: unknown config keys kept in the metadata as they are: {}",
            shown(path),
            keys.join(", ")
        );
    }
    if !args.quiet {
        for (key, origin, why) in kind.ignored_keys(&config) {
            eprintln!("warning: {origin}: config key '{key}' is ignored: {why}");
        }
    }
    let model = kind.build(&args.name, &config)?;
    if args.dry_run {
        let input = input_of(args, kind, &config, path)?;
        if !args.force {
            if stores.dry.inputs.contains(&input.id) {
                return Ok(skipped(args, path, &Document::new(), started));
            }
            if let Some(store) = stores.get()? {
                if let Some(entry) = already_loaded(store, &args.name, &input.id)? {
                    return Ok(skipped(args, path, &entry, started));
                }
            }
        }
        let file = prepare(args, kind, &config, model, path)?;
        let mut pending = std::mem::take(&mut stores.dry);
        let store = stores.get()?;
        let report = dry_run(
            store.map(|s| &*s),
            &mut pending,
            args,
            kind,
            path,
            file,
            started,
        );
        if report.is_ok() {
            pending.inputs.insert(input.id);
        }
        stores.dry = pending;
        return report;
    }
    // The lock is taken before the file is hashed, so that --lock-timeout
    // is the time waited, however large the file; and the check whether
    // the file was loaded already is made by the one holder of the lock.
    let store = stores
        .get()?
        .ok_or_else(|| Error::store("open", "no store to write to"))?;
    // The writes of this load wait for the store as long as --lock-timeout
    // says (a few seconds at least: another load's commit is not a reason
    // to fail); taking the lock waits only what remains of it.
    store.set_busy_wait(args.lock_timeout.max(MIN_WRITE_WAIT));
    let me = Holder::this_process();
    let lease = lock::acquire(
        store,
        &args.name,
        &me,
        args.lock_timeout,
        "try again later, or wait longer with --lock-timeout",
    )?;
    let result = input_of(args, kind, &config, path).and_then(|input| {
        if !args.force {
            if let Some(entry) = already_loaded(store, &args.name, &input.id)? {
                return Ok(skipped(args, path, &entry, started));
            }
        }
        lease.check()?;
        let file = prepare(args, kind, &config, model, path)?;
        locked_load(store, args, path, file, &input, &lease, started)
    });
    // The renewals end before the lock goes.
    drop(lease);
    if let Err(e) = store.unlock(&args.name, &me) {
        eprintln!(
            "warning: the lock of '{}' could not be released ({e}); `manage db -a --fix` removes it",
            args.name
        );
    }
    result
}

/// The file's size and hash, and the ingest-log identity of loading it
/// with this model and config into NAME.
fn input_of(args: &Args, kind: ModelKind, config: &Config, path: &Path) -> Result<Input> {
    let (size, sha256) = hash_file(path)?;
    let input = input_digest(&sha256, kind, config);
    Ok(Input {
        size,
        sha256,
        id: ingest_id(&args.name, &input),
        input,
    })
}

/// Open the matrix and check it against the model (and `-d`), reading its
/// coordinates: everything that can refuse the file before the store is
/// written.
fn prepare(
    args: &Args,
    kind: ModelKind,
    config: &Config,
    mut model: Box<dyn Model>,
    path: &Path,
) -> Result<Prepared> {
    let var = config.string("var_name")?;
    let mut matrix = source::open(path, var.as_deref())?;
    model.inspect(&mut *matrix)?;
    model.check(matrix.info())?;
    if let Some(m) = &args.mediator {
        kind.check_mediator(m, Some(matrix.info()))?;
    }
    let coords = model.coordinates(&mut *matrix)?;
    Ok(Prepared {
        kind,
        model,
        matrix,
        coords,
    })
}

/// The ingest-log entry of `id`, when that input was loaded into `name`
/// and the dataset is complete.
fn already_loaded(store: &dyn Store, name: &str, id: &str) -> Result<Option<Document>> {
    match store.ingest_entry(id)? {
        Some(e) if store.entry(METADATA, name)?.is_some() => Ok(Some(e)),
        _ => Ok(None),
    }
}

fn skipped(args: &Args, path: &Path, entry: &Document, started: Instant) -> Report {
    let when = entry
        .get_datetime("loaded_at")
        .map(|d| format!(" on {}", d.to_chrono().format("%Y-%m-%dT%H:%M:%SZ")))
        .unwrap_or_default();
    Report {
        path: path.to_path_buf(),
        status: Status::Skipped,
        documents: 0,
        dates: Vec::new(),
        seconds: started.elapsed().as_secs_f64(),
        error: None,
        message: format!(
            "skipped {}: already loaded into {}{when} (same content and config); --force loads it again",
            shown(path),
            args.name
        ),
    }
}

/// Refuse a file that would add to dataset `name` documents of another
/// model, or values rounded to another precision, than it holds: the
/// dataset's `metadata` says which (see [`ModelKind::of_metadata`]).
fn check_fits_dataset(
    md: Option<Document>,
    name: &str,
    kind: ModelKind,
    model: &dyn Model,
    path: &Path,
) -> Result<()> {
    let Some(md) = md else {
        return Ok(());
    };
    if let Some(stored) = ModelKind::of_metadata(&md) {
        if stored != kind.layout() {
            return Err(Error::collection(
                name,
                format!(
                    "it holds {} data, and {} is loaded as {}; nothing was written (load it under another name)",
                    stored.layout_name(),
                    shown(path),
                    kind.name()
                ),
            ));
        }
    }
    let stored_precision = md.get("precision").and_then(|p| match p {
        Bson::Int32(n) => Some(i64::from(*n)),
        Bson::Int64(n) => Some(*n),
        Bson::Double(x) if x.fract() == 0.0 => Some(*x as i64),
        _ => None,
    });
    if let Some(p) = stored_precision {
        if p != i64::from(model.precision()) {
            return Err(Error::collection(
                name,
                format!(
                    "its values have precision {p}, and {} would add values with precision {}; nothing was written (set precision={p}, or load it under another name)",
                    shown(path),
                    model.precision()
                ),
            ));
        }
    }
    Ok(())
}

/// Refuse, before anything is written, a file whose `metadata` entry would
/// be over the document limit even before its dates and statistics: what
/// makes it so large is the config (a long title, units or unknown keys),
/// which is stored in it.
fn check_metadata_size(
    name: &str,
    path: &Path,
    model: &dyn Model,
    coords: &[[f64; 2]],
) -> Result<()> {
    let md = model.metadata(coords, &Summary::default());
    let bytes = bson::to_vec(&md).map_or(usize::MAX, |b| b.len());
    if bytes <= MAX_DOCUMENT_BYTES {
        return Ok(());
    }
    let largest = md
        .iter()
        .max_by_key(|(_, v)| bson::to_vec(&doc! {"v": *v}).map_or(usize::MAX, |b| b.len()))
        .map(|(k, _)| k.as_str())
        .unwrap_or("_id");
    Err(Error::collection(
        name,
        format!(
            "its metadata entry for {} would be {:.1} MiB, over MongoDB's 16 MiB document limit (its largest key, from the config, is '{largest}'); nothing was written",
            shown(path),
            bytes as f64 / (1024.0 * 1024.0)
        ),
    ))
}

/// The coordinates the dataset will have with this file, and whether the
/// dataset exists (so the metadata must cover what it holds already).
fn joined_coordinates(
    store: Option<&dyn Store>,
    name: &str,
    path: &Path,
    model: &dyn Model,
    coords: Vec<[f64; 2]>,
    stored_digest: Option<&str>,
) -> Result<(Vec<[f64; 2]>, bool)> {
    let Some(store) = store else {
        return Ok((coords, false));
    };
    // The same coordinates as stored: nothing to decode (and joining a
    // grid or a point list with itself gives it back).
    if stored_digest.is_some_and(|d| d == coords_digest(&coords)) {
        return Ok((coords, true));
    }
    let stored = store.entry(COORD_INDEX, name)?;
    let appending = stored.is_some() || store.count(name)? > 0;
    let coords = match &stored {
        None => coords,
        Some(entry) => {
            let cells = coords.len();
            coordinates_of(entry)
                .and_then(|old| model.join_coordinates(old, coords))
                .ok_or_else(|| coords_differ(name, path, cells))?
        }
    };
    Ok((coords, appending))
}

/// A grid file whose coordinates are not the dataset's.
fn coords_differ(name: &str, path: &Path, cells: usize) -> Error {
    Error::collection(
        name,
        format!(
            "its stored coord_index differs from the coordinates of {} ({cells} cells); load it under another name",
            shown(path),
        ),
    )
}

/// The digest of a dataset's coordinates, kept in its summary entry: the
/// SHA-256 of their doubles, little-endian, x then y.
fn coords_digest(coords: &[[f64; 2]]) -> String {
    let mut h = Sha256::new();
    for [x, y] in coords {
        h.update(x.to_le_bytes());
        h.update(y.to_le_bytes());
    }
    hex(&h.finalize())
}

/// Which summary entries this version writes and reads.
const SUMMARY_VERSION: i32 = 1;

/// The entry of `name` in [`SUMMARY`]; `None` (no entry) when it would not
/// fit one document.
fn summary_entry(name: &str, coords: &[[f64; 2]], summary: &Summary) -> Option<Document> {
    let entry = doc! {
        "_id": name,
        "version": SUMMARY_VERSION,
        "coords_sha256": coords_digest(coords),
        "summary": summary.to_stored(),
    };
    let size = bson::to_vec(&entry).map(|b| b.len()).unwrap_or(usize::MAX);
    (size <= MAX_DOCUMENT_BYTES).then_some(entry)
}

/// The stored summary of dataset `name` and the digest of its coordinates,
/// when the dataset is complete and the summary is one this version wrote
/// for as many documents as the collection holds.
fn stored_summary(store: &dyn Store, name: &str) -> Result<Option<(Summary, String)>> {
    let Some(entry) = store.entry(SUMMARY, name)? else {
        return Ok(None);
    };
    if entry.get_i32("version").ok() != Some(SUMMARY_VERSION)
        || store.entry(METADATA, name)?.is_none()
    {
        return Ok(None);
    }
    let summary = entry
        .get_document("summary")
        .ok()
        .and_then(Summary::from_stored);
    let digest = entry.get_str("coords_sha256").ok().map(str::to_string);
    // Checked against the collection's document count as the store keeps
    // it (an exact count reads every document on MongoDB).
    match (summary, digest) {
        (Some(s), Some(d)) if s.documents == store.count_kept(name)? => Ok(Some((s, d))),
        _ => Ok(None),
    }
}

/// An append to MongoDB cut short in its merge leaves NAME without its
/// `metadata` entry and names itself in the summary entry: only that same
/// load, run again, may go on (it writes every document of its file again),
/// so that no other file's load makes NAME look complete meanwhile.
fn refuse_over_unfinished_append(store: &dyn Store, name: &str, id: &str) -> Result<()> {
    let Some(entry) = store.entry(SUMMARY, name)? else {
        return Ok(());
    };
    match entry.get("pending") {
        Some(Bson::String(p)) if p != id => Err(Error::collection(
            name,
            format!(
                "an append of {} was cut short; run that load again to finish it (or `manage remove -n {name}`) before loading another file",
                entry.get_str("path").unwrap_or("another file")
            ),
        )),
        _ => Ok(()),
    }
}

/// A document's `_id`.
fn id_of(doc: &RawDocumentBuf) -> Option<Bson> {
    let id = doc.get("_id").ok().flatten()?;
    Bson::try_from(id.to_raw_bson()).ok()
}

/// Convert the file, handing each batch of documents to `out`; the summary
/// of the file's own documents and how many there were.
fn convert(
    model: &dyn Model,
    matrix: &mut dyn Matrix,
    args: &Args,
    out: &mut dyn FnMut(Batch) -> Result<()>,
) -> Result<(Summary, usize, Progress)> {
    let mut summary = Summary::default();
    let mut documents = 0usize;
    let expected = model.expected_documents(matrix.info());
    let mut progress = Progress::new(&args.name, expected, args.quiet || args.json);
    model.convert(matrix, &mut |mut batch| {
        documents += batch.len();
        progress.inc(batch.len());
        summary = std::mem::take(&mut summary).merge(std::mem::take(&mut batch.summary));
        out(batch)
    })?;
    Ok((summary, documents, progress))
}

fn dates_of(summary: &Summary) -> Vec<String> {
    summary.times.keys().map(|&t| model::iso_date(t)).collect()
}

fn span_of(summary: &Summary) -> String {
    match (summary.times.keys().next(), summary.times.keys().last()) {
        (Some(&a), Some(&b)) => format!(" ({} to {})", model::iso_date(a), model::iso_date(b)),
        _ => String::new(),
    }
}

/// A load that, should it fail because another process took its lock
/// over, is abandoned to that process rather than undone (see
/// [`Load::abandon`]).
struct Guarded<'l, 'a> {
    load: Option<Box<dyn Load + 'l>>,
    lease: &'a Lease,
}

impl<'l> Guarded<'l, '_> {
    fn commit(mut self, coord_index: RawDocumentBuf, metadata: Document) -> Result<()> {
        match self.load.take() {
            Some(l) => l.commit_raw(coord_index, metadata),
            None => Ok(()),
        }
    }
}

impl<'l> std::ops::Deref for Guarded<'l, '_> {
    type Target = dyn Load + 'l;
    fn deref(&self) -> &Self::Target {
        self.load.as_deref().expect("a load not yet committed")
    }
}

impl std::ops::DerefMut for Guarded<'_, '_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.load.as_deref_mut().expect("a load not yet committed")
    }
}

impl Drop for Guarded<'_, '_> {
    fn drop(&mut self) {
        if let Some(l) = self.load.take() {
            if self.lease.lost() {
                l.abandon();
            }
        }
    }
}

/// The load itself, under NAME's lock. Whether NAME exists, its stored
/// coordinates and the ingest log are read again here: another run may
/// have loaded into NAME while this one waited for the lock.
fn locked_load(
    store: &mut dyn Store,
    args: &Args,
    path: &Path,
    mut file: Prepared,
    input: &Input,
    lease: &Lease,
    started: Instant,
) -> Result<Report> {
    let name = &args.name;
    if !args.force {
        if let Some(entry) = already_loaded(store, name, &input.id)? {
            return Ok(skipped(args, path, &entry, started));
        }
    }
    refuse_over_unfinished_append(&*store, name, &input.id)?;
    check_fits_dataset(
        store.entry(METADATA, name)?,
        name,
        file.kind,
        &*file.model,
        path,
    )?;
    let stored = stored_summary(&*store, name)?;
    let coords = std::mem::take(&mut file.coords);
    let (coords, appending) = joined_coordinates(
        Some(&*store),
        name,
        path,
        &*file.model,
        coords,
        stored.as_ref().map(|(_, d)| d.as_str()),
    )?;

    check_metadata_size(name, path, &*file.model, &coords)?;

    // The summary of the dataset as it will be: the stored one, less the
    // documents this load replaces, plus the file's. Only the replaced
    // documents are read. Without a stored summary (a store written before
    // there was one, or one that does not fit) every document is read once.
    let mut base = match (appending, stored) {
        (false, _) => Some(Summary::default()),
        (true, Some((s, _))) => Some(s),
        (true, None) => None,
    };
    let mut written: HashSet<Vec<u8>> = HashSet::new();
    let model = &*file.model;
    let mut load = Guarded {
        load: Some(store.begin_load(name)?),
        lease,
    };
    let (file_summary, documents, mut progress) =
        convert(model, &mut *file.matrix, args, &mut |batch| {
            // A signal, or the lock lost: the load fails here, and its
            // writes are undone with it.
            lease.check()?;
            if appending && base.is_some() {
                let ids: Vec<Bson> = batch
                    .docs
                    .iter()
                    .filter_map(id_of)
                    .chain(batch.packed.iter().map(|p| p.id.clone()))
                    .collect();
                // An _id twice in one load, or one that cannot be read:
                // the merge cannot tell what is replaced; read everything.
                let repeated =
                    ids.len() != batch.len() || !ids.iter().all(|id| written.insert(sort_key(id)));
                if repeated {
                    base = None;
                } else {
                    let mut fits = true;
                    load.stored(&ids, &mut |old| {
                        if let Some(b) = &mut base {
                            fits &= b.subtract(&model.summarize(&old));
                        }
                        Ok(())
                    })?;
                    if !fits {
                        base = None;
                    }
                }
            }
            if !batch.docs.is_empty() {
                load.write_raw(batch.docs)?;
            }
            load.write_packed(batch.packed)
        })?;
    progress.committing(name);
    let summary = match base {
        Some(b) if b.compatible(&file_summary) => b.merge(file_summary.clone()),
        _ => {
            // Dates and statistics describe the whole collection, old times too.
            let mut all = Summary::default();
            load.scan(&mut |d| {
                all = std::mem::take(&mut all).merge(model.summarize(&d));
                Ok(())
            })?;
            all
        }
    };
    load.set_summary(summary_entry(name, &coords, &summary));
    let dates = dates_of(&file_summary);
    let metadata = model.metadata(&coords, &summary);
    load.log_ingest(ingest_entry(
        args,
        path,
        input,
        &dates,
        documents,
        started.elapsed().as_secs_f64(),
    ))?;
    lease.check()?;
    load.commit(model::coord_index_raw(name, &coords), metadata)?;
    drop(progress);

    let seconds = started.elapsed().as_secs_f64();
    Ok(Report {
        path: path.to_path_buf(),
        status: Status::Loaded,
        documents,
        message: format!(
            "loaded {name}: {} from {} in {seconds:.2} s; the collection now spans {}{}",
            plural(documents as u64, "document"),
            shown(path),
            plural(summary.times.len() as u64, "time"),
            span_of(&summary),
        ),
        dates,
        seconds,
        error: None,
    })
}

/// The ingest-log entry of one loaded file.
fn ingest_entry(
    args: &Args,
    path: &Path,
    input: &Input,
    dates: &[String],
    documents: usize,
    seconds: f64,
) -> Document {
    let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let me = Holder::this_process();
    doc! {
        "_id": &input.id,
        "name": &args.name,
        "path": absolute.display().to_string(),
        "size": input.size as i64,
        "sha256": &input.sha256,
        "input": &input.input,
        "model": &args.model,
        "dates": dates,
        "documents": documents as i64,
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "version": env!("CARGO_PKG_VERSION"),
        "loaded_at": bson::DateTime::from_chrono(me.started),
        "loaded_by": format!("{}@{}", me.owner, me.host),
        "force": args.force,
    }
}

/// `--dry-run`: everything a load does but write; the store is only read.
fn dry_run(
    store: Option<&dyn Store>,
    pending: &mut Pending,
    args: &Args,
    kind: ModelKind,
    path: &Path,
    mut file: Prepared,
    started: Instant,
) -> Result<Report> {
    let name = &args.name;
    let md = match &pending.metadata {
        Some(md) => Some(md.clone()),
        None => store
            .map(|s| s.entry(METADATA, name))
            .transpose()?
            .flatten(),
    };
    check_fits_dataset(md, name, kind, &*file.model, path)?;
    let coords = std::mem::take(&mut file.coords);
    let (coords, appending) = match pending.coords.take() {
        // The files before this one would have made the coord_index.
        Some(before) => {
            let cells = coords.len();
            let joined = file.model.join_coordinates(before.clone(), coords);
            pending.coords = Some(before);
            // The run's own words: the files before this one would be stored.
            let joined = joined.ok_or_else(|| coords_differ(name, path, cells))?;
            (joined, true)
        }
        None => joined_coordinates(store, name, path, &*file.model, coords, None)?,
    };
    check_metadata_size(name, path, &*file.model, &coords)?;
    let (summary, documents, _) = convert(&*file.model, &mut *file.matrix, args, &mut |_| Ok(()))?;
    let into = match (appending, &pending.metadata) {
        (false, _) => "a new dataset",
        (true, Some(_)) => "adding to what the files before it would load",
        (true, None) => "adding to the existing dataset",
    };
    pending.metadata = Some(file.model.metadata(&coords, &summary));
    pending.coords = Some(coords);
    Ok(Report {
        path: path.to_path_buf(),
        status: Status::WouldLoad,
        documents,
        message: format!(
            "dry run: would load {} from {} into {name} ({into}), {}{}; nothing written",
            plural(documents as u64, "document"),
            shown(path),
            plural(summary.times.len() as u64, "time"),
            span_of(&summary),
        ),
        dates: dates_of(&summary),
        seconds: started.elapsed().as_secs_f64(),
        error: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_sorts_by_name_and_reports_what_matches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("sub")).unwrap();
        for f in ["b_2.mat", "a_3.mat", "sub/a_1.mat", "c.json"] {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        let pat = |p: &str| d.join(p);
        let (files, bad) = expand(&[
            pat("*.mat"),
            pat("sub/*.mat"),
            pat("a_3.mat"),
            pat("*.nothing"),
        ]);
        let names: Vec<_> = files
            .iter()
            .map(|p| p.strip_prefix(d).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["sub/a_1.mat", "a_3.mat", "b_2.mat"]);
        assert_eq!(bad.len(), 1);
        assert!(bad[0].1.contains("no file matches"), "{bad:?}");
        // A directory stands for its data files; a plain missing path is kept.
        let (files, bad) = expand(&[pat("sub"), pat("missing.mat")]);
        assert_eq!(files, [pat("sub/a_1.mat"), pat("missing.mat")]);
        assert!(bad.is_empty());
    }

    #[test]
    fn file_hash_is_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("abc");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            hash_file(&p).unwrap(),
            (
                3,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".to_string()
            )
        );
    }

    #[test]
    fn lock_timeouts_parse() {
        assert_eq!(parse_seconds("2.5").unwrap(), Duration::from_millis(2500));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("soon").is_err());
    }
}
