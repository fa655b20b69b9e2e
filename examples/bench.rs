//! The load benchmark: a synthetic 0.5° global grid (259,200 cells) of 64
//! and of 248 three-hourly steps, written by the project's generator in
//! each input format, each loaded into a fresh embedded store by `manage
//! load`'s own code path in a child process.
//!
//!     cargo run --release --example bench [-- --steps 64,248] [--dir DIR]
//!         [--formats v7.3,HDF5,gzip,MATv5,NetCDF] [--db mongodb://HOST:PORT]
//!         [--vs OTHER_MANAGE_BINARY] [--appends N] [--keep]
//!
//! The formats: MATLAB v7.3 and plain HDF5 (contiguous) written by the
//! generator; `gzip`, the same HDF5 matrix rewritten by h5py with gzip and
//! h5py's default chunks; `MATv5`, the matrix saved by SciPy's `savemat`
//! (uncompressed); `NetCDF`, a CF NetCDF-4 file (`time × latitude ×
//! longitude`, float32, one deflated chunk per step, a masked band south of
//! 60°S) loaded with CFGrid. A year of 3-hourly NetCDF (the 2,920 steps of
//! a CarbonTracker year):
//!
//!     cargo run --release --example bench -- --steps 248,2920 --formats NetCDF
//!
//! Before the loads of a file, its **floor**: the stages no loader can
//! avoid, each timed alone in CPU seconds of one thread: reading the file,
//! its SHA-256, rounding and packing every value into the compact form,
//! zstd (level 1, the store's) of the packed documents, and the SQLite
//! insert of the compressed bytes. Each load's CPU seconds are printed as
//! a multiple of that floor.
//!
//! Prints, per file: cells, steps, input size, the load time, CPU seconds
//! (user + system of the loading process, since the machine may be shared),
//! × floor, documents, values and input MB per second, and the peak
//! resident memory of the loading process. With `--vs BINARY`, that
//! `manage` binary (another version) loads the same file too, on a line of
//! its own, measured by `/usr/bin/time`: a before-and-after in one run. With `--db`, each file is also
//! loaded into a fresh database of that MongoDB deployment (dropped
//! afterwards). The generated files live in a temporary directory removed at
//! the end (`--keep` leaves the files and stores there).
//!
//! The Python used for the baseline and to write the gzip and MAT v5 files
//! is `$FLUXPY_BENCH_PYTHON`, else the test environment's
//! (`target/test-env/venv`, made by `scripts/with-test-env`), else
//! `python3`. When it has `h5py`, `scipy`, `netCDF4`, `numpy` and `pymongo`,
//! the Python baseline (`scripts/python_baseline.py`) loads each file too,
//! and the ratio of its CPU seconds to manage's is printed; after each plain
//! HDF5 load, `export --format csv` and `--format jsonl` of the store are
//! timed, and beside them a Python peer (`scripts/python_export_peer.py`:
//! pymongo's `bson`, the `csv` and `json` modules) exporting the baseline's
//! stored documents the same ways. Then the append
//! series: an 8-step file loaded, and appended `--appends N` times (default
//! 20) under later times, each append's time printed (on MongoDB too with
//! `--db`): an append should cost what it adds, not what is stored.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use fluxpy::synth::{write_hdf5, write_mat_v73, Columns, Grid, H5Layout};

