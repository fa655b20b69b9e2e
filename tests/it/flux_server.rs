//! The Carbon Data Explorer's API server (flux-server, github.com/arthur-e/
//! flux-server) reads MongoDB directly. This test loads the old tool's three
//! fixture models and a grid with NaN cells into the test server, asks
//! exactly the queries flux-server asks (core.js, api/xy.js, api/t.js), and
//! checks every answer against the same data loaded into the embedded store
//! and read back with `export` (an independent path: SQLite, not MongoDB).

use crate::common;

use std::collections::BTreeMap;

use bson::{doc, Bson, DateTime, Document};
use common::{Env, FreshDb};
use mongodb::sync::{Client, Database};
use serde_json::Value;

/// The fields flux-server reads from a metadata document.
const METADATA_FIELDS: &[&str] = &[
    "_id", "title", "gridded", "dates", "steps", "spans", "gridres", "bbox", "stats", "units",
];

/// A JSON number, an Extended JSON date (as its instant) or anything else,
/// compared by value: the embedded store's export writes `7` for the
/// double 7.0, the driver's relaxed Extended JSON `7.0`.
fn same(a: &Value, b: &Value) -> bool {
    same_within(a, b, 0.0)
}

/// [`same`], numbers within a relative `tol`.
fn same_within(a: &Value, b: &Value, tol: f64) -> bool {
    fn date(v: &Value) -> Option<i64> {
        let s = v.as_object()?.get("$date")?.as_str()?;
        Some(
            chrono::DateTime::parse_from_rfc3339(s)
                .ok()?
                .timestamp_millis(),
        )
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            x == y || (x - y).abs() <= tol * x.abs().max(y.abs())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_within(p, q, tol))
        }
        (Value::Object(x), Value::Object(y)) => {
            if let (Some(p), Some(q)) = (date(a), date(b)) {
                return p == q;
            }
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_within(v, w, tol)))
        }
        _ => a == b,
    }
}

fn json(d: &Document) -> Value {
    Bson::Document(d.clone()).into_relaxed_extjson()
}

fn assert_same_docs(mongo: &[Document], export: &[Value], what: &str) {
    assert_eq!(mongo.len(), export.len(), "{what}: number of documents");
    for (k, (m, e)) in mongo.iter().zip(export).enumerate() {
        assert!(
            same(&json(m), e),
            "{what}: document {k} differs:\n{}\n{e}",
            json(m)
        );
    }
}

fn collect(cursor: mongodb::sync::Cursor<Document>) -> Vec<Document> {
    cursor.map(|d| d.unwrap()).collect()
}

fn ms(v: &Value) -> i64 {
    let s = v["$date"].as_str().expect("an Extended JSON date");
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .timestamp_millis()
}

/// `values` of an exported step as numbers (NaN and ±Infinity from their
/// Extended JSON form), nulls as `None`.
fn values(d: &Value, field: &str) -> Vec<Option<f64>> {
    d[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| match v["$numberDouble"].as_str() {
            Some("NaN") => Some(f64::NAN),
            Some("Infinity") => Some(f64::INFINITY),
            Some("-Infinity") => Some(f64::NEG_INFINITY),
            _ => v.as_f64(),
        })
        .collect()
}

/// What MongoDB's `$sum`, `$min`, `$max` and `$avg` give over `v`: nulls
/// are ignored; `$avg` and `$min`/`$max` of nothing are null, `$sum` is 0.
/// NaN is a number: it makes a sum and a mean NaN, and sorts below every
/// other number (MongoDB's comparison order), so it is the `$min`.
fn accumulate(v: &[Option<f64>]) -> (f64, Option<f64>, Option<f64>, Option<f64>) {
    let n: Vec<f64> = v.iter().flatten().copied().collect();
    let sum: f64 = n.iter().sum();
    let order = |a: &f64, b: &f64| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap(),
    };
    let min = n.iter().copied().min_by(order);
    let max = n.iter().copied().max_by(order);
    let avg = (!n.is_empty()).then(|| sum / n.len() as f64);
    (sum, min, max, avg)
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn num(d: &Document, k: &str) -> Option<f64> {
    match d.get(k) {
        Some(Bson::Double(x)) => Some(*x),
        Some(Bson::Int32(x)) => Some(f64::from(*x)),
        Some(Bson::Int64(x)) => Some(*x as f64),
        _ => None,
    }
}

