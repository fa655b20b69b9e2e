//! Helpers shared by the end-to-end tests: run the real binary against a
//! temporary store, and find the old tool's fixtures when they are present.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The run succeeded; otherwise fail the test with what it printed.
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "manage failed: {}", self.stderr);
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim()).expect("one JSON object on stdout")
    }

    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }
}

/// A temporary embedded store and the means to run `manage` on it.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        // Before this test writes any HDF5 file (see the function).
        without_hdf5_file_locks();
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("store.db")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `manage ARGS` on this store, to run or spawn.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_manage"));
        c.args(args)
            .env("FLUXPY_DB", self.db())
            .env_remove("RUST_BACKTRACE")
            .env_remove("HDF5_USE_FILE_LOCKING");
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let out: Output = self.command(args).output().expect("run manage");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// The old tool's test files, when `../shared/fixtures/fluxpy` is there.
pub fn fixture(name: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/fluxpy")
        .join(name);
    if p.is_file() {
        Some(p)
    } else if ci() {
        panic!(
            "fixture {} is not present, and CI=true makes a missing fixture a failure",
            p.display()
        );
    } else {
        // Tests that need the fixture are marked ignored when the folder is
        // missing (see build.rs); this is for those that fall back to
        // generated data.
        eprintln!("fixture {} is not present", p.display());
        None
    }
}

/// Whether this is a CI run (`CI=true`), where every fixture must be there.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The project's sample data file.
pub fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-data/flux_na_2004.mat")
}

/// One point of a point dataset: time (ms), x, y, value, error.
pub type Point = (i64, f64, f64, Option<f64>, Option<f64>);

/// Write a point dataset (one document per point, as XCO2Matrix stores
/// them) straight through the library's store, with its coord_index and a
/// metadata entry that says `gridded: false`.
pub fn store_points(db: &Path, name: &str, points: &[Point]) {
    use bson::{doc, Bson, DateTime};
    use fluxpy::store::{embedded::Embedded, Store};
    let num = |v: Option<f64>| v.map_or(Bson::Null, Bson::Double);
    let docs: Vec<bson::Document> = points
        .iter()
        .enumerate()
        .map(|(k, &(t, x, y, v, e))| {
            doc! {
                "_id": format!("p{k:05}"),
                "timestamp": DateTime::from_millis(t),
                "coordinates": [x, y],
                "properties": {"value": num(v), "error": num(e)},
            }
        })
        .collect();
    let coords: Vec<Bson> = points
        .iter()
        .map(|&(_, x, y, _, _)| Bson::Array(vec![x.into(), y.into()]))
        .collect();
    let mut store = Embedded::open(db).unwrap();
    let mut load = store.begin_load(name).unwrap();
    load.write(docs).unwrap();
    load.commit(
        doc! {"_id": name, "i": coords},
        doc! {
            "_id": name,
            "title": "Test XCO2 retrievals",
            "units": {"x": "degrees", "y": "degrees", "value": "ppm"},
            "gridded": false,
            "geometry": {"type": "Point"},
        },
    )
    .unwrap();
}

/// A PNG file's width, height and number of distinct colours.
pub fn png_summary(path: &Path) -> (u32, u32, usize) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().expect("a PNG header");
    let mut buf = vec![0; reader.output_buffer_size().expect("a size")];
    let info = reader.next_frame(&mut buf).expect("PNG pixels");
    let px = info.color_type.samples();
    let colours: std::collections::HashSet<&[u8]> = buf[..info.buffer_size()].chunks(px).collect();
    (info.width, info.height, colours.len())
}

/// Tests write HDF5 files while other tests of the same process start
/// `manage` children. A child inherits the writer's descriptor, and with it
/// HDF5's lock on the file, for as long as it runs; a later read of that
/// file then fails with "unable to lock file". The tests that write HDF5
/// turn the library's file locking off for their own process (the children
/// they start keep it on). The library reads the variable once, when it
/// starts: so every test calls this before it touches HDF5 (`Env::new`
/// does), whichever test of the process touches it first.
pub fn without_hdf5_file_locks() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::env::set_var("HDF5_USE_FILE_LOCKING", "FALSE"));
}

