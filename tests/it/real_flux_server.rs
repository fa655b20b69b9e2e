//! The Carbon Data Explorer's real web API server (flux-server, Node.js, in
//! `../shared/clients/flux-server`) run against what `manage` stored.
//!
//! The test installs the server (`npm ci`, or the copy named by
//! `FLUXPY_TEST_FLUX_SERVER_DIR`), loads a dataset of every model into a
//! fresh database of the test MongoDB deployment with the real binary,
//! starts `node flux-server.js` on it, and asks every route of the server
//! with realistic parameters. Every answer must equal what flux-server's
//! own code (`api/*.js`, `core.js`) computes from what `manage export` says
//! is stored, formatted as it formats (`Number(x.toFixed(2))`, a missing
//! value sent as `null`), and the server must be alive after every request.
//!
//! The old tool's own documents (`../shared/fixtures/oldtool/*.jsonl`) are
//! imported into a second database served by a second server: a request
//! that fails the same way there is the server's bug, not `manage`'s; each
//! one is named below ([`server_bugs`]) with its reason.
//!
//! Needs `node` and `npm`, the Python of the test environment (pymongo,
//! netCDF4) and the test deployment, all of which the README's test command
//! (`scripts/with-test-env`) provides; with the `flux-server-tests` feature
//! on, a missing one fails the test.

use crate::common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, Months, TimeZone, Utc};
use common::{Env, FreshDb};
use serde_json::{json, Value};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

// ---------------------------------------------------------------- setup

fn shared(rel: &str) -> PathBuf {
    let p = common::shared().join(rel);
    assert!(p.exists(), "{} is missing", p.display());
    p
}

/// The test environment's Python, with what these scripts import.
fn python() -> PathBuf {
    common::python_with(&["pymongo", "bson", "netCDF4", "numpy"])
}

fn run_python(script: &str, args: &[&str]) {
    common::run_python(&python(), script, args);
}