/// The gridded queries of xy.js and t.json, for dataset `name`.
fn gridded_queries(db: &Database, name: &str, export: &[Value], coords: &[Value]) {
    let coll = db.collection::<Document>(name);
    // xy.json?time=: find({_id: date}), one document, the same one.
    for e in export {
        let t = DateTime::from_millis(ms(&e["_id"]));
        let found = collect(coll.find(doc! { "_id": t }).run().unwrap());
        assert_eq!(found.len(), 1, "{name}: find one time");
        assert!(
            matches!(found[0].get("_id"), Some(Bson::DateTime(_))),
            "{name}: _id is a BSON date"
        );
        assert_same_docs(
            &found,
            std::slice::from_ref(e),
            &format!("{name} find(_id)"),
        );
        let v = found[0].get_array("values").unwrap();
        assert_eq!(
            v.len(),
            coords.len(),
            "{name}: values aligned with coord_index.i"
        );
    }
    let first = DateTime::from_millis(ms(&export[0]["_id"]));
    let last = DateTime::from_millis(ms(&export[export.len() - 1]["_id"]));
    let in_range = |lt: bool| -> Vec<Value> {
        export
            .iter()
            .filter(|e| {
                let t = ms(&e["_id"]);
                t >= first.timestamp_millis()
                    && if lt {
                        t < last.timestamp_millis()
                    } else {
                        t <= last.timestamp_millis()
                    }
            })
            .cloned()
            .collect()
    };

    // xy.json?aggregate=&start=&end=: $match [start, end), $sort by _id.
    let docs = collect(
        coll.aggregate([
            doc! { "$match": { "_id": { "$gte": first, "$lt": last } } },
            doc! { "$sort": { "_id": 1 } },
        ])
        .run()
        .unwrap(),
    );
    assert_same_docs(
        &docs,
        &in_range(true),
        &format!("{name} aggregate $match/$sort"),
    );

    // t.json?coords=&aggregate=&interval= and the geometry path: an
    // unsorted find over [start, end], walked as a time series.
    let docs = collect(
        coll.find(doc! { "_id": { "$gte": first, "$lte": last } })
            .run()
            .unwrap(),
    );
    assert_same_docs(&docs, &in_range(false), &format!("{name} unsorted find"));

    // t.json?aggregate=net|mean|min|max without interval: project, unwind
    // and group by _id, then sort.
    for (op, pick) in [("$sum", 0usize), ("$min", 1), ("$max", 2), ("$avg", 3)] {
        let out = collect(
            coll.aggregate([
                doc! { "$match": { "_id": { "$gte": first, "$lte": last } } },
                doc! { "$project": { "_id": "$_id", "values": "$values" } },
                doc! { "$unwind": "$values" },
                doc! { "$group": { "_id": "$_id", "values": { op: "$values" } } },
                doc! { "$sort": { "_id": 1 } },
            ])
            .run()
            .unwrap(),
        );
        let expected = in_range(false);
        assert_eq!(out.len(), expected.len(), "{name} {op}");
        for (o, e) in out.iter().zip(&expected) {
            assert_eq!(
                o.get_datetime("_id").unwrap().timestamp_millis(),
                ms(&e["_id"])
            );
            let (sum, min, max, avg) = accumulate(&values(e, "values"));
            let want = [Some(sum), min, max, avg][pick];
            match (num(o, "values"), want) {
                (Some(g), Some(w)) => assert!(close(g, w), "{name} {op}: {g} vs {w}"),
                (g, w) => assert_eq!(g, w, "{name} {op}"),
            }
        }
    }

    // t.json?aggregate=net&interval=daily: the daily sums of INTERVALS.
    let out = collect(
        coll.aggregate([
            doc! { "$match": { "_id": { "$gte": first, "$lte": last } } },
            doc! { "$project": {
                "day": { "$dayOfYear": "$_id" }, "year": { "$year": "$_id" }, "values": 1,
            } },
            doc! { "$unwind": "$values" },
            doc! { "$group": {
                "_id": { "year": "$year", "day": "$day" },
                "values": { "$sum": "$values" },
            } },
            doc! { "$sort": { "_id": 1 } },
        ])
        .run()
        .unwrap(),
    );
    let mut daily: BTreeMap<(i32, u32), f64> = BTreeMap::new();
    for e in in_range(false) {
        use chrono::Datelike;
        let t = chrono::DateTime::from_timestamp_millis(ms(&e["_id"])).unwrap();
        *daily.entry((t.year(), t.ordinal())).or_default() += accumulate(&values(&e, "values")).0;
    }
    assert_eq!(out.len(), daily.len(), "{name} daily groups");
    for (o, ((y, d), sum)) in out.iter().zip(&daily) {
        let id = o.get_document("_id").unwrap();
        assert_eq!(
            (num(id, "year"), num(id, "day")),
            (Some(f64::from(*y)), Some(f64::from(*d)))
        );
        assert!(close(num(o, "values").unwrap(), *sum), "{name} daily sum");
    }
}

