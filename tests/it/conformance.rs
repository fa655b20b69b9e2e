//! The `Store` contract, written once against the trait and run on every
//! backend: always on a fresh embedded store, and on MongoDB when
//! `FLUXPY_TEST_MONGODB_URI` names a deployment (each scenario in a fresh
//! database, dropped afterwards; `scripts/with-test-env` starts one). Without
//! that variable the run fails under `CI=true` and otherwise says, in
//! one line, that MongoDB was not tested.

use crate::common;

use std::time::Duration;

use bson::{doc, Bson, DateTime, Document};
use common::FreshDb;
use fluxpy::doc::{
    ingest_log::id as ingest_id, summary::PENDING as SUMMARY_PENDING, COORD_INDEX, METADATA,
    SUMMARY,
};
use fluxpy::store::audit::{findings as audit_findings, repair as fix, report as audit_report};
use fluxpy::store::lock;
use fluxpy::store::{
    embedded::Embedded, geom_name, staging_name, Attempt, Datasets, Entries, Filter, Holder, Store,
};

type Scenario = fn(&mut dyn Store);

/// Every scenario, by name; each starts on an empty store.
const SCENARIOS: &[(&str, Scenario)] = &[
    (
        "load, list, count and read back in _id order",
        load_and_read_back,
    ),
    (
        "append adds times and replaces stored ones",
        append_and_reload,
    ),
    (
        "a load that fails mid-way leaves no trace",
        failure_mid_load,
    ),
    (
        "a load reads back what it replaces; a replace keeps only what it wrote",
        stored_and_replace,
    ),
    ("rename moves all three parts", rename),
    ("remove deletes all three parts", remove),
    (
        "rename and remove take the summary and the geometry cache along",
        rename_and_remove_every_part,
    ),
    ("audit reports incomplete datasets", audit),
    (
        "ingest-log entries commit with their load and move with the dataset",
        ingest_log,
    ),
    (
        "a lock has one holder; stale ones are taken over, others' never",
        locks,
    ),
];

/// A time step as the models write it, with a missing value (a double
/// that is not finite: Infinity here, which, unlike NaN, compares equal to
/// itself when documents are compared; a null is what `db -a` reports).
fn step(ms: i64, v: f64) -> Document {
    doc! { "_id": DateTime::from_millis(ms), "values": [v, v + 1.0, f64::INFINITY] }
}

fn coord_index(name: &str) -> Document {
    doc! { "_id": name, "i": [[-166.5, 10.5], [-165.5, 10.5], [-164.5, 10.5]] }
}

fn metadata(name: &str, dates: &[&str]) -> Document {
    doc! { "_id": name, "title": name, "gridded": true, "dates": dates.to_vec(), "steps": [10800] }
}

/// Load `docs` into `name` and commit.
fn load(store: &mut dyn Store, name: &str, docs: Vec<Document>) {
    let mut l = store.begin_load(name).unwrap();
    l.write(crate::common::docs(docs)).unwrap();
    l.commit(crate::common::entries(
        coord_index(name),
        metadata(name, &[name]),
    ))
    .unwrap();
}

fn all(store: &dyn Store, name: &str) -> Vec<Document> {
    let mut out = vec![];
    store
        .scan(name, &Filter::All, &mut |d| {
            out.push(d);
            Ok(())
        })
        .unwrap();
    out
}

fn ids(docs: &[Document]) -> Vec<i64> {
    docs.iter()
        .map(|d| d.get_datetime("_id").unwrap().timestamp_millis())
        .collect()
}

fn first_value(d: &Document) -> f64 {
    d.get_array("values").unwrap()[0].as_f64().unwrap()
}

fn assert_clean(store: &dyn Store) {
    assert_eq!(audit_findings(store).unwrap(), Vec::<String>::new());
    assert!(store.leftovers().unwrap().is_empty());
}