/// flux-server installed: the folder `FLUXPY_TEST_FLUX_SERVER_DIR` names
/// (where the test runner already ran `npm ci`), else a copy of the
/// shared folder in `tmp` where this runs `npm ci`.
fn install_flux_server(tmp: &Path) -> PathBuf {
    if let Ok(dir) = std::env::var("FLUXPY_TEST_FLUX_SERVER_DIR") {
        let dir = PathBuf::from(dir);
        assert!(
            dir.join("flux-server.js").is_file() && dir.join("node_modules/mongodb").is_dir(),
            "FLUXPY_TEST_FLUX_SERVER_DIR={} is not a flux-server folder where `npm ci` ran",
            dir.display()
        );
        return dir;
    }
    let src = shared("clients/flux-server");
    let dir = tmp.join("flux-server");
    let st = Command::new("cp")
        .arg("-r")
        .arg(&src)
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success(), "cp -r {} failed", src.display());
    // The shared folder is read-only; npm writes node_modules here.
    let st = Command::new("chmod")
        .args(["-R", "u+w"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("npm is needed to install flux-server (Debian: apt-get install nodejs npm): {e}")
        });
    assert!(
        out.status.success(),
        "npm ci in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One GET over HTTP/1.0; `None` when the connection closes without an
/// answer (the process died while handling it).
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// A running `node flux-server.js` on one database.
struct Server {
    dir: PathBuf,
    uri: String,
    log: PathBuf,
    names: Vec<String>,
    port: u16,
    child: Option<Child>,
    crashes: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Answer {
    /// The process exited while handling the request.
    Crash,
    Http(u16, String),
}

impl Server {
    fn start(dir: &Path, uri: &str, log: PathBuf, names: &[&str]) -> Self {
        let mut s = Self {
            dir: dir.to_path_buf(),
            uri: uri.to_string(),
            log,
            names: names.iter().map(|n| n.to_string()).collect(),
            port: 0,
            child: None,
            crashes: 0,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        self.port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new("node")
            .arg("flux-server.js")
            .current_dir(&self.dir)
            .env("FLUX_MONGO_URI", &self.uri)
            .env("FLUX_PROJ_DIR", &self.dir)
            .env("PORT", self.port.to_string())
            // Times without an offset are read in local time by JavaScript.
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("node is needed to run flux-server (Debian: nodejs): {e}"));
        self.child = Some(child);
        // It reads metadata and coord_index once, after it listens: ready
        // when it lists every dataset.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(
                self.alive(),
                "flux-server exited at start: {}",
                self.log_tail()
            );
            if let Some((200, body)) = http_get(self.port, "/flux/api/scenarios.json") {
                let listed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let ids: Vec<&str> = listed
                    .as_array()
                    .map(|a| a.iter().filter_map(|d| d["_id"].as_str()).collect())
                    .unwrap_or_default();
                if self.names.iter().all(|n| ids.contains(&n.as_str())) {
                    // coord_index is read by another callback of the same start.
                    std::thread::sleep(Duration::from_millis(500));
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "flux-server did not list {:?} within 60 s: {}",
                self.names,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Ask `path`; a request that kills the process is a `Crash`, and the
    /// server is started again for the next one.
    fn ask(&mut self, path: &str) -> Answer {
        let got = http_get(self.port, path);
        // A throw in a driver callback ends the process right after.
        std::thread::sleep(Duration::from_millis(30));
        if got.is_none() || !self.alive() {
            self.crashes += 1;
            if let Some(mut c) = self.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
            self.spawn();
            return Answer::Crash;
        }
        let (code, body) = got.unwrap();
        Answer::Http(code, body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Two masked CF NetCDF-4 files on a small 1° grid, float32 µmol m-2 s-1
/// with a `_FillValue`: `a` holds 2004-06-30 00:00 to 09:00 (3-hourly),
/// `b` the same hours of 2004-07-01. Cell 0 is masked at every step, cell
/// 19 at the second step of each file, and the third step of `b` is masked
/// whole; one cell is exactly 0.
const MAKE_NETCDF: &str = r#"
import sys, numpy as np, netCDF4
out, day = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(30 + day)
lat = np.arange(30.5, 36.5, 1.0)
lon = np.arange(-100.5, -92.5, 1.0)
with netCDF4.Dataset(out, 'w', format='NETCDF4') as f:
    f.createDimension('time', None)
    f.createDimension('latitude', lat.size)
    f.createDimension('longitude', lon.size)
    t = f.createVariable('time', 'f8', ('time',))
    t.units = 'hours since 2004-06-30 00:00:00'
    t.calendar = 'standard'
    t.standard_name = 'time'
    t[:] = 24.0 * day + 3.0 * np.arange(4)
    la = f.createVariable('latitude', 'f8', ('latitude',))
    la.units = 'degrees_north'
    la.standard_name = 'latitude'
    la[:] = lat
    lo = f.createVariable('longitude', 'f8', ('longitude',))
    lo.units = 'degrees_east'
    lo.standard_name = 'longitude'
    lo[:] = lon
    v = f.createVariable('flux', 'f4', ('time', 'latitude', 'longitude'), fill_value=np.float32(-1e34))
    v.units = 'umol m-2 s-1'
    v.long_name = 'surface flux'
    data = rng.uniform(-4.0, 6.0, size=(4, lat.size, lon.size)).astype('f4')
    mask = np.zeros(data.shape, bool)
    mask[:, 0, 0] = True
    mask[1, 2, 3] = True
    if day == 1:
        mask[2] = True
    data[0, 1, 1] = 0.0
    v[:] = np.ma.masked_array(data, mask)
"#;

/// Import the old tool's collections (`*.jsonl`, canonical Extended JSON)
/// into database argv[2] of argv[1].
const IMPORT_OLDTOOL: &str = r#"
import sys, glob, os
from pymongo import MongoClient
from bson import json_util
uri, name, folder = sys.argv[1:4]
db = MongoClient(uri)[name]
for path in sorted(glob.glob(os.path.join(folder, '*.jsonl'))):
    docs = [json_util.loads(l) for l in open(path) if l.strip()]
    db[os.path.basename(path)[:-6]].insert_many(docs, ordered=True)
"#;

// ------------------------------------------- what `manage export` says

/// A number as stored: `null` (how `manage` stored a missing value before)
/// and Extended JSON's NaN and infinities are all "missing", NaN here.
fn stored_number(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::Null => f64::NAN,
        Value::Object(o) => match o.get("$numberDouble").and_then(Value::as_str) {
            Some("NaN") => f64::NAN,
            Some("Infinity") => f64::INFINITY,
            Some("-Infinity") => f64::NEG_INFINITY,
            Some(s) => s.parse().unwrap(),
            None => panic!("not a number: {v}"),
        },
        _ => panic!("not a number: {v}"),
    }
}

fn export_ms(v: &Value) -> i64 {
    let s = v["$date"].as_str().expect("an Extended JSON date");
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .timestamp_millis()
}

fn iso(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

fn iso_z(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

struct Step {
    ms: i64,
    values: Vec<f64>,
}

struct Point {
    ms: i64,
    coords: [f64; 2],
    value: f64,
    /// The stored document without `_id`, as the server sends it.
    doc: Value,
}

enum Data {
    Grid {
        steps: Vec<Step>,
        coords: Vec<[f64; 2]>,
    },
    Points {
        points: Vec<Point>,
        coords: Vec<[f64; 2]>,
    },
}

/// Extended JSON as flux-server's JSON: dates as ISO strings with
/// milliseconds, NaN and infinities as null.
fn as_served(v: &Value) -> Value {
    match v {
        Value::Object(o) if o.contains_key("$date") => Value::String(iso_z(export_ms(v))),
        Value::Object(o) if o.contains_key("$numberDouble") => {
            let x = stored_number(v);
            if x.is_finite() {
                json!(x)
            } else {
                Value::Null
            }
        }
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), as_served(v))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(as_served).collect()),
        _ => v.clone(),
    }
}

fn read_data(env: &Env, db: &str, name: &str) -> (Data, Value, bool) {
    let docs = env.run_on(db, &["export", "-n", name]).ok().json_lines();
    assert!(!docs.is_empty(), "{name}: nothing exported");
    let mut metadata = env.run_on(db, &["db", "-n", name]).ok().json();
    metadata.as_object_mut().unwrap().remove("files");
    let metadata = as_served(&metadata);
    let mut nulls = false;
    if docs[0].get("values").is_some() {
        let steps: Vec<Step> = docs
            .iter()
            .map(|d| Step {
                ms: export_ms(&d["_id"]),
                values: d["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| {
                        nulls |= v.is_null();
                        stored_number(v)
                    })
                    .collect(),
            })
            .collect();
        // The cells, in coord_index order: the CSV export of one time.
        let csv = env
            .run_on(
                db,
                &[
                    "export",
                    "-n",
                    name,
                    "--at",
                    &iso(steps[0].ms),
                    "--format",
                    "csv",
                ],
            )
            .ok()
            .stdout;
        let coords: Vec<[f64; 2]> = csv
            .lines()
            .skip(1)
            .map(|l| {
                let mut f = l.split(',');
                let x = f.next().unwrap().parse().unwrap();
                let y = f.next().unwrap().parse().unwrap();
                [x, y]
            })
            .collect();
        assert_eq!(coords.len(), steps[0].values.len(), "{name}: cells");
        (Data::Grid { steps, coords }, metadata, nulls)
    } else {
        let points: Vec<Point> = docs
            .iter()
            .map(|d| {
                let c = d["coordinates"].as_array().unwrap();
                let mut doc = d.clone();
                doc.as_object_mut().unwrap().remove("_id");
                nulls |= d["properties"]["value"].is_null();
                Point {
                    ms: export_ms(&d["timestamp"]),
                    coords: [stored_number(&c[0]), stored_number(&c[1])],
                    value: stored_number(&d["properties"]["value"]),
                    doc: as_served(&doc),
                }
            })
            .collect();
        // coord_index lists the points in the order of their first document.
        let mut coords: Vec<[f64; 2]> = Vec::new();
        for p in &points {
            if !coords.contains(&p.coords) {
                coords.push(p.coords);
            }
        }
        (Data::Points { points, coords }, metadata, nulls)
    }
}

// ------------------------------------------- flux-server's computations

/// `Number(x.toFixed(2))` as JSON: JavaScript's toFixed rounds the exact
/// value of the double, a tie away from zero; NaN and infinities become
/// `null` in JSON.
fn fix2(x: f64) -> Value {
    if !x.is_finite() {
        return Value::Null;
    }
    // A tie at two decimals is x = k/8 with k odd, exactly.
    let e = x * 8.0;
    let s = if e.fract() == 0.0 && (e as i64) % 2 != 0 {
        let n = (x.abs() * 100.0 + 0.5).floor() / 100.0;
        format!("{:.2}", n.copysign(x))
    } else {
        format!("{x:.2}")
    };
    json!(s.parse::<f64>().unwrap())
}

fn mean(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |s, x| s + x) / v.len() as f64
}

fn std_pop(v: &[f64]) -> f64 {
    let m = mean(v);
    let sq: Vec<f64> = v.iter().map(|x| (x - m).powi(2)).collect();
    mean(&sq).sqrt()
}

/// `Math.min.apply(null, v)`: NaN if any is NaN, +Infinity of nothing.
fn js_min(v: &[f64]) -> f64 {
    v.iter().fold(f64::INFINITY, |m, &x| {
        if x.is_nan() || m.is_nan() {
            f64::NAN
        } else {
            m.min(x)
        }
    })
}

fn js_max(v: &[f64]) -> f64 {
    v.iter().fold(f64::NEG_INFINITY, |m, &x| {
        if x.is_nan() || m.is_nan() {
            f64::NAN
        } else {
            m.max(x)
        }
    })
}

/// underscore 1.4.4's `_.min`/`_.max` of numbers: `Math.min`/`Math.max`
/// unless the first is NaN; then a loop that never picks a NaN.
fn us_min(v: &[f64]) -> f64 {
    if v.first().is_some_and(|x| !x.is_nan()) {
        return js_min(v);
    }
    v.iter()
        .fold(f64::INFINITY, |m, &x| if x < m { x } else { m })
}

fn us_max(v: &[f64]) -> f64 {
    if v.first().is_some_and(|x| !x.is_nan()) {
        return js_max(v);
    }
    v.iter()
        .fold(f64::NEG_INFINITY, |m, &x| if x >= m { x } else { m })
}

/// `core.getSubOp(aggregate)` applied to a cell's values.
fn subop(aggregate: &str, v: &[f64]) -> f64 {
    match aggregate {
        "positive" => v.iter().fold(0.0, |m, &x| if x > 0.0 { m + x } else { m }),
        "negative" => v.iter().fold(0.0, |m, &x| if x < 0.0 { m + x } else { m }),
        "net" => v.iter().fold(0.0, |m, &x| m + x),
        "mean" => v.iter().fold(0.0, |m, &x| (m + x) * 0.5),
        "min" => us_min(v),
        "max" => us_max(v),
        _ => unreachable!(),
    }
}

fn add_unit(ms: i64, interval: &str) -> i64 {
    let t = Utc.timestamp_millis_opt(ms).unwrap();
    match interval {
        "daily" => ms + DAY,
        "monthly" => t
            .checked_add_months(Months::new(1))
            .unwrap()
            .timestamp_millis(),
        _ => unreachable!(),
    }
}

/// moment's `startOf(unit)` in UTC.
fn start_of(ms: i64, interval: &str) -> i64 {
    let t = Utc.timestamp_millis_opt(ms).unwrap();
    let d = match interval {
        "daily" => t.date_naive(),
        "monthly" => t.date_naive().with_day(1).unwrap(),
        _ => unreachable!(),
    };
    d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis()
}

/// MongoDB's grouping key of `INTERVALS[interval]` (or the step itself).
fn group_key(ms: i64, interval: Option<&str>) -> (i32, u32, i64) {
    let t: DateTime<Utc> = Utc.timestamp_millis_opt(ms).unwrap();
    match interval {
        None => (0, 0, ms),
        Some("daily") => (t.year(), t.ordinal(), 0),
        Some("monthly") => (t.year(), t.month(), 0),
        _ => unreachable!(),
    }
}

/// What MongoDB's `$group` accumulators give over one group's values:
/// `$sum`/`$avg` are NaN with a NaN, `$min` is NaN with a NaN (NaN sorts
/// below every number), `$max` ignores NaN unless all are.
fn accumulate(aggregate: &str, v: &[f64]) -> f64 {
    match aggregate {
        "net" => v.iter().sum(),
        "mean" => v.iter().sum::<f64>() / v.len() as f64,
        "min" => {
            if v.iter().any(|x| x.is_nan()) {
                f64::NAN
            } else {
                v.iter().copied().fold(f64::INFINITY, f64::min)
            }
        }
        "max" => {
            let n: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
            if n.is_empty() {
                f64::NAN
            } else {
                n.into_iter().fold(f64::NEG_INFINITY, f64::max)
            }
        }
        _ => unreachable!(),
    }
}

fn polygon(b: [f64; 4]) -> (String, Value) {
    let ring = [
        [b[0], b[1]],
        [b[2], b[1]],
        [b[2], b[3]],
        [b[0], b[3]],
        [b[0], b[1]],
    ];
    let wkt = ring
        .iter()
        .map(|p| format!("{}%2B{}", p[0], p[1]))
        .collect::<Vec<_>>()
        .join("%2C");
    (format!("POLYGON(({wkt}))"), json!([ring]))
}

/// The cells inside a box whose edges are at least `margin` degrees from
/// every cell (so that the geodesic edges of MongoDB's 2dsphere polygon
/// and the box's straight ones hold the same cells), in coord_index order.
fn inside(coords: &[[f64; 2]], b: [f64; 4], margin: f64) -> Vec<usize> {
    for c in coords {
        let near = |v: f64, e: f64| (v - e).abs() < margin;
        let in_x = c[0] > b[0] - margin && c[0] < b[2] + margin;
        let in_y = c[1] > b[1] - margin && c[1] < b[3] + margin;
        assert!(
            !((near(c[0], b[0]) || near(c[0], b[2])) && in_y
                || (near(c[1], b[1]) || near(c[1], b[3])) && in_x),
            "point {c:?} is too near the edge of the test polygon {b:?}: choose another"
        );
    }
    (0..coords.len())
        .filter(|&i| {
            let c = coords[i];
            c[0] > b[0] && c[0] < b[2] && c[1] > b[1] && c[1] < b[3]
        })
        .collect()
}

/// Per item: mean, min, max, std and n as sent; and every value.
type Series = (
    Vec<Value>,
    Vec<Value>,
    Vec<Value>,
    Vec<Value>,
    Vec<Value>,
    Vec<f64>,
);

fn stat_arrays(items: &[Vec<f64>]) -> Series {
    let (mut me, mut mi, mut ma, mut sd, mut n, mut all) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for v in items {
        me.push(fix2(mean(v)));
        sd.push(fix2(std_pop(v)));
        mi.push(fix2(js_min(v)));
        ma.push(fix2(js_max(v)));
        n.push(json!(v.len()));
        all.extend_from_slice(v);
    }
    (me, mi, ma, sd, n, all)
}

/// `core.runGeomQuery`'s answer.
fn geom_answer(
    start: &str,
    end: &str,
    geom: Value,
    interval: Option<&str>,
    items: Vec<Vec<f64>>,
    times: Vec<Value>,
) -> Value {
    let (me, mi, ma, sd, n, all) = stat_arrays(&items);
    let mut props = json!({
        "start": start, "end": end, "geom": geom,
        "allMean": fix2(mean(&all)), "allMax": fix2(js_max(&all)),
        "allMin": fix2(js_min(&all)), "allSTD": fix2(std_pop(&all)), "allN": all.len(),
    });
    if let Some(i) = interval {
        props["interval"] = json!(i);
    }
    json!({
        "seriesMean": me, "seriesMin": mi, "seriesMax": ma, "seriesSTD": sd,
        "seriesN": n, "seriesT": times, "properties": props,
    })
}

// ------------------------------------------------------------ judging

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Right,
    Crash,
    /// A missing value shown as 0 (or counted as 0).
    WrongZeros(String),
    Wrong(String),
}

enum Expect {
    Json(Value),
    Status(u16),
}

/// Numbers equal as doubles (JSON writes -0 as 0), within `tol` absolute.
fn same(a: &Value, b: &Value, tol: f64) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            x == y || (x - y).abs() <= tol
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q, tol))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same(v, w, tol)))
        }
        _ => a == b,
    }
}

