//! One input into one dataset: config, matrix, model, store, summary,
//! ingest-log entry, commit. It prints nothing: what happened is returned
//! as an [`Outcome`], and what the user should see while it runs (warnings,
//! progress) goes to an [`Observer`]. `manage load` (`cmd::load`) is the
//! script around it: arguments, paths, reports.
//!
//! Everything that can be refused (model, config, file, variable, shape,
//! coordinates that differ from the stored ones) is refused before the store
//! is written. A load holds the dataset's lock in the store, so that two runs
//! into one dataset take turns; the ingest log says which inputs a dataset
//! holds already, so that a file loaded before is skipped.

mod checks;
pub(crate) mod foreign;
mod input;
pub(crate) mod summary;
mod target;

use std::path::Path;
use std::time::{Duration, Instant};

use bson::{Bson, Document};

use self::checks::{check_fits_dataset, check_metadata_size, joined_coordinates, Held};
use self::foreign::refuse_points;
use self::input::{Input, Stamp};
use self::summary::{summary_entry, DatasetSummary};
use self::target::{Done, DryRun, Locked, Pending, Target};
use crate::config::{self, Config};
use crate::doc::{Docs, METADATA};
use crate::error::{shown, Error, Result};
use crate::model::{self, Batch, Loss, Model, ModelKind, Summary};
use crate::source::{self, Matrix};
use crate::store::lock;
use crate::store::{self, Datasets, Entries, Store};

/// The least a load's writes wait for another process's write to finish.
const MIN_WRITE_WAIT: Duration = Duration::from_secs(5);

/// What to load, and how: everything of `manage load` but the paths.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The dataset.
    pub name: &'a str,
    pub kind: ModelKind,
    /// The model as given (`-m`), recorded in the ingest log.
    pub model: &'a str,
    /// `-c`: the config file of every input, instead of each one's sidecar.
    pub config_file: Option<&'a Path>,
    /// `-o`: overrides of config keys.
    pub options: Option<&'a str>,
    /// `-d`: the old tool's mediator, checked against the model.
    pub mediator: Option<&'a str>,
    /// Load inputs the ingest log says were loaded already.
    pub force: bool,
    /// Rewrite the dataset from the next input loaded, in one step
    /// (`--replace`); the inputs after it append.
    pub replace: bool,
    /// Read, check and convert, but write nothing.
    pub dry_run: bool,
    /// How long to wait for another load of the dataset.
    pub lock_timeout: Duration,
}

/// What the user is told while an input loads. Every method does nothing
/// by default.
pub trait Observer {
    /// A warning line (an ignored or unknown config key).
    fn warn(&mut self, _line: &str) {}
    /// Conversion starts: `total` documents are expected.
    fn started(&mut self, _total: usize) {}
    /// `n` more documents were converted (and, unless a dry run, written).
    fn advanced(&mut self, _n: usize) {}
    /// Every document is written; the commit is left.
    fn committing(&mut self) {}
}

/// Where the dataset's documents went, for a dry run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Destination {
    /// A dataset that does not exist yet.
    NewDataset,
    /// The dataset as the inputs before this one would make it.
    EarlierInputs,
    /// The stored dataset.
    ExistingDataset,
}

/// What became of one input.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Loaded: `documents` written, the dataset now spans `times` times
    /// from `first` to `last`.
    Loaded {
        documents: usize,
        /// The distinct times of the documents written, sorted.
        dates: Vec<String>,
        times: usize,
        span: Option<(String, String)>,
    },
    /// Already loaded into the dataset (same content and config), at
    /// `loaded_at` (`YYYY-MM-DDTHH:MM:SSZ`) when the log says.
    Skipped { loaded_at: Option<String> },
    /// A dry run that would load `documents`, of `times` times from
    /// `first` to `last`.
    WouldLoad {
        documents: usize,
        dates: Vec<String>,
        times: usize,
        span: Option<(String, String)>,
        into: Destination,
    },
}