const STEP_HOURS: f64 = 3.0;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--load-child") {
        return load_child(&args[1..]);
    }
    let mut steps = vec![64, 248];
    let mut dir: Option<PathBuf> = None;
    let mut keep = false;
    let mut formats: Vec<String> = FORMATS.iter().map(|f| f.to_string()).collect();
    let mut other: Option<PathBuf> = None;
    let mut mongodb: Option<String> = None;
    let mut appends = 20usize;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--steps" => {
                steps = it
                    .next()
                    .expect("--steps 64,248")
                    .split(',')
                    .map(|s| s.trim().parse().expect("a number of steps"))
                    .collect()
            }
            "--dir" => dir = Some(PathBuf::from(it.next().expect("--dir DIR"))),
            "--keep" => keep = true,
            "--appends" => appends = it.next().and_then(|s| s.parse().ok()).expect("--appends N"),
            "--formats" => {
                formats = it
                    .next()
                    .expect("--formats v7.3,HDF5,gzip,MATv5,NetCDF")
                    .split(',')
                    .map(|f| f.trim().to_string())
                    .collect();
                if let Some(f) = formats.iter().find(|f| !FORMATS.contains(&f.as_str())) {
                    eprintln!("bench: unknown format {f}; use {}", FORMATS.join(", "));
                    std::process::exit(2);
                }
            }
            "--vs" => other = Some(PathBuf::from(it.next().expect("--vs MANAGE_BINARY"))),
            "--db" => {
                let uri = it.next().expect("--db mongodb://HOST:PORT");
                if !uri.starts_with("mongodb") {
                    eprintln!("bench: --db takes a mongodb:// URI (the embedded store is always measured)");
                    std::process::exit(2);
                }
                mongodb = Some(uri.clone());
            }
            other => {
                eprintln!("bench: unknown argument {other}; use --steps N,M, --formats {}, --db mongodb://…, --vs BINARY, --appends N, --dir DIR, --keep", FORMATS.join(","));
                std::process::exit(2);
            }
        }
    }
    let tmp = match &dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .expect("a temporary directory");
    let grid = Grid::GLOBAL_HALF_DEGREE;
    println!(
        "machine: {} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model()
    );
    println!("files in {}", tmp.path().display());
    println!("load: {}", load_average());
    let python = python_baseline_available();
    if !python {
        println!(
            "python: {} lacks h5py, scipy, netCDF4, numpy or pymongo: no baseline, no gzip or MAT v5 file",
            python_command().display()
        );
    }
    println!(
        "{:<6} {:<8} {:>8} {:>6} {:>8} {:>8} {:>7} {:>7} {:>7} {:>12} {:>8} {:>10} {:>9}",
        "format",
        "store",
        "cells",
        "steps",
        "input MB",
        "load s",
        "CPU s",
        "x floor",
        "docs/s",
        "values/s",
        "MB/s",
        "peak RSS",
        "store MB"
    );
    for &n in &steps {
        for format in formats.iter().map(String::as_str) {
            if matches!(format, "gzip" | "MATv5") && !python {
                continue;
            }
            let file = tmp.path().join(match format {
                "v7.3" => format!("global_{n}.mat"),
                "NetCDF" => format!("global_{n}.nc"),
                "gzip" => format!("global_{n}_gzip.h5"),
                "MATv5" => format!("global_{n}_v5.mat"),
                _ => format!("global_{n}.h5"),
            });
            let t = Instant::now();
            let layout = H5Layout::default();
            let plain = tmp.path().join(format!("global_{n}.h5"));
            let write_plain = || {
                if plain.exists() {
                    return Ok(());
                }
                write_hdf5(
                    &plain,
                    HDF5_DATASET,
                    &Columns::flux(grid, n, STEP_HOURS),
                    &layout,
                )
                .map_err(|e| e.to_string())
            };
            match format {
                "v7.3" => {
                    write_mat_v73(&file, "flux", &Columns::flux(grid, n, STEP_HOURS), &layout)
                        .map_err(|e| e.to_string())
                }
                "NetCDF" => write_netcdf(&file, n).map_err(|e| e.to_string()),
                "gzip" | "MATv5" => {
                    write_plain().and_then(|()| rewrite_in_python(&plain, &file, format))
                }
                _ => write_plain(),
            }
            .expect("generate the input file");
            let generated = t.elapsed().as_secs_f64();
            let bytes = std::fs::metadata(&file).expect("file").len();
            let var = match format {
                "HDF5" | "gzip" => HDF5_DATASET,
                _ => "flux",
            };
            let db = tmp.path().join(format!("store_{n}_{format}.db"));
            let (load, rss_kib, cpu) = run_child(&file, db.to_str().expect("a UTF-8 path"), START);
            let store_bytes = std::fs::metadata(&db).map_or(0, |m| m.len());
            let precision = stored_precision(&db).unwrap_or(2);
            let f = floor(&file, var, precision);
            println!(
                "{format:<6} floor    {:>8} {n:>6} {:>8.1}  read {:.3} + sha256 {:.3} + round/pack {:.3} + zstd {:.3} + sqlite {:.3} = {:.3} CPU s (precision {precision})",
                grid.cells(),
                bytes as f64 / 1e6,
                f.read,
                f.hash,
                f.pack,
                f.zstd,
                f.sqlite,
                f.total(),
            );
            let mb = bytes as f64 / 1e6;
            let row = |store: &str, load: f64, cpu: f64, rss_kib: u64, store_mb: Option<f64>| {
                println!(
                    "{:<6} {:<8} {:>8} {:>6} {:>8.1} {:>8.2} {:>7.2} {:>7.2} {:>7.1} {:>12.0} {:>8.1} {:>6.0} MiB {:>9}",
                    format,
                    store,
                    grid.cells(),
                    n,
                    mb,
                    load,
                    cpu,
                    cpu / f.total(),
                    n as f64 / load,
                    (grid.cells() * n) as f64 / load,
                    mb / load,
                    rss_kib as f64 / 1024.0,
                    store_mb.map_or("-".to_string(), |m| format!("{m:.1}")),
                )
            };
            row(
                "embedded",
                load,
                cpu,
                rss_kib,
                Some(store_bytes as f64 / 1e6),
            );
            if let Some(binary) = &other {
                let odb = tmp.path().join(format!("other_{n}_{format}.db"));
                let (load, rss_kib, ocpu) = run_binary(binary, &file, &odb, START);
                row("--vs", load, ocpu, rss_kib, None);
                println!(
                    "       --vs {}: {:.2}x this build's CPU",
                    binary.display(),
                    ocpu / cpu
                );
                for ext in ["", "-wal", "-shm"] {
                    std::fs::remove_file(format!("{}{ext}", odb.display())).ok();
                }
            }
            let exports = (format == "HDF5").then(|| {
                let (rows, secs, csv_cpu) = export_store(&db, false);
                println!(
                    "       export --format csv: {rows} rows in {secs:.2} s ({csv_cpu:.2} s CPU), {:.2} M rows/s",
                    rows as f64 / secs / 1e6
                );
                let (lines, secs, jsonl_cpu) = export_store(&db, true);
                println!(
                    "       export --format jsonl: {lines} lines in {secs:.2} s ({jsonl_cpu:.2} s CPU)"
                );
                (csv_cpu, jsonl_cpu)
            });
            if python {
                let pdb = tmp.path().join(format!("python_{n}_{format}.db"));
                let (secs, pcpu) = run_python(&file, var, &pdb, format, precision);
                println!(
                    "       python baseline: {secs:.2} s ({pcpu:.2} s CPU); manage is {:.1}x faster ({:.1}x in CPU)",
                    secs / load,
                    pcpu / cpu
                );
                if let Some((csv_cpu, jsonl_cpu)) = exports {
                    for (form, cpu) in [("csv", csv_cpu), ("jsonl", jsonl_cpu)] {
                        let (secs, pcpu) = run_export_peer(&pdb, &file, form);
                        println!(
                            "       python export peer, {form}: {secs:.2} s ({pcpu:.2} s CPU); manage export is {:.1}x faster in CPU",
                            pcpu / cpu
                        );
                    }
                }
                std::fs::remove_file(&pdb).ok();
            }
            if let Some(uri) = &mongodb {
                let name = format!(
                    "fluxpy_bench_{}_{n}_{}",
                    std::process::id(),
                    format.replace('.', "")
                );
                let target = fluxpy::store::mongo::with_database(uri, &name);
                let (load, rss_kib, cpu) = run_child(&file, &target, START);
                row("mongodb", load, cpu, rss_kib, None);
                match fluxpy::store::mongo::Mongo::open(&target) {
                    Ok(m) => {
                        let _ = m.drop_database();
                    }
                    Err(e) => eprintln!("bench: {e}"),
                }
            }
            eprintln!("  (generated {} in {generated:.1} s)", file.display());
            if keep {
                continue;
            }
            std::fs::remove_file(&file).ok();
            for ext in ["", "-wal", "-shm"] {
                std::fs::remove_file(format!("{}{ext}", db.display())).ok();
            }
        }
        if !keep {
            std::fs::remove_file(tmp.path().join(format!("global_{n}.h5"))).ok();
        }
    }
    if appends > 0 {
        let db = tmp.path().join("store_appends.db");
        append_series(
            tmp.path(),
            grid,
            appends,
            db.to_str().expect("a UTF-8 path"),
            "embedded",
        );
        if let Some(uri) = &mongodb {
            let name = format!("fluxpy_bench_{}_appends", std::process::id());
            let target = fluxpy::store::mongo::with_database(uri, &name);
            append_series(tmp.path(), grid, appends, &target, "mongodb");
            if let Ok(m) = fluxpy::store::mongo::Mongo::open(&target) {
                let _ = m.drop_database();
            }
        }
        if !keep {
            for ext in ["", "-wal", "-shm"] {
                std::fs::remove_file(format!("{}{ext}", db.display())).ok();
            }
        }
    }
    if keep {
        println!("kept: {}", tmp.keep().display());
    }
}