/// Where the expected answer has a missing value (`null`) and the server
/// sent a number instead.
fn zeros_for_missing(want: &Value, got: &Value) -> Option<String> {
    match (want, got) {
        (Value::Null, Value::Number(n)) => Some(format!("null shown as {n}")),
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            x.iter().zip(y).find_map(|(p, q)| zeros_for_missing(p, q))
        }
        (Value::Object(x), Value::Object(y)) => x
            .iter()
            .find_map(|(k, v)| y.get(k).and_then(|w| zeros_for_missing(v, w))),
        _ => None,
    }
}

fn short(v: &str) -> String {
    v.chars().take(300).collect()
}

fn judge(want: &Expect, got: &Answer, tol: f64) -> Outcome {
    let (code, body) = match got {
        Answer::Crash => return Outcome::Crash,
        Answer::Http(c, b) => (*c, b),
    };
    match want {
        Expect::Status(s) if *s == code => Outcome::Right,
        Expect::Status(s) => {
            Outcome::Wrong(format!("status {code} where {s} was due: {}", short(body)))
        }
        Expect::Json(_) if code != 200 => Outcome::Wrong(format!("status {code}: {}", short(body))),
        Expect::Json(w) => {
            let Ok(g) = serde_json::from_str::<Value>(body) else {
                return Outcome::Wrong(format!("not JSON: {}", short(body)));
            };
            if same(w, &g, tol) {
                Outcome::Right
            } else if let Some(z) = zeros_for_missing(w, &g) {
                Outcome::WrongZeros(z)
            } else {
                Outcome::Wrong(format!(
                    "got {}\nwant {}",
                    short(&g.to_string()),
                    short(&w.to_string())
                ))
            }
        }
    }
}

