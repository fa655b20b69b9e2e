//! `manage db`: look at what the store holds.
//!
//! `-l` lists collections or the entries of a bookkeeping collection, `-n`
//! prints one metadata document with the files the dataset came from, `-a`
//! audits that every dataset has its three parts and that no load left
//! anything behind (exit 3 when it finds a problem); `-a --fix` removes what
//! interrupted loads left, and rewrites the missing values earlier
//! versions stored as `null` as the double NaN.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::Duration;

use bson::{Bson, Document};

use crate::cmd::dataset::{document_time, Dataset};
use crate::cmd::{extended_json, plural, require_dataset, stdout_lines, write_error};
use crate::doc::{ingest_log, summary as summary_entry};
use crate::doc::{COORD_INDEX, METADATA, SUMMARY};
use crate::error::{Error, Result};
use crate::store::{
    self, geom_dataset, lock, staged_dataset, Attempt, Datasets, Holder, Store, Unfinished,
};
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
            fix(&mut *store)?
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
    require_dataset(store, name)?;
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
    match crate::ingest::summary::stored_summary(store, name)? {
        Some((summary, _)) => {
            for (t, n) in &summary.time_documents {
                times.insert(*t, (summary.times.get(t).copied().flatten(), *n));
            }
        }
        None => dataset.scan(None, &mut |d| {
            if let Some(t) = document_time(&d) {
                let span = d.get("_span").and_then(crate::cmd::dataset::number);
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

/// What `db -a` found: problems (exit 3), and notes on loads in progress.
#[derive(Debug, Default)]
pub struct Audit {
    pub findings: Vec<String>,
    pub notes: Vec<String>,
}

/// The problems `db -a` reports, one sentence each.
pub fn audit_findings(store: &dyn Store) -> Result<Vec<String>> {
    Ok(audit_report(store)?.findings)
}

/// Why the lock `holder` holds is stale, if it is: its holder is gone
/// (see [`Holder::why_gone`]). A lease from another host that looks lapsed
/// while another connection writes to the store may simply not have been
/// renewable meanwhile: not stale yet.
fn stale(store: &dyn Store, holder: &Holder) -> Option<String> {
    // Judged by the store's clock (the server's, on MongoDB).
    let now = store
        .now()
        .unwrap_or_else(|_| crate::store::lock::host_now());
    let why = holder.why_gone_at(now)?;
    if !holder.on_this_host() && store.writing_elsewhere() {
        return None;
    }
    Some(why)
}

/// Audit the store. What concerns a dataset that a live process is loading
/// right now (its lock is held) is a note, not a problem: that load is
/// not finished yet.
pub fn audit_report(store: &dyn Store) -> Result<Audit> {
    let collections = store.collections()?;
    let metadata = store.entry_ids(METADATA)?;
    let coords = store.entry_ids(COORD_INDEX)?;
    let mut audit = Audit::default();
    let mut busy = BTreeSet::new();
    for (name, holder) in store.locks()? {
        if let Some(why) = stale(store, &holder) {
            audit.findings.push(format!(
                "stale lock on '{name}': held by {}, {why}; `manage db -a --fix` removes it, and a load of '{name}' takes it over",
                holder.describe()
            ));
        } else {
            audit
                .notes
                .push(format!("'{name}' is being loaded by {}", holder.describe()));
            busy.insert(name);
        }
    }
    // Datasets another tool wrote: whole, and a load knows what to do.
    for c in collections.iter().filter(|c| metadata.contains(c)) {
        let md = store.entry(METADATA, c)?;
        if let Some(f) = crate::ingest::foreign::foreign_dataset(store, c, md.as_ref())? {
            audit.notes.push(if f.points {
                format!(
                    "'{c}' holds points another tool wrote (the old manage.py: {}); a load refuses to add to it, `manage load --replace -n {c} …` rewrites it from its file",
                    if f.object_ids { "ObjectId _ids, each a day after its row's day" } else { "no summary entry" }
                )
            } else {
                format!(
                    "'{c}' was written by another tool (the old manage.py: no summary entry); the next load into it appends and rebuilds its summary once"
                )
            });
        }
    }
    // What concerns a dataset is judged once the locks are read again: a
    // load that started or ended while the store was read is in progress.
    let mut found: Vec<(String, String)> = Vec::new();
    let mut report = |name: &str, text: String| found.push((name.to_string(), text));
    for c in &collections {
        if !metadata.contains(c) {
            let cut_short = store
                .entry(SUMMARY, c)?
                .and_then(|e| {
                    let p = e.get_str(summary_entry::PATH).ok()?.to_string();
                    Some(match e.contains_key(summary_entry::FINISH) {
                        true => format!(" (an append of {p} was cut short: `manage db -a --fix` or the next load into '{c}' finishes it)"),
                        false => format!(" (an append of {p} was cut short: run that load again)"),
                    })
                })
                .unwrap_or_default();
            report(
                c,
                format!("collection '{c}' has no metadata entry{cut_short}"),
            );
        }
        if !coords.contains(c) {
            report(c, format!("collection '{c}' has no coord_index entry"));
        }
    }
    for (entries, book) in [(&metadata, METADATA), (&coords, COORD_INDEX)] {
        for e in entries.iter().filter(|e| !collections.contains(e)) {
            report(e, format!("{book} entry '{e}' has no collection"));
        }
    }
    for c in &collections {
        let nulls = null_cells(store, c)?;
        if nulls.values > 0 {
            report(
                c,
                format!(
                    "dataset '{c}' stores {} as null (an earlier version of manage wrote missing values so), in {}, which the Carbon Data Explorer's server cannot format; `manage db -a --fix` rewrites them as NaN",
                    plural(nulls.values, "missing value"),
                    plural(nulls.documents, "document")
                ),
            );
        }
    }
    // A remove or rename cut short: what it left, and how to finish it.
    for u in store.unfinished()? {
        let left = store.remains_of(u.key())?;
        let left = if left.is_empty() {
            "nothing of it is left but its note".to_string()
        } else {
            format!("left of '{}': {}", u.key(), left.join(", "))
        };
        report(
            u.key(),
            format!(
                "{} was cut short ({left}); run `{}` again or `manage db -a --fix` to finish it",
                u.describe(),
                u.command()
            ),
        );
    }
    for l in store.leftovers()? {
        match (staged_dataset(&l), geom_dataset(&l)) {
            // The geometry cache a load of NAME was making.
            (Some(staged), _) if geom_dataset(staged).is_some() => {
                let name = geom_dataset(staged).unwrap_or(staged);
                report(name, format!(
                    "collection '{l}' is left from an interrupted build of the Carbon Data Explorer's geometry cache of '{name}'; `manage db -a --fix` drops it, and the next load into '{name}' makes the cache"
                ))
            }
            (Some(name), _) => report(name, format!(
                "collection '{l}' is left from an interrupted load of '{name}'; run that load again to finish it, `manage db -a --fix` to drop it, or `manage remove -n {name}`"
            )),
            (None, Some(name)) => report(name, format!(
                "collection '{l}' is the Carbon Data Explorer's geometry cache of '{name}', which does not exist; `manage db -a --fix` drops it"
            )),
            (None, None) => report(&l, format!("collection '{l}' is not one manage keeps (names starting with '_' are internal)")),
        }
    }
    for (name, holder) in store.locks()? {
        if stale(store, &holder).is_none() {
            busy.insert(name);
        }
    }
    for (name, text) in found {
        if busy.contains(&name) {
            audit
                .notes
                .push(format!("{text} (a load of '{name}' is in progress)"));
        } else {
            audit.findings.push(text);
        }
    }
    Ok(audit)
}

/// Remove what interrupted loads left: stale locks, and staging
/// collections of datasets no live process is loading (each dropped while
/// holding the dataset's lock, so that no load starts meanwhile). What was
/// done, one sentence each.
pub fn fix(store: &mut dyn Store) -> Result<Vec<String>> {
    let mut done = Vec::new();
    for (name, holder) in store.locks()? {
        if stale(&*store, &holder).is_some() && store.unlock(&name, &holder)? {
            done.push(format!(
                "removed the stale lock on '{name}' held by {}",
                holder.describe()
            ));
        }
    }
    // An append cut short that kept what its commit writes is finished,
    // holding its lock, before leftover staging collections are dropped.
    for name in store.collections()? {
        let kept = store
            .entry(SUMMARY, &name)?
            .is_some_and(|e| e.contains_key(summary_entry::FINISH));
        if !kept {
            continue;
        }
        let finished = lock::with_locks_waiting(
            store,
            &[name.as_str()],
            Duration::from_secs(5),
            "another process holds it; try again later",
            |s, _| s.finish_append(&name),
        );
        match finished {
            Ok(Some(what)) => done.push(what),
            Ok(None) => {}
            Err(e) => eprintln!("warning: could not finish an append into '{name}': {e}"),
        }
    }
    // A remove or rename cut short is finished, holding its locks.
    for u in store.unfinished()? {
        let names: Vec<String> = match &u {
            Unfinished::Remove { name } => vec![name.clone()],
            Unfinished::Rename { from, to } => vec![from.clone(), to.clone()],
        };
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let finished = lock::with_locks_waiting(
            store,
            &names,
            Duration::from_secs(5),
            "another process holds it; try again later",
            |s, _| match &u {
                Unfinished::Remove { name } => s.remove(name),
                Unfinished::Rename { from, to } => s.rename(from, to),
            },
        );
        match finished {
            Ok(()) => done.push(format!("finished {}, which was cut short", u.describe())),
            // Another process holds a lock: the audit still reports it.
            Err(e) => eprintln!("warning: could not finish {}: {e}", u.describe()),
        }
    }
    for l in store.leftovers()? {
        // The geometry cache of a dataset that is gone: nothing loads it.
        if let Some(name) = geom_dataset(&l) {
            store.drop_leftover(&l)?;
            done.push(format!(
                "dropped '{l}', the geometry cache of '{name}', which does not exist"
            ));
        }
    }
    let me = Holder::this_process();
    for l in store.leftovers()? {
        let Some(name) = staged_dataset(&l) else {
            continue;
        };
        // A geometry cache under construction belongs to its dataset.
        let name = geom_dataset(name).unwrap_or(name);
        if store.try_lock(name, &me, Duration::from_secs(5))? != Attempt::Taken {
            continue;
        }
        let dropped = store.drop_leftover(&l);
        store.unlock(name, &me)?;
        dropped?;
        done.push(format!(
            "dropped '{l}', left by an interrupted load of '{name}'"
        ));
    }
    for name in store.collections()? {
        if null_cells(&*store, &name)?.values == 0 {
            continue;
        }
        if store.try_lock(&name, &me, Duration::from_secs(5))? != Attempt::Taken {
            continue;
        }
        let fixed = nulls_to_nan(store, &name);
        store.unlock(&name, &me)?;
        let n = fixed?;
        done.push(format!(
            "rewrote {} of '{name}' (null) as NaN",
            plural(n.values, "missing value")
        ));
    }
    Ok(done)
}

/// Missing values stored as null: how many, in how many documents.
#[derive(Debug, Default, Clone, Copy)]
struct Nulls {
    values: u64,
    documents: u64,
}

/// Replace the nulls among a data document's values (the elements of its
/// top-level arrays: a grid's `values` and `errors`; a point's
/// `properties`) by NaN; how many there were.
fn replace_nulls(doc: &mut Document) -> u64 {
    let mut n = 0;
    for (key, v) in doc.iter_mut() {
        match v {
            Bson::Array(a) if key != "_id" => {
                for x in a.iter_mut().filter(|x| matches!(x, Bson::Null)) {
                    *x = Bson::Double(f64::NAN);
                    n += 1;
                }
            }
            Bson::Document(p) if key == crate::doc::fields::PROPERTIES => {
                for (_, x) in p.iter_mut().filter(|(_, x)| matches!(x, Bson::Null)) {
                    *x = Bson::Double(f64::NAN);
                    n += 1;
                }
            }
            _ => {}
        }
    }
    n
}

/// The null values of dataset `name` (read whole: every document).
fn null_cells(store: &dyn Store, name: &str) -> Result<Nulls> {
    let mut nulls = Nulls::default();
    store.scan(name, &store::Filter::All, &mut |mut d| {
        let n = replace_nulls(&mut d);
        if n > 0 {
            nulls.values += n;
            nulls.documents += 1;
        }
        Ok(())
    })?;
    Ok(nulls)
}

/// Rewrite the null values of dataset `name` as NaN, under its lock, in
/// one transaction where the store has them (the embedded store: all or
/// nothing). On MongoDB each document is replaced whole, one at a time:
/// a reader sees every document either as it was or rewritten, never half
/// of one, and a `--fix` cut short is completed by running it again.
fn nulls_to_nan(store: &mut dyn Store, name: &str) -> Result<Nulls> {
    // The _ids first (the documents are read again one by one: a whole
    // dataset need not fit in memory, and none is written while scanning).
    let mut ids = Vec::new();
    store.scan(name, &store::Filter::All, &mut |mut d| {
        if replace_nulls(&mut d) > 0 {
            ids.extend(d.get("_id").cloned());
        }
        Ok(())
    })?;
    let mut nulls = Nulls::default();
    store.begin_transaction()?;
    let mut rewrite = |store: &mut dyn Store| -> Result<()> {
        for id in &ids {
            let Some(mut d) = store.get(name, id)? else {
                continue;
            };
            let n = replace_nulls(&mut d);
            if n > 0 {
                store.put(name, &d)?;
                nulls.values += n;
                nulls.documents += 1;
            }
        }
        Ok(())
    };
    match rewrite(store) {
        Ok(()) => store.commit_transaction()?,
        Err(e) => {
            store.rollback_transaction();
            return Err(e);
        }
    }
    Ok(nulls)
}

/// `db -a --json`: one object, the exit code as without `--json`.
fn audit_json(store: &dyn Store, fixed: &[String]) -> Result<ExitCode> {
    let Audit { findings, notes } = audit_report(store)?;
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
    let Audit { findings, notes } = audit_report(store)?;
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