/// Loads inputs into one dataset, one after the other, each in its own
/// atomic load. The store is opened on first use: for writing, or for a
/// dry run for reading only. A store that cannot be opened fails every
/// input that needs it, with the same message, without trying again.
pub struct Loader<'a> {
    request: Request<'a>,
    db: Option<&'a str>,
    opened: Option<Option<Box<dyn Store>>>,
    failure: Option<String>,
    /// A dry run: what the inputs before this one would have made of the dataset.
    pending: Pending,
}

/// One file, read and checked, ready to convert.
struct Prepared {
    model: Box<dyn Model>,
    matrix: Box<dyn Matrix>,
    coords: Vec<[f64; 2]>,
    /// `precision` was given (config file or `-o`): values it rounds to 0
    /// are warned about, not refused.
    precision_given: bool,
}

impl<'a> Loader<'a> {
    /// A loader into the store `db` names (`--db`, see [`store::open`]).
    pub fn new(db: Option<&'a str>, request: Request<'a>) -> Self {
        return_large_buffers_to_the_system();
        Self {
            request,
            db,
            opened: None,
            failure: None,
            pending: Pending::default(),
        }
    }

    /// The store; `None` only for a dry run on an embedded store that does
    /// not exist yet.
    fn store(&mut self) -> Result<Option<&mut (dyn Store + 'static)>> {
        if let Some(f) = &self.failure {
            return Err(Error::Usage(f.clone()));
        }
        if self.opened.is_none() {
            // The writes of a load wait for the store as long as
            // --lock-timeout says (a few seconds at least: another load's
            // commit is not a reason to fail); taking the lock waits only
            // what remains of it.
            let options = store::Options {
                embedded: store::embedded::Options {
                    busy_wait: self.request.lock_timeout.max(MIN_WRITE_WAIT),
                },
            };
            let opened = if self.request.dry_run {
                store::open_read_only(self.db)
            } else {
                store::open_with(self.db, &options).map(Some)
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

    /// Load (or for a dry run, check) one input.
    pub fn load(&mut self, path: &Path, observer: &mut dyn Observer) -> Result<Outcome> {
        let started = Instant::now();
        let r = self.request.clone();
        // A missing or unreadable file is named before anything is said of
        // its config (what else is wrong with it, when it is opened).
        let format = source::sniff(path)?;
        let config = config::for_load(r.kind.defaults(), path, r.config_file, r.options)?;
        let unknown = config.unknown_keys(model::is_known_key);
        if !unknown.is_empty() {
            let keys: Vec<_> = unknown.keys().map(String::as_str).collect();
            observer.warn(&format!(
                "warning: {}: unknown config keys kept in the metadata as they are: {}",
                shown(path),
                keys.join(", ")
            ));
        }
        for (key, origin, why) in r.kind.ignored_keys(&config) {
            observer.warn(&format!(
                "warning: {origin}: config key '{key}' is ignored: {why}"
            ));
        }
        let model = r.kind.build(r.name, &config)?;
        let lazy = source::formats::of(format).lazy;
        if r.dry_run {
            // No lock: the store is only read, and may not exist yet.
            self.store()?;
            let store = self.opened.as_ref().and_then(|s| s.as_deref());
            let mut target = DryRun::new(store, &mut self.pending);
            return run(
                &mut target,
                &r,
                &config,
                model,
                path,
                lazy,
                started,
                observer,
            );
        }
        // The lock is taken before the file is hashed, so that --lock-timeout
        // is the time waited, however large the file; and the check whether
        // the file was loaded already is made by the one holder of the lock.
        let store = self
            .store()?
            .ok_or_else(|| Error::store("open", "no store to write to"))?;
        lock::with_locks_waiting(
            store,
            &[r.name],
            r.lock_timeout,
            "try again later, or wait longer with --lock-timeout",
            |store, leases| {
                // A remove of NAME cut short is finished first (its ingest-log
                // entries would say the file is loaded); a rename cut short
                // must be finished by its own command.
                match store.unfinished_of(r.name)? {
                    Some(store::Unfinished::Remove { .. }) => {
                        observer.warn(&format!(
                            "note: a remove of '{}' was cut short; it is finished before this load",
                            r.name
                        ));
                        store.remove(r.name)?;
                    }
                    Some(other) => return Err(other.refusal(r.name)),
                    None => {}
                }
                // So is an append cut short, whichever file it loaded.
                if let Some(done) = store.finish_append(r.name)? {
                    observer.warn(&format!("note: {done}"));
                }
                let mut target = Locked {
                    store,
                    lease: &leases[0],
                };
                run(
                    &mut target,
                    &r,
                    &config,
                    model,
                    path,
                    lazy,
                    started,
                    observer,
                )
            },
        )
        .inspect(|outcome| {
            // One replacement: the inputs after it append to it.
            if matches!(outcome, Outcome::Loaded { .. }) {
                self.request.replace = false;
            }
        })
    }
}

/// Large buffers (blocks of columns, batches of documents) are allocated and
/// freed by several threads in turn. glibc's malloc raises its mmap
/// threshold after each such free and then keeps the freed megabytes in
/// per-thread arenas, which made the resident size of a load about double
/// what it holds. A fixed threshold returns every large buffer when freed.
/// Below it, freed memory at the top of a heap is kept up to 8 MiB instead
/// of glibc's 128 KiB: libhdf5 allocates and frees a buffer of about a
/// chunk (1 MB for a NetCDF step of the 0.5° grid) for each chunk it
/// reads, and each was given back and faulted in again.
fn return_large_buffers_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before the
    // load starts its threads.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
    }
}

/// The file's ingest-log identity (see [`Input::of`]) and the file
/// prepared (see [`prepare`]), side by side: hashing reads the whole file,
/// and checking the global heaps of an HDF5 or NetCDF file before it is
/// opened needs the whole file too, which one pass gives both. The file prepared is thrown away when the hash says it
/// was loaded already (a file skipped is read twice, at once).
fn hash_beside_prepare(
    r: &Request,
    config: &Config,
    model: Box<dyn Model>,
    path: &Path,
) -> (Result<Input>, Result<Prepared>) {
    // One pass over the file gives the hash and the places the heap check
    // looks at: whichever asks first reads it, the other waits for it.
    let _one_pass = source::scan::share(path);
    std::thread::scope(|s| {
        let hashing = s.spawn(|| Input::of(r.name, r.kind, config, path));
        let file = prepare(r, config, model, path);
        let input = hashing
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (input, file)
    })
}

/// A file opened beside its hash, or to be opened once the hash says it
/// is not loaded already.
enum Opening {
    Done(Result<Prepared>),
    Later(Box<dyn Model>),
}

/// Open the matrix and check it against the model (and `-d`), reading its
/// coordinates: everything that can refuse the file before the store is
/// written.
fn prepare(
    r: &Request,
    config: &Config,
    mut model: Box<dyn Model>,
    path: &Path,
) -> Result<Prepared> {
    let var = config.string("var_name")?;
    let mut matrix = source::open(path, var.as_deref())?;
    let applied = match crate::model::coarsen::Coarsening::from_config(config)? {
        Some(c) => {
            let origin = config.origin(&[crate::model::coarsen::KEY]);
            let Some(columns) = model.grid_columns() else {
                return Err(Error::config(
                    origin,
                    crate::model::coarsen::KEY,
                    format!(
                        "applies to the gridded models SpatioTemporalMatrix and CFGrid; {} data is not coarsened",
                        r.kind.name()
                    ),
                ));
            };
            let coarse = crate::model::coarsen::Coarsened::new(matrix, c, columns, &origin)?;
            let applied = coarse.applied().clone();
            matrix = Box::new(coarse);
            Some(applied)
        }
        None => None,
    };
    model.inspect(&mut *matrix)?;
    if let Some(a) = &applied {
        model.coarsened(a);
    }
    if let Err(e) = model.check(matrix.info()) {
        return Err(match model.grid_columns() {
            Some(columns) if applied.is_none() => {
                let most = crate::model::coarsen::cells_that_fit(model.name(), matrix.info().rows);
                crate::model::coarsen::with_fitting_factor(e, &mut *matrix, columns, most)
            }
            _ => e,
        });
    }
    if let Some(m) = r.mediator {
        r.kind.check_mediator(m, Some(matrix.info()))?;
    }
    if let Some((to, origin)) = config
        .string("units_to")?
        .and_then(|to| Some((to, config.get("units_to")?.1.to_string())))
    {
        matrix = converted(&mut *model, matrix, &to, &origin, path)?;
    }
    let coords = model.coordinates(&mut *matrix)?;
    Ok(Prepared {
        model,
        matrix,
        coords,
        precision_given: config.is_given("precision"),
    })
}

/// The matrix with its values converted to the unit `to` (config key
/// `units_to`, from layer `origin`), and the model told so. Refused when
/// the model's values are not converted, when their unit is not known, or
/// when the two units are not convertible (naming both).
fn converted(
    model: &mut dyn Model,
    matrix: Box<dyn Matrix>,
    to: &str,
    origin: &str,
    path: &Path,
) -> Result<Box<dyn Matrix>> {
    let Some((from, first)) = model.values_unit() else {
        return Err(Error::config(
            origin,
            "units_to",
            format!(
                "{} does not convert units (only SpatioTemporalMatrix and CFGrid do)",
                model.name()
            ),
        ));
    };
    let Some(from) = from else {
        return Err(Error::config(
            origin,
            "units_to",
            format!(
                "{} gives no unit for its values to convert from (CF `units` of the variable, or the config's `units.values`)",
                shown(path)
            ),
        ));
    };
    let conversion = crate::units::Conversion::new(&from, to)
        .map_err(|e| Error::config(origin, "units_to", format!("{}: {e}", shown(path))))?;
    model.convert_units(&conversion);
    Ok(Box::new(Converted {
        inner: matrix,
        conversion,
        first,
    }))
}

/// A matrix whose value columns (from `first` on) are converted as they
/// are read, before the model rounds them.
struct Converted {
    inner: Box<dyn Matrix>,
    conversion: crate::units::Conversion,
    first: usize,
}

impl Matrix for Converted {
    fn info(&self) -> &source::MatrixInfo {
        self.inner.info()
    }

