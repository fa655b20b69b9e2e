//! The `Store` contract, exercised through the trait on the embedded store.

use bson::{doc, Bson, DateTime, Document};
use fluxpy::store::{embedded::Embedded, Filter, Store, COORD_INDEX, METADATA};

fn step(ms: i64, v: f64) -> Document {
    doc! { "_id": DateTime::from_millis(ms), "values": [v, v + 1.0] }
}

fn ids(store: &dyn Store, name: &str) -> Vec<Bson> {
    let mut out = vec![];
    store
        .scan(name, &Filter::All, &mut |d| {
            out.push(d.get("_id").unwrap().clone());
            Ok(())
        })
        .unwrap();
    out
}

#[test]
fn an_uncommitted_load_leaves_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Embedded::open(&dir.path().join("s.db")).unwrap();
    {
        let mut load = store.begin_load("x").unwrap();
        load.write(vec![step(0, 1.0), step(1000, 2.0)]).unwrap();
        // dropped: as when a conversion fails half way
    }
    assert!(store.collections().unwrap().is_empty());
    assert!(store.entry_ids(METADATA).unwrap().is_empty());

    let mut load = store.begin_load("x").unwrap();
    load.write(vec![step(1000, 2.0), step(0, 1.0)]).unwrap();
    load.write(vec![step(1000, 5.0)]).unwrap();
    load.commit(doc! {"_id": "x", "i": [[1.0, 2.0]]}, doc! {"_id": "x"})
        .unwrap();

    // Reopen: what was committed is on disk, in _id order, replaced not duplicated.
    drop(store);
    let store = Embedded::open(&dir.path().join("s.db")).unwrap();
    assert_eq!(store.collections().unwrap(), vec!["x"]);
    assert_eq!(store.count("x").unwrap(), 2);
    assert_eq!(
        ids(&store, "x"),
        vec![
            Bson::DateTime(DateTime::from_millis(0)),
            Bson::DateTime(DateTime::from_millis(1000))
        ]
    );
    let mut last = None;
    store
        .scan(
            "x",
            &Filter::Id(Bson::DateTime(DateTime::from_millis(1000))),
            &mut |d| {
                last = Some(d);
                Ok(())
            },
        )
        .unwrap();
    assert_eq!(
        last.unwrap().get_array("values").unwrap()[0],
        Bson::Double(5.0)
    );
    assert!(store.entry(COORD_INDEX, "x").unwrap().is_some());
}

#[test]
fn a_file_that_is_not_a_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("not.db");
    std::fs::write(&p, b"this is a text file, not a database, not at all").unwrap();
    let err = Embedded::open(&p).err().expect("refused").to_string();
    assert!(err.contains("not.db"), "{err}");
}

#[test]
fn large_documents_are_stored_compressed_and_read_back_as_the_same_bson() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let mut store = Embedded::open(&path).unwrap();
    let values: Vec<Bson> = (0..20_000)
        .map(|i| match i % 97 {
            0 => Bson::Null,
            _ => Bson::Double((i % 613) as f64 / 100.0 - 2.5),
        })
        .collect();
    let big = doc! { "_id": DateTime::from_millis(0), "values": values };
    let small = step(1000, 1.0);
    let mut load = store.begin_load("x").unwrap();
    load.write(vec![big.clone(), small.clone()]).unwrap();
    load.commit(doc! {"_id": "x", "i": []}, doc! {"_id": "x"})
        .unwrap();

    let mut back = vec![];
    store
        .scan("x", &Filter::All, &mut |d| {
            back.push(d);
            Ok(())
        })
        .unwrap();
    assert_eq!(back, vec![big.clone(), small.clone()]);
    assert_eq!(
        bson::to_vec(&back[0]).unwrap(),
        bson::to_vec(&big).unwrap(),
        "the same BSON bytes, key order included"
    );

    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let blobs: Vec<Vec<u8>> = conn
        .prepare("SELECT doc FROM \"c:x\" ORDER BY key")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let big_bson = bson::to_vec(&big).unwrap();
    assert!(
        blobs[0].starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
        "zstd frame"
    );
    assert!(
        blobs[0].len() * 3 < big_bson.len(),
        "{} bytes stored for {}",
        blobs[0].len(),
        big_bson.len()
    );
    assert_eq!(
        blobs[1],
        bson::to_vec(&small).unwrap(),
        "small ones as they are"
    );
}
