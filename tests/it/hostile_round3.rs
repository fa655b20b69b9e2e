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

// ---------------------------------------------------------------------
// 2. NetCDF's own rules for values
// ---------------------------------------------------------------------

const CF_REFERENCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/cf_reference.py");

/// Files netCDF4-python writes: unsigned bytes and shorts, and variables
/// of every integer and float type with parts never written (no
/// `_FillValue`), in NetCDF-3 classic and NetCDF-4.
const WRITE_RULES: &str = r#"
import sys, numpy as np, netCDF4
d = sys.argv[1]
def grid(path, fmt):
    f = netCDF4.Dataset(path, 'w', format=fmt)
    f.createDimension('time', 3); f.createDimension('lat', 4); f.createDimension('lon', 5)
    t = f.createVariable('time', 'f8', ('time',)); t.units = 'days since 2004-01-01'; t[:] = [0, 1, 2]
    y = f.createVariable('lat', 'f8', ('lat',)); y.units = 'degrees_north'; y[:] = [-15, -5, 5, 15]
    x = f.createVariable('lon', 'f8', ('lon',)); x.units = 'degrees_east'; x[:] = [0, 10, 20, 30, 40]
    return f
rng = np.random.default_rng(3)
f = grid(d + '/unsigned3.nc', 'NETCDF3_CLASSIC')
b = f.createVariable('ubyte', 'i1', ('time', 'lat', 'lon')); b._Unsigned = 'true'; b.scale_factor = 0.5
b.set_auto_maskandscale(False)
raw = rng.integers(0, 256, size=(3, 4, 5)); raw[raw == 129] = 200; raw[0, 0, :] = [0, 127, 128, 200, 255]
b[:] = raw.astype(np.uint8).view(np.int8)
s = f.createVariable('ushort', 'i2', ('time', 'lat', 'lon'), fill_value=np.int16(-1)); s._Unsigned = 'true'
s.set_auto_maskandscale(False)
raw = rng.integers(0, 65535, size=(3, 4, 5)); raw[0, 0, :] = [0, 32767, 32768, 65534, 65535]
s[:] = raw.astype(np.uint16).view(np.int16)
f.close()
for fmt, name, types in [('NETCDF3_CLASSIC', 'unwritten3.nc', ['i1', 'i2', 'i4', 'f4', 'f8']),
                         ('NETCDF4', 'unwritten4.nc', ['i1', 'u1', 'i2', 'u2', 'i4', 'u4', 'i8', 'u8', 'f4', 'f8'])]:
    f = grid(d + '/' + name, fmt)
    for ty in types:
        v = f.createVariable('v_' + ty, ty, ('time', 'lat', 'lon'))
        v[0, :, :] = np.arange(20).reshape(4, 5) + 1
        v[1, :2, :] = 7
    f.close()
"#;

/// Load `var` of `file` as CFGrid and compare every value with what
/// netCDF4-python's masking and unpacking read: the same nulls, the same
/// numbers.
fn matches_netcdf4_python(env: &Env, file: &Path, var: &str) {
    let name = format!(
        "n{}",
        env.run(&["db", "-l", "collections"]).stdout.lines().count()
    );
    let r = env.load(file, "CFGrid", &name, &["-o", &format!("var_name={var}")]);
    let r = r.ok();
    let _ = r;
    let precision = env.metadata(&name)["precision"]
        .as_i64()
        .unwrap()
        .to_string();
    let out = std::process::Command::new(common::python_with(&["netCDF4", "numpy"]))
        .args([CF_REFERENCE, "expect", s(file), var, &precision])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let docs = env.export(&name);
    let mut nulls = 0;
    for (k, doc) in docs.iter().enumerate() {
        let got = doc["values"].as_array().unwrap();
        let want = reference["values"][k].as_array().unwrap();
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            match (g.as_f64(), w.as_f64()) {
                (None, None) => nulls += 1,
                (Some(g), Some(w)) => assert!(
                    (g - w).abs() <= 1e-9 * w.abs().max(1.0),
                    "{var} of {}: step {k} cell {i}: {g}, netCDF4-python {w}",
                    file.display()
                ),
                _ => panic!(
                    "{var} of {}: step {k} cell {i}: {g}, netCDF4-python {w}",
                    file.display()
                ),
            }
        }
    }
    // The unwritten variables have their never-written parts missing.
    if var.starts_with("v_") {
        assert_eq!(nulls, 40 - 10, "{var} of {}", file.display());
    }
}

