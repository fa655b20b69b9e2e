//! The load benchmark: a synthetic 0.5° global grid (259,200 cells) of 64
//! and of 248 three-hourly steps, written by the project's generator as a
//! MATLAB v7.3 file and as a plain HDF5 file, each loaded into a fresh
//! embedded store by `manage load`'s own code path in a child process.
//!
//!     cargo run --release --example bench [-- --steps 64,248] [--dir DIR]
//!         [--formats v7.3,HDF5,NetCDF] [--db mongodb://HOST:PORT]
//!
//! A year of 3-hourly NetCDF (the 2,920 steps of a CarbonTracker year), a CF
//! NetCDF-4 file (`time × latitude × longitude`, float32, one deflated chunk
//! per step, a masked band south of 60°S) loaded with CFGrid:
//!
//!     cargo run --release --example bench -- --steps 248,2920 --formats NetCDF
//!
//! Prints, per file: cells, steps, input size, the time `cat FILE >
//! /dev/null` takes, the load time, documents, values and input MB per
//! second, and the peak resident memory of the loading process. With
//! `--db`, each file is also loaded into a fresh database of that MongoDB
//! deployment (dropped afterwards), on a second line. The generated files (about
//! 130 MB and 510 MB each) live in a temporary directory removed at the end
//! (`--keep` leaves the files and stores there).
//!
//! CPU seconds (user + system of the loading process) are printed beside
//! wall seconds, since the machine may be shared. When `python3` with
//! `h5py`, `numpy` and `pymongo` is present, the Python baseline
//! (`scripts/python_baseline.py`) loads each file too, and the ratio is
//! printed; after each HDF5 load, `export --format csv` of the store is
//! timed. Then the append series: an 8-step file loaded, and appended
//! `--appends N` times (default 20) under later times, each append's time
//! printed (on MongoDB too with `--db`): an append should cost what it adds,
//! not what is stored.

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
    let mut formats = vec!["v7.3".to_string(), "HDF5".to_string()];
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
                    .expect("--formats v7.3,HDF5,NetCDF")
                    .split(',')
                    .map(|f| f.trim().to_string())
                    .collect();
                if let Some(f) = formats
                    .iter()
                    .find(|f| !["v7.3", "HDF5", "NetCDF"].contains(&f.as_str()))
                {
                    eprintln!("bench: unknown format {f}; use v7.3, HDF5 and/or NetCDF");
                    std::process::exit(2);
                }
            }
            "--db" => {
                let uri = it.next().expect("--db mongodb://HOST:PORT");
                if !uri.starts_with("mongodb") {
                    eprintln!("bench: --db takes a mongodb:// URI (the embedded store is always measured)");
                    std::process::exit(2);
                }
                mongodb = Some(uri.clone());
            }
            other => {
                eprintln!("bench: unknown argument {other}; use --steps N,M, --formats v7.3,HDF5,NetCDF, --db mongodb://…, --appends N, --dir DIR, --keep");
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
    let python = python_baseline_available();
    println!(
        "{:<6} {:<8} {:>8} {:>6} {:>8} {:>7} {:>8} {:>7} {:>7} {:>12} {:>8} {:>10} {:>9}",
        "format",
        "store",
        "cells",
        "steps",
        "input MB",
        "cat s",
        "load s",
        "CPU s",
        "docs/s",
        "values/s",
        "MB/s",
        "peak RSS",
        "store MB"
    );
    for &n in &steps {
        for format in formats.iter().map(String::as_str) {
            let file = tmp.path().join(match format {
                "v7.3" => format!("global_{n}.mat"),
                "NetCDF" => format!("global_{n}.nc"),
                _ => format!("global_{n}.h5"),
            });
            let t = Instant::now();
            let layout = H5Layout::default();
            match format {
                "v7.3" => {
                    write_mat_v73(&file, "flux", &Columns::flux(grid, n, STEP_HOURS), &layout)
                        .map_err(|e| e.to_string())
                }
                "NetCDF" => write_netcdf(&file, n).map_err(|e| e.to_string()),
                _ => write_hdf5(
                    &file,
                    "fluxes/global/flux",
                    &Columns::flux(grid, n, STEP_HOURS),
                    &layout,
                )
                .map_err(|e| e.to_string()),
            }
            .expect("generate the input file");
            let generated = t.elapsed().as_secs_f64();
            let bytes = std::fs::metadata(&file).expect("file").len();
            let cat = time_cat(&file);
            let db = tmp.path().join(format!("store_{n}_{format}.db"));
            let (load, rss_kib, cpu) = run_child(&file, db.to_str().expect("a UTF-8 path"), START);
            let store_bytes = std::fs::metadata(&db).map_or(0, |m| m.len());
            let mb = bytes as f64 / 1e6;
            let row = |store: &str, load: f64, cpu: f64, rss_kib: u64, store_mb: Option<f64>| {
                println!(
                    "{:<6} {:<8} {:>8} {:>6} {:>8.1} {:>7.2} {:>8.2} {:>7.2} {:>7.1} {:>12.0} {:>8.1} {:>6.0} MiB {:>9}",
                    format,
                    store,
                    grid.cells(),
                    n,
                    mb,
                    cat,
                    load,
                    cpu,
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
            if format == "HDF5" {
                let (rows, secs, cpu) = export_csv(&db);
                println!(
                    "       export --format csv: {rows} rows in {secs:.2} s ({cpu:.2} s CPU), {:.2} M rows/s",
                    rows as f64 / secs / 1e6
                );
            }
            if python && format != "NetCDF" {
                let dataset = match format {
                    "v7.3" => "flux",
                    _ => "fluxes/global/flux",
                };
                let pdb = tmp.path().join(format!("python_{n}_{format}.db"));
                let (secs, pcpu) = run_python(&file, dataset, &pdb, format == "v7.3");
                println!(
                    "       python baseline: {secs:.2} s ({pcpu:.2} s CPU); manage is {:.1}x faster ({:.1}x in CPU)",
                    secs / load,
                    pcpu / cpu
                );
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

/// `export --format csv` of the benchmark dataset to a sink, in this
/// process: rows, wall and CPU seconds.
fn export_csv(db: &Path) -> (u64, f64, f64) {
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
    let dataset = fluxpy::cmd::dataset::Dataset::open(&*store, "bench").expect("the dataset");
    let mut out = Rows(0);
    let mut documents = 0;
    fluxpy::cmd::export::write_csv(&dataset, &Default::default(), &mut out, &mut documents)
        .expect("export");
    // The header is not a row.
    (out.0 - 1, t.elapsed().as_secs_f64(), own_cpu() - cpu)
}

/// Whether `python3` with `h5py`, `numpy` and `bson` (pymongo) can run the baseline.
fn python_baseline_available() -> bool {
    Command::new("python3")
        .args(["-c", "import h5py, numpy, bson"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The Python baseline's wall and CPU seconds on `file`.
fn run_python(file: &Path, dataset: &str, db: &Path, matlab: bool) -> (f64, f64) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/python_baseline.py");
    let before = children_cpu();
    let mut c = Command::new("python3");
    c.arg(script).arg(file).arg(dataset).arg(db);
    if matlab {
        c.arg("--matlab");
    }
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

/// Seconds `cat FILE > /dev/null` takes.
fn time_cat(file: &Path) -> f64 {
    let t = Instant::now();
    let status = Command::new("cat")
        .arg(file)
        .stdout(Stdio::null())
        .status()
        .expect("run cat");
    assert!(status.success(), "cat failed");
    t.elapsed().as_secs_f64()
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
