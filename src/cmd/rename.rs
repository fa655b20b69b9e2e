//! `manage rename -n NAME -r NEW_NAME`: move a dataset and every part of it
//! to a new name, all or nothing (see `store::Datasets::rename`).

use crate::error::{Error, Result};
use crate::store::{self, validate_name, Datasets};

/// Rename a dataset: its collection, its metadata, coord_index and summary entries, and its ingest log.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  manage rename -n casa_2004 -r casa_gfed_2004")]
#[command(mut_arg("name", |a| a.help("The dataset to rename")))]
pub struct Args {
    #[command(flatten)]
    pub dataset: crate::cmd::args::Name,

    /// Its new name; refused if anything by that name exists
    #[arg(
        short = 'r',
        long = "new_name",
        visible_alias = "new-name",
        value_name = "NEW_NAME"
    )]
    pub new_name: String,
}

pub fn run(db: Option<&str>, args: &Args) -> Result<()> {
    validate_name(&args.dataset.name)?;
    validate_name(&args.new_name)?;
    if args.dataset.name == args.new_name {
        return Err(Error::Usage(
            "the new name is the same as the old one".into(),
        ));
    }
    let mut store = store::open_existing(db)?;
    crate::store::Datasets::require(&*store, &args.dataset.name)?;
    let (from, to) = (args.dataset.name.as_str(), args.new_name.as_str());
    store::lock::with_locks(&mut *store, &[from, to], |s| s.rename(from, to))?;
    println!("renamed {} to {}", args.dataset.name, args.new_name);
    Ok(())
}
