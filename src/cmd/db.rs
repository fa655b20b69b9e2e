//! `manage db`: look at what the store holds.
//!
//! `-l` lists collections or the entries of a bookkeeping collection, `-n`
//! prints one metadata document, `-a` audits that every dataset has its
//! three parts (exit 3 when it finds a dataset that does not).

use std::process::ExitCode;

use crate::cmd::{extended_json, stdout_lines, write_error};
use crate::error::{Error, Result};
use crate::store::{self, staged_dataset, Store, COORD_INDEX, METADATA};

/// What `-l` lists.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ListWhat {
    /// The data collections
    Collections,
    /// The _ids of the metadata entries
    Metadata,
    /// The _ids of the coord_index entries
    #[value(name = "coord_index")]
    CoordIndex,
}

/// Inspect the store: list, show one dataset's metadata, or audit.
#[derive(Debug, clap::Args)]
#[command(
    group = clap::ArgGroup::new("action").required(true).args(["list_ids", "name", "audit"]),
    after_help = "Examples:\n  manage db -l collections -x     # every dataset with its document count\n  manage db -n casa_2004          # its metadata document, as JSON\n  manage db -a                    # exit 3 if any dataset is incomplete"
)]
pub struct Args {
    /// List the data collections, or the _ids in metadata or coord_index
    #[arg(
        short = 'l',
        long = "list_ids",
        visible_alias = "list-ids",
        value_enum,
        value_name = "WHAT"
    )]
    pub list_ids: Option<ListWhat>,

    /// With -l: add each dataset's document count, as `NAME (N records)`
    #[arg(
        short = 'x',
        long = "include_counts",
        visible_alias = "include-counts",
        requires = "list_ids"
    )]
    pub include_counts: bool,

    /// Print the metadata document of dataset NAME as one JSON object
    #[arg(
        short = 'n',
        long = "collection_name",
        visible_alias = "collection-name",
        value_name = "NAME"
    )]
    pub name: Option<String>,

    /// Report every collection without a metadata or coord_index entry, and
    /// every entry without a collection; exit 3 if there is any
    #[arg(short = 'a', long = "audit")]
    pub audit: bool,
}

pub fn run(db: Option<&str>, args: &Args) -> Result<ExitCode> {
    let store = store::open(db)?;
    if let Some(what) = args.list_ids {
        list(&*store, what, args.include_counts)?;
    } else if let Some(name) = &args.name {
        show(&*store, name)?;
    } else if args.audit {
        return audit(&*store);
    }
    Ok(ExitCode::SUCCESS)
}

fn list(store: &dyn Store, what: ListWhat, counts: bool) -> Result<()> {
    let names = match what {
        ListWhat::Collections => store.collections()?,
        ListWhat::Metadata => store.entry_ids(METADATA)?,
        ListWhat::CoordIndex => store.entry_ids(COORD_INDEX)?,
    };
    stdout_lines(|out| {
        for n in names {
            if counts {
                writeln!(out, "{n} ({} records)", store.count(&n)?)
            } else {
                writeln!(out, "{n}")
            }
            .map_err(write_error)?;
        }
        Ok(())
    })
}

fn show(store: &dyn Store, name: &str) -> Result<()> {
    let doc = store.entry(METADATA, name)?.ok_or_else(|| {
        Error::collection(name, "has no metadata entry; see `manage db -l metadata`")
    })?;
    stdout_lines(|out| writeln!(out, "{}", extended_json(doc)).map_err(write_error))
}

/// The problems `db -a` reports, one sentence each.
pub fn audit_findings(store: &dyn Store) -> Result<Vec<String>> {
    let collections = store.collections()?;
    let metadata = store.entry_ids(METADATA)?;
    let coords = store.entry_ids(COORD_INDEX)?;
    let mut findings = Vec::new();
    for c in &collections {
        if !metadata.contains(c) {
            findings.push(format!("collection '{c}' has no metadata entry"));
        }
        if !coords.contains(c) {
            findings.push(format!("collection '{c}' has no coord_index entry"));
        }
    }
    for (entries, book) in [(&metadata, METADATA), (&coords, COORD_INDEX)] {
        for e in entries.iter().filter(|e| !collections.contains(e)) {
            findings.push(format!("{book} entry '{e}' has no collection"));
        }
    }
    for l in store.leftovers()? {
        findings.push(match staged_dataset(&l) {
            Some(name) => format!(
                "collection '{l}' is left from an interrupted load of '{name}'; run that load again to finish it, or `manage remove -n {name}`"
            ),
            None => format!("collection '{l}' is not one manage keeps (names starting with '_' are internal)"),
        });
    }
    Ok(findings)
}

fn audit(store: &dyn Store) -> Result<ExitCode> {
    let findings = audit_findings(store)?;
    stdout_lines(|out| {
        for f in &findings {
            writeln!(out, "{f}").map_err(write_error)?;
        }
        if findings.is_empty() {
            writeln!(
                out,
                "ok: {} datasets, each with its collection, metadata and coord_index",
                store.collections()?.len()
            )
            .map_err(write_error)?;
        }
        Ok(())
    })?;
    Ok(if findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