    fn read_columns(&mut self, start: usize, count: usize) -> Result<ndarray::Array2<f64>> {
        let mut block = self.inner.read_columns(start, count)?;
        for (j, mut column) in block.columns_mut().into_iter().enumerate() {
            if start + j >= self.first {
                column.mapv_inplace(|x| self.conversion.apply(x));
            }
        }
        Ok(block)
    }

    fn grid_facts(&self) -> Option<&source::GridFacts> {
        self.inner.grid_facts()
    }
}

/// The ingest-log entry of `id`, when that input was loaded into `name`
/// and the dataset is complete.
fn already_loaded(store: &dyn Store, name: &str, id: &str) -> Result<Option<Document>> {
    match store.ingest_entry(id)? {
        Some(e) if store.entry(METADATA, name)?.is_some() => Ok(Some(e)),
        _ => Ok(None),
    }
}

fn skipped(entry: &Document) -> Outcome {
    Outcome::Skipped {
        loaded_at: entry
            .get_datetime(crate::doc::ingest_log::LOADED_AT)
            .ok()
            .map(|d| d.to_chrono().format("%Y-%m-%dT%H:%M:%SZ").to_string()),
    }
}

/// Convert the file, handing each batch of documents to `out`; the summary
/// of the file's own documents and how many there were. Rounding that
/// turned more than 1% of the file's non-zero values into 0 fails the
/// load (so nothing of it is committed), or is a warning when the
/// precision was given or is the dataset's (`lenient`).
fn convert(
    model: &dyn Model,
    matrix: &mut dyn Matrix,
    lenient: bool,
    observer: &mut dyn Observer,
    out: &mut dyn FnMut(Batch) -> Result<()>,
) -> Result<(Summary, usize)> {
    let mut summary = Summary::default();
    let mut loss = Loss::default();
    let mut documents = 0usize;
    observer.started(model.expected_documents(matrix.info()));
    model.convert(matrix, &mut |mut batch| {
        documents += batch.len();
        observer.advanced(batch.len());
        summary = std::mem::take(&mut summary).merge(std::mem::take(&mut batch.summary));
        loss.merge(std::mem::take(&mut batch.loss));
        out(batch)
    })?;
    if loss.too_much() {
        let info = matrix.info();
        let p = model.precision();
        let finding = format!(
            "rounding to precision {p} (decimals) stores {:.1}% of its non-zero values ({} of {}) as 0",
            loss.percent_zeroed(),
            loss.zeroed,
            loss.nonzero
        );
        let ways_out = format!(
            "precision={} keeps 4 significant digits; or convert the values to a larger unit with units_to",
            loss.precision_for_4_digits()
        );
        if lenient {
            observer.warn(&format!(
                "warning: {}: {finding}, as asked ({ways_out})",
                shown(&info.path)
            ));
        } else {
            return Err(Error::format(
                &info.path,
                format!("{finding}; nothing was written ({ways_out})"),
            ));
        }
    }
    Ok((summary, documents))
}

fn dates_of(summary: &Summary) -> Vec<String> {
    summary
        .times
        .keys()
        .map(|&t| crate::time::iso_date(t))
        .collect()
}

/// The first and last time of a summary.
fn span_of(summary: &Summary) -> Option<(String, String)> {
    match (summary.times.keys().next(), summary.times.keys().last()) {
        (Some(&a), Some(&b)) => Some((crate::time::iso_date(a), crate::time::iso_date(b))),
        _ => None,
    }
}

/// Let the model settle its precision where it chooses one (CFGrid
/// without `precision`: from the file, or the dataset's when it exists);
/// whether values it rounds to 0 are only warned about: the precision was
/// given, or is the one the dataset was loaded with.
fn settle_precision(file: &mut Prepared, md: Option<&Document>) -> Result<bool> {
    let stored = md.and_then(checks::stored_precision);
    let adopted = if file.precision_given {
        false
    } else {
        file.model.settle_precision(stored, &mut *file.matrix)?
    };
    Ok(file.precision_given || adopted)
}

/// The ingest-log facts of the file being loaded, and its stamp from
/// before any of it was read.
struct ReadFrom<'a> {
    input: &'a Input,
    stamp: &'a Stamp,
}

