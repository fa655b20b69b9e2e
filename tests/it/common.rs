//! Helpers shared by the end-to-end tests: run the real binary against a
//! temporary store, and find the old tool's fixtures when they are present.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fluxpy::store::{Datasets, Holder, Store};

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
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
        self.command(args).output().expect("run manage").into()
    }

    /// `manage --db DB ARGS`: on another store (a MongoDB URI, another file).
    pub fn run_on(&self, db: &str, args: &[&str]) -> Run {
        let mut a = vec!["--db", db];
        a.extend_from_slice(args);
        self.run(&a)
    }

    /// `manage load -p PATH -m MODEL -n NAME EXTRA…` on this store.
    pub fn load(&self, path: &Path, model: &str, name: &str, extra: &[&str]) -> Run {
        self.load_paths(&[path.to_str().expect("a UTF-8 path")], model, name, extra)
    }

    /// `manage load -p PATHS… -m MODEL -n NAME EXTRA…` on this store.
    pub fn load_paths(&self, paths: &[&str], model: &str, name: &str, extra: &[&str]) -> Run {
        let mut args = vec!["load", "-p"];
        args.extend_from_slice(paths);
        args.extend(["-m", model, "-n", name]);
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// A generated SpatioTemporalMatrix file `FILE` of `grid` with `steps`
    /// three-hourly steps (`fluxpy::synth`, the generator of
    /// `sample-data/`), variable `flux`.
    pub fn grid_file(&self, file: &str, grid: &fluxpy::synth::Grid, steps: usize) -> PathBuf {
        use fluxpy::synth;
        let p = self.path(file);
        synth::write_mat_v5(&p, "flux", &synth::flux_matrix(grid, steps, 3.0), false).unwrap();
        p
    }

    /// Every document of NAME, as `manage export` writes them.
    pub fn export(&self, name: &str) -> Vec<serde_json::Value> {
        self.run(&["export", "-n", name]).ok().json_lines()
    }

    /// NAME's metadata, as `manage db -n` prints it.
    pub fn metadata(&self, name: &str) -> serde_json::Value {
        self.run(&["db", "-n", name]).ok().json()
    }
}

/// `load -p PATH -m SpatioTemporalMatrix -n NAME -o timestamp=2004-01-01`,
/// the load of a [`Env::grid_file`].
pub fn stm_load_args<'a>(path: &'a Path, name: &'a str) -> Vec<&'a str> {
    vec![
        "load",
        "-p",
        path.to_str().expect("a UTF-8 path"),
        "-m",
        "SpatioTemporalMatrix",
        "-n",
        name,
        "-o",
        "timestamp=2004-01-01",
    ]
}

/// A file of `../shared/fixtures/DIR` (the old tool's files, other
/// writers' files, CF NetCDF files). A test that uses one is marked
/// `#[cfg_attr(no_shared, ignore = "needs ../shared/fixtures")]`: `build.rs`
/// sets `no_shared` when that folder is not beside the checkout (never
/// under `CI=true`), so the run reports it as ignored. Where the folder is
/// there, a missing file fails the test.
pub fn shared_fixture(dir: &str, name: &str) -> PathBuf {
    if cfg!(no_shared) {
        panic!("a test that uses ../shared/fixtures is not marked to be ignored without it");
    }
    let p = shared().join("fixtures").join(dir).join(name);
    assert!(p.is_file(), "fixture {} is not there", p.display());
    p
}

/// `../shared`, beside the checkout.
pub fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

/// One of the old tool's test files (`../shared/fixtures/fluxpy`).
pub fn fixture(name: &str) -> PathBuf {
    shared_fixture("fluxpy", name)
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
    load.write(self::docs(docs)).unwrap();
    load.commit(entries(
        doc! {"_id": name, "i": coords},
        doc! {
            "_id": name,
            "title": "Test XCO2 retrievals",
            "units": {"x": "degrees", "y": "degrees", "value": "ppm"},
            "gridded": false,
            "geometry": {"type": "Point"},
        },
    ))
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

/// The Python the tests run other implementations in (SciPy, h5py,
/// netCDF4-python, numpy): `FLUXPY_TEST_PYTHON`, which the README's test
/// command sets to the virtual environment it provisions
/// (`tests/requirements.txt`), else `python3`.
pub fn python_path() -> PathBuf {
    std::env::var_os("FLUXPY_TEST_PYTHON")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from("python3"), PathBuf::from)
}

