//! Hostile input, round three: files that change or end early while they
//! load, NetCDF's own rules for values, and the store, the filesystem and
//! the environment. Every case runs the real binary on real files; what a
//! value should be comes from netCDF4-python, h5py or the file's own bytes.

use crate::common;

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Env, Run};
use fluxpy::store::Datasets;
use fluxpy::synth::{self, Grid};
use sha2::{Digest, Sha256};

const STM: &str = "SpatioTemporalMatrix";
const TS: &str = "timestamp=2004-01-01T00:00:00";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn sha256(p: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
}

/// The one line a refusal prints: exit 1, one line on stderr, naming `file`.
fn refused_in_one_line(r: &Run, file: &Path, what: &str) {
    assert_eq!(r.code, 1, "{what}: exit {} ({})", r.code, r.stderr);
    let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 1, "{what}: not one line: {}", r.stderr);
    let name = file.file_name().unwrap().to_str().unwrap();
    assert!(
        lines[0].contains(name),
        "{what}: {} not named: {}",
        name,
        r.stderr
    );
    assert!(!r.stderr.contains("HDF5-DIAG"), "{what}: {}", r.stderr);
}

/// The store holds no dataset (or was never made).
fn nothing_stored(env: &Env, what: &str) {
    let r = env.run(&["db", "-l", "collections"]);
    if r.code == 0 {
        assert_eq!(r.stdout.trim(), "", "{what}: stored");
    } else {
        assert!(r.stderr.contains("does not exist"), "{what}: {}", r.stderr);
    }
}

// ---------------------------------------------------------------------
// 1. A file that changes or ends early is never stored as something else
// ---------------------------------------------------------------------

/// A MAT v5 flux file of `steps` steps between `lat`°S and `lat`°N, with
/// steps `step_hours` apart (which sets its values).
fn flux_file(p: &Path, lat: f64, steps: usize, step_hours: f64) {
    let grid = Grid::GLOBAL_HALF_DEGREE.with_window(-180.0, 180.0, -lat, lat);
    let m = synth::flux_matrix(&grid, steps, step_hours);
    synth::write_mat_v5(p, "flux", &m, false).unwrap();
}

/// How a file is changed under the load.
#[derive(Clone, Copy, Debug)]
enum Change {
    /// `mv other input`: another inode takes the name.
    RenameOver,
    /// `cp other input`: truncated, then written in place.
    CopyInPlace,
    /// The other file's bytes written over the input's, without truncating.
    OverwriteNoTruncate,
}

fn change(input: &Path, other: &Path, how: Change) {
    match how {
        Change::RenameOver => {
            let tmp = input.with_extension("incoming");
            std::fs::copy(other, &tmp).unwrap();
            std::fs::rename(&tmp, input).unwrap();
        }
        Change::CopyInPlace => {
            std::fs::copy(other, input).unwrap();
        }
        Change::OverwriteNoTruncate => {
            let bytes = std::fs::read(other).unwrap();
            let mut f = std::fs::OpenOptions::new().write(true).open(input).unwrap();
            f.seek(SeekFrom::Start(0)).unwrap();
            f.write_all(&bytes).unwrap();
        }
    }
}

/// Start `manage ARGS` on `env`'s store, wait until it holds a lock, then
/// `delay`; the child is returned running (or finished).
fn spawn_until_locked(env: &Env, args: &[&str], delay: Duration) -> std::process::Child {
    let child = env
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let db = env.db();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let locked = fluxpy::store::open_read_only(Some(s(&db)))
            .ok()
            .flatten()
            .and_then(|st| st.locks().ok())
            .is_some_and(|l| !l.is_empty());
        if locked || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(delay);
    child
}

/// Loads of one file that another file replaces while it loads, changed in
/// each way and at several moments: the dataset is one file's documents
/// entirely, with that file's hash in its ingest log, or the load fails
/// and stores nothing. The replacement must land during the load at
/// least once, and be noticed.
#[test]
fn a_file_changed_while_it_loads_is_stored_whole_or_not_at_all() {
    let env = Env::new();
    let a = env.path("a.mat");
    let same_size = env.path("b.mat");
    let larger = env.path("c.mat");
    flux_file(&a, 60.0, 12, 3.0);
    flux_file(&same_size, 60.0, 12, 6.0);
    flux_file(&larger, 60.0, 14, 6.0);
    assert_eq!(
        std::fs::metadata(&a).unwrap().len(),
        std::fs::metadata(&same_size).unwrap().len()
    );

    // The documents each file makes, loaded alone.
    let reference = |p: &Path| {
        let e = Env::new();
        e.load(p, STM, "g", &["-o", TS]).ok();
        e.run(&["export", "-n", "g"]).ok().stdout
    };
    let docs = [
        (sha256(&a), reference(&a)),
        (sha256(&same_size), reference(&same_size)),
        (sha256(&larger), reference(&larger)),
    ];

    let mut noticed = 0;
    let mut cases = 0;
    for (other, other_name) in [(&same_size, "same size"), (&larger, "larger")] {
        for how in [
            Change::RenameOver,
            Change::CopyInPlace,
            Change::OverwriteNoTruncate,
        ] {
            for delay_ms in [0u64, 40, 150] {
                cases += 1;
                let case = format!("{other_name}, {how:?}, after {delay_ms} ms");
                let run = Env::new();
                let input = run.path("input.mat");
                std::fs::copy(&a, &input).unwrap();
                let args = ["load", "-p", s(&input), "-m", STM, "-n", "g", "-o", TS];
                let child = spawn_until_locked(&run, &args, Duration::from_millis(delay_ms));
                change(&input, other, how);
                let out: Run = child.wait_with_output().unwrap().into();
                if out.code == 0 {
                    let stored = run.run(&["export", "-n", "g"]).ok().stdout;
                    let hash = run.metadata("g")["files"][0]["sha256"]
                        .as_str()
                        .unwrap()
                        .to_string();
                    let whole = docs.iter().find(|(_, d)| *d == stored);
                    let (h, _) =
                        whole.unwrap_or_else(|| panic!("{case}: stored values of neither file"));
                    assert_eq!(&hash, h, "{case}: the logged hash is of another file");
                } else {
                    // Refused: as changed while it was read, or (caught
                    // half written) as the damaged file it was then.
                    refused_in_one_line(&out, &input, &case);
                    if out.stderr.contains("while it was read") {
                        noticed += 1;
                    }
                    nothing_stored(&run, &case);
                    // Put back, it loads (nothing of it was logged).
                    std::fs::copy(&a, &input).unwrap();
                    run.load(&input, STM, "g", &["-o", TS]).ok();
                    assert_eq!(run.run(&["export", "-n", "g"]).ok().stdout, docs[0].1);
                }
            }
        }
    }
    assert!(
        noticed > 0,
        "none of the {cases} changes was noticed during a load"
    );
}

