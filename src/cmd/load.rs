//! `manage load -p PATH -m MODEL -n NAME`: read a matrix, convert it to
//! documents in parallel, and write them with the dataset's `coord_index`
//! and `metadata` entries in one atomic load.
//!
//! Everything that can be refused (name, model, config, file, variable,
//! shape, coordinates that differ from the stored ones) is refused before
//! the store is written.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::{self, Config};
use crate::error::{Error, Result};
use crate::model::{self, coord_index_document, coordinates_of, ModelKind, Summary};
use crate::source;
use crate::store::{self, validate_name, COORD_INDEX};

/// Load a matrix file into dataset NAME (adding its times if NAME exists).
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The config is read from the JSON file beside the data file (data.mat -> data.json)
or from -c; -o overrides its keys. Keys: var_name, timestamp, step/steps, span/spans,
columns, gridres/grid, header, parameters, title, units, precision, formats, regex.

Examples:
  manage load -p sample-data/flux_na_2004.mat -m SpatioTemporalMatrix -n flux_na
  manage load -p casa.mat -m SpatioTemporalMatrix -n casa_2004 \\
      -o \"timestamp=2004-06-30T00:00:00;title=CASA-GFED 2004\"")]
pub struct Args {
    /// The data file: MATLAB .mat (v5 to v7.3) or HDF5
    #[arg(short = 'p', long = "path", value_name = "PATH")]
    pub path: PathBuf,

    /// What the matrix holds: SpatioTemporalMatrix, KrigedXCO2Matrix or XCO2Matrix
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

    /// No progress bar (it is shown only on a terminal, for loads of more than a moment)
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
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

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
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

pub fn run(db: Option<&str>, args: &Args) -> Result<()> {
    let started = Instant::now();
    return_large_buffers_to_the_system();
    validate_name(&args.name)?;
    let kind = ModelKind::parse(&args.model)?;
    // A missing or unreadable file is named before anything is said of its config.
    source::detect(&args.path)?;
    if let Some(m) = &args.mediator {
        if m != kind.mediator() {
            return Err(Error::Usage(format!(
                "mediator '{m}' does not fit model {}; it uses {}",
                args.model,
                kind.mediator()
            )));
        }
    }
    let config = build_config(
        kind,
        &args.path,
        args.config_file.as_deref(),
        args.options.as_deref(),
    )?;
    let unknown = config.unknown_keys();
    if !unknown.is_empty() {
        let keys: Vec<_> = unknown.keys().map(String::as_str).collect();
        eprintln!(
            "warning: unknown config keys kept in the metadata as they are: {}",
            keys.join(", ")
        );
    }
    let model = kind.build(&args.name, &config)?;

    let var = config.string("var_name")?;
    let mut matrix = source::open(&args.path, var.as_deref())?;
    model.check(matrix.info())?;
    let coords = model.coordinates(&mut *matrix)?;

    let mut store = store::open(db)?;
    let stored = store.entry(COORD_INDEX, &args.name)?;
    if let Some(entry) = &stored {
        if coordinates_of(entry).as_deref() != Some(&coords[..]) {
            return Err(Error::collection(
                &args.name,
                format!(
                    "its stored coord_index differs from the coordinates of {} ({} cells); load it under another name",
                    args.path.display(),
                    coords.len()
                ),
            ));
        }
    }
    let appending = stored.is_some() || store.count(&args.name)? > 0;

    let mut load = store.begin_load(&args.name)?;
    let mut summary = Summary::default();
    let mut written = 0usize;
    let steps = matrix.info().cols.saturating_sub(2);
    let mut progress = Progress::new(&args.name, steps, args.quiet);
    model.convert(&mut *matrix, &mut |batch| {
        written += batch.docs.len();
        progress.inc(batch.docs.len());
        if !appending {
            summary = std::mem::take(&mut summary).merge(batch.summary);
        }
        load.write_raw(batch.docs)
    })?;
    if appending {
        // Dates and statistics describe the whole collection, old times too.
        load.scan(&mut |d| {
            summary = std::mem::take(&mut summary).merge(model.summarize(&d));
            Ok(())
        })?;
    }
    let metadata = model.metadata(&coords, &summary);
    load.commit(coord_index_document(&args.name, &coords), metadata)?;
    drop(progress);

    let span = match (summary.times.keys().next(), summary.times.keys().last()) {
        (Some(&a), Some(&b)) => format!(" ({} to {})", model::iso_date(a), model::iso_date(b)),
        _ => String::new(),
    };
    println!(
        "loaded {}: {written} documents from {} in {:.2} s; the collection now spans {} times{span}",
        args.name,
        args.path.display(),
        started.elapsed().as_secs_f64(),
        summary.times.len(),
    );
    Ok(())
}