/// `python3` with `modules` importable, for tests that make their input
/// with another implementation (h5py, numpy). Missing, the test is skipped
/// with a note, except under `CI=true`, where it fails: CI installs them.
pub fn python_with(modules: &[&str]) -> Option<PathBuf> {
    let probe = format!("import {}", modules.join(", "));
    let ok = Command::new("python3")
        .args(["-c", &probe])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(PathBuf::from("python3"));
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "python3 with {modules:?} is needed (pip install {})",
        modules.join(" ")
    );
    eprintln!("skipped: python3 with {modules:?} is not installed");
    None
}

/// Run a Python script with arguments; fail the test if it fails.
pub fn run_python(python: &Path, script: &str, args: &[&str]) {
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The variable naming the MongoDB deployment the tests run against.
pub const MONGODB_URI: &str = "FLUXPY_TEST_MONGODB_URI";
/// The variable naming a deployment that requires authentication, with
/// the credentials of a user allowed to create users (`scripts/with-mongodb`
/// sets both).
pub const MONGODB_AUTH_URI: &str = "FLUXPY_TEST_MONGODB_AUTH_URI";

/// The deployment `var` names. Without it: under `CI=true` the test fails
/// (CI always runs the MongoDB tests); elsewhere it says once that MongoDB
/// was not tested and the caller skips.
pub fn mongodb_test_uri(var: &str) -> Option<String> {
    use std::io::Write;
    static SAID: std::sync::Once = std::sync::Once::new();
    match std::env::var(var) {
        Ok(uri) if !uri.trim().is_empty() => Some(uri),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => panic!(
            "{var} is not set under CI=true: MongoDB tests must run in CI; run them inside scripts/with-mongodb"
        ),
        _ => {
            // Straight to stderr, past the test harness's capture: one line.
            SAID.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "MongoDB NOT tested: run the tests inside scripts/with-mongodb (or set {var}=mongodb://HOST:PORT)"
                );
            });
            None
        }
    }
}

/// A fresh database name on a test deployment.
pub fn fresh_db_name() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "fluxpy_test_{}_{nanos}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A fresh database of the test deployment, dropped when done, even on failure.
pub struct FreshDb {
    pub store: fluxpy::store::mongo::Mongo,
    /// The deployment's URI naming this database.
    pub uri: String,
    pub name: String,
}

impl FreshDb {
    pub fn new(uri: &str) -> Self {
        use fluxpy::store::Datasets;
        let name = fresh_db_name();
        let store = fluxpy::store::mongo::Mongo::open_database(uri, &name).unwrap();
        assert!(
            store.collections().unwrap().is_empty(),
            "database {name} is not fresh"
        );
        Self {
            store,
            uri: fluxpy::store::mongo::with_database(uri, &name),
            name,
        }
    }
}

impl Drop for FreshDb {
    fn drop(&mut self) {
        let _ = self.store.drop_database();
    }
}

/// mean, min, max, sample std and median of every `values` entry of the
/// exported documents: plain sums and a sort, an independent reference for
/// the tool's count tables.
pub fn reference_stats(docs: &[serde_json::Value]) -> [f64; 5] {
    let mut v: Vec<f64> = docs
        .iter()
        .flat_map(|d| d["values"].as_array().unwrap().clone())
        .filter_map(|x| x.as_f64())
        .collect();
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    v.sort_by(f64::total_cmp);
    let h = v.len() / 2;
    let median = if v.len() % 2 == 1 {
        v[h]
    } else {
        (v[h - 1] + v[h]) / 2.0
    };
    [mean, v[0], v[v.len() - 1], std, median]
}