const START: &str = "2004-01-01T00:00:00";

/// The input formats, as `--formats` names them.
const FORMATS: [&str; 5] = ["v7.3", "HDF5", "gzip", "MATv5", "NetCDF"];

/// Where the plain HDF5 files hold the matrix.
const HDF5_DATASET: &str = "fluxes/global/flux";

/// The CPU seconds of each stage no loader of a file can avoid.
struct Floor {
    read: f64,
    hash: f64,
    pack: f64,
    zstd: f64,
    sqlite: f64,
}

impl Floor {
    fn total(&self) -> f64 {
        self.read + self.hash + self.pack + self.zstd + self.sqlite
    }
}

/// CPU seconds of this thread.
fn thread_cpu() -> f64 {
    // SAFETY: clock_gettime only fills the struct it is given.
    let mut t: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// Time `f` in this thread's CPU seconds, added to `total`.
fn timed<T>(total: &mut f64, f: impl FnOnce() -> T) -> T {
    let t = thread_cpu();
    let out = f();
    *total += thread_cpu() - t;
    out
}

/// The floor of `file`: its bytes read (in 1 MiB pieces) and hashed, each
/// step's values (the matrix read a block at a time, untimed) rounded to
/// `precision` and packed, the packed documents zstd-compressed at the
/// store's level, and the compressed bytes inserted into a fresh SQLite
/// table in one transaction: each stage timed alone.
fn floor(file: &Path, var: &str, precision: u32) -> Floor {
    use sha2::Digest;
    use std::io::Read;
    let mut f = Floor {
        read: 0.0,
        hash: 0.0,
        pack: 0.0,
        zstd: 0.0,
        sqlite: 0.0,
    };
    let mut input = std::fs::File::open(file).expect("the input");
    let mut buf = vec![0u8; 1 << 20];
    let mut hasher = sha2::Sha256::new();
    loop {
        let n = timed(&mut f.read, || input.read(&mut buf)).expect("read the input");
        if n == 0 {
            break;
        }
        timed(&mut f.hash, || hasher.update(&buf[..n]));
    }
    std::hint::black_box(hasher.finalize());

    let dir = tempfile::tempdir_in(file.parent().expect("a folder")).expect("a folder");
    let db = rusqlite::Connection::open(dir.path().join("floor.db")).expect("SQLite");
    db.execute_batch(
        "PRAGMA journal_mode=WAL; CREATE TABLE docs (key BLOB PRIMARY KEY, doc BLOB NOT NULL); BEGIN",
    )
    .expect("a table");
    let mut m = fluxpy::source::open(file, Some(var)).expect("open the matrix");
    let (rows, cols) = (m.info().rows, m.info().cols);
    let mut z = zstd::bulk::Compressor::new(1).expect("zstd");
    let mut compressed = Vec::new();
    let mut k = 2;
    while k < cols {
        let count = 8.min(cols - k);
        let block = m.read_columns(k, count).expect("read a block");
        for j in 0..count {
            let column = block.column(j);
            let doc = timed(&mut f.pack, || {
                let mut w = fluxpy::doc::packed::StepWriter::new(rows, precision);
                for &x in column {
                    match fluxpy::model::units_of(x, precision) {
                        Some(k) => w.push_units(k),
                        None => w.push(Some(fluxpy::model::stored_value(x, precision)), None),
                    }
                }
                w.finish((k + j) as i64 * 10_800_000, "values")
            });
            let n = timed(&mut f.zstd, || {
                compressed.clear();
                compressed.reserve(zstd::zstd_safe::compress_bound(doc.packed.len()));
                z.compress_to_buffer(&doc.packed, &mut compressed)
                    .expect("zstd")
            });
            timed(&mut f.sqlite, || {
                db.execute(
                    "INSERT INTO docs VALUES (?1, ?2)",
                    rusqlite::params![((k + j) as i64).to_be_bytes(), &compressed[..n]],
                )
                .expect("insert")
            });
        }
        k += count;
    }
    timed(&mut f.sqlite, || {
        db.execute_batch("COMMIT").expect("commit")
    });
    f
}

/// The precision the load stored in `db`'s metadata of the benchmark dataset.
fn stored_precision(db: &Path) -> Option<u32> {
    let store = fluxpy::store::open(Some(db.to_str()?)).ok()?;
    let dataset = fluxpy::read::Dataset::open(&*store, "bench").ok()?;
    let p = dataset.metadata.as_ref()?.get("precision")?;
    fluxpy::read::number(p).map(|p| p as u32)
}

/// The Python of the baseline: `$FLUXPY_BENCH_PYTHON`, the test
/// environment's, or `python3`.
fn python_command() -> PathBuf {
    if let Some(p) = std::env::var_os("FLUXPY_BENCH_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-env/venv/bin/python");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("python3")
}

/// The plain HDF5 matrix at `plain` written to `to` by Python: with gzip and
/// h5py's default chunks, or as a MAT v5 file by SciPy (uncompressed).
fn rewrite_in_python(plain: &Path, to: &Path, format: &str) -> Result<(), String> {
    let code = match format {
        "gzip" => "import sys, h5py\nwith h5py.File(sys.argv[1]) as f:\n    m = f[sys.argv[3]][()]\nwith h5py.File(sys.argv[2], 'w') as g:\n    g.create_dataset(sys.argv[3], data=m, compression='gzip')\n",
        _ => "import sys, h5py, scipy.io\nwith h5py.File(sys.argv[1]) as f:\n    m = f[sys.argv[3]][()]\nscipy.io.savemat(sys.argv[2], {'flux': m}, do_compression=False)\n",
    };
    let status = Command::new(python_command())
        .arg("-c")
        .arg(code)
        .arg(plain)
        .arg(to)
        .arg(HDF5_DATASET)
        .status()
        .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("python failed writing {}", to.display()))
    }
}