/// The route × dataset table of outcomes, and the failures in detail.
#[derive(Default)]
struct Report {
    table: BTreeMap<(String, String), Vec<Outcome>>,
    failures: Vec<String>,
    requests: usize,
}

impl Report {
    fn record(&mut self, route: &str, dataset: &str, path: &str, outcome: Outcome) {
        self.requests += 1;
        if outcome != Outcome::Right {
            self.failures
                .push(format!("{dataset} {route}: {path}: {outcome:?}"));
        }
        self.table
            .entry((route.to_string(), dataset.to_string()))
            .or_default()
            .push(outcome);
    }

    fn print(&self) {
        eprintln!("route × dataset ({} requests):", self.requests);
        for ((route, dataset), outcomes) in &self.table {
            let n = outcomes.len();
            let crash = outcomes.iter().filter(|o| **o == Outcome::Crash).count();
            let zeros = outcomes
                .iter()
                .filter(|o| matches!(o, Outcome::WrongZeros(_)))
                .count();
            let wrong = outcomes
                .iter()
                .filter(|o| matches!(o, Outcome::Wrong(_)))
                .count();
            let verdict = if crash > 0 {
                "crash"
            } else if zeros > 0 {
                "wrong zeros"
            } else if wrong > 0 {
                "wrong"
            } else {
                "right"
            };
            eprintln!("| {route} | {dataset} | {verdict} | {n} requests: {crash} crashed, {zeros} zeros, {wrong} wrong |");
        }
    }
}

struct Asker<'a> {
    server: &'a mut Server,
    report: &'a mut Report,
}

impl Asker<'_> {
    fn check(&mut self, dataset: &str, route: &str, path: &str, want: Expect) {
        self.check_within(dataset, route, path, want, 0.0);
    }

    fn check_within(&mut self, dataset: &str, route: &str, path: &str, want: Expect, tol: f64) {
        let got = self.server.ask(path);
        let outcome = judge(&want, &got, tol);
        let alive = self.server.alive();
        self.report.record(route, dataset, path, outcome);
        assert!(alive, "flux-server is not running after {path}");
    }
}

const AGGREGATES: [&str; 6] = ["net", "mean", "min", "max", "positive", "negative"];
const INTERVALS: [&str; 2] = ["daily", "monthly"];

fn api(name: &str, route: &str) -> String {
    format!("/flux/api/scenarios/{name}/{route}")
}