/// That Python, checked to import `modules`; a test that calls this is
/// marked `#[cfg_attr(not(feature = "python-tests"), ignore = "needs
/// Python (feature python-tests)")]`. With the feature on (the default), a
/// Python that cannot import them fails the test: it is never skipped.
pub fn python_with(modules: &[&str]) -> PathBuf {
    let python = python_path();
    let probe = if modules.is_empty() {
        "pass".to_string()
    } else {
        format!("import {}", modules.join(", "))
    };
    let out = Command::new(&python).args(["-c", &probe]).output();
    match out {
        Ok(o) if o.status.success() => python,
        Ok(o) => panic!(
            "{} cannot import {modules:?}: run the tests with scripts/with-test-env, \
             or without the python-tests feature ({})",
            python.display(),
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ),
        Err(e) => panic!(
            "{} cannot be run ({e}): run the tests with scripts/with-test-env, \
             or without the python-tests feature",
            python.display()
        ),
    }
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

/// Where the commands of a test write: the embedded store of `env`, or a
/// fresh MongoDB database. [`on_both_stores!`] runs a scenario on each.
pub struct Target<'a> {
    pub env: &'a Env,
    pub mongo: Option<FreshDb>,
}

impl<'a> Target<'a> {
    pub fn embedded(env: &'a Env) -> Self {
        Self { env, mongo: None }
    }

    /// A fresh database of the test deployment.
    pub fn mongodb(env: &'a Env) -> Self {
        Self {
            env,
            mongo: Some(FreshDb::new(&mongodb_uri())),
        }
    }

    pub fn db(&self) -> String {
        match &self.mongo {
            Some(m) => m.uri.clone(),
            None => self.env.db().to_str().unwrap().to_string(),
        }
    }

    /// `manage ARGS` on this store, as host `host` (the machine's own
    /// identity when `None`).
    pub fn command(&self, args: &[&str], host: Option<&str>) -> Command {
        let mut c = self.env.command(args);
        c.env("FLUXPY_DB", self.db())
            .env_remove("FLUXPY_HOST_ID")
            .env_remove("FLUXPY_LOCK_LEASE_SECONDS");
        if let Some(h) = host {
            c.env("FLUXPY_HOST_ID", h);
        }
        c
    }

    pub fn run_as(&self, host: Option<&str>, args: &[&str]) -> Run {
        self.command(args, host)
            .output()
            .expect("run manage")
            .into()
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_as(None, args)
    }

    pub fn store(&self) -> Box<dyn Store> {
        fluxpy::store::open(Some(&self.db())).unwrap()
    }

    /// The locks held right now (none while an embedded store does not
    /// exist yet).
    pub fn locks(&self) -> Vec<(String, Holder)> {
        fluxpy::store::open_read_only(Some(&self.db()))
            .ok()
            .flatten()
            .and_then(|s| s.locks().ok())
            .unwrap_or_default()
    }

    pub fn counts(&self) -> String {
        self.run(&["db", "-l", "collections", "-x"]).ok().stdout
    }
}

fn run(mut c: Command) -> Run {
    let out = c.output().expect("run manage");
    Run::from(out)
}

/// `on_both_stores!(NAME, SCENARIO)`: the tests `NAME::embedded` and
/// `NAME::mongodb`, each running `SCENARIO(&Target)` on a fresh store of
/// its kind (the MongoDB one needs the feature `mongodb-tests`).
#[macro_export]
macro_rules! on_both_stores {
    ($name:ident, $scenario:path) => {
        mod $name {
            use super::*;
            use $crate::common::{Env, Target};

            #[test]
            fn embedded() {
                let env = Env::new();
                $scenario(&Target::embedded(&env));
            }

            #[test]
            #[cfg_attr(
                not(feature = "mongodb-tests"),
                ignore = "needs MongoDB (feature mongodb-tests)"
            )]
            fn mongodb() {
                let env = Env::new();
                $scenario(&Target::mongodb(&env));
            }
        }
    };
}

/// The variable naming the MongoDB deployment the tests run against.
pub const MONGODB_URI: &str = "FLUXPY_TEST_MONGODB_URI";
/// The variable naming a deployment that requires authentication, with
/// the credentials of a user allowed to create users (`scripts/with-test-env`
/// sets both).
pub const MONGODB_AUTH_URI: &str = "FLUXPY_TEST_MONGODB_AUTH_URI";

/// The deployment `var` names; a test that calls this is marked
/// `#[cfg_attr(not(feature = "mongodb-tests"), ignore = "needs MongoDB
/// (feature mongodb-tests)")]`. With the feature on (the default), a
/// missing variable fails the test: the README's test command
/// (`scripts/with-test-env`) starts the servers and sets both.
pub fn mongodb_test_uri(var: &str) -> String {
    match std::env::var(var) {
        Ok(uri) if !uri.trim().is_empty() => uri,
        _ => panic!(
            "{var} is not set: run the tests with scripts/with-test-env (it starts MongoDB-wire \
             test servers), or without the mongodb-tests feature"
        ),
    }
}