/// One input into `target`: hashed (beside its opening, for a format
/// opened lazily), skipped when the dataset holds it already, else
/// prepared and put through the [`pipeline`].
#[allow(clippy::too_many_arguments)]
fn run(
    target: &mut dyn Target,
    r: &Request,
    config: &Config,
    model: Box<dyn Model>,
    path: &Path,
    lazy: bool,
    started: Instant,
    observer: &mut dyn Observer,
) -> Result<Outcome> {
    // What the file is before any of it is read, hashed or parsed:
    // checked again once everything is read.
    let stamp = Stamp::of(path)?;
    let (input, file) = if lazy {
        let (input, file) = hash_beside_prepare(r, config, model, path);
        (input?, Opening::Done(file))
    } else {
        let input = Input::of(r.name, r.kind, config, path)?;
        (input, Opening::Later(model))
    };
    if !r.force {
        if let Some(skip) = target.loaded(r.name, &input.id)? {
            return Ok(skip);
        }
    }
    target.check()?;
    let file = match file {
        Opening::Done(prepared) => prepared?,
        Opening::Later(model) => prepare(r, config, model, path)?,
    };
    let read = ReadFrom {
        input: &input,
        stamp: &stamp,
    };
    pipeline(target, r, path, file, read, started, observer)
}

