//! `manage export -n NAME`: read a dataset's documents back, one per line.

use crate::cmd::{extended_json, require_dataset, stdout_lines, write_error};
use crate::config::parse_timestamp;
use crate::error::{Error, Result};
use crate::model::bson_date;
use crate::store::{self, Filter, Store, METADATA};

/// Output formats of `export`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// One document per line as relaxed MongoDB Extended JSON
    Jsonl,
}

/// Write a dataset's documents to stdout in _id order.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  manage export -n casa_2004 > casa_2004.jsonl\n  manage export -n casa_2004 --at 2004-06-30T03:00:00"
)]
pub struct Args {
    /// The dataset to export
    #[arg(
        short = 'n',
        long = "collection_name",
        visible_alias = "collection-name",
        value_name = "NAME"
    )]
    pub name: String,

    /// Only the document(s) of this time (ISO 8601, UTC unless an offset is given)
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,

    /// Output format
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: Format,
}

pub fn run(db: Option<&str>, args: &Args) -> Result<()> {
    let filter = match &args.at {
        None => Filter::All,
        Some(t) => {
            let time = parse_timestamp(t).ok_or_else(|| {
                Error::Usage(format!(
                    "--at '{t}' is not a valid ISO 8601 time such as 2004-06-30T03:00:00"
                ))
            })?;
            Filter::Id(bson_date(time).into())
        }
    };
    let store = store::open(db)?;
    require_dataset(&*store, &args.name)?;
    // Point data (metadata `gridded: false`) is keyed by point, not by time:
    // the points of one time are those whose `timestamp` is that time.
    let filter = match filter {
        Filter::Id(time) if is_point_data(&*store, &args.name)? => {
            Filter::Field("timestamp".into(), time)
        }
        other => other,
    };
    let mut written = 0u64;
    stdout_lines(|out| {
        store.scan(&args.name, &filter, &mut |doc| {
            written += 1;
            writeln!(out, "{}", extended_json(doc)).map_err(write_error)
        })
    })?;
    if written == 0 {
        if let Some(t) = &args.at {
            return Err(Error::collection(
                &args.name,
                format!(
                    "has no document at {t}; `manage db -n {}` lists its dates",
                    args.name
                ),
            ));
        }
    }
    Ok(())
}

/// Whether the dataset holds points rather than grids, as its metadata says.
fn is_point_data(store: &dyn Store, name: &str) -> Result<bool> {
    Ok(store
        .entry(METADATA, name)?
        .is_some_and(|m| m.get_bool("gridded") == Ok(false)))
}