/// Every route of a gridded dataset.
fn ask_grid(a: &mut Asker, name: &str, steps: &[Step], coords: &[[f64; 2]], geom_box: [f64; 4]) {
    let n = coords.len();
    let first = steps[0].ms;
    let last = steps[steps.len() - 1].ms;
    let within = |s: i64, e: i64, end_in: bool| -> Vec<&Step> {
        steps
            .iter()
            .filter(|st| st.ms >= s && (st.ms < e || end_in && st.ms == e))
            .collect()
    };

    // grid.json: coord_index as a MultiPoint.
    a.check(
        name,
        "grid.json",
        &api(name, "grid.json"),
        Expect::Json(json!({"type": "MultiPoint", "_id": name, "coordinates": coords})),
    );

    // xy.json?time=: each step; `(v) ? Number(v.toFixed(2)) : v`.
    for st in steps {
        let features: Vec<Value> = st
            .values
            .iter()
            .map(|&v| if v == 0.0 { json!(v) } else { fix2(v) })
            .collect();
        a.check(
            name,
            "xy.json?time",
            &api(name, &format!("xy.json?time={}", iso(st.ms))),
            Expect::Json(json!({"timestamp": iso_z(st.ms), "features": features, "properties": {"source": name}})),
        );
    }
    // verbose: the cells whose value is truthy (not 0, not NaN).
    let st = &steps[0];
    let features: Vec<Value> = st
        .values
        .iter()
        .enumerate()
        .filter(|(_, v)| **v != 0.0 && !v.is_nan())
        .map(|(i, &v)| json!({"type": "Point", "coordinates": coords[i], "properties": {"v": fix2(v)}}))
        .collect();
    a.check(
        name,
        "xy.json?time&verbose",
        &api(name, &format!("xy.json?time={}&verbose=true", iso(st.ms))),
        Expect::Json(
            json!({"timestamp": iso_z(st.ms), "type": "FeatureCollection", "features": features}),
        ),
    );
    // A time that is not stored.
    a.check(
        name,
        "xy.json?time (not stored)",
        &api(name, &format!("xy.json?time={}", iso(first + 60_000))),
        Expect::Status(404),
    );

    // xy.json?start&end&aggregate: steps in [start, end), element-wise.
    let windows = [
        (first, last + HOUR),
        (steps[steps.len() / 2].ms, last + HOUR),
        (last + HOUR, last + 2 * HOUR),
    ];
    for (s, e) in windows {
        let docs = within(s, e, false);
        for agg in AGGREGATES {
            let result: Vec<f64> = match agg {
                "min" | "max" => match docs.split_first() {
                    None => vec![0.0; n],
                    Some((head, rest)) => {
                        let mut r = head.values.clone();
                        for d in rest {
                            for (j, &v) in d.values.iter().enumerate() {
                                if (agg == "min" && v < r[j]) || (agg == "max" && v > r[j]) {
                                    r[j] = v;
                                }
                            }
                        }
                        r
                    }
                },
                _ => {
                    let mut r = vec![0.0; n];
                    for d in &docs {
                        for (j, &v) in d.values.iter().enumerate() {
                            r[j] += match agg {
                                // `(v > 0) ? v : 0`: NaN counts as 0.
                                "positive" => {
                                    if v > 0.0 {
                                        v
                                    } else {
                                        0.0
                                    }
                                }
                                "negative" => {
                                    if v < 0.0 {
                                        v
                                    } else {
                                        0.0
                                    }
                                }
                                _ => v,
                            };
                        }
                    }
                    if agg == "mean" {
                        r.iter_mut().for_each(|x| *x /= docs.len() as f64);
                    }
                    r
                }
            };
            let features: Vec<Value> = result.iter().map(|&v| fix2(v)).collect();
            a.check(
                name,
                &format!("xy.json?aggregate={agg}"),
                &api(
                    name,
                    &format!("xy.json?start={}&end={}&aggregate={agg}", iso(s), iso(e)),
                ),
                Expect::Json(json!({
                    "timestamp": iso(s),
                    "properties": {"start": iso(s), "end": iso(e)},
                    "features": features,
                })),
            );
        }
    }

    // t.json?coords=: one cell's series over [start, end].
    let missing_cell = (0..n).find(|&i| steps.iter().any(|s| s.values[i].is_nan()));
    // A cell with a value at every step that has any (a step may be
    // missing whole).
    let valid_cell = (0..n)
        .find(|&i| {
            steps
                .iter()
                .all(|s| !s.values[i].is_nan() || s.values.iter().all(|v| v.is_nan()))
        })
        .expect("a cell with a value at every step");
    let mut cells = vec![("t.json?coords", valid_cell)];
    if let Some(m) = missing_cell {
        cells.push(("t.json?coords (missing cell)", m));
    }
    for &(route, i) in &cells {
        let [x, y] = coords[i];
        let series: Vec<Value> = steps.iter().map(|s| fix2(s.values[i])).collect();
        a.check(
            name,
            route,
            &api(name, &format!("t.json?start={}&end={}&coords=POINT({x}+{y})", iso(first), iso(last))),
            Expect::Json(json!({"series": series, "properties": {"start": iso(first), "end": iso(last), "coords": [x, y]}})),
        );
    }
    a.check(
        name,
        "t.json?coords (outside the grid)",
        &api(
            name,
            &format!(
                "t.json?start={}&end={}&coords=POINT(0.25+0.25)",
                iso(first),
                iso(last)
            ),
        ),
        Expect::Status(404),
    );

    // t.json?aggregate=[&interval=]: MongoDB $group over [start, end].
    for interval in [None, Some("daily"), Some("monthly")] {
        for agg in AGGREGATES {
            let mut groups: BTreeMap<(i32, u32, i64), Vec<f64>> = BTreeMap::new();
            for st in within(first, last, true) {
                let g = groups.entry(group_key(st.ms, interval)).or_default();
                match agg {
                    "positive" => g.extend(st.values.iter().filter(|v| **v >= 0.0)),
                    "negative" => g.extend(st.values.iter().filter(|v| **v <= 0.0)),
                    _ => g.extend(&st.values),
                }
            }
            let series: Vec<Value> = groups
                .values()
                .filter(|g| !g.is_empty())
                .map(|g| match agg {
                    "positive" | "negative" => fix2(g.iter().sum()),
                    _ => fix2(accumulate(agg, g)),
                })
                .collect();
            let mut props = json!({"aggregate": agg, "start": iso(first), "end": iso(last)});
            let mut q = format!(
                "t.json?start={}&end={}&aggregate={agg}",
                iso(first),
                iso(last)
            );
            let route = match interval {
                Some(i) => {
                    props["interval"] = json!(i);
                    q += &format!("&interval={i}");
                    format!("t.json?aggregate={agg}&interval={i}")
                }
                None => format!("t.json?aggregate={agg}"),
            };
            // Sums of many cells: the server's addition order may move a
            // result across a rounding boundary.
            a.check_within(
                name,
                &route,
                &api(name, &q),
                Expect::Json(json!({"properties": props, "series": series})),
                0.0101,
            );
        }
    }

    // t.json?coords&aggregate&interval: core.js walks the steps in
    // stored order; a chunk ends at the first step at or after t0 + k
    // units (a step exactly there is in both chunks); the last chunk is
    // never sent.
    let i = missing_cell.unwrap_or(valid_cell);
    let [x, y] = coords[i];
    let docs = within(first, last, true);
    for interval in INTERVALS {
        for agg in AGGREGATES {
            let mut ds = vec![];
            let (mut lo, mut t1) = (0, add_unit(docs[0].ms, interval));
            for j in 0..docs.len() {
                if docs[j].ms >= t1 {
                    let hi = if docs[j].ms == t1 { j + 1 } else { j };
                    let v: Vec<f64> = docs[lo..hi].iter().map(|d| d.values[i]).collect();
                    ds.push(fix2(subop(agg, &v)));
                    t1 = add_unit(t1, interval);
                    lo = j;
                }
            }
            a.check(
                name,
                &format!("t.json?coords&aggregate={agg}&interval={interval}"),
                &api(
                    name,
                    &format!("t.json?start={}&end={}&coords=POINT({x}+{y})&aggregate={agg}&interval={interval}", iso(first), iso(last)),
                ),
                Expect::Json(json!({
                    "properties": {"aggregate": agg, "interval": interval, "start": iso(first), "end": iso(last), "coords": format!("POINT({x} {y})")},
                    "series": ds,
                })),
            );
        }
    }

    // t.json?geom=: the cells in a polygon, statistics per step.
    let idx = inside(coords, geom_box, 0.2);
    assert!(
        idx.len() > 1,
        "{name}: the test polygon holds {} cells",
        idx.len()
    );
    let (wkt, ring) = polygon(geom_box);
    let items: Vec<Vec<f64>> = docs
        .iter()
        .map(|d| idx.iter().map(|&k| d.values[k]).collect())
        .collect();
    // `times` is read from the value arrays, not the items: all undefined.
    let times = vec![Value::Null; items.len()];
    a.check(
        name,
        "t.json?geom",
        &api(
            name,
            &format!("t.json?start={}&end={}&geom={wkt}", iso(first), iso(last)),
        ),
        Expect::Json(geom_answer(
            &iso(first),
            &iso(last),
            ring.clone(),
            None,
            items.clone(),
            times,
        )),
    );
    // With an interval: the element-wise mean of each interval's steps.
    let mut groups: BTreeMap<i64, (Vec<f64>, usize)> = BTreeMap::new();
    for (d, v) in docs.iter().zip(&items) {
        let g = groups
            .entry(start_of(d.ms, "daily"))
            .or_insert((vec![0.0; v.len()], 0));
        g.0.iter_mut().zip(v).for_each(|(s, x)| *s += x);
        g.1 += 1;
    }
    let per: Vec<Vec<f64>> = groups
        .values()
        .map(|(s, k)| s.iter().map(|x| x / *k as f64).collect())
        .collect();
    let times: Vec<Value> = groups
        .keys()
        .map(|&ms| {
            json!(Utc
                .timestamp_millis_opt(ms)
                .unwrap()
                .format("%a %b %d %Y %H:%M:%S GMT+0000")
                .to_string())
        })
        .collect();
    a.check(
        name,
        "t.json?geom&interval=daily",
        &api(
            name,
            &format!(
                "t.json?start={}&end={}&geom={wkt}&interval=daily",
                iso(first),
                iso(last)
            ),
        ),
        Expect::Json(geom_answer(
            &iso(first),
            &iso(last),
            ring,
            Some("daily"),
            per,
            times,
        )),
    );
    // geom and aggregate together: refused.
    a.check(
        name,
        "t.json?geom&aggregate",
        &api(
            name,
            &format!(
                "t.json?start={}&end={}&geom={wkt}&aggregate=mean",
                iso(first),
                iso(last)
            ),
        ),
        Expect::Status(501),
    );
}

