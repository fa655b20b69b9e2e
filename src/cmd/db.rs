//! `manage db`: look at what the store holds.
//!
//! `-l` lists collections or the entries of a bookkeeping collection, `-n`
//! prints one metadata document with the files the dataset came from, `-a`
//! audits that every dataset has its three parts and that no load left
//! anything behind (exit 3 when it finds a problem); `-a --fix` removes what
//! interrupted loads left, and rewrites the missing values earlier
//! versions stored as `null` as the double NaN.

use std::process::ExitCode;

use bson::{Bson, Document};

use crate::cmd::{extended_json, stdout_lines, write_error};
use crate::doc::ingest_log;
use crate::doc::{COORD_INDEX, METADATA};
use crate::error::{Error, Result};
use crate::read::{document_time, Dataset};
use crate::store::audit::{self, Audit};
use crate::store::{self, Datasets, Store};
use crate::text::plural;
use crate::time::iso_date;

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
    after_help = "Examples:\n  manage db -l collections -x     # every dataset with its document count\n  manage db -n casa_2004          # its metadata document and the files it came from, as JSON\n  manage db -n casa_2004 --times  # every time it holds, one per line (what --at takes)\n  manage db -a                    # exit 3 if any dataset is incomplete\n  manage db -a --fix              # remove what interrupted loads left, then audit"
)]
#[command(mut_arg("name", |a| a.help("Print the metadata document of dataset NAME as one JSON object")))]
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

    #[command(flatten)]
    pub dataset: Option<crate::cmd::args::Name>,

    /// With -n: list every stored time of NAME instead (from its stored
    /// summary, reading no document), one per line
    /// (YYYY-MM-DDTHH:MM:SS, UTC), followed by a tab and its span in seconds
    /// where the dataset has spans
    #[arg(long, requires = "name")]
    pub times: bool,

    /// Report every collection without a metadata or coord_index entry, and
    /// every entry without a collection; exit 3 if there is any
    #[arg(short = 'a', long = "audit")]
    pub audit: bool,

    /// With -a: first remove what interrupted loads left (staging
    /// collections, stale locks of processes that are gone) and rewrite
    /// missing values stored as null as NaN, then audit
    #[arg(long, requires = "audit")]
    pub fix: bool,

    /// Print JSON for scripts: -l an array (of {"name", "documents"} with
    /// -x), --times an array of {"time", "span", "documents"}, -a an object
    /// {"ok", "problems", "notes", "fixed"}
    #[arg(long)]
    pub json: bool,
}

pub fn run(db: Option<&str>, args: &Args) -> Result<ExitCode> {
    let mut store = if args.fix {
        store::open_existing(db)?
    } else {
        store::open_for_reading(db)?
    };
    if let Some(what) = args.list_ids {
        list(&*store, what, args.include_counts, args.json)?;
    } else if let Some(name) = args.dataset.as_ref().map(|d| &d.name) {
        if args.times {
            times(&*store, name, args.json)?;
        } else {
            show(&*store, name)?;
        }
    } else if args.audit {
        let fixed = if args.fix {
            audit::repair(&mut *store)?
        } else {
            Vec::new()
        };
        if args.json {
            return audit_json(&*store, &fixed);
        }
        stdout_lines(|out| {
            for f in &fixed {
                writeln!(out, "fixed: {f}").map_err(write_error)?;
            }
            Ok(())
        })?;
        return audit(&*store);
    }
    Ok(ExitCode::SUCCESS)
}

fn list(store: &dyn Store, what: ListWhat, counts: bool, json: bool) -> Result<()> {
    let names = match what {
        ListWhat::Collections => store.collections()?,
        ListWhat::Metadata => store.entry_ids(METADATA)?,
        ListWhat::CoordIndex => store.entry_ids(COORD_INDEX)?,
    };
    if json {
        let items = names
            .iter()
            .map(|n| {
                Ok(if counts {
                    serde_json::json!({"name": n, "documents": store.count(n)?})
                } else {
                    serde_json::json!(n)
                })
            })
            .collect::<Result<Vec<_>>>()?;
        return stdout_lines(|out| {
            writeln!(out, "{}", serde_json::Value::Array(items)).map_err(write_error)
        });
    }
    stdout_lines(|out| {
        for n in names {
            if counts {
                writeln!(out, "{n} ({})", plural(store.count(&n)?, "record"))
            } else {
                writeln!(out, "{n}")
            }
            .map_err(write_error)?;
        }
        Ok(())
    })
}