#[test]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn unsigned_values_and_default_fill_values_are_read_as_netcdf4_python_reads_them() {
    let env = Env::new();
    let python = common::python_with(&["netCDF4", "numpy"]);
    common::run_python(&python, WRITE_RULES, &[s(env.dir.path())]);
    let unsigned = env.path("unsigned3.nc");
    matches_netcdf4_python(&env, &unsigned, "ubyte");
    matches_netcdf4_python(&env, &unsigned, "ushort");
    // The first row of values of each, told here as well: 255 as a byte
    // is 255 (× 0.5), not -1; 65535 is the short's _FillValue (-1).
    let docs = env.export("n0");
    let first: Vec<Option<f64>> = docs[0]["values"].as_array().unwrap()[..5]
        .iter()
        .map(|v| v.as_f64())
        .collect();
    // Cells are south to north, west to east: the first five are lat -15.
    assert_eq!(
        first,
        vec![Some(0.0), Some(63.5), Some(64.0), Some(100.0), Some(127.5)]
    );
    for ty in ["i1", "i2", "i4", "f4", "f8"] {
        matches_netcdf4_python(&env, &env.path("unwritten3.nc"), &format!("v_{ty}"));
    }
    for ty in ["i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f4", "f8"] {
        matches_netcdf4_python(&env, &env.path("unwritten4.nc"), &format!("v_{ty}"));
    }
}

/// Run `manage ARGS` from a small Python process, which reports the
/// child's peak resident size (`getrusage(RUSAGE_CHILDREN).ru_maxrss`,
/// as `/usr/bin/time -v` does): a child forked from this large test
/// process would count this process's pages as its own.
fn run_measured(env: &Env, python: &Path, args: &[&str]) -> (Run, u64, Duration) {
    let script = "import resource, subprocess, sys\n\
                  r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n\
                  sys.stderr.buffer.write(r.stderr)\n\
                  print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n";
    let started = Instant::now();
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_manage"))
        .args(args)
        .env("FLUXPY_DB", env.db())
        .output()
        .unwrap();
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut it = text.split_whitespace().map(|x| x.parse::<i64>().unwrap());
    let (code, kib) = (it.next().unwrap(), it.next().unwrap());
    let run = Run {
        code: code as i32,
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    (run, kib as u64 * 1024, took)
}

#[test]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn one_enormous_compressed_chunk_is_refused_before_it_is_inflated() {
    let env = Env::new();
    let python = common::python_with(&["netCDF4", "numpy"]);
    let file = env.path("one_chunk.nc");
    // 200 × 180 × 2160 float32 = 311 MB of zeros in one zlib chunk.
    common::run_python(
        &python,
        "import sys, numpy as np, netCDF4\n\
         f = netCDF4.Dataset(sys.argv[1], 'w')\n\
         f.createDimension('time', 200); f.createDimension('lat', 180); f.createDimension('lon', 2160)\n\
         t = f.createVariable('time', 'f8', ('time',)); t.units = 'hours since 2004-01-01'; t[:] = np.arange(200)\n\
         y = f.createVariable('lat', 'f8', ('lat',)); y.units = 'degrees_north'; y[:] = np.arange(180) - 89.5\n\
         x = f.createVariable('lon', 'f8', ('lon',)); x.units = 'degrees_east'; x[:] = np.arange(2160) / 6 - 179.9\n\
         v = f.createVariable('flux', 'f4', ('time', 'lat', 'lon'), zlib=True, complevel=1, chunksizes=(200, 180, 2160))\n\
         v.set_var_chunk_cache(size=400 * 2**20)\n\
         for i in range(200): v[i] = np.zeros((180, 2160), 'f4')\n\
         f.close()\n",
        &[s(&file)],
    );
    let size = std::fs::metadata(&file).unwrap().len();
    assert!(size < 2 << 20, "the file is {size} bytes");
    for extra in [&[][..], &["--dry-run"][..]] {
        let mut args = vec!["load", "-p", s(&file), "-m", "CFGrid", "-n", "big"];
        args.extend_from_slice(extra);
        let (r, rss, took) = run_measured(&env, &python, &args);
        refused_in_one_line(&r, &file, "one 311 MB chunk");
        assert!(r.stderr.contains("chunks of 296 MiB"), "{}", r.stderr);
        assert!(rss < 100 << 20, "peak RSS {} MiB", rss >> 20);
        assert!(took < Duration::from_secs(20), "took {took:?}");
        eprintln!(
            "one enormous chunk {extra:?}: refused, peak RSS {} MiB, {took:?}",
            rss >> 20
        );
    }
    nothing_stored(&env, "one enormous chunk");
}