/// The checks, the conversion and the commit of one prepared input, the
/// same for a load (under the dataset's lock) and a dry run: what differs
/// is the `target` they read from and write into. Everything that can
/// refuse the file is checked before the load begins; a check added here
/// is one a dry run makes too.
fn pipeline(
    target: &mut dyn Target,
    r: &Request,
    path: &Path,
    mut file: Prepared,
    read: ReadFrom,
    started: Instant,
    observer: &mut dyn Observer,
) -> Result<Outcome> {
    let name = r.name;
    let input = read.input;
    // A replacement is a first load of NAME: nothing stored is kept, so
    // nothing stored is checked against the file.
    let replace = r.replace;
    let stored_md = if replace {
        None
    } else {
        target.refuse_unfinished(name, &input.id)?;
        target.metadata(name)?
    };
    let lenient = settle_precision(&mut file, stored_md.as_ref())?;
    check_fits_dataset(stored_md.clone(), name, r.kind, &*file.model, path)?;
    // A dataset the old tool wrote: points are refused below, before any
    // document is written; grids append.
    let foreign = target
        .foreign(name, stored_md.as_ref())?
        .filter(|f| f.points);
    let stored = match replace {
        true => None,
        false => target.summary(name)?,
    };
    let coords = std::mem::take(&mut file.coords);
    let held = match replace {
        true => Held::Nothing,
        false => target.held(name, stored.as_ref().map(|(_, d)| d.as_str()), &coords)?,
    };
    let (coords, appending) = joined_coordinates(held, name, path, &*file.model, coords)?;
    check_metadata_size(name, path, &*file.model, &coords)?;

    let mut summary = DatasetSummary::new(appending, stored.map(|(s, _)| s));
    let model = &*file.model;
    let writes = target.writes();
    let mut load = target.begin(name, replace)?;
    let (file_summary, documents) =
        convert(model, &mut *file.matrix, lenient, observer, &mut |batch| {
            if let Some(f) = &foreign {
                let docs: Vec<Document> = batch
                    .docs
                    .iter()
                    .filter_map(|d| d.to_document().ok())
                    .collect();
                return Err(refuse_points(name, &shown(path), f, &docs));
            }
            summary.replacing(&batch, model, &mut |ids, f| load.stored(ids, f))?;
            if !batch.docs.is_empty() {
                load.write(Docs::Bson(batch.docs))?;
            }
            if !batch.packed.is_empty() {
                load.write(Docs::Steps(batch.packed))?;
            }
            Ok(())
        })?;
    if writes {
        observer.committing();
    }
    let dataset = summary.finish(&file_summary, model, &mut |f| load.scan(f))?;
    let dates = dates_of(&file_summary);
    let mut metadata = model.metadata(&coords, &dataset);
    if let Some(md) = stored_md.as_ref().filter(|_| appending) {
        keep_stored_labels(name, md, &mut metadata, r.options, observer);
    }
    // The hash logged and the values stored must come from the same
    // bytes: a file written or replaced since it was stamped fails the
    // load, and nothing of it is committed.
    read.stamp.check_unchanged(path)?;
    let entries = Entries {
        summary: summary_entry(name, &coords, &dataset),
        ingest: vec![input.entry(r, path, &dates, documents, started.elapsed().as_secs_f64())],
        replaces: replace,
        ..Entries::new(name, crate::doc::coord_index_raw(name, &coords), metadata)
    };
    load.commit(entries)?;
    Ok(target.outcome(Done {
        documents,
        dates,
        file: &file_summary,
        dataset: &dataset,
        appending,
    }))
}

/// An append keeps the dataset's stored `title` and `units` (those the
/// Carbon Data Explorer shows, perhaps set by another tool) unless `-o`
/// sets them; a config that says otherwise is warned about.
fn keep_stored_labels(
    name: &str,
    stored: &Document,
    metadata: &mut Document,
    options: Option<&str>,
    observer: &mut dyn Observer,
) {
    for key in [crate::doc::fields::TITLE, crate::doc::fields::UNITS] {
        let Some(old) = stored.get(key) else {
            continue;
        };
        if metadata.get(key) == Some(old) || foreign::overridden(options, key) {
            continue;
        }
        let new = metadata
            .get(key)
            .map_or("none".to_string(), Bson::to_string);
        observer.warn(&format!(
            "warning: {name}: the config's {key} {new} differs from the stored {key} {old}; the stored one is kept (-o {key}=... sets it)"
        ));
        metadata.insert(key, old.clone());
    }
}