fn load_and_read_back(store: &mut dyn Store) {
    assert!(store.collections().unwrap().is_empty());
    // Out of order, before and after 1970, one time written twice.
    let mut l = store.begin_load("casa").unwrap();
    l.write(crate::common::docs(vec![
        step(10_800_000, 2.0),
        step(-86_400_000, 0.0),
    ]))
    .unwrap();
    l.write(crate::common::docs(vec![
        step(0, 1.0),
        step(10_800_000, 5.0),
    ]))
    .unwrap();
    l.commit(crate::common::entries(
        coord_index("casa"),
        metadata("casa", &["a", "b"]),
    ))
    .unwrap();

    assert_eq!(store.collections().unwrap(), ["casa"]);
    assert_eq!(store.entry_ids(METADATA).unwrap(), ["casa"]);
    assert_eq!(store.entry_ids(COORD_INDEX).unwrap(), ["casa"]);
    assert_eq!(store.count("casa").unwrap(), 3);
    assert_eq!(store.count("nothing_here").unwrap(), 0);
    let docs = all(store, "casa");
    assert_eq!(ids(&docs), [-86_400_000, 0, 10_800_000]);
    // The later write of a time replaces the earlier one; documents come
    // back exactly as written.
    assert_eq!(docs[2], step(10_800_000, 5.0));
    assert_eq!(
        bson::to_vec(&docs[1]).unwrap(),
        bson::to_vec(&step(0, 1.0)).unwrap()
    );
    assert_eq!(
        store.entry(METADATA, "casa").unwrap(),
        Some(metadata("casa", &["a", "b"]))
    );
    assert_eq!(
        store.entry(COORD_INDEX, "casa").unwrap(),
        Some(coord_index("casa"))
    );
    assert_eq!(store.entry(METADATA, "other").unwrap(), None);

    let mut one = vec![];
    store
        .scan(
            "casa",
            &Filter::Id(Bson::DateTime(DateTime::from_millis(0))),
            &mut |d| {
                one.push(d);
                Ok(())
            },
        )
        .unwrap();
    assert_eq!(one, [step(0, 1.0)]);
    assert_clean(store);

    // Several datasets list sorted; many documents come back in order.
    let many: Vec<Document> = (0..3000).rev().map(|k| step(k * 1000, k as f64)).collect();
    load(store, "b_many", many);
    assert_eq!(store.collections().unwrap(), ["b_many", "casa"]);
    let back = all(store, "b_many");
    assert_eq!(back.len(), 3000);
    assert!(ids(&back).windows(2).all(|w| w[0] < w[1]));
    assert_eq!(first_value(&back[2999]), 2999.0);
    assert_clean(store);
}

fn append_and_reload(store: &mut dyn Store) {
    load(store, "x", vec![step(0, 1.0), step(1000, 2.0)]);
    {
        let mut l = store.begin_load("x").unwrap();
        l.write(crate::common::docs(vec![step(2000, 3.0), step(1000, 20.0)]))
            .unwrap();
        // What the load sees is the dataset as it will be once committed.
        let mut seen = vec![];
        l.scan(&mut |d| {
            seen.push(d);
            Ok(())
        })
        .unwrap();
        assert_eq!(ids(&seen), [0, 1000, 2000]);
        assert_eq!(first_value(&seen[1]), 20.0);
        l.commit(crate::common::entries(
            coord_index("x"),
            metadata("x", &["0", "2000"]),
        ))
        .unwrap();
    }
    let docs = all(store, "x");
    assert_eq!(ids(&docs), [0, 1000, 2000]);
    assert_eq!(docs[1], step(1000, 20.0));
    assert_eq!(
        store.entry(METADATA, "x").unwrap(),
        Some(metadata("x", &["0", "2000"]))
    );

    // Loading the same documents again changes nothing and duplicates nothing.
    let before: Vec<Vec<u8>> = docs.iter().map(|d| bson::to_vec(d).unwrap()).collect();
    let mut l = store.begin_load("x").unwrap();
    l.write(crate::common::docs(docs.clone())).unwrap();
    l.commit(crate::common::entries(
        coord_index("x"),
        metadata("x", &["0", "2000"]),
    ))
    .unwrap();
    let after: Vec<Vec<u8>> = all(store, "x")
        .iter()
        .map(|d| bson::to_vec(d).unwrap())
        .collect();
    assert_eq!(before, after);
    assert_eq!(store.count("x").unwrap(), 3);
    assert_clean(store);
}