/// Every place of an HDF5 chunk index (B-tree, extensible or fixed
/// array) and of a data chunk, overwritten: the run ends in one line (or
/// loads, where the bytes were not used), never the library's error stack.
#[test]
#[cfg_attr(no_shared, ignore = "needs ../shared/fixtures")]
fn a_damaged_chunk_index_prints_one_line_and_no_hdf5_stack() {
    let env = Env::new();
    let files = [
        (
            common::shared_fixture("writers", "h5py_chunked_gzip.h5"),
            STM,
            vec!["-o", "timestamp=2004-01-01;var_name=flux/casa"],
        ),
        (
            common::shared_fixture("netcdf", "ct_like_netcdf4.nc"),
            "CFGrid",
            vec![],
        ),
        (
            common::shared_fixture("netcdf", "ct_like_packed_int16.nc"),
            "CFGrid",
            vec![],
        ),
    ];
    let signatures: [&[u8]; 8] = [
        b"TREE", b"BTHD", b"BTLF", b"BTIN", b"EAHD", b"EAIB", b"EADB", b"FAHD",
    ];
    let mut refused = 0;
    let mut cases = 0;
    for (file, model, extra) in &files {
        let bytes = std::fs::read(file).unwrap();
        let mut places: Vec<usize> = Vec::new();
        for sig in signatures {
            places.extend(
                bytes
                    .windows(4)
                    .enumerate()
                    .filter(|(_, w)| w == &sig)
                    .map(|(i, _)| i + 6)
                    .take(3),
            );
        }
        // And places in the data, past the metadata.
        places.extend([bytes.len() / 3, bytes.len() / 2, bytes.len() * 4 / 5]);
        for at in places {
            cases += 1;
            let mut damaged = bytes.clone();
            for b in &mut damaged[at..(at + 24).min(bytes.len())] {
                *b ^= 0xa5;
            }
            let p = env.path(&format!(
                "d{at}_{}",
                file.file_name().unwrap().to_str().unwrap()
            ));
            std::fs::write(&p, &damaged).unwrap();
            let mut args = vec!["--dry-run"];
            args.extend_from_slice(extra);
            let r = env.load(&p, model, "d", &args);
            assert!(
                !r.stderr.contains("HDF5-DIAG"),
                "{}: {}",
                p.display(),
                r.stderr
            );
            if r.code != 0 {
                refused += 1;
                refused_in_one_line(&r, &p, &format!("damaged at {at}"));
            }
        }
    }
    assert!(refused >= cases / 2, "only {refused} of {cases} refused");
}