/// `/proc/loadavg`'s three load averages and the cores they compare with.
fn load_average() -> String {
    let avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let fields: Vec<&str> = avg.split_whitespace().take(3).collect();
    format!(
        "load average {} (1, 5, 15 min) on {} cores",
        fields.join(" "),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )
}

/// Load `file` with another `manage` binary into the embedded store `db`,
/// under `/usr/bin/time`: wall seconds, peak RSS (KiB) and CPU seconds of
/// that process. (Not by this process's own wait: a process spawned from
/// this one starts with this one's peak memory on its books.)
fn run_binary(binary: &Path, file: &Path, db: &Path, timestamp: &str) -> (f64, u64, f64) {
    let model = if file.extension().is_some_and(|e| e == "nc") {
        "CFGrid"
    } else {
        "SpatioTemporalMatrix"
    };
    let report = db.with_extension("time");
    let status = Command::new("/usr/bin/time")
        .args(["-f", "%e %U %S %M", "-o"])
        .arg(&report)
        .arg(binary)
        .arg("--db")
        .arg(db)
        .args(["load", "-p"])
        .arg(file)
        .args(["-m", model, "-n", "bench", "-o"])
        .arg(format!("timestamp={timestamp};title=Benchmark"))
        .arg("-q")
        .stdout(Stdio::null())
        .status()
        .expect("run the other binary under /usr/bin/time");
    assert!(
        status.success(),
        "the other binary failed on {}",
        file.display()
    );
    let text = std::fs::read_to_string(&report).expect("the time report");
    std::fs::remove_file(&report).ok();
    let n: Vec<f64> = text
        .split_whitespace()
        .map(|w| w.parse().expect("a number"))
        .collect();
    (n[0], n[3] as u64, n[1] + n[2])
}

