//! `manage remove -n NAME`: delete a dataset (its collection and its
//! `metadata` and `coord_index` entries) in one step.

use crate::error::Result;
use crate::store::{self, validate_name};

/// Delete a dataset: its collection and its metadata and coord_index entries.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  manage remove -n casa_2004")]
pub struct Args {
    /// The dataset to delete
    #[arg(
        short = 'n',
        long = "collection_name",
        visible_alias = "collection-name",
        value_name = "NAME"
    )]
    pub name: String,
}

pub fn run(db: Option<&str>, args: &Args) -> Result<()> {
    validate_name(&args.name)?;
    let mut store = store::open_existing(db)?;
    crate::cmd::require_dataset(&*store, &args.name)?;
    let name = args.name.as_str();
    store::lock::with_locks(&mut *store, &[name], |s| s.remove(name))?;
    println!("removed {}", args.name);
    Ok(())
}
