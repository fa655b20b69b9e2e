//! The load benchmark: a synthetic 0.5° global grid (259,200 cells) of 64
//! and of 248 three-hourly steps, written by the project's generator as a
//! MATLAB v7.3 file and as a plain HDF5 file, and as a CF NetCDF-4 file
//! (`time × latitude × longitude`, float32, one deflated chunk per step, a
//! masked band south of 60°S) loaded with CFGrid; each loaded into a fresh
//! embedded store by `manage load`'s own code path in a child process.
//!
//!     cargo run --release --example bench [-- --steps 64,248] [--dir DIR]
//!         [--formats v7.3,HDF5,NetCDF]
//!
//! A year of 3-hourly NetCDF (the 2,920 steps of a CarbonTracker year):
//!
//!     cargo run --release --example bench -- --steps 248,2920 --formats NetCDF
//!
//! Prints, per file: cells, steps, input size, the time `cat FILE >
//! /dev/null` takes, the load time, values and input MB per second, and the
//! peak resident memory of the loading process. The generated files (about
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
    let mut formats: Vec<String> = ["v7.3", "HDF5", "NetCDF"].map(String::from).to_vec();
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
                    .expect("--formats v7.3,HDF5,NetCDF")
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .collect()
            }
            other => {
                eprintln!("bench: unknown argument {other}; use --steps N,M, --formats v7.3,HDF5,NetCDF, --dir DIR, --keep");
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
        "{:<6} {:>8} {:>6} {:>8} {:>7} {:>8} {:>12} {:>8} {:>10} {:>9}",
        "format",
        "cells",
        "steps",
        "input MB",
        "cat s",
        "load s",
        "values/s",
        "MB/s",
        "peak RSS",
        "store MB"
    );
    for &n in &steps {
        for format in formats.iter().map(String::as_str) {
            let file = tmp.path().join(match format {
                "v7.3" => format!("global_{n}.mat"),
                "HDF5" => format!("global_{n}.h5"),
                "NetCDF" => format!("global_{n}.nc"),
                other => panic!("unknown format {other}: use v7.3, HDF5 or NetCDF"),
            });
            let t = Instant::now();
            let layout = H5Layout::default();
            match format {
                "v7.3" => {
                    write_mat_v73(&file, "flux", &Columns::flux(grid, n, STEP_HOURS), &layout)
                        .map_err(|e| e.to_string())
                }
                "HDF5" => write_hdf5(
                    &file,
                    "fluxes/global/flux",
                    &Columns::flux(grid, n, STEP_HOURS),
                    &layout,
                )
                .map_err(|e| e.to_string()),
                _ => write_netcdf(&file, n).map_err(|e| e.to_string()),
            }
            .expect("generate the input file");
            let generated = t.elapsed().as_secs_f64();
            let bytes = std::fs::metadata(&file).expect("file").len();
            let cat = time_cat(&file);
            let db = tmp.path().join(format!("store_{n}_{format}.db"));
            let (load, rss_kib) = run_child(&file, &db, format == "NetCDF");
            let store_bytes = std::fs::metadata(&db).map_or(0, |m| m.len());
            let mb = bytes as f64 / 1e6;
            println!(
                "{:<6} {:>8} {:>6} {:>8.1} {:>7.2} {:>8.2} {:>12.0} {:>8.1} {:>6.0} MiB {:>9.1}",
                format,
                grid.cells(),
                n,
                mb,
                cat,
                load,
                (grid.cells() * n) as f64 / load,
                mb / load,
                rss_kib as f64 / 1024.0,
                store_bytes as f64 / 1e6,
            );
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
fn run_child(file: &Path, db: &Path, cf: bool) -> (f64, u64) {
    let out = Command::new(std::env::current_exe().expect("own path"))
        .arg("--load-child")
        .arg(file)
        .arg(db)
        .arg(if cf { "CFGrid" } else { "SpatioTemporalMatrix" })
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
    let (file, db, model) = (PathBuf::from(&args[0]), &args[1], &args[2]);
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
