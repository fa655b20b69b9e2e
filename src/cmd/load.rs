//! `manage load -p PATH -m MODEL -n NAME`: read a matrix, convert it to
//! documents in parallel, and write them with the dataset's `coord_index`
//! and `metadata` entries in one atomic load.
//!
//! Everything that can be refused (name, model, config, file, variable,
//! shape, coordinates that differ from the stored ones) is refused before
//! the store is written.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;

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

pub fn run(db: Option<&str>, args: &Args) -> Result<()> {
    let started = Instant::now();
    validate_name(&args.name)?;
    let kind = ModelKind::parse(&args.model)?;
    // A missing or unreadable file is named before anything is said of its config.
    source::detect(&args.path)?;
    if let Some(m) = &args.mediator {
        kind.check_mediator(m, None)?;
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
    if let Some(m) = &args.mediator {
        kind.check_mediator(m, Some(matrix.info()))?;
    }
    let coords = model.coordinates(&mut *matrix)?;

    let mut store = store::open(db)?;
    let stored = store.entry(COORD_INDEX, &args.name)?;
    let coords = match &stored {
        None => coords,
        Some(entry) => {
            let cells = coords.len();
            coordinates_of(entry)
                .and_then(|old| model.join_coordinates(old, coords))
                .ok_or_else(|| {
                    Error::collection(
                        &args.name,
                        format!(
                            "its stored coord_index differs from the coordinates of {} ({cells} cells); load it under another name",
                            args.path.display(),
                        ),
                    )
                })?
        }
    };
    let appending = stored.is_some() || store.count(&args.name)? > 0;

    let mut load = store.begin_load(&args.name)?;
    let mut summary = Summary::default();
    let mut written = 0usize;
    model.convert(&mut *matrix, &mut |docs| {
        written += docs.len();
        if !appending {
            let part = docs
                .par_iter()
                .map(|d| model.summarize(d))
                .reduce(Summary::default, Summary::merge);
            summary = std::mem::take(&mut summary).merge(part);
        }
        load.write(docs)
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