/// flux-server's geometry path (core.js): `_geom_NAME` of `{ll, idx}` with
/// (made by the load), asked which cells a polygon holds.
fn geometry(db: &Database, name: &str, coords: &[Value], box_: [f64; 4]) -> Vec<usize> {
    let geom = db.collection::<Document>(&format!("_geom_{name}"));
    let made = collect(geom.find(doc! {}).sort(doc! { "idx": 1 }).run().unwrap());
    assert_eq!(made.len(), coords.len(), "{name}: _geom_ has every cell");
    for (i, (d, c)) in made.iter().zip(coords).enumerate() {
        assert_eq!(d.get_i32("idx").unwrap() as usize, i);
        assert!(same(&json(d)["ll"], c), "{name}: _geom_ cell {i}");
    }
    let [x0, y0, x1, y1] = box_;
    let ring = vec![
        Bson::Array(vec![x0.into(), y0.into()]),
        Bson::Array(vec![x1.into(), y0.into()]),
        Bson::Array(vec![x1.into(), y1.into()]),
        Bson::Array(vec![x0.into(), y1.into()]),
        Bson::Array(vec![x0.into(), y0.into()]),
    ];
    let found = collect(
        geom.find(doc! { "ll": { "$geoIntersects": { "$geometry": {
            "type": "Polygon", "coordinates": [ring],
        } } } })
        .run()
        .unwrap(),
    );
    let mut idx: Vec<usize> = found
        .iter()
        .map(|d| num(d, "idx").unwrap() as usize)
        .collect();
    idx.sort_unstable();
    // Independently: the cells whose centre lies in the box. Its edges are
    // geodesics, bending poleward by under 0.1 degree for these boxes, so a
    // point that close to an edge may fall either way.
    let inside = |margin: f64| -> Vec<usize> {
        coords
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                let (x, y) = (c[0].as_f64().unwrap(), c[1].as_f64().unwrap());
                x > x0 + margin && x < x1 - margin && y > y0 + margin && y < y1 - margin
            })
            .map(|(i, _)| i)
            .collect()
    };
    let (sure, maybe) = (inside(0.2), inside(-0.2));
    assert!(!sure.is_empty(), "{name}: the box holds cells");
    assert!(
        sure.iter().all(|i| idx.contains(i)),
        "{name}: $geoIntersects misses cells"
    );
    assert!(
        idx.iter().all(|i| maybe.contains(i)),
        "{name}: $geoIntersects finds cells outside"
    );
    idx
}