/// Every route of a point dataset (XCO2Matrix).
fn ask_points(
    a: &mut Asker,
    name: &str,
    points: &[Point],
    coords: &[[f64; 2]],
    geom_box: [f64; 4],
) {
    a.check(
        name,
        "grid.json",
        &api(name, "grid.json"),
        Expect::Json(json!({"type": "MultiPoint", "_id": name, "coordinates": coords})),
    );
    let mut days: Vec<i64> = points.iter().map(|p| p.ms).collect();
    days.sort_unstable();
    days.dedup();
    // xy.json?start&end: the stored documents of [start, end), as stored.
    for &d in days.iter().take(4) {
        let docs: Vec<&Point> = points
            .iter()
            .filter(|p| p.ms >= d && p.ms < d + DAY)
            .collect();
        let features: Vec<Value> = docs.iter().map(|p| p.doc.clone()).collect();
        a.check(
            name,
            "xy.json?start&end",
            &api(
                name,
                &format!("xy.json?start={}&end={}", iso(d), iso(d + DAY)),
            ),
            Expect::Json(json!({"features": features, "properties": {"source": name}})),
        );
    }
    let d = days[0];
    let features: Vec<Value> = points
        .iter()
        .filter(|p| p.ms >= d && p.ms < d + DAY)
        .map(|p| {
            let mut props = json!({"timestamp": p.doc["timestamp"], "source": name});
            for (k, v) in p.doc["properties"].as_object().unwrap() {
                props[k] = v.clone();
            }
            json!({"type": "Feature", "properties": props, "geometry": {"type": "Point", "coordinates": p.doc["coordinates"]}})
        })
        .collect();
    a.check(
        name,
        "xy.json?start&end&verbose",
        &api(
            name,
            &format!("xy.json?start={}&end={}&verbose=true", iso(d), iso(d + DAY)),
        ),
        Expect::Json(json!({"type": "FeatureCollection", "features": features})),
    );
    let before = days[0] - 10 * DAY;
    a.check(
        name,
        "xy.json?start&end (no point)",
        &api(
            name,
            &format!("xy.json?start={}&end={}", iso(before), iso(before + DAY)),
        ),
        Expect::Status(404),
    );
    // A point document has no `values`: a map of one time is not found.
    a.check(
        name,
        "xy.json?time",
        &api(name, &format!("xy.json?time={}", iso(d))),
        Expect::Status(404),
    );
    // Aggregating points is not implemented.
    let (s, e) = (iso(days[0]), iso(days[days.len() - 1] + DAY));
    a.check(
        name,
        "xy.json?aggregate=mean",
        &api(name, &format!("xy.json?start={s}&end={e}&aggregate=mean")),
        Expect::Status(501),
    );
    // t.json?coords: the point is found, but points are not keyed by time.
    let [x, y] = coords[0];
    a.check(
        name,
        "t.json?coords",
        &api(
            name,
            &format!("t.json?start={s}&end={e}&coords=POINT({x}+{y})"),
        ),
        Expect::Status(404),
    );
    // t.json?aggregate: no document has a time `_id`: an empty series.
    a.check(
        name,
        "t.json?aggregate=mean",
        &api(name, &format!("t.json?start={s}&end={e}&aggregate=mean")),
        Expect::Json(
            json!({"properties": {"aggregate": "mean", "start": s, "end": e}, "series": []}),
        ),
    );
    // t.json?geom: the document at each coord_index position of the points
    // in the polygon, grouped by time (as strings: sorted as text).
    let idx = inside(coords, geom_box, 0.4);
    assert!(
        idx.len() > 1,
        "{name}: the test polygon holds {} points",
        idx.len()
    );
    let (wkt, ring) = polygon(geom_box);
    let mut by_day: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for &k in &idx {
        let p = &points[k];
        by_day
            .entry(
                Utc.timestamp_millis_opt(p.ms)
                    .unwrap()
                    .format("%a %b %d %Y %H:%M:%S")
                    .to_string(),
            )
            .or_default()
            .push(p.value);
    }
    let items: Vec<Vec<f64>> = by_day.into_values().collect();
    let times = vec![Value::Null; items.len()];
    a.check(
        name,
        "t.json?geom",
        &api(name, &format!("t.json?start={s}&end={e}&geom={wkt}")),
        Expect::Json(geom_answer(&s, &e, ring, None, items, times)),
    );
}

/// The requests that fail the same way on the old tool's documents: the
/// server's own bugs. Each is asked of both servers; both must fail alike.
fn server_bugs(ours: &mut Server, old: &mut Server, report: &mut Report) {
    // 1. `t.json?coords&aggregate&interval` over a range that holds no
    //    step: t.js reads `docs[0]._id` of an empty result inside the
    //    driver's callback, and the process exits, whatever is stored.
    let q = "t.json?start=1999-01-01T00:00:00&end=1999-01-02T00:00:00&coords=POINT(-165.5+61.5)&aggregate=mean&interval=daily";
    let path = api("casa_nan", q);
    let (a, b) = (ours.ask(&path), old.ask(&path));
    assert_eq!(b, Answer::Crash, "the old tool's casa_nan: {path}");
    assert_eq!(
        a,
        Answer::Crash,
        "casa_nan: {path} should fail as on the old tool's documents"
    );
    report.record(
        "server bug: t.json?coords&aggregate&interval, no step in range",
        "casa_nan",
        &path,
        Outcome::Right,
    );

    // 2. The first `t.json?geom=` of a dataset without `_geom_NAME`: the
    //    driver's `listCollections().next()` gives null for a missing
    //    collection, and core.js reads `items.length` of it: the process
    //    exits (the code that would make the collection is never reached).
    //    The old tool never made `_geom_NAME`; `manage` makes it at load
    //    (docs/mongodb.md), so only the old tool's datasets fail here.
    let (wkt, _) = polygon([-100.0, 40.0, -96.0, 44.0]);
    let path = api(
        "casa_nan",
        &format!("t.json?start=2012-12-22T03:00:00&end=2012-12-23T00:00:00&geom={wkt}"),
    );
    assert_eq!(
        old.ask(&path),
        Answer::Crash,
        "the old tool's casa_nan: {path}"
    );
    let got = ours.ask(&path);
    let outcome = match got {
        Answer::Http(200, _) => Outcome::Right,
        other => judge(&Expect::Status(200), &other, 0.0),
    };
    report.record(
        "t.json?geom (old tool's data: crash)",
        "casa_nan",
        &path,
        outcome,
    );
}