fn failure_mid_load(store: &mut dyn Store) {
    // A new dataset: nothing of it may remain.
    {
        let mut l = store.begin_load("fresh").unwrap();
        l.write(crate::common::docs(vec![step(0, 1.0), step(1000, 2.0)]))
            .unwrap();
        // dropped uncommitted, as when the conversion fails half way
    }
    assert!(store.collections().unwrap().is_empty());
    assert!(store.entry_ids(METADATA).unwrap().is_empty());
    assert!(store.entry_ids(COORD_INDEX).unwrap().is_empty());
    assert_clean(store);

    // An existing dataset: it stays exactly as it was.
    load(store, "kept", vec![step(0, 1.0), step(1000, 2.0)]);
    let before = all(store, "kept");
    {
        let mut l = store.begin_load("kept").unwrap();
        l.write(crate::common::docs(vec![step(1000, 99.0), step(5000, 5.0)]))
            .unwrap();
    }
    assert_eq!(all(store, "kept"), before);
    assert_eq!(
        store.entry(METADATA, "kept").unwrap(),
        Some(metadata("kept", &["kept"]))
    );
    assert_eq!(store.collections().unwrap(), ["kept"]);
    assert_clean(store);

    // And the same load run again completes it.
    load(store, "fresh", vec![step(0, 1.0), step(1000, 2.0)]);
    assert_eq!(store.count("fresh").unwrap(), 2);
    assert_clean(store);
}