#[test]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
#[cfg_attr(no_shared, ignore = "needs ../shared/fixtures")]
fn the_carbon_data_explorers_queries_answer_as_the_embedded_export() {
    let uri = common::mongodb_test_uri(common::MONGODB_URI);
    let (casa, kriged, xco2) = (
        common::fixture("casagfed2004.mat"),
        common::fixture("kriged_xco2.mat"),
        common::fixture("xco2.mat"),
    );
    // A CF NetCDF-4 file loaded by CFGrid: flux-server must not be able to
    // tell it from a MATLAB-loaded grid.
    let ct = common::shared_fixture("netcdf", "ct_like_netcdf4.nc");
    let fresh = FreshDb::new(&uri);
    let db = Client::with_uri_str(&uri).unwrap().database(&fresh.name);
    let env = Env::new();
    let embedded = env.db();
    let embedded = embedded.to_str().unwrap();

    // A grid with NaN cells: whole cells, and single values.
    let grid = fluxpy::synth::Grid::NORTH_AMERICA.with_window(-100.0, -90.0, 30.0, 36.0);
    let mut m = fluxpy::synth::flux_matrix(&grid, 6, 3.0);
    let steps = m.ncols() - 2;
    for k in 0..steps {
        m[[0, 2 + k]] = f64::NAN;
    }
    m[[5, 3]] = f64::NAN;
    m[[7, 2 + steps - 1]] = f64::INFINITY;
    let nan = env.path("nan.mat");
    fluxpy::synth::write_mat_v5(&nan, "flux", &m, false).unwrap();

    let loads: [(&str, std::path::PathBuf, &str, Vec<&str>); 5] = [
        ("casa", casa, "SpatioTemporalMatrix", vec![]),
        (
            "kriged",
            kriged,
            "KrigedXCO2Matrix",
            vec!["-o", "timestamp=2009-06-15"],
        ),
        ("xco2", xco2, "XCO2Matrix", vec![]),
        (
            "withnan",
            nan,
            "SpatioTemporalMatrix",
            vec!["-o", "timestamp=2004-06-30"],
        ),
        ("ct", ct, "CFGrid", vec![]),
    ];
    for target in [embedded, fresh.uri.as_str()] {
        for (name, path, model, extra) in &loads {
            let mut a = vec![
                "load",
                "-p",
                path.to_str().unwrap(),
                "-m",
                model,
                "-n",
                name,
            ];
            a.extend(extra.iter().copied());
            env.run_on(target, &a).ok();
        }
    }
    let export = |name: &str| {
        env.run_on(embedded, &["export", "-n", name])
            .ok()
            .json_lines()
    };
    let store = fluxpy::store::open(Some(embedded)).unwrap();

    // core.js: metadata.find() and coord_index.find(), all of them.
    let metadata = collect(
        db.collection::<Document>("metadata")
            .find(doc! {})
            .run()
            .unwrap(),
    );
    let mut ids: Vec<&str> = metadata.iter().map(|d| d.get_str("_id").unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["casa", "ct", "kriged", "withnan", "xco2"]);
    for md in &metadata {
        let name = md.get_str("_id").unwrap();
        let want = env.run_on(embedded, &["db", "-n", name]).ok().json();
        let got = json(md);
        for f in METADATA_FIELDS {
            // The statistics are sums over blocks: the last bit of a mean
            // may differ between two loads of the same file.
            let tol = if *f == "stats" { 1e-12 } else { 0.0 };
            assert!(
                same_within(&got[f], &want[f], tol),
                "metadata {name}.{f}: {} vs {}",
                got[f],
                want[f]
            );
        }
        assert!(
            md.get_bool("gridded").is_ok(),
            "{name}: gridded is a boolean"
        );
        for d in md.get_array("dates").unwrap() {
            assert!(d.as_str().is_some(), "{name}: metadata dates are strings");
        }
    }
    let index = collect(
        db.collection::<Document>("coord_index")
            .find(doc! {})
            .run()
            .unwrap(),
    );
    assert_eq!(index.len(), 5);
    let mut coords: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for ci in &index {
        let name = ci.get_str("_id").unwrap().to_string();
        let want = store
            .entry(fluxpy::doc::COORD_INDEX, &name)
            .unwrap()
            .unwrap();
        assert_eq!(ci, &want, "coord_index {name}");
        let i = json(ci)["i"].as_array().unwrap().clone();
        coords.insert(name, i);
    }

    // The grids.
    for name in ["casa", "ct", "kriged", "withnan"] {
        let e = export(name);
        gridded_queries(&db, name, &e, &coords[name]);
    }
    let casa_cells = geometry(&db, "casa", &coords["casa"], [-100.0, 40.0, -96.0, 44.0]);
    // The geometry path then reads `values[idx]` of each step.
    let e = export("casa");
    let t0 = DateTime::from_millis(ms(&e[0]["_id"]));
    let step = db
        .collection::<Document>("casa")
        .find_one(doc! { "_id": t0 })
        .run()
        .unwrap()
        .unwrap();
    let v = step.get_array("values").unwrap();
    for &i in &casa_cells {
        assert!(same(
            &v[i].clone().into_relaxed_extjson(),
            &e[0]["values"][i]
        ));
    }

    // NaN and Inf are stored as the doubles NaN and Infinity (as the old
    // tool stored them, never null), which the export writes in Extended JSON.
    let e = export("withnan");
    let first = db
        .collection::<Document>("withnan")
        .find_one(doc! { "_id": DateTime::from_millis(ms(&e[0]["_id"])) })
        .run()
        .unwrap()
        .unwrap();
    assert!(
        matches!(first.get_array("values").unwrap()[0], Bson::Double(x) if x.is_nan()),
        "{first}"
    );
    assert_eq!(
        e[0]["values"][0],
        serde_json::json!({"$numberDouble": "NaN"})
    );
    let nulls: usize = e
        .iter()
        .map(|d| {
            d["values"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|v| v.is_null() || v.get("$numberDouble").is_some())
                .count()
        })
        .sum();
    assert_eq!(nulls, steps + 2);

    // Point data (xy.json?start=&end=): find({timestamp: [start, end)}, {_id: 0}).
    let e = export("xco2");
    let mut days: Vec<i64> = e.iter().map(|d| ms(&d["timestamp"])).collect();
    days.dedup();
    assert!(days.len() > 1);
    let coll = db.collection::<Document>("xco2");
    for w in days.windows(2) {
        let (start, end) = (DateTime::from_millis(w[0]), DateTime::from_millis(w[1]));
        let got = collect(
            coll.find(doc! { "timestamp": { "$gte": start, "$lt": end } })
                .projection(doc! { "_id": 0 })
                .run()
                .unwrap(),
        );
        let want: Vec<Value> = e
            .iter()
            .filter(|d| ms(&d["timestamp"]) == w[0])
            .map(|d| {
                let mut d = d.clone();
                d.as_object_mut().unwrap().remove("_id");
                d
            })
            .collect();
        assert!(!want.is_empty());
        assert_same_docs(&got, &want, "xco2 find(timestamp)");
        for g in &got {
            assert!(matches!(g.get("timestamp"), Some(Bson::DateTime(_))));
        }
    }
    // The geometry collection of points, and its query.
    let cells = geometry(&db, "xco2", &coords["xco2"], [-100.0, 30.0, -90.0, 40.0]);
    // For points, core.js `runGeomQuery` then runs an unsorted find({}) and
    // takes `itemsAll[idx]` as the point at coord_index position idx.
    let all = collect(coll.find(doc! {}).run().unwrap());
    assert_eq!(all.len(), coords["xco2"].len(), "one document per point");
    for i in cells {
        let at = json(&all[i])["coordinates"].clone();
        assert!(
            same(&at, &coords["xco2"][i]),
            "point {i}: {at} vs {}",
            coords["xco2"][i]
        );
    }
}