/// The metadata document of `name` as stored, followed by `files`: the
/// ingest-log entries of the files it was loaded from, oldest first. The
/// stored metadata document (what the Carbon Data Explorer reads) has no
/// `files`; it is added here only.
fn show(store: &dyn Store, name: &str) -> Result<()> {
    crate::store::Datasets::require(store, name)?;
    let mut doc = store.entry(METADATA, name)?.ok_or_else(|| {
        Error::collection(name, "has no metadata entry; see `manage db -l metadata`")
    })?;
    let mut files = store.ingest_log(name)?;
    let loaded_at = |d: &Document| d.get_datetime(ingest_log::LOADED_AT).ok().copied();
    files.sort_by(|a, b| {
        (loaded_at(a), a.get_str(ingest_log::PATH).ok())
            .cmp(&(loaded_at(b), b.get_str(ingest_log::PATH).ok()))
    });
    let files: Vec<Bson> = files
        .into_iter()
        .map(|mut f| {
            for internal in ["_id", ingest_log::NAME, ingest_log::INPUT] {
                f.remove(internal);
            }
            Bson::Document(f)
        })
        .collect();
    doc.insert("files", files);
    stdout_lines(|out| writeln!(out, "{}", extended_json(doc)).map_err(write_error))
}

/// Every time dataset `name` holds, sorted, one per line, with its span
/// (`_span`, seconds) where its documents carry one. They come from the
/// dataset's stored summary entry (one entry read, checked against the
/// metadata entry and the document count the store keeps), so no document
/// is read; a dataset without a summary that holds (one another tool
/// wrote, an append cut short) is scanned, one document at a time.
fn times(store: &dyn Store, name: &str, json: bool) -> Result<()> {
    let dataset = Dataset::open(store, name)?;
    // Time → (span, documents).
    let mut times: std::collections::BTreeMap<i64, (Option<f64>, u64)> = Default::default();
    match crate::read::stored_summary(store, name)? {
        Some((summary, _)) => {
            for (t, n) in &summary.time_documents {
                times.insert(*t, (summary.times.get(t).copied().flatten(), *n));
            }
        }
        None => dataset.scan(None, &mut |d| {
            if let Some(t) = document_time(&d) {
                let span = d.get("_span").and_then(crate::read::number);
                let known = times.entry(t).or_insert((None, 0));
                if known.0.is_none() {
                    known.0 = span;
                }
                known.1 += 1;
            }
            Ok(())
        })?,
    }
    if json {
        let items: Vec<serde_json::Value> = times
            .iter()
            .map(|(t, (span, n))| {
                serde_json::json!({"time": iso_date(*t), "span": span, "documents": n})
            })
            .collect();
        return stdout_lines(|out| {
            writeln!(out, "{}", serde_json::Value::Array(items)).map_err(write_error)
        });
    }
    stdout_lines(|out| {
        for (t, (span, _)) in &times {
            match span {
                Some(s) => writeln!(out, "{}\t{s}", iso_date(*t)),
                None => writeln!(out, "{}", iso_date(*t)),
            }
            .map_err(write_error)?;
        }
        Ok(())
    })
}

/// `db -a --json`: one object, the exit code as without `--json`.
fn audit_json(store: &dyn Store, fixed: &[String]) -> Result<ExitCode> {
    let Audit { findings, notes } = audit::report(store)?;
    let ok = findings.is_empty();
    let v = serde_json::json!({
        "ok": ok,
        "datasets": store.collections()?.len(),
        "problems": findings,
        "notes": notes,
        "fixed": fixed,
    });
    stdout_lines(|out| writeln!(out, "{v}").map_err(write_error))?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

fn audit(store: &dyn Store) -> Result<ExitCode> {
    let Audit { findings, notes } = audit::report(store)?;
    stdout_lines(|out| {
        for f in &findings {
            writeln!(out, "{f}").map_err(write_error)?;
        }
        for n in &notes {
            writeln!(out, "note: {n}").map_err(write_error)?;
        }
        if findings.is_empty() {
            writeln!(
                out,
                "ok: {}, each with its collection, metadata and coord_index",
                plural(store.collections()?.len() as u64, "dataset")
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