/// `var_name` written as an absolute path: the variable at the root.
#[test]
#[cfg_attr(no_shared, ignore = "needs ../shared/fixtures")]
fn an_absolute_var_name_names_the_same_variable() {
    let env = Env::new();
    let cases = [
        (
            common::shared_fixture("writers", "h5py_chunked_gzip.h5"),
            STM,
            "flux/casa",
            TS,
        ),
        (
            common::shared_fixture("writers", "hdf5storage_v73.mat"),
            STM,
            "casa_gfed_2004",
            TS,
        ),
        (
            common::shared_fixture("netcdf", "ct_like_netcdf4.nc"),
            "CFGrid",
            "bio_flux_opt",
            "",
        ),
        (
            common::shared_fixture("netcdf", "ct_like_netcdf3_classic.nc"),
            "CFGrid",
            "bio_flux_opt",
            "",
        ),
    ];
    for (i, (file, model, var, ts)) in cases.iter().enumerate() {
        let plain = format!("{ts};var_name={var}");
        let slash = format!("{ts};var_name=/{var}");
        env.load(file, model, &format!("p{i}"), &["-o", &plain])
            .ok();
        env.load(file, model, &format!("s{i}"), &["-o", &slash])
            .ok();
        assert_eq!(env.export(&format!("p{i}")), env.export(&format!("s{i}")));
    }
    // A variable in a group of a NetCDF file is refused as such, not as damage.
    let file = common::shared_fixture("netcdf", "ct_like_netcdf4.nc");
    let r = env.load(&file, "CFGrid", "g", &["-o", "var_name=/grp/bio_flux_opt"]);
    refused_in_one_line(&r, &file, "a group path");
    assert!(
        r.stderr.contains("group") && !r.stderr.contains("damaged"),
        "{}",
        r.stderr
    );
}

// ---------------------------------------------------------------------
// 4. The store, the filesystem and the environment
// ---------------------------------------------------------------------

/// The sample file and its config, copied into `dir`.
fn sample_in(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let mat = dir.join("flux_na_2004.mat");
    std::fs::copy(common::sample(), &mat).unwrap();
    std::fs::copy(
        common::sample().with_extension("json"),
        mat.with_extension("json"),
    )
    .unwrap();
    mat
}