fn stored_and_replace(store: &mut dyn Store) {
    load(store, "x", vec![step(0, 1.0), step(1000, 2.0)]);
    let mut l = store.begin_load("x").unwrap();
    let ms = |t| Bson::DateTime(DateTime::from_millis(t));
    let mut seen = vec![];
    l.stored(&[ms(5000), ms(1000)], &mut |d| {
        seen.push(d);
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, [step(1000, 2.0)]);
    drop(l);

    let mut l = store.begin_replace("x").unwrap();
    l.write(crate::common::docs(vec![step(5000, 5.0)])).unwrap();
    l.commit(crate::common::entries(
        coord_index("x"),
        metadata("x", &["5000"]),
    ))
    .unwrap();
    assert_eq!(all(store, "x"), [step(5000, 5.0)]);
    assert_eq!(store.collections().unwrap(), ["x"]);
    assert_clean(store);
}

fn rename(store: &mut dyn Store) {
    load(store, "a", vec![step(0, 1.0), step(1000, 2.0)]);
    let docs = all(store, "a");
    store.rename("a", "b").unwrap();
    assert_eq!(store.collections().unwrap(), ["b"]);
    assert_eq!(all(store, "b"), docs);
    assert_eq!(store.entry_ids(METADATA).unwrap(), ["b"]);
    assert_eq!(store.entry_ids(COORD_INDEX).unwrap(), ["b"]);
    // The entries keep everything but their _id.
    let mut md = metadata("a", &["a"]);
    md.insert("_id", "b");
    assert_eq!(store.entry(METADATA, "b").unwrap(), Some(md));
    assert_eq!(
        store.entry(COORD_INDEX, "b").unwrap().unwrap().get("i"),
        coord_index("b").get("i")
    );
    assert_clean(store);

    // Onto an existing name: refused, both left as they were.
    load(store, "c", vec![step(5000, 5.0)]);
    let err = store.rename("b", "c").unwrap_err().to_string();
    assert!(err.contains("'c'") && err.contains("exists"), "{err}");
    assert_eq!(store.collections().unwrap(), ["b", "c"]);
    assert_eq!(store.count("b").unwrap(), 2);
    assert_eq!(store.count("c").unwrap(), 1);
    assert_clean(store);
}

fn remove(store: &mut dyn Store) {
    load(store, "a", vec![step(0, 1.0)]);
    load(store, "b", vec![step(0, 1.0), step(1000, 2.0)]);
    store.remove("a").unwrap();
    assert_eq!(store.collections().unwrap(), ["b"]);
    assert_eq!(store.entry_ids(METADATA).unwrap(), ["b"]);
    assert_eq!(store.entry_ids(COORD_INDEX).unwrap(), ["b"]);
    assert_eq!(store.count("a").unwrap(), 0);
    assert_eq!(store.count("b").unwrap(), 2);
    assert_clean(store);
    // A dataset can be loaded again under a removed name.
    load(store, "a", vec![step(7000, 7.0)]);
    assert_eq!(ids(&all(store, "a")), [7000]);
}

fn rename_and_remove_every_part(store: &mut dyn Store) {
    let summary = |name: &str| doc! { "_id": name, "coords_sha256": "c0ffee", "count": 2 };
    let mut l = store.begin_load("a").unwrap();
    l.write(crate::common::docs(vec![step(0, 1.0), step(1000, 2.0)]))
        .unwrap();
    l.commit(Entries {
        summary: Some(summary("a")),
        ..crate::common::entries(coord_index("a"), metadata("a", &["a"]))
    })
    .unwrap();
    // flux-server's geometry cache of `a` (a load into MongoDB made it;
    // here one document more, or the only one), and a stale summary under
    // `b` (of a dataset `b` no longer there).
    store
        .put(&geom_name("a"), &doc! { "_id": "x", "type": "Point" })
        .unwrap();
    let geom_docs = store.count(&geom_name("a")).unwrap();
    let stale = doc! { "_id": "b", "coords_sha256": "dead", "count": 99 };
    store.put(SUMMARY, &stale).unwrap();
    // As the store keeps it (MongoDB's notes the dataset's last `_id`).
    let mut moved = store.entry(SUMMARY, "a").unwrap().unwrap();
    assert_eq!(moved.get_str("coords_sha256").unwrap(), "c0ffee");
    moved.insert("_id", "b");

    store.rename("a", "b").unwrap();
    assert_eq!(store.entry(SUMMARY, "a").unwrap(), None);
    assert_eq!(store.entry(SUMMARY, "b").unwrap(), Some(moved));
    assert!(!store.exists(&geom_name("a")).unwrap());
    assert_eq!(store.count(&geom_name("b")).unwrap(), geom_docs);
    assert_clean(store);

    // Without a summary of its own, the renamed dataset gets none: not the
    // stale one left under the new name.
    load(store, "c", vec![step(0, 1.0)]);
    store.put(SUMMARY, &summary("d")).unwrap();
    assert_eq!(store.entry(SUMMARY, "c").unwrap(), None);
    store.rename("c", "d").unwrap();
    assert_eq!(store.entry(SUMMARY, "d").unwrap(), None);

    // A summary that names an append cut short (on a store without
    // transactions) names it by its new ingest-log `_id` once renamed, so
    // that the same load into the new name may finish it.
    load(store, "e", vec![step(0, 1.0)]);
    let pending =
        doc! { "_id": "e", SUMMARY_PENDING: ingest_id("e", "f00d"), "path": "/data/e.mat" };
    store.put(SUMMARY, &pending).unwrap();
    store.rename("e", "f").unwrap();
    let moved = store.entry(SUMMARY, "f").unwrap().unwrap();
    assert_eq!(
        moved.get_str(SUMMARY_PENDING).unwrap(),
        ingest_id("f", "f00d")
    );
    assert_eq!(moved.get_str("path").unwrap(), "/data/e.mat");
    store.remove("f").unwrap();

    store.remove("b").unwrap();
    assert_eq!(store.entry(SUMMARY, "b").unwrap(), None);
    assert!(!store.exists(&geom_name("b")).unwrap());
    assert_eq!(store.collections().unwrap(), ["d"]);
    assert_clean(store);
}

fn audit(store: &mut dyn Store) {
    load(store, "good", vec![step(0, 1.0)]);
    assert_clean(store);
    // A commit whose metadata names another dataset leaves `odd` without a
    // metadata entry and a metadata entry `stray` without a collection.
    let mut l = store.begin_load("odd").unwrap();
    l.write(crate::common::docs(vec![step(0, 1.0)])).unwrap();
    l.commit(crate::common::entries(
        coord_index("odd"),
        metadata("stray", &[]),
    ))
    .unwrap();
    let mut findings = audit_findings(store).unwrap();
    findings.sort();
    assert_eq!(
        findings,
        [
            "collection 'odd' has no metadata entry",
            "metadata entry 'stray' has no collection",
        ]
    );
}

/// An ingest-log entry as `load` writes it (fewer fields).
fn ingest(name: &str, input: &str, documents: i64) -> Document {
    doc! {
        "_id": ingest_id(name, input),
        "name": name,
        "input": input,
        "path": format!("/data/{input}.mat"),
        "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "documents": documents,
    }
}

/// Load `docs` into `name` with these ingest-log entries, and commit.
fn load_logged(store: &mut dyn Store, name: &str, docs: Vec<Document>, log: Vec<Document>) {
    let mut l = store.begin_load(name).unwrap();
    l.write(crate::common::docs(docs)).unwrap();
    l.commit(Entries {
        ingest: log,
        ..crate::common::entries(coord_index(name), metadata(name, &[name]))
    })
    .unwrap();
}

fn ingest_log(store: &mut dyn Store) {
    // Not committed: not logged.
    {
        let mut l = store.begin_load("a").unwrap();
        l.write(crate::common::docs(vec![step(0, 1.0)])).unwrap();
        // Dropped before its commit, which would have logged it.
        let _never_committed = Entries {
            ingest: vec![ingest("a", "i1", 1)],
            ..crate::common::entries(coord_index("a"), metadata("a", &["a"]))
        };
    }
    assert!(store.ingest_log("a").unwrap().is_empty());
    assert_eq!(store.ingest_entry(&ingest_id("a", "i1")).unwrap(), None);

    load_logged(store, "a", vec![step(0, 1.0)], vec![ingest("a", "i1", 1)]);
    assert_eq!(store.ingest_log("a").unwrap(), [ingest("a", "i1", 1)]);
    assert_eq!(
        store.ingest_entry(&ingest_id("a", "i1")).unwrap(),
        Some(ingest("a", "i1", 1))
    );
    // The log is internal: neither a dataset nor a leftover.
    assert_eq!(store.collections().unwrap(), ["a"]);
    assert_clean(store);

    // The same input again replaces its entry; another input adds one.
    load_logged(
        store,
        "a",
        vec![step(0, 1.0), step(1000, 2.0)],
        vec![ingest("a", "i1", 2), ingest("a", "i2", 1)],
    );
    assert_eq!(
        store.ingest_log("a").unwrap(),
        [ingest("a", "i1", 2), ingest("a", "i2", 1)]
    );
    // Each dataset has its own entries, even for the same input.
    load_logged(store, "b", vec![step(0, 1.0)], vec![ingest("b", "i1", 1)]);
    assert_eq!(store.ingest_log("b").unwrap(), [ingest("b", "i1", 1)]);
    assert_eq!(store.ingest_log("a").unwrap().len(), 2);

    // rename moves them, remove deletes them.
    store.rename("a", "c").unwrap();
    assert!(store.ingest_log("a").unwrap().is_empty());
    assert_eq!(
        store.ingest_log("c").unwrap(),
        [ingest("c", "i1", 2), ingest("c", "i2", 1)]
    );
    store.remove("c").unwrap();
    assert!(store.ingest_log("c").unwrap().is_empty());
    assert_eq!(store.ingest_log("b").unwrap(), [ingest("b", "i1", 1)]);
    assert_clean(store);
}

fn locks(store: &mut dyn Store) {
    let w = Duration::from_secs(5);
    let me = Holder::this_process();
    // pid 1 always runs; no pid is this high; another host cannot be checked.
    let other = Holder {
        pid: 1,
        pid_start: fluxpy::store::lock::process_start(1),
        token: "other".into(),
        ..me.clone()
    };
    let gone = Holder {
        pid: 0x7fff_fff0,
        token: "gone".into(),
        ..me.clone()
    };
    let far = Holder {
        host: "elsewhere.example".into(),
        token: "far".into(),
        ..gone.clone()
    };
    let lapsed = Holder {
        expires: chrono::Utc::now() - chrono::Duration::seconds(1),
        token: "lapsed".into(),
        ..far.clone()
    };

    assert_eq!(store.try_lock("a", &me, w).unwrap(), Attempt::Taken);
    assert_eq!(store.locks().unwrap(), [("a".to_string(), me.clone())]);
    assert_eq!(store.try_lock("a", &me, w).unwrap(), Attempt::Taken);
    assert_eq!(
        store.try_lock("a", &other, w).unwrap(),
        Attempt::Held(me.clone())
    );
    // Each dataset has its own lock.
    assert_eq!(store.try_lock("b", &other, w).unwrap(), Attempt::Taken);
    // Only the holder releases it.
    assert!(!store.unlock("a", &other).unwrap());
    assert!(store.unlock("a", &me).unwrap());
    assert!(!store.unlock("a", &me).unwrap());
    assert_eq!(store.try_lock("a", &other, w).unwrap(), Attempt::Taken);
    assert!(store.unlock("a", &other).unwrap());
    assert!(store.unlock("b", &other).unwrap());
    assert!(store.locks().unwrap().is_empty());

    // A lock whose process is gone is taken over.
    assert_eq!(store.try_lock("s", &gone, w).unwrap(), Attempt::Taken);
    assert_eq!(store.try_lock("s", &me, w).unwrap(), Attempt::Taken);
    assert_eq!(store.locks().unwrap(), [("s".to_string(), me.clone())]);
    assert!(!store.unlock("s", &gone).unwrap());
    assert!(store.unlock("s", &me).unwrap());
    // One held from another host is not while its lease runs; once its
    // lease has lapsed, it is.
    assert_eq!(store.try_lock("f", &far, w).unwrap(), Attempt::Taken);
    assert_eq!(
        store.try_lock("f", &me, w).unwrap(),
        Attempt::Held(far.clone())
    );
    assert_eq!(store.try_lock("l", &lapsed, w).unwrap(), Attempt::Taken);
    assert_eq!(store.try_lock("l", &me, w).unwrap(), Attempt::Taken);
    assert!(!store.unlock("l", &lapsed).unwrap());
    assert!(store.unlock("l", &me).unwrap());

    // The audit names the stale locks; a live one is a note. --fix
    // removes the stale ones only.
    assert_eq!(store.try_lock("s", &gone, w).unwrap(), Attempt::Taken);
    assert_eq!(store.try_lock("l", &lapsed, w).unwrap(), Attempt::Taken);
    let report = audit_report(store).unwrap();
    assert_eq!(report.findings.len(), 2, "{:?}", report.findings);
    assert!(
        report.findings[0].contains("stale lock on 'l'")
            && report.findings[0].contains("elsewhere.example")
            && report.findings[1].contains("stale lock on 's'")
            && report.findings[1].contains(&format!("pid {}", gone.pid)),
        "{:?}",
        report.findings
    );
    assert!(
        report.notes.len() == 1 && report.notes[0].contains("'f'"),
        "{:?}",
        report.notes
    );
    let fixed = fix(store).unwrap();
    assert!(
        fixed.len() == 2
            && fixed[0].contains("stale lock on 'l'")
            && fixed[1].contains("stale lock on 's'"),
        "{fixed:?}"
    );
    assert_eq!(store.locks().unwrap(), [("f".to_string(), far.clone())]);
    assert!(store.unlock("f", &far).unwrap());
    assert_clean(store);

    // Two hosts: host B's lease is renewed while B holds the lock, so
    // host A cannot take it over, however long B works; once B stops
    // renewing, the lease lapses and A takes the lock over. The lease is
    // renewed every third of it, so a renewal may take up to two thirds of
    // it on a busy machine (3 s: 2 s of slack).
    let lease = Duration::from_secs(3);
    let host_b = Holder {
        host: "host-b.example".into(),
        token: "b".into(),
        ..me.clone()
    };
    let host_a = Holder {
        host: "host-a.example".into(),
        token: "a".into(),
        ..me.clone()
    };
    let held = lock::acquire_leased(store, "r", &host_b, w, "", lease).unwrap();
    std::thread::sleep(lease * 2);
    match store.try_lock("r", &host_a.renewed(lease), w).unwrap() {
        Attempt::Held(h) => {
            assert_eq!(h.token, "b");
            assert!(h.expires > chrono::Utc::now(), "{h:?}");
        }
        other => panic!("host A got {other:?} while host B renews"),
    }
    held.check().unwrap();
    drop(held);
    std::thread::sleep(lease + lease / 2);
    assert_eq!(
        store.try_lock("r", &host_a.renewed(lease), w).unwrap(),
        Attempt::Taken
    );
    assert!(!store.unlock("r", &host_b).unwrap());

    // A holder whose lock was taken over meanwhile learns it, and its
    // renewals leave the new holder's lock alone.
    let held = lock::acquire_leased(store, "t", &host_b, w, "", lease).unwrap();
    assert!(store.unlock("t", &host_b).unwrap());
    let a_lock = host_a.renewed(Duration::from_secs(600));
    assert_eq!(store.try_lock("t", &a_lock, w).unwrap(), Attempt::Taken);
    std::thread::sleep(lease);
    let e = held.check().unwrap_err().to_string();
    assert!(e.contains("'t'") && e.contains("took its lock over"), "{e}");
    let locks = store.locks().unwrap();
    assert_eq!(locks[1], ("t".to_string(), a_lock));
    assert!(store.unlock("r", &host_a).unwrap());
    assert!(store.unlock("t", &host_a).unwrap());
    assert_clean(store);
}

/// Run every scenario on fresh stores made by `fresh`, naming the scenario
/// that fails.
fn run_all(backend: &str, mut fresh: impl FnMut(&mut dyn FnMut(&mut dyn Store))) {
    for (name, scenario) in SCENARIOS {
        println!("{backend}: {name}");
        fresh(&mut |store| scenario(store));
    }
}

#[test]
fn embedded_store_conforms() {
    run_all("embedded", |f| {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Embedded::open(&dir.path().join("s.db")).unwrap();
        f(&mut store);
        // And what was committed is on disk.
        let expected = store.collections().unwrap();
        drop(store);
        let store = Embedded::open(&dir.path().join("s.db")).unwrap();
        assert_eq!(store.collections().unwrap(), expected);
    });
}

#[test]
fn a_file_that_is_not_an_embedded_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("not.db");
    std::fs::write(&p, b"this is a text file, not a database, not at all").unwrap();
    let err = Embedded::open(&p).err().expect("refused").to_string();
    assert!(err.contains("not.db"), "{err}");
}