/// An 8-step file loaded into `db`, then appended `n` times under the next days.
fn append_series(dir: &Path, grid: Grid, n: usize, db: &str, store: &str) {
    let file = dir.join("global_8.h5");
    if !file.exists() {
        let columns = Columns::flux(grid, 8, STEP_HOURS);
        write_hdf5(&file, "fluxes/global/flux", &columns, &H5Layout::default())
            .expect("generate the input file");
    }
    println!(
        "append series ({store}): {} cells, 8 steps per file",
        grid.cells()
    );
    println!(
        "{:>6} {:>8} {:>8} {:>8}",
        "load", "stored", "wall s", "CPU s"
    );
    let start = chrono::NaiveDateTime::parse_from_str(START, "%Y-%m-%dT%H:%M:%S").expect("date");
    let (mut first, mut last) = (None, 0.0);
    for i in 0..=n {
        let ts = (start + chrono::Duration::days(i as i64))
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string();
        let (wall, _, cpu) = run_child(&file, db, &ts);
        let what = if i == 0 {
            "fresh".to_string()
        } else {
            format!("+{i}")
        };
        println!("{what:>6} {:>8} {wall:>8.2} {cpu:>8.2}", 8 * i);
        if i == 1 {
            first = Some(cpu);
        }
        last = cpu;
    }
    if let Some(first) = first {
        println!(
            "append {n} / append 1, CPU: {:.2} ({last:.2} s / {first:.2} s)",
            last / first
        );
    }
}

