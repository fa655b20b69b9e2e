//! The load benchmark: a synthetic 0.5° global grid (259,200 cells) of 64
//! and of 248 three-hourly steps, written by the project's generator as a
//! MATLAB v7.3 file and as a plain HDF5 file, each loaded into a fresh
//! embedded store by `manage load`'s own code path in a child process.
//!
//!     cargo run --release --example bench [-- --steps 64,248] [--dir DIR]
//!         [--formats v7.3,HDF5] [--db mongodb://HOST:PORT]
//!
//! Prints, per file: cells, steps, input size, the time `cat FILE >
//! /dev/null` takes, the load time, documents, values and input MB per
//! second, and the peak resident memory of the loading process. With
//! `--db`, each file is also loaded into a fresh database of that MongoDB
//! deployment (dropped afterwards), on a second line. The generated files (about
//! 130 MB and 510 MB each) live in a temporary directory removed at the end
//! (`--keep` leaves the files and stores there).

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
            "--formats" => {
                formats = it
                    .next()
                    .expect("--formats v7.3,HDF5")
                    .split(',')
                    .map(|f| f.trim().to_string())
                    .collect();
                if let Some(f) = formats.iter().find(|f| *f != "v7.3" && *f != "HDF5") {
                    eprintln!("bench: unknown format {f}; use v7.3, HDF5 or both");
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
                eprintln!("bench: unknown argument {other}; use --steps N,M, --formats v7.3,HDF5, --db mongodb://…, --dir DIR, --keep");
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
    println!(
        "{:<6} {:<8} {:>8} {:>6} {:>8} {:>7} {:>8} {:>7} {:>12} {:>8} {:>10} {:>9}",
        "format",
        "store",
        "cells",
        "steps",
        "input MB",
        "cat s",
        "load s",
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
                _ => format!("global_{n}.h5"),
            });
            let columns = Columns::flux(grid, n, STEP_HOURS);
            let t = Instant::now();
            let layout = H5Layout::default();
            match format {
                "v7.3" => write_mat_v73(&file, "flux", &columns, &layout),
                _ => write_hdf5(&file, "fluxes/global/flux", &columns, &layout),
            }
            .expect("generate the input file");
            let generated = t.elapsed().as_secs_f64();
            let bytes = std::fs::metadata(&file).expect("file").len();
            let cat = time_cat(&file);
            let db = tmp.path().join(format!("store_{n}_{format}.db"));
            let (load, rss_kib) = run_child(&file, db.to_str().expect("a UTF-8 path"));
            let store_bytes = std::fs::metadata(&db).map_or(0, |m| m.len());
            let mb = bytes as f64 / 1e6;
            let row = |store: &str, load: f64, rss_kib: u64, store_mb: Option<f64>| {
                println!(
                    "{:<6} {:<8} {:>8} {:>6} {:>8.1} {:>7.2} {:>8.2} {:>7.1} {:>12.0} {:>8.1} {:>6.0} MiB {:>9}",
                    format,
                    store,
                    grid.cells(),
                    n,
                    mb,
                    cat,
                    load,
                    n as f64 / load,
                    (grid.cells() * n) as f64 / load,
                    mb / load,
                    rss_kib as f64 / 1024.0,
                    store_mb.map_or("-".to_string(), |m| format!("{m:.1}")),
                )
            };
            row("embedded", load, rss_kib, Some(store_bytes as f64 / 1e6));
            if let Some(uri) = &mongodb {
                let name = format!(
                    "fluxpy_bench_{}_{n}_{}",
                    std::process::id(),
                    format.replace('.', "")
                );
                let target = fluxpy::store::mongo::with_database(uri, &name);
                let (load, rss_kib) = run_child(&file, &target);
                row("mongodb", load, rss_kib, None);
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
    if keep {
        println!("kept: {}", tmp.keep().display());
    }
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

/// Load `file` into `db` in a child process; its load seconds and peak RSS (KiB).
fn run_child(file: &Path, db: &str) -> (f64, u64) {
    let out = Command::new(std::env::current_exe().expect("own path"))
        .arg("--load-child")
        .arg(file)
        .arg(db)
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
    (secs, rss)
}

/// The child: one load through `manage load`'s code, then its time and VmHWM.
fn load_child(args: &[String]) {
    let (file, db) = (PathBuf::from(&args[0]), &args[1]);
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
        "SpatioTemporalMatrix".as_ref(),
        "-n".as_ref(),
        "bench".as_ref(),
        "-o".as_ref(),
        "timestamp=2004-01-01T00:00:00;title=Benchmark".as_ref(),
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
