//! The audit of a store (`manage db -a`) and its repair (`--fix`): that
//! every dataset has its three parts, that no load, remove or rename left
//! anything behind, and that no missing value is stored as `null`.
//! Written once above the backends, as the other dataset rules are.

use std::collections::BTreeSet;
use std::time::Duration;

use bson::{Bson, Document};

use super::foreign::foreign_dataset;
use super::{
    geom_dataset, lock, staged_dataset, Attempt, Datasets, Filter, Holder, Store, Unfinished,
};
use crate::doc::{summary as summary_entry, COORD_INDEX, METADATA, SUMMARY};
use crate::error::Result;
use crate::text::plural;

/// What `db -a` found: problems (exit 3), and notes on loads in progress.
#[derive(Debug, Default)]
pub struct Audit {
    pub findings: Vec<String>,
    pub notes: Vec<String>,
}

/// The problems `db -a` reports, one sentence each.
pub fn findings(store: &dyn Store) -> Result<Vec<String>> {
    Ok(report(store)?.findings)
}

/// Audit the store. What concerns a dataset that a live process is loading
/// right now (its lock is held) is a note, not a problem: that load is
/// not finished yet.
pub fn report(store: &dyn Store) -> Result<Audit> {
    let collections = store.collections()?;
    let metadata = store.entry_ids(METADATA)?;
    let coords = store.entry_ids(COORD_INDEX)?;
    let mut audit = Audit::default();
    let mut busy = BTreeSet::new();
    for (name, holder) in store.locks()? {
        if let Some(why) = store.why_gone(&holder) {
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
        if let Some(f) = foreign_dataset(store, c, md.as_ref())? {
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
        if store.why_gone(&holder).is_none() {
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
pub fn repair(store: &mut dyn Store) -> Result<Vec<String>> {
    let mut done = Vec::new();
    for (name, holder) in store.locks()? {
        if store.why_gone(&holder).is_some() && store.unlock(&name, &holder)? {
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
    store.scan(name, &Filter::All, &mut |mut d| {
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
    store.scan(name, &Filter::All, &mut |mut d| {
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