/// `export --format csv` (or `jsonl`) of the benchmark dataset to a sink,
/// in this process: rows (lines), wall and CPU seconds.
fn export_store(db: &Path, jsonl: bool) -> (u64, f64, f64) {
    struct Rows(u64);
    impl std::io::Write for Rows {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.iter().filter(|&&c| c == b'\n').count() as u64;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let (t, cpu) = (Instant::now(), own_cpu());
    let store = fluxpy::store::open(Some(db.to_str().expect("a UTF-8 path"))).expect("the store");
    let dataset = fluxpy::read::Dataset::open(&*store, "bench").expect("the dataset");
    let mut out = Rows(0);
    let mut documents = 0;
    if jsonl {
        fluxpy::cmd::export::write_jsonl(&dataset, &Default::default(), &mut out, &mut documents)
            .expect("export");
        return (out.0, t.elapsed().as_secs_f64(), own_cpu() - cpu);
    }
    fluxpy::cmd::export::write_csv(&dataset, &Default::default(), &mut out, &mut documents)
        .expect("export");
    // The header is not a row.
    (out.0 - 1, t.elapsed().as_secs_f64(), own_cpu() - cpu)
}

/// The Python export peer (`scripts/python_export_peer.py`) on the Python
/// baseline's store `db` of the plain HDF5 `file`, writing `form` (`csv`
/// or `jsonl`) to /dev/null: its wall and CPU seconds.
fn run_export_peer(db: &Path, file: &Path, form: &str) -> (f64, f64) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/python_export_peer.py");
    let before = children_cpu();
    let t = Instant::now();
    let out = Command::new(python_command())
        .arg(script)
        .arg(db)
        .arg(file)
        .arg(HDF5_DATASET)
        .arg(format!("--{form}"))
        .arg("/dev/null")
        .stderr(Stdio::inherit())
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "the Python export peer failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    (t.elapsed().as_secs_f64(), children_cpu() - before)
}

