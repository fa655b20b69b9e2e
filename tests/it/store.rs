//! How the embedded store keeps documents on disk (the behaviour every store
//! shares is in `conformance.rs`).

use bson::{doc, Bson, DateTime, Document};
use fluxpy::store::{embedded::Embedded, Filter, Store};

fn step(ms: i64, v: f64) -> Document {
    doc! { "_id": DateTime::from_millis(ms), "values": [v, v + 1.0] }
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
    load.write(crate::common::docs(vec![big.clone(), small.clone()]))
        .unwrap();
    load.commit(crate::common::entries(
        doc! {"_id": "x", "i": []},
        doc! {"_id": "x"},
    ))
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
    // The compact form of an array of numbers: its tag, then a zstd frame.
    assert!(blobs[0].starts_with(b"FP2\xff"), "compact form's tag");
    assert!(
        blobs[0][4..].starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
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