/// The main test deployment (`FLUXPY_TEST_MONGODB_URI`).
pub fn mongodb_uri() -> String {
    mongodb_test_uri(MONGODB_URI)
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

/// The server's one `failCommand` fail point (mongod's test commands;
/// `scripts/with-test-env` starts the test deployment with them). Tests
/// that arm it take turns: holding this is holding the fail point, and it
/// is turned off when dropped, even on failure.
pub struct FailPoint {
    admin: mongodb::sync::Database,
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl FailPoint {
    pub fn take(uri: &str) -> Self {
        static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
        let admin = mongodb::sync::Client::with_uri_str(uri)
            .unwrap()
            .database("admin");
        Self { admin, _turn: turn }
    }

    /// Fail `command` of the connections named `app` once (`skip: None`)
    /// or every one after the first `skip`, until [`FailPoint::off`].
    pub fn fail(&self, app: &str, command: &str, skip: Option<i32>) {
        let mode = match skip {
            Some(n) => bson::doc! { "skip": n },
            None => bson::doc! { "times": 1 },
        };
        let armed = self
            .admin
            .run_command(bson::doc! {
                "configureFailPoint": "failCommand",
                "mode": mode,
                "data": { "failCommands": [command], "errorCode": 2, "appName": app },
            })
            .run();
        if let Err(e) = armed {
            panic!(
                "configureFailPoint refused: start the server with --enable-test-commands \
                 (scripts/with-test-env does): {e}"
            );
        }
    }

    /// Fail `command` of the connections named `app` once, the fail
    /// point's `data` being `what` (e.g. `errorCode`, `errorLabels`).
    pub fn fail_with(&self, app: &str, command: &str, what: bson::Document) {
        let mut data = bson::doc! { "failCommands": [command], "appName": app };
        data.extend(what);
        self.admin
            .run_command(bson::doc! {
                "configureFailPoint": "failCommand",
                "mode": { "times": 1 },
                "data": data,
            })
            .run()
            .expect("configureFailPoint (start the server with --enable-test-commands)");
    }

    pub fn off(&self) {
        self.admin
            .run_command(bson::doc! { "configureFailPoint": "failCommand", "mode": "off" })
            .run()
            .expect("configureFailPoint off");
    }
}

impl Drop for FailPoint {
    fn drop(&mut self) {
        let _ = self
            .admin
            .run_command(bson::doc! { "configureFailPoint": "failCommand", "mode": "off" })
            .run();
    }
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

/// Documents as a load writes them: encoded as BSON.
pub fn docs(documents: Vec<bson::Document>) -> fluxpy::doc::Docs {
    fluxpy::doc::Docs::Bson(
        documents
            .iter()
            .map(|d| bson::RawDocumentBuf::from_document(d).expect("a document that encodes"))
            .collect(),
    )
}

/// The entries of a load's commit: this `coord_index` entry (whose `_id`
/// names the dataset) and `metadata` entry, no summary, no ingest log.
pub fn entries(coord_index: bson::Document, metadata: bson::Document) -> fluxpy::store::Entries {
    let name = coord_index
        .get_str("_id")
        .expect("a coord_index entry has a name");
    let raw = bson::RawDocumentBuf::from_document(&coord_index).expect("an entry that encodes");
    fluxpy::store::Entries::new(name, raw, metadata)
}

/// The old tool's `NAME` collection and its entries, from the jsonl
/// fixtures of `../shared/fixtures/oldtool`, written into an embedded store
/// as they are (ObjectId `_id`s, its metadata, no summary entry).
pub fn old_tool_into_embedded(db: &Path, name: &str) {
    use fluxpy::store::embedded::Embedded;
    let read = |file: &str| -> Vec<bson::Document> {
        std::fs::read_to_string(shared_fixture("oldtool", file))
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                match bson::Bson::try_from(v).unwrap() {
                    bson::Bson::Document(d) => d,
                    other => panic!("not a document: {other}"),
                }
            })
            .collect()
    };
    let entry = |file: &str| {
        read(file)
            .into_iter()
            .find(|d| d.get_str("_id") == Ok(name))
            .unwrap()
    };
    let mut store = Embedded::open(db).unwrap();
    let mut load = store.begin_load(name).unwrap();
    load.write(docs(read(&format!("{name}.jsonl")))).unwrap();
    load.commit(entries(entry("coord_index.jsonl"), entry("metadata.jsonl")))
        .unwrap();
}

/// Run `script` with the tests' Python (with `modules`) in `dir`; what it
/// prints. Fails the test if the script fails.
pub fn python_output(modules: &[&str], dir: &Path, script: &str) -> String {
    let out = Command::new(python_with(modules))
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