/// Whether the Python has what the baseline and the writers need.
fn python_baseline_available() -> bool {
    Command::new(python_command())
        .args(["-c", "import h5py, numpy, bson, scipy.io, netCDF4"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The Python baseline's wall and CPU seconds on `file`.
fn run_python(file: &Path, dataset: &str, db: &Path, format: &str, precision: u32) -> (f64, f64) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/python_baseline.py");
    let before = children_cpu();
    let mut c = Command::new(python_command());
    c.arg(script).arg(file).arg(dataset).arg(db);
    match format {
        "v7.3" => {
            c.arg("--matlab");
        }
        "MATv5" => {
            c.arg("--mat5");
        }
        "NetCDF" => {
            c.arg("--netcdf");
        }
        _ => {}
    }
    c.arg("--precision").arg(precision.to_string());
    let out = c.stderr(Stdio::inherit()).output().expect("run python3");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the Python baseline failed: {text}");
    let secs = text
        .lines()
        .find_map(|l| l.strip_prefix("baseline-result "))
        .and_then(|s| s.trim().parse().ok())
        .expect("a result line");
    (secs, children_cpu() - before)
}

fn seconds(v: libc::timeval) -> f64 {
    v.tv_sec as f64 + v.tv_usec as f64 / 1e6
}

/// User + system seconds of `who` (this process, or its children waited for).
fn cpu_of(who: libc::c_int) -> f64 {
    // SAFETY: getrusage only fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut u) };
    seconds(u.ru_utime) + seconds(u.ru_stime)
}

fn children_cpu() -> f64 {
    cpu_of(libc::RUSAGE_CHILDREN)
}

fn own_cpu() -> f64 {
    cpu_of(libc::RUSAGE_SELF)
}

/// A CF NetCDF-4 file of the 0.5° global grid with `steps` 3-hourly steps,
/// written one step at a time (CarbonTracker's layout and time convention).
fn write_netcdf(path: &Path, steps: usize) -> netcdf::Result<()> {
    let (nlat, nlon) = (360usize, 720usize);
    let mut f = netcdf::create(path)?;
    f.add_attribute("title", "Benchmark: 0.5 degree global 3-hourly flux")?;
    f.add_attribute("Conventions", "CF-1.8")?;
    f.add_unlimited_dimension("time")?;
    f.add_dimension("latitude", nlat)?;
    f.add_dimension("longitude", nlon)?;
    let lats: Vec<f32> = (0..nlat).map(|i| -89.75 + 0.5 * i as f32).collect();
    let lons: Vec<f32> = (0..nlon).map(|j| -179.75 + 0.5 * j as f32).collect();
    let mut v = f.add_variable::<f32>("latitude", &["latitude"])?;
    v.put_attribute("standard_name", "latitude")?;
    v.put_attribute("units", "degrees_north")?;
    v.put_values(&lats, ..)?;
    let mut v = f.add_variable::<f32>("longitude", &["longitude"])?;
    v.put_attribute("standard_name", "longitude")?;
    v.put_attribute("units", "degrees_east")?;
    v.put_values(&lons, ..)?;
    let mut v = f.add_variable::<f64>("time", &["time"])?;
    v.put_attribute("standard_name", "time")?;
    v.put_attribute("units", "days since 2000-01-01 00:00:00")?;
    v.put_attribute("calendar", "standard")?;
    let times: Vec<f64> = (0..steps).map(|k| 1642.0625 + k as f64 / 8.0).collect();
    v.put_values(&times, 0..steps)?;
    let mut v = f.add_variable::<f32>("flux", &["time", "latitude", "longitude"])?;
    v.set_chunking(&[1, nlat, nlon])?;
    v.set_compression(1, true)?;
    v.set_fill_value(-1e34f32)?;
    v.put_attribute("units", "mol m-2 s-1")?;
    let base: Vec<f32> = (0..nlat * nlon)
        .map(|c| {
            let (lat, lon) = (lats[c / nlon].to_radians(), lons[c % nlon].to_radians());
            ((2.0 * lat).cos() * (3.0 * lon).sin()) * 1e-6
        })
        .collect();
    let mut step = vec![0f32; nlat * nlon];
    for k in 0..steps {
        let w = (k as f32 / 8.0).cos();
        for (c, s) in step.iter_mut().enumerate() {
            *s = if c / nlon < 60 { -1e34 } else { base[c] * w };
        }
        v.put_values(&step, (k..k + 1, .., ..))?;
    }
    f.close()
}

/// Load `file` into `db` under time `timestamp` in a child process; its
/// load seconds, peak RSS (KiB) and CPU seconds (the whole child process).
fn run_child(file: &Path, db: &str, timestamp: &str) -> (f64, u64, f64) {
    let before = children_cpu();
    let out = Command::new(std::env::current_exe().expect("own path"))
        .arg("--load-child")
        .arg(file)
        .arg(db)
        .arg(timestamp)
        .stderr(Stdio::inherit())
        .output()
        .expect("run the load");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "load failed: {text}");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("bench-result "))
        .expect("a result line");
    let mut parts = line.split_whitespace();
    let secs = parts.next().and_then(|s| s.parse().ok()).expect("seconds");
    let rss = parts.next().and_then(|s| s.parse().ok()).expect("peak RSS");
    (secs, rss, children_cpu() - before)
}