/// The shared fixtures of each format, cut short at several lengths: each
/// is refused in one line that names it; nothing is stored.
#[test]
#[cfg_attr(no_shared, ignore = "needs ../shared/fixtures")]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn truncated_files_of_every_format_are_refused_in_one_line() {
    let env = Env::new();
    // A NetCDF-3 64-bit offset file, written by netCDF4-python from the
    // classic fixture.
    let classic = common::shared_fixture("netcdf", "ct_like_netcdf3_classic.nc");
    let offset64 = env.path("ct_like_64bit_offset.nc");
    let python = common::python_with(&["netCDF4"]);
    common::run_python(
        &python,
        "import sys, netCDF4\n\
         src = netCDF4.Dataset(sys.argv[1])\n\
         dst = netCDF4.Dataset(sys.argv[2], 'w', format='NETCDF3_64BIT_OFFSET')\n\
         for n, d in src.dimensions.items(): dst.createDimension(n, None if d.isunlimited() else len(d))\n\
         dst.setncatts({k: src.getncattr(k) for k in src.ncattrs()})\n\
         for n, v in src.variables.items():\n\
         \x20   fill = v.getncattr('_FillValue') if '_FillValue' in v.ncattrs() else None\n\
         \x20   w = dst.createVariable(n, v.dtype, v.dimensions, fill_value=fill)\n\
         \x20   w.setncatts({k: v.getncattr(k) for k in v.ncattrs() if k != '_FillValue'})\n\
         \x20   v.set_auto_maskandscale(False); w.set_auto_maskandscale(False)\n\
         \x20   w[...] = v[...]\n\
         dst.close()\n",
        &[s(&classic), s(&offset64)],
    );
    let files: Vec<(PathBuf, &str, Vec<&str>)> = vec![
        (common::fixture("casagfed2004.mat"), STM, vec!["-o", TS]),
        (
            common::shared_fixture("writers", "scipy_v5_plain.mat"),
            STM,
            vec!["-o", TS],
        ),
        (
            common::shared_fixture("writers", "scipy_v5_compressed.mat"),
            STM,
            vec!["-o", TS],
        ),
        (
            common::shared_fixture("writers", "hdf5storage_v73.mat"),
            STM,
            vec!["-o", TS],
        ),
        (
            common::shared_fixture("writers", "h5py_chunked_gzip.h5"),
            STM,
            vec!["-o", TS],
        ),
        (classic.clone(), "CFGrid", vec![]),
        (offset64.clone(), "CFGrid", vec![]),
        (
            common::shared_fixture("netcdf", "ct_like_netcdf4.nc"),
            "CFGrid",
            vec![],
        ),
    ];
    let mut cases = 0;
    for (file, model, extra) in &files {
        let bytes = std::fs::read(file).unwrap();
        // The whole file loads (so what refuses a cut is the cut).
        let whole = env.path("whole").join(file.file_name().unwrap());
        std::fs::create_dir_all(whole.parent().unwrap()).unwrap();
        std::fs::write(&whole, &bytes).unwrap();
        let mut args = vec!["--dry-run"];
        args.extend_from_slice(extra);
        env.load(&whole, model, "whole", &args).ok();
        let n = bytes.len();
        for keep in [n - 1, n - 100, n * 9 / 10, n / 2, n / 5, 2000] {
            cases += 1;
            let cut = env.path(&format!(
                "cut{keep}_{}",
                file.file_name().unwrap().to_str().unwrap()
            ));
            std::fs::write(&cut, &bytes[..keep]).unwrap();
            let r = env.load(&cut, model, "t", extra);
            refused_in_one_line(
                &r,
                &cut,
                &format!("{} cut to {keep} of {n} bytes", cut.display()),
            );
            nothing_stored(&env, "after a cut file");
        }
    }
    assert_eq!(cases, 48);
}