#[test]
#[cfg_attr(no_shared, ignore = "needs ../shared/fixtures")]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
#[cfg_attr(
    not(feature = "flux-server-tests"),
    ignore = "needs Node.js and MongoDB (feature flux-server-tests)"
)]
fn the_real_flux_server_answers_what_manage_stored() {
    let uri = common::mongodb_uri();
    let env = Env::new();
    let tmp = env.dir.path();
    let server_dir = install_flux_server(tmp);

    // Inputs: every model, NaN cells, a masked CFGrid file, an append.
    let fluxpy = shared("fixtures/fluxpy");
    let oldtool = shared("fixtures/oldtool");
    let nc_a = tmp.join("masked_a.nc");
    let nc_b = tmp.join("masked_b.nc");
    run_python(MAKE_NETCDF, &[nc_a.to_str().unwrap(), "0"]);
    run_python(MAKE_NETCDF, &[nc_b.to_str().unwrap(), "1"]);
    let p = |d: &Path, f: &str| d.join(f).to_str().unwrap().to_string();
    let loads: Vec<(&str, String, &str, Vec<&str>)> = vec![
        (
            "casa_nan",
            p(&oldtool, "casanan.mat"),
            "SpatioTemporalMatrix",
            vec![],
        ),
        (
            "casa_gfed_2004",
            p(&fluxpy, "casagfed2004.mat"),
            "SpatioTemporalMatrix",
            vec![],
        ),
        (
            "kriged_xco2",
            p(&fluxpy, "kriged_xco2.mat"),
            "KrigedXCO2Matrix",
            vec!["-o", "timestamp=2009-06-15"],
        ),
        (
            "xco2",
            p(&fluxpy, "xco2.mat"),
            "XCO2Matrix",
            vec!["-o", "timestamp=2009-06-15"],
        ),
        ("cf_masked", p(tmp, "masked_a.nc"), "CFGrid", vec![]),
        ("cf_appended", p(tmp, "masked_a.nc"), "CFGrid", vec![]),
        ("cf_appended", p(tmp, "masked_b.nc"), "CFGrid", vec![]),
    ];
    let ours = FreshDb::new(&uri);
    for (name, path, model, extra) in &loads {
        let mut a = vec!["load", "-p", path, "-m", model, "-n", name];
        a.extend(extra.iter().copied());
        env.run_on(&ours.uri, &a).ok();
    }
    let names = [
        "casa_nan",
        "casa_gfed_2004",
        "kriged_xco2",
        "xco2",
        "cf_masked",
        "cf_appended",
    ];

    // The old tool's own documents, in another database.
    let old = FreshDb::new(&uri);
    run_python(
        IMPORT_OLDTOOL,
        &[&uri, &old.name, oldtool.to_str().unwrap()],
    );

    let mut server = Server::start(&server_dir, &ours.uri, tmp.join("flux-server.log"), &names);
    let mut old_server = Server::start(
        &server_dir,
        &old.uri,
        tmp.join("flux-server-old.log"),
        &["casa_nan", "casa_gfed_2004", "kriged_xco2", "xco2"],
    );

    let mut report = Report::default();
    let mut with_nulls = vec![];
    let mut a = Asker {
        server: &mut server,
        report: &mut report,
    };
    // scenarios.json: `_id`, title and gridded of every dataset.
    let mut listed = vec![];
    let mut data = BTreeMap::new();
    for name in names {
        let (d, metadata, nulls) = read_data(&env, &ours.uri, name);
        if nulls {
            with_nulls.push(name);
        }
        listed
            .push(json!({"_id": name, "title": metadata["title"], "gridded": metadata["gridded"]}));
        a.check(
            name,
            "scenarios/NAME.json",
            &format!("/flux/api/scenarios/{name}.json"),
            Expect::Json(metadata),
        );
        data.insert(name, d);
    }
    let got = a.server.ask("/flux/api/scenarios.json");
    let outcome = match &got {
        Answer::Http(200, body) => {
            let mut g: Vec<Value> = serde_json::from_str(body).unwrap();
            g.sort_by_key(|d| d["_id"].as_str().unwrap_or_default().to_string());
            listed.sort_by_key(|d| d["_id"].as_str().unwrap_or_default().to_string());
            judge(
                &Expect::Json(json!(listed)),
                &Answer::Http(200, json!(g).to_string()),
                0.0,
            )
        }
        other => judge(&Expect::Status(200), other, 0.0),
    };
    a.report
        .record("scenarios.json", "all", "/flux/api/scenarios.json", outcome);

    for name in names {
        match &data[name] {
            Data::Grid { steps, coords } => {
                let b = if name.starts_with("cf_") {
                    [-99.0, 31.0, -96.0, 34.0]
                } else {
                    [-100.0, 40.0, -96.0, 44.0]
                };
                ask_grid(&mut a, name, steps, coords, b);
            }
            Data::Points { points, coords } => {
                ask_points(&mut a, name, points, coords, [-126.0, 38.0, -118.0, 46.0]);
            }
        }
    }
    server_bugs(&mut server, &mut old_server, &mut report);
    report.print();
    if !with_nulls.is_empty() {
        eprintln!("datasets whose export holds null: {with_nulls:?}");
    }
    assert!(
        report.failures.is_empty(),
        "{} of {} requests were not answered as stored ({} crashes):\n{}",
        report.failures.len(),
        report.requests,
        server.crashes,
        report.failures.join("\n")
    );
}

// ------------------------------------- deployments the old tool filled

/// A fresh database holding the old tool's collections.
fn old_tool_db(uri: &str) -> FreshDb {
    let db = FreshDb::new(uri);
    run_python(
        IMPORT_OLDTOOL,
        &[uri, &db.name, shared("fixtures/oldtool").to_str().unwrap()],
    );
    db
}

fn collection(db: &FreshDb, name: &str) -> Vec<bson::Document> {
    let client = mongodb::sync::Client::with_uri_str(&db.uri).unwrap();
    client
        .database(&db.name)
        .collection::<bson::Document>(name)
        .find(bson::doc! {})
        .run()
        .unwrap()
        .map(|d| d.unwrap())
        .collect()
}