/// The child: one load through `manage load`'s code, then its time and VmHWM.
fn load_child(args: &[String]) {
    let (file, db) = (PathBuf::from(&args[0]), &args[1]);
    // A NetCDF file is read by CFGrid, whose times come from the file.
    let model = if file.extension().is_some_and(|e| e == "nc") {
        "CFGrid"
    } else {
        "SpatioTemporalMatrix"
    };
    let options = format!("timestamp={};title=Benchmark", args[2]);
    // The arguments go through `manage load`'s own parser, defaults included.
    #[derive(clap::Parser)]
    struct Load {
        #[command(flatten)]
        args: fluxpy::cmd::load::Args,
    }
    let load = <Load as clap::Parser>::parse_from([
        "load".as_ref(),
        "-p".as_ref(),
        file.as_os_str(),
        "-m".as_ref(),
        model.as_ref(),
        "-n".as_ref(),
        "bench".as_ref(),
        "-o".as_ref(),
        options.as_ref(),
        "-q".as_ref(),
    ] as [&std::ffi::OsStr; 10])
    .args;
    let t = Instant::now();
    match fluxpy::cmd::load::run(Some(db), &load) {
        Ok(code) if code == std::process::ExitCode::SUCCESS => {}
        Ok(_) => std::process::exit(1),
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(1);
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!("bench-result {secs} {}", peak_rss_kib());
}

/// VmHWM of this process, in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
