//! `manage remove -n NAME`: delete a dataset (its collection, its entries,
//! its ingest log; see `store::Datasets::remove`) in one step.

use crate::error::Result;
use crate::store::{self, validate_name, Datasets};

/// Delete a dataset: its collection, its metadata, coord_index and summary entries, and its ingest log.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  manage remove -n casa_2004")]
#[command(mut_arg("name", |a| a.help("The dataset to delete")))]
pub struct Args {
    #[command(flatten)]
    pub dataset: crate::cmd::args::Name,
}

pub fn run(db: Option<&str>, args: &Args) -> Result<()> {
    validate_name(&args.dataset.name)?;
    let mut store = store::open_existing(db)?;
    crate::store::Datasets::require(&*store, &args.dataset.name)?;
    let name = args.dataset.name.as_str();
    store::lock::with_locks(&mut *store, &[name], |s| s.remove(name))?;
    println!("removed {}", args.dataset.name);
    Ok(())
}