#[test]
#[cfg_attr(no_shared, ignore = "needs ../shared/fixtures")]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
fn points_the_old_tool_stored_are_refused_then_replaced_in_one_step() {
    let uri = common::mongodb_uri();
    let env = Env::new();
    let db = old_tool_db(&uri);
    let xco2 = shared("fixtures/fluxpy/xco2.mat");
    let old_docs = collection(&db, "xco2");
    assert_eq!(old_docs.len(), 1311);

    // db -a: a note, not a problem.
    let audit = env.run_on(&db.uri, &["db", "-a"]);
    assert_eq!(audit.code, 0, "{}{}", audit.stdout, audit.stderr);
    assert!(
        audit
            .stdout
            .contains("note: 'xco2' holds points another tool wrote")
            && audit.stdout.contains("--replace"),
        "{}",
        audit.stdout
    );
    assert!(
        audit
            .stdout
            .contains("note: 'casa_gfed_2004' was written by another tool"),
        "{}",
        audit.stdout
    );

    // The load that would store every observation twice is refused.
    let load = [
        "load",
        "-p",
        xco2.to_str().unwrap(),
        "-m",
        "XCO2Matrix",
        "-n",
        "xco2",
        "-o",
        "timestamp=2009-06-15",
    ];
    let refused = env.run_on(&db.uri, &load);
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    for word in [
        "'xco2'",
        "ObjectId _ids",
        "stored 1 day after the file's",
        "--replace",
        "nothing was written",
    ] {
        assert!(
            refused.stderr.contains(word),
            "no {word:?} in: {}",
            refused.stderr
        );
    }
    let after = collection(&db, "xco2");
    assert_eq!(
        after, old_docs,
        "the refused load changed the stored points"
    );

    // --replace: the file's points, on the file's days, once each.
    let mut replace = load.to_vec();
    replace.push("--replace");
    env.run_on(&db.uri, &replace).ok();
    let new_docs = collection(&db, "xco2");
    assert_eq!(new_docs.len(), 1311);
    assert!(new_docs
        .iter()
        .all(|d| !matches!(d.get("_id"), Some(bson::Bson::ObjectId(_)))));
    // The old tool's point at the same coordinates, a day earlier: an
    // independent reference for each observation's day and value.
    let key = |d: &bson::Document| format!("{:?}", d.get_array("coordinates").unwrap());
    let old_by_point: BTreeMap<String, &bson::Document> =
        old_docs.iter().map(|d| (key(d), d)).collect();
    for d in &new_docs {
        let o = old_by_point[&key(d)];
        let t = d.get_datetime("timestamp").unwrap().timestamp_millis();
        let t_old = o.get_datetime("timestamp").unwrap().timestamp_millis();
        assert_eq!(t_old - t, DAY, "point {}", key(d));
        assert_eq!(
            d.get_document("properties").unwrap(),
            o.get_document("properties").unwrap()
        );
    }
    let md = env.run_on(&db.uri, &["db", "-n", "xco2"]).ok().json();
    assert_eq!(md["stats"]["value"]["min"], json!(376.74));
    assert!(md.get("precision").is_some());
    // No longer another tool's; flux-server's geometry cache is there.
    let audit = env.run_on(&db.uri, &["db", "-a"]).ok();
    assert!(!audit.stdout.contains("'xco2'"), "{}", audit.stdout);
    assert_eq!(collection(&db, "_geom_xco2").len(), 1311);
    // The same file again is skipped; a plain load now appends nothing new.
    let again = env.run_on(&db.uri, &load).ok();
    assert!(
        again.stdout.contains("skipped") || again.stderr.contains("skipped"),
        "{}{}",
        again.stdout,
        again.stderr
    );
    assert_eq!(collection(&db, "xco2").len(), 1311);
}

#[test]
#[cfg_attr(no_shared, ignore = "needs ../shared/fixtures")]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
fn grids_the_old_tool_stored_append_and_keep_their_title_and_units() {
    let uri = common::mongodb_uri();
    let env = Env::new();
    let db = old_tool_db(&uri);
    // The same grid a day later, under another title and unit.
    let mut config: Value = serde_json::from_str(
        &std::fs::read_to_string(shared("fixtures/fluxpy/casagfed2004.json")).unwrap(),
    )
    .unwrap();
    config["timestamp"] = json!("2012-12-23T03:00:00");
    config["title"] = json!("Another title");
    config["units"]["values"] = json!("umol m-2 s-1");
    let cfg = env.path("later.json");
    std::fs::write(&cfg, config.to_string()).unwrap();
    let casa = shared("fixtures/fluxpy/casagfed2004.mat");
    let load = [
        "load",
        "-p",
        casa.to_str().unwrap(),
        "-m",
        "SpatioTemporalMatrix",
        "-n",
        "casa_gfed_2004",
        "-c",
        cfg.to_str().unwrap(),
    ];
    let run = env.run_on(&db.uri, &load).ok();
    for word in ["title", "units", "the stored one is kept"] {
        assert!(run.stderr.contains(word), "no {word:?} in: {}", run.stderr);
    }
    let md = env
        .run_on(&db.uri, &["db", "-n", "casa_gfed_2004"])
        .ok()
        .json();
    assert_eq!(md["title"], json!("Surface Carbon Flux"));
    assert_eq!(md["units"]["values"], json!("&mu;mol/m&sup2;"));
    // 8 old steps and 8 new ones; the statistics cover all 16 (summary
    // rebuilt from every stored document).
    let docs = env
        .run_on(&db.uri, &["export", "-n", "casa_gfed_2004"])
        .ok()
        .json_lines();
    assert_eq!(docs.len(), 16);
    assert_eq!(
        md["dates"],
        json!(["2012-12-22T03:00:00", "2012-12-24T00:00:00"])
    );
    let [mean, min, max, _, _] = common::reference_stats(&docs);
    let stats = &md["stats"]["values"];
    assert!(
        (stats["mean"].as_f64().unwrap() - mean).abs() < 1e-9,
        "{stats} vs {mean}"
    );
    assert_eq!(stats["min"].as_f64().unwrap(), min);
    assert_eq!(stats["max"].as_f64().unwrap(), max);
    let audit = env.run_on(&db.uri, &["db", "-a"]).ok();
    assert!(
        !audit.stdout.contains("'casa_gfed_2004'"),
        "{}",
        audit.stdout
    );
    // -o sets them.
    config["timestamp"] = json!("2012-12-24T03:00:00");
    std::fs::write(&cfg, config.to_string()).unwrap();
    let mut with_o = load.to_vec();
    with_o.extend(["-o", "title=\"Another title\""]);
    env.run_on(&db.uri, &with_o).ok();
    let md = env
        .run_on(&db.uri, &["db", "-n", "casa_gfed_2004"])
        .ok()
        .json();
    assert_eq!(md["title"], json!("Another title"));
    assert_eq!(md["units"]["values"], json!("&mu;mol/m&sup2;"));
}

#[test]
#[cfg_attr(no_shared, ignore = "needs ../shared/fixtures")]
fn points_the_old_tool_stored_in_an_embedded_store_are_refused_then_replaced() {
    let env = Env::new();
    common::old_tool_into_embedded(&env.db(), "xco2");
    let exported = env.run(&["export", "-n", "xco2"]).ok().json_lines();
    assert_eq!(exported.len(), 1311);
    let audit = env.run(&["db", "-a"]).ok();
    assert!(
        audit
            .stdout
            .contains("note: 'xco2' holds points another tool wrote"),
        "{}",
        audit.stdout
    );
    let xco2 = shared("fixtures/fluxpy/xco2.mat");
    let load = [
        "load",
        "-p",
        xco2.to_str().unwrap(),
        "-m",
        "XCO2Matrix",
        "-n",
        "xco2",
        "-o",
        "timestamp=2009-06-15",
    ];
    let refused = env.run(&load);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("stored 1 day after the file's"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        env.run(&["export", "-n", "xco2"]).ok().json_lines(),
        exported
    );
    let mut replace = load.to_vec();
    replace.push("--replace");
    env.run(&replace).ok();
    let after = env.run(&["export", "-n", "xco2"]).ok().json_lines();
    assert_eq!(after.len(), 1311);
    // Each point once, a day before the old tool's.
    let old_by_point: BTreeMap<String, &Value> = exported
        .iter()
        .map(|d| (d["coordinates"].to_string(), d))
        .collect();
    for new in &after {
        let old = old_by_point[&new["coordinates"].to_string()];
        assert_eq!(
            export_ms(&old["timestamp"]) - export_ms(&new["timestamp"]),
            DAY
        );
        assert_eq!(new["properties"], old["properties"]);
        assert!(new["_id"].get("$oid").is_none());
    }
    assert!(!env.run(&["db", "-a"]).ok().stdout.contains("'xco2'"));
}