#[test]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
fn mongodb_conforms_when_a_test_deployment_is_given() {
    let uri = common::mongodb_uri();
    run_all("mongodb", |f| {
        let mut db = FreshDb::new(&uri);
        f(&mut db.store);
    });

    // MongoDB only: a load killed before its commit leaves its staging
    // collection, which `db -a` reports and the same load run again repairs.
    let mut db = FreshDb::new(&uri);
    let store: &mut dyn Store = &mut db.store;
    load(store, "x", vec![step(0, 1.0)]);
    let mut l = store.begin_load("x").unwrap();
    l.write(crate::common::docs(vec![step(1000, 2.0)])).unwrap();
    std::mem::forget(l); // as if the process died here
    assert_eq!(store.leftovers().unwrap(), [staging_name("x")]);
    let findings = audit_findings(store).unwrap();
    assert!(
        findings.len() == 1 && findings[0].contains("interrupted load of 'x'"),
        "{findings:?}"
    );
    assert_eq!(all(store, "x"), [step(0, 1.0)]);
    load(store, "x", vec![step(1000, 2.0)]);
    assert_eq!(ids(&all(store, "x")), [0, 1000]);
    assert_clean(store);

    // Or `db -a --fix` drops the leftover, leaving the dataset as it was.
    let mut l = store.begin_load("x").unwrap();
    l.write(crate::common::docs(vec![step(2000, 3.0)])).unwrap();
    std::mem::forget(l);
    assert_eq!(store.leftovers().unwrap(), [staging_name("x")]);
    let fixed = fix(store).unwrap();
    assert!(
        fixed.len() == 1 && fixed[0].contains("_load.x"),
        "{fixed:?}"
    );
    assert_eq!(ids(&all(store, "x")), [0, 1000]);
    assert_clean(store);
}