/// Without --db or FLUXPY_DB, a HOME that is empty or relative is refused,
/// naming it, and nothing is made under the working directory; a relative
/// XDG_DATA_HOME is ignored, as the XDG spec says, for HOME's.
#[test]
fn a_default_store_path_that_is_not_absolute_is_refused() {
    let env = Env::new();
    let mat = sample_in(&env.path("data"));
    let cwd = env.path("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    let run = |home: Option<&str>, xdg: Option<&str>| -> Run {
        let mut c = env.command(&["load", "-p", s(&mat), "-m", STM, "-n", "h"]);
        c.env_remove("FLUXPY_DB")
            .env_remove("XDG_DATA_HOME")
            .current_dir(&cwd);
        match home {
            Some(h) => c.env("HOME", h),
            None => c.env_remove("HOME"),
        };
        if let Some(x) = xdg {
            c.env("XDG_DATA_HOME", x);
        }
        c.output().unwrap().into()
    };
    for (home, xdg) in [
        (Some(""), None),
        (Some("relative/home"), None),
        (Some(""), Some("relative/xdg")),
        (Some("."), Some("")),
        (None, Some("relative/xdg")),
    ] {
        let r = run(home, xdg);
        let case = format!("HOME={home:?} XDG_DATA_HOME={xdg:?}");
        assert_ne!(r.code, 0, "{case}");
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{case}: {}", r.stderr);
        assert!(lines[0].contains("HOME"), "{case}: {}", r.stderr);
        assert_eq!(
            std::fs::read_dir(&cwd).unwrap().count(),
            0,
            "{case}: something was made under the working directory"
        );
    }
    // A relative XDG_DATA_HOME is ignored: the store goes under HOME.
    let home = env.path("home");
    std::fs::create_dir_all(&home).unwrap();
    let r = run(Some(s(&home)), Some("relative/xdg"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(home.join(".local/share/fluxpy/fluxvis.db").is_file());
    assert_eq!(std::fs::read_dir(&cwd).unwrap().count(), 0);
    // An absolute one is used.
    let xdg = env.path("xdg");
    let r = run(Some(""), Some(s(&xdg)));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(xdg.join("fluxpy/fluxvis.db").is_file());
}

/// Data files of a `-p` folder that cannot be read are failures of their
/// own, reported by name, and the run exits 1; the others load.
#[test]
fn unreadable_data_files_in_a_folder_are_reported_as_failed() {
    use std::os::unix::fs::symlink;
    let env = Env::new();
    let dir = env.path("in");
    sample_in(&dir);
    symlink(env.path("unmounted/archive.mat"), dir.join("gone.mat")).unwrap();
    symlink(dir.join("loop.nc"), dir.join("loop.nc")).unwrap();
    symlink("/nonexistent/flux.h5", dir.join("elsewhere.h5")).unwrap();
    let r = env.run(&["load", "-p", s(&dir), "-m", STM, "-n", "f"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    for name in ["gone.mat", "loop.nc", "elsewhere.h5"] {
        assert!(
            r.stderr.lines().any(|l| l.contains(name)),
            "{name} not reported: {}",
            r.stderr
        );
    }
    // The readable file loaded.
    assert_eq!(env.export("f").len(), synth::Sample::STEPS);
}

/// A config that is a FIFO, a device, a directory or larger than any
/// config is refused in one line before it is read; `--db` naming a
/// directory says so; `-o` values may hold apostrophes.
#[test]
fn the_command_lines_other_inputs_are_refused_or_read_as_meant() {
    let env = Env::new();
    let mat = sample_in(&env.path("data"));
    let fifo = env.path("config.fifo");
    let c = std::ffi::CString::new(s(&fifo)).unwrap();
    // SAFETY: mkfifo on a path this test owns.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let huge = env.path("huge.json");
    {
        let mut f = std::fs::File::create(&huge).unwrap();
        f.write_all(b"{\"title\": \"").unwrap();
        f.write_all(&vec![b'x'; 2 << 20]).unwrap();
        f.write_all(b"\"}").unwrap();
    }
    let folder = env.path("a_folder");
    std::fs::create_dir_all(&folder).unwrap();
    for (config, what) in [
        (fifo.as_path(), "FIFO"),
        (Path::new("/dev/zero"), "device"),
        (Path::new("/dev/null"), "device"),
        (huge.as_path(), "larger than 1024 KiB"),
        (folder.as_path(), "directory"),
    ] {
        let started = Instant::now();
        let r = env.run(&["load", "-p", s(&mat), "-m", STM, "-n", "c", "-c", s(config)]);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what}: took long"
        );
        refused_in_one_line(&r, config, what);
        assert!(r.stderr.contains(what), "{what}: {}", r.stderr);
    }
    nothing_stored(&env, "refused configs");

    // --db naming a directory.
    for args in [
        vec!["load", "-p", s(&mat), "-m", STM, "-n", "d"],
        vec!["db", "-l", "collections"],
        vec!["export", "-n", "d"],
    ] {
        let mut a = vec!["--db", s(&folder)];
        a.extend(args);
        let r = env.run(&a);
        assert_ne!(r.code, 0);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(r.stderr.contains("is a directory"), "{}", r.stderr);
    }

    // -o values with apostrophes, and the pairs after them.
    for (o, title) in [
        (
            "title=Bob's data;timestamp=2004-01-01T00:00:00",
            "Bob's data",
        ),
        (
            "title='Bob's data';timestamp=2004-01-01T00:00:00",
            "Bob's data",
        ),
        (
            "title=it's;timestamp=2004-01-01T00:00:00;units={'values':'g'}",
            "it's",
        ),
    ] {
        let e = Env::new();
        e.load(&mat, STM, "o", &["-o", o]).ok();
        let md = e.metadata("o");
        assert_eq!(md["title"], title, "{o}");
        assert_eq!(md["dates"][0], "2004-01-01T00:00:00", "{o}");
    }
}
