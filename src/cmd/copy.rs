//! `manage copy -n NAME --to DB`: put a dataset that was checked in one
//! store (the embedded one on a laptop) into another (the production
//! MongoDB), or back, without loading its files again.
//!
//! The copy is a load on the target by the same rules as `load`: under
//! the dataset's lock there, into a staging area, with the `coord_index`
//! entry, the summary, the `metadata` entry and the ingest log written by
//! the commit, the metadata last; a copy cut short leaves nothing a reader
//! sees. The documents are copied as they are stored, one batch at a time,
//! so the copy exports byte for byte as the original.

use std::time::Duration;

use bson::RawDocumentBuf;

use crate::doc::{Docs, COORD_INDEX, METADATA, SUMMARY};
use crate::error::{Error, Result};
use crate::store::{self, lock, validate_name, Datasets, Entries, Filter, Unfinished};
use crate::text::plural;

/// Copy a dataset, with its entries, summary and ingest log, into another store.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The source is --db (or FLUXPY_DB); --to is the target: a mongodb:// URI or the
path of an embedded store file (made if it does not exist). NAME must be
complete in the source (its metadata and coord_index entries) and not being
loaded. A NAME that exists in the target is refused unless --force, which
replaces it whole in one step, as `load --replace` does.

Examples:
  manage copy -n ct_2004 --to mongodb://db1/fluxvis
  manage --db mongodb://db1/fluxvis copy -n ct_2004 --to ~/checked.db --force")]
#[command(mut_arg("name", |a| a.help("The dataset to copy")))]
pub struct Args {
    #[command(flatten)]
    pub dataset: crate::cmd::args::Name,

    /// The store to copy into: a mongodb:// URI or an embedded store file
    #[arg(long, value_name = "DB")]
    pub to: String,

    /// Replace NAME in the target if it is there
    #[arg(long)]
    pub force: bool,

    /// How long to wait for another load of NAME in the target to finish
    #[arg(long = "lock-timeout", value_name = "SECONDS", default_value = "30")]
    pub lock_timeout: f64,
}

/// The most bytes of documents written in one batch.
const BATCH_BYTES: usize = 32 << 20;

pub fn run(db: Option<&str>, args: &Args) -> Result<()> {
    let name = args.dataset.name.as_str();
    validate_name(name)?;
    if !(0.0..=7.0 * 24.0 * 3600.0).contains(&args.lock_timeout) {
        return Err(Error::Usage(format!(
            "--lock-timeout {} is not a number of seconds from 0 to a week",
            args.lock_timeout
        )));
    }
    let source = store::open_for_reading(db)?;
    crate::store::Datasets::require(&*source, name)?;
    if source.locks()?.iter().any(|(n, _)| n == name) || source.unfinished_of(name)?.is_some() {
        return Err(Error::collection(
            name,
            "is being loaded, removed or renamed in the source store; copy it once that is done",
        ));
    }
    let metadata = source.entry(METADATA, name)?.ok_or_else(|| {
        Error::collection(
            name,
            "has no metadata entry in the source store: it is not complete (`manage db -a`)",
        )
    })?;
    let coord_index = source.entry(COORD_INDEX, name)?.ok_or_else(|| {
        Error::collection(
            name,
            "has no coord_index entry in the source store: it is not complete (`manage db -a`)",
        )
    })?;
    let summary = source.entry(SUMMARY, name)?;
    let log = source.ingest_log(name)?;

    let timeout = Duration::from_secs_f64(args.lock_timeout);
    let options = store::Options {
        embedded: store::embedded::Options {
            busy_wait: timeout.max(Duration::from_secs(5)),
        },
    };
    let mut target = store::open_with(Some(&args.to), &options)?;
    if target.describe() == source.describe() {
        return Err(Error::Usage(format!(
            "--to names the store the dataset is in ({}); name another store",
            target.describe()
        )));
    }
    let target_name = target.describe();
    let documents = lock::with_locks_waiting(
        &mut *target,
        &[name],
        timeout,
        "try again later, or wait longer with --lock-timeout",
        |target, leases| {
            let lease = &leases[0];
            let exists = target.collections()?.iter().any(|c| c == name)
                || target.entry(METADATA, name)?.is_some()
                || target.entry(COORD_INDEX, name)?.is_some();
            match target.unfinished_of(name)? {
                Some(Unfinished::Remove { .. }) => target.remove(name)?,
                Some(other) => return Err(other.refusal(name)),
                None => {}
            }
            if exists && !args.force {
                return Err(Error::collection(
                    name,
                    format!("exists in {target_name}; --force replaces it"),
                ));
            }
            // Fenced by its lock, as a load is (see `Store::fence`).
            target.fence(name, lease.token());
            let mut load = if exists {
                target.begin_replace(name)?
            } else {
                target.begin_load(name)?
            };
            let mut batch: Vec<RawDocumentBuf> = Vec::new();
            let mut bytes = 0usize;
            let mut documents = 0u64;
            source.scan(name, &Filter::All, &mut |doc| {
                let raw = RawDocumentBuf::from_document(&doc)
                    .map_err(|e| Error::store("copy", format!("cannot encode a document: {e}")))?;
                bytes += raw.as_bytes().len();
                batch.push(raw);
                documents += 1;
                if bytes >= BATCH_BYTES {
                    lease.check()?;
                    load.write(Docs::Bson(std::mem::take(&mut batch)))?;
                    bytes = 0;
                }
                Ok(())
            })?;
            lease.check()?;
            if !batch.is_empty() {
                load.write(Docs::Bson(batch))?;
            }
            let coord_index = RawDocumentBuf::from_document(&coord_index)
                .map_err(|e| Error::store("copy", format!("cannot encode a document: {e}")))?;
            let entries = Entries {
                summary,
                ingest: log,
                replaces: exists,
                ..Entries::new(name, coord_index, metadata)
            };
            lease.check()?;
            load.commit(entries)?;
            Ok(documents)
        },
    )?;
    println!(
        "copied {name}: {} into {target_name}",
        plural(documents, "document")
    );
    Ok(())
}