/// The real binary writes byte-for-byte the same documents into MongoDB as
/// into the embedded store, and `db`, `export`, `rename`, `remove` agree.
#[test]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
fn mongodb_and_embedded_hold_the_same_bytes_when_a_test_deployment_is_given() {
    let uri = common::mongodb_uri();
    let db = FreshDb::new(&uri);
    let env = common::Env::new();
    let sample = common::sample();
    let sample = sample.to_str().unwrap();
    let embedded = env.db();
    let embedded = embedded.to_str().unwrap();
    for target in [embedded, db.uri.as_str()] {
        for args in [
            vec![
                "load",
                "-p",
                sample,
                "-m",
                "SpatioTemporalMatrix",
                "-n",
                "flux",
            ],
            vec!["rename", "-n", "flux", "-r", "flux_na"],
        ] {
            let mut a = vec!["--db", target];
            a.extend(args);
            env.run(&a).ok();
        }
    }
    let stores: Vec<Box<dyn Store>> = vec![
        fluxpy::store::open(Some(embedded)).unwrap(),
        fluxpy::store::open(Some(&db.uri)).unwrap(),
    ];
    let bytes = |s: &dyn Store, c: &str| -> Vec<Vec<u8>> {
        let mut out = vec![];
        s.scan(c, &Filter::All, &mut |d| {
            out.push(bson::to_vec(&d).unwrap());
            Ok(())
        })
        .unwrap();
        out
    };
    for c in ["flux_na", METADATA, COORD_INDEX] {
        let (e, m) = (bytes(&*stores[0], c), bytes(&*stores[1], c));
        assert!(!e.is_empty(), "{c}");
        assert_eq!(e, m, "collection {c} differs");
    }
    // The files a dataset came from: the same but for when and how fast.
    let files = |target: &str| {
        let mut md = env
            .run(&["--db", target, "db", "-n", "flux_na"])
            .ok()
            .json();
        for f in md["files"].as_array_mut().unwrap() {
            let f = f.as_object_mut().unwrap();
            for volatile in ["seconds", "loaded_at"] {
                assert!(f.remove(volatile).is_some(), "{volatile}");
            }
        }
        md
    };
    let md = files(embedded);
    assert_eq!(md["files"].as_array().unwrap().len(), 1);
    assert_eq!(md, files(&db.uri));
    for args in [
        vec!["db", "-l", "collections", "-x"],
        vec!["db", "-a"],
        vec!["export", "-n", "flux_na"],
        vec!["export", "-n", "flux_na", "--at", "2004-06-30T03:00:00"],
    ] {
        let out = |target: &str| {
            let mut a = vec!["--db", target];
            a.extend(args.iter().copied());
            env.run(&a).ok().stdout
        };
        assert_eq!(out(embedded), out(&db.uri), "{args:?}");
    }
    env.run(&["--db", &db.uri, "remove", "-n", "flux_na"]).ok();
    assert!(stores[1].collections().unwrap().is_empty());
    assert!(stores[1].entry_ids(METADATA).unwrap().is_empty());
}
