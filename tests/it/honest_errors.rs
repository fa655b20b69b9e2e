//! Errors that tell the truth: "damaged" only of damaged files, names that
//! are not UTF-8 reported instead of skipped, a dry run that predicts the
//! run, and paths with control characters shown escaped.

use crate::common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{python_with, run_python, Env, Run};
use fluxpy::synth;

const STM: &str = "SpatioTemporalMatrix";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn grid() -> ndarray::Array2<f64> {
    synth::flux_matrix(
        &synth::Grid::NORTH_AMERICA.with_window(-100.0, -90.0, 30.0, 36.0),
        3,
        3.0,
    )
}

fn load_os(env: &Env, path: &OsStr, name: &str) -> Run {
    let out = env
        .command(&[])
        .arg("load")
        .arg("-p")
        .arg(path)
        .args([
            "-m",
            STM,
            "-n",
            name,
            "-o",
            "timestamp=2004-06-30;var_name=flux",
        ])
        .output()
        .unwrap();
    Run::from(out)
}

fn load(env: &Env, path: &Path, name: &str) -> Run {
    load_os(env, path.as_os_str(), name)
}

/// A refusal that says what is wrong, and does not call the file damaged.
fn refused_not_damaged(r: &Run, needles: &[&str]) {
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(!r.stderr.contains("damaged"), "{}", r.stderr);
    for n in needles {
        assert!(r.stderr.contains(n), "'{n}' not in: {}", r.stderr);
    }
}

#[test]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn a_file_locked_by_its_writer_is_said_to_be_locked() {
    let python = python_with(&["h5py", "numpy"]);
    let env = Env::new();
    let p = env.path("being_written.h5");
    // A writer that holds the file open (with HDF5's file locking) until
    // its standard input closes.
    let mut writer = Command::new(&python)
        .args([
            "-c",
            "import sys, h5py, numpy as np\n\
             f = h5py.File(sys.argv[1], 'w')\n\
             f['flux'] = np.array([[1.0, 2.0, 3.0], [2.0, 2.0, 4.0]])\n\
             f.flush()\n\
             print('ready', flush=True)\n\
             sys.stdin.read()\n\
             f.close()\n",
            s(&p),
        ])
        .env_remove("HDF5_USE_FILE_LOCKING")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(writer.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "ready");
    for name in ["a", "b"] {
        let r = load(&env, &p, name);
        refused_not_damaged(&r, &["being_written.h5", "locked", "HDF5_USE_FILE_LOCKING"]);
    }
    drop(writer.stdin.take());
    writer.wait().unwrap();
    // Once written, it loads.
    load(&env, &p, "a").ok();
}

#[test]
fn paths_that_are_not_utf8_are_read() {
    common::without_hdf5_file_locks();
    let env = Env::new();
    let m = grid();
    let cols = synth::Columns::of(&m);
    let name = |stem: &[u8], ext: &str| {
        let mut b = env.dir.path().as_os_str().as_bytes().to_vec();
        b.push(b'/');
        b.extend_from_slice(stem);
        b.extend_from_slice(ext.as_bytes());
        PathBuf::from(OsStr::from_bytes(&b))
    };
    // Written under a UTF-8 name (as the writers need), then renamed.
    let tmp = env.path("tmp");
    let h5 = name(b"flux_\xff", ".h5");
    synth::write_hdf5(&tmp, "flux", &cols, &synth::H5Layout::default()).unwrap();
    std::fs::rename(&tmp, &h5).unwrap();
    let v73 = name(b"flux_\xfe\xfd", ".mat");
    synth::write_mat_v73(&tmp, "flux", &cols, &synth::H5Layout::default()).unwrap();
    std::fs::rename(&tmp, &v73).unwrap();
    let v5 = name(b"\xc3(flux", ".mat");
    synth::write_mat_v5(&tmp, "flux", &m, true).unwrap();
    std::fs::rename(&tmp, &v5).unwrap();
    for (i, p) in [&h5, &v73, &v5].into_iter().enumerate() {
        let r = load(&env, p, &format!("n{i}")).ok();
        assert!(r.stdout.contains("loaded"), "{}", r.stdout);
        let export = env.run(&["export", "-n", &format!("n{i}")]).ok().stdout;
        assert_eq!(export.lines().count(), 3);
    }
}

#[test]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn valid_virtual_datasets_and_missing_filters_are_not_called_damaged() {
    common::without_hdf5_file_locks();
    let python = python_with(&["h5py", "numpy"]);
    let env = Env::new();
    let d = env.dir.path();
    run_python(
        &python,
        r#"
import os, sys, h5py, numpy as np
from h5py import h5p, h5z, h5t, h5s, h5d
os.chdir(sys.argv[1])
m = np.array([[1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 5.0, 6.0]])
with h5py.File('vds_here.h5', 'w') as f:
    f['src'] = m
    lay = h5py.VirtualLayout(shape=m.shape, dtype='f8')
    lay[:] = h5py.VirtualSource('.', 'src', shape=m.shape)
    f.create_virtual_dataset('flux', lay)
other = b's\xff.h5'
with h5py.File(other, 'w') as f:
    f['src'] = m
for name, src in [('vds_other.h5', 'plain.h5'), ('vds_other_not_utf8.h5', other)]:
    if name == 'vds_other.h5':
        with h5py.File(src, 'w') as f:
            f['src'] = m
    with h5py.File(name, 'w') as f:
        lay = h5py.VirtualLayout(shape=m.shape, dtype='f8')
        text = src.decode('utf-8', 'surrogateescape') if isinstance(src, bytes) else src
        lay[:] = h5py.VirtualSource(text, 'src', shape=m.shape)
        f.create_virtual_dataset('flux', lay)
for libver, name in [('latest', 'newest_format.h5'), (('earliest', 'v110'), 'v110_format.h5')]:
    with h5py.File(name, 'w', libver=libver) as f:
        f.create_dataset('flux', data=m, chunks=(1, 4), compression='gzip')
for fid, name in [(32123, 'filter_unknown.h5'), (307, 'filter_bzip2.h5')]:
    f = h5py.File(name, 'w')
    dcpl = h5p.create(h5p.DATASET_CREATE)
    dcpl.set_chunk((2, 2))
    dcpl.set_filter(fid, h5z.FLAG_OPTIONAL, (1,))
    ds = h5d.create(f.id, b'flux', h5t.IEEE_F64LE, h5s.create_simple(m.shape), dcpl=dcpl)
    ds.write(h5s.ALL, h5s.ALL, m)
    f.close()
"#,
        &[s(d)],
    );
    let r = load(&env, &d.join("vds_here.h5"), "v").ok();
    assert!(r.stdout.contains("2 documents"), "{}", r.stdout);
    refused_not_damaged(
        &load(&env, &d.join("vds_other.h5"), "w"),
        &["vds_other.h5", "another file ('plain.h5')"],
    );
    refused_not_damaged(
        &load(&env, &d.join("vds_other_not_utf8.h5"), "w"),
        &["vds_other_not_utf8.h5", "another file ('s\\xff.h5')"],
    );
    refused_not_damaged(
        &load(&env, &d.join("filter_unknown.h5"), "w"),
        &["filter_unknown.h5", "filter 32123", "cannot decode"],
    );
    refused_not_damaged(
        &load(&env, &d.join("filter_bzip2.h5"), "w"),
        &["filter_bzip2.h5", "filter 307", "cannot decode"],
    );
    // A file of a newer HDF5 format than the library reads (h5py's HDF5
    // 2.0 writes layout messages 1.10 does not know) says so; written in
    // the older format it loads.
    let r = load(&env, &d.join("newest_format.h5"), "n");
    if r.code != 0 {
        refused_not_damaged(&r, &["newest_format.h5", "newer HDF5", "libver"]);
    }
    load(&env, &d.join("v110_format.h5"), "o").ok();
    // A file that is damaged still says so.
    let bytes = std::fs::read(d.join("vds_here.h5")).unwrap();
    let cut = d.join("cut.h5");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let r = load(&env, &cut, "w");
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("truncated") || r.stderr.contains("damaged"),
        "{}",
        r.stderr
    );
}

fn os_path(dir: &Path, name: &[u8]) -> PathBuf {
    let mut b = dir.as_os_str().as_bytes().to_vec();
    b.push(b'/');
    b.extend_from_slice(name);
    PathBuf::from(OsStr::from_bytes(&b))
}

#[test]
fn a_quoted_glob_matches_names_that_are_not_utf8_too() {
    let env = Env::new();
    let dir = env.path("data");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let m = grid();
    let tmp = env.path("tmp.mat");
    let names: [&[u8]; 4] = [
        b"a_ok.mat",
        b"b_\xff.mat",
        b"c_\xe9t\xe9.mat",
        b"sub/d_\xff.mat",
    ];
    for n in names {
        synth::write_mat_v5(&tmp, "flux", &m, true).unwrap();
        std::fs::rename(&tmp, os_path(&dir, n)).unwrap();
    }
    // Not .mat: not matched, whatever its name.
    std::fs::write(os_path(&dir, b"e_\xff.txt"), b"x").unwrap();
    let run = |pattern: &str, name: &str| {
        env.run(&[
            "load",
            "--json",
            "-p",
            pattern,
            "-m",
            STM,
            "-n",
            name,
            "-o",
            "timestamp=2004-06-30;var_name=flux",
            "--force",
        ])
    };
    let cases: [(String, usize); 4] = [
        (format!("{}/*.mat", s(&dir)), 3),
        (format!("{}/?_*.mat", s(&dir)), 3),
        (format!("{}/*/*.mat", s(&dir)), 1),
        (format!("{}/b_*", s(&dir)), 1),
    ];
    for (i, (pattern, n)) in cases.iter().enumerate() {
        let r = run(pattern, &format!("g{i}")).ok();
        let lines = r.json_lines();
        assert_eq!(lines.len(), *n, "{pattern}: {}", r.stdout);
        assert!(
            lines.iter().all(|l| l["status"] == "loaded"),
            "{}",
            r.stdout
        );
        // Reported by their own bytes, escaped, not as U+FFFD.
        for l in &lines {
            let p = l["path"].as_str().unwrap();
            assert!(!p.contains('\u{fffd}'), "{p}");
        }
        if *n == 3 {
            let paths: Vec<&str> = lines.iter().map(|l| l["path"].as_str().unwrap()).collect();
            assert!(
                paths.iter().any(|p| p.ends_with("b_\\xff.mat")),
                "{paths:?}"
            );
            assert!(
                paths.iter().any(|p| p.ends_with("c_\\xe9t\\xe9.mat")),
                "{paths:?}"
            );
        }
    }
    // The same folder named as a folder loads the same files.
    let r = run(s(&dir), "folder").ok();
    assert_eq!(r.json_lines().len(), 3, "{}", r.stdout);
}

#[test]
fn names_with_control_characters_are_shown_escaped_in_every_message() {
    let env = Env::new();
    let dir = env.path("in");
    std::fs::create_dir(&dir).unwrap();
    let m = grid();
    let good = dir.join("two\nlines.mat");
    synth::write_mat_v5(&good, "flux", &m, true).unwrap();
    std::fs::write(
        dir.join("two\nlines.json"),
        r#"{"timestamp": "2004-06-30", "colour": "red"}"#,
    )
    .unwrap();
    let bad = dir.join("tab\tand\u{1b}[31mred.mat");
    std::fs::write(&bad, b"not a mat file at all, not at all").unwrap();
    let cr = dir.join("back\rspace.mat");
    synth::write_mat_v5(&cr, "flux", &m, true).unwrap();

    let escaped_good = "two\\nlines.mat";
    let escaped_bad = "tab\\tand\\u{1b}[31mred.mat";
    let no_raw_controls = |text: &str| {
        for l in text.lines() {
            assert!(
                !l.contains(['\t', '\r', '\u{1b}']),
                "a raw control character in: {l:?}"
            );
        }
    };
    let load = |extra: &[&str], name: &str| {
        let mut a = vec![
            "load",
            "-p",
            s(&dir),
            "-m",
            STM,
            "-n",
            name,
            "-o",
            "timestamp=2004-06-30",
        ];
        a.extend(extra);
        env.run(&a)
    };
    // Text output: one line per file, a summary naming the failed one,
    // a warning naming the config file; every name escaped.
    let r = load(&[], "a");
    assert_eq!(r.code, 1);
    no_raw_controls(&r.stdout);
    no_raw_controls(&r.stderr);
    assert_eq!(r.stdout.lines().count(), 3, "{}", r.stdout);
    assert!(r.stdout.contains(escaped_good), "{}", r.stdout);
    assert!(r.stdout.contains("back\\rspace.mat"), "{}", r.stdout);
    assert!(
        r.stdout.lines().last().unwrap().contains(escaped_bad),
        "{}",
        r.stdout
    );
    let warning = r.stderr.lines().find(|l| l.starts_with("warning")).unwrap();
    assert!(
        warning.contains(escaped_good) && warning.contains("colour"),
        "{warning}"
    );
    let error = r.stderr.lines().find(|l| l.contains("error")).unwrap();
    assert!(error.contains(escaped_bad), "{error}");
    assert_eq!(r.stderr.lines().count(), 2, "{}", r.stderr);

    // --json: the paths as the messages show them; a dry run the same.
    for (extra, name) in [(&["--json", "--force"][..], "b"), (&["--dry-run"][..], "c")] {
        let r = load(extra, name);
        assert_eq!(r.code, 1);
        no_raw_controls(&r.stdout);
        no_raw_controls(&r.stderr);
        if extra.contains(&"--json") {
            let paths: Vec<String> = r
                .json_lines()
                .iter()
                .map(|l| l["path"].as_str().unwrap().to_string())
                .collect();
            assert!(paths.iter().any(|p| p.ends_with(escaped_good)), "{paths:?}");
            assert!(paths.iter().any(|p| p.ends_with(escaped_bad)), "{paths:?}");
        } else {
            assert!(r.stdout.contains(escaped_good), "{}", r.stdout);
        }
    }
    // A missing file named on the command line, and a pattern.
    let missing = dir.join("gone\n.mat");
    let r = env.run(&["load", "-p", s(&missing), "-m", STM, "-n", "d"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("gone\\n.mat"), "{}", r.stderr);
    let pattern = format!("{}/nothing\u{1b}*.mat", s(&dir));
    let r = env.run(&["load", "-p", &pattern, "-m", STM, "-n", "d"]);
    assert_eq!(r.code, 1);
    no_raw_controls(&r.stderr);
    assert!(r.stderr.contains("nothing\\u{1b}*.mat"), "{}", r.stderr);
}

/// Each file's status in a `--json` run, by file name; a dry run's
/// `would_load` read as `loaded`.
fn statuses(r: &Run) -> Vec<(String, String)> {
    r.json_lines()
        .iter()
        .map(|l| {
            let p = l["path"].as_str().unwrap();
            let name = p.rsplit('/').next().unwrap().to_string();
            let st = l["status"]
                .as_str()
                .unwrap()
                .replace("would_load", "loaded");
            (name, st)
        })
        .collect()
}

#[test]
fn a_dry_run_predicts_the_run_file_by_file() {
    let env = Env::new();
    let small = synth::Grid::NORTH_AMERICA.with_window(-100.0, -90.0, 30.0, 36.0);
    let other = synth::Grid::NORTH_AMERICA.with_window(-110.0, -100.0, 30.0, 36.0);
    let m = synth::flux_matrix(&small, 3, 3.0);
    let n = synth::flux_matrix(&other, 3, 3.0);
    let config = |dir: &Path, file: &str, day: u32, extra: &str| {
        std::fs::write(
            dir.join(file.replace(".mat", ".json")),
            format!(r#"{{"timestamp": "2004-06-{day:02}"{extra}}}"#),
        )
        .unwrap();
    };
    let folder = |name: &str| {
        let d = env.path(name);
        std::fs::create_dir(&d).unwrap();
        d
    };
    // 1: the second file is on another grid.
    let d1 = folder("grids");
    for (f, data, day) in [("a.mat", &m, 1), ("b.mat", &n, 2), ("c.mat", &m, 3)] {
        synth::write_mat_v5(&d1.join(f), "flux", data, true).unwrap();
        config(&d1, f, day, "");
    }
    // 2: the third file's config gives another precision.
    let d2 = folder("precisions");
    for (f, day, extra) in [
        ("a.mat", 1, ""),
        ("b.mat", 2, ""),
        ("c.mat", 3, r#", "precision": 4"#),
    ] {
        synth::write_mat_v5(&d2.join(f), "flux", &m, true).unwrap();
        config(&d2, f, day, extra);
    }
    // 3: the same file (content and config) twice: the second is skipped.
    let d3 = folder("copies");
    let d3b = folder("copies_too");
    for d in [&d3, &d3b] {
        synth::write_mat_v5(&d.join("a.mat"), "flux", &m, true).unwrap();
        config(d, "a.mat", 1, "");
    }
    synth::write_mat_v5(&d3.join("c.mat"), "flux", &n, true).unwrap();
    config(&d3, "c.mat", 2, "");
    // 4: the first file on another grid than the stored dataset's.
    env.run(&[
        "load",
        "-p",
        s(&d1.join("c.mat")),
        "-m",
        STM,
        "-n",
        "stored",
        "-o",
        "timestamp=2003-01-01",
    ])
    .ok();
    let d4 = folder("onto_stored");
    for (f, data, day) in [("a.mat", &n, 1), ("b.mat", &n, 2), ("c.mat", &m, 3)] {
        synth::write_mat_v5(&d4.join(f), "flux", data, true).unwrap();
        config(&d4, f, day, "");
    }

    let abc = ["a.mat", "b.mat", "c.mat"];
    // The folders, NAME, the file names in load order and their statuses.
    type Case<'a> = (Vec<&'a Path>, &'a str, [&'a str; 3], [&'a str; 3]);
    let cases: [Case; 4] = [
        (vec![&d1], "n1", abc, ["loaded", "failed", "loaded"]),
        (vec![&d2], "n2", abc, ["loaded", "loaded", "failed"]),
        (
            vec![&d3, &d3b],
            "n3",
            ["a.mat", "a.mat", "c.mat"],
            ["loaded", "skipped", "failed"],
        ),
        (vec![&d4], "stored", abc, ["failed", "failed", "loaded"]),
    ];
    for (dirs, name, files, expected) in cases {
        let dir = dirs[0];
        let run = |dry: bool| {
            let mut a = vec!["load", "--json", "-m", STM, "-n", name, "-p"];
            a.extend(dirs.iter().map(|d| s(d)));
            if dry {
                a.push("--dry-run");
            }
            env.run(&a)
        };
        let dry = run(true);
        let real = run(false);
        let want: Vec<(String, String)> = files
            .iter()
            .zip(expected)
            .map(|(f, st)| (f.to_string(), st.to_string()))
            .collect();
        assert_eq!(statuses(&real), want, "{}: {}", dir.display(), real.stderr);
        assert_eq!(
            statuses(&dry),
            want,
            "dry run of {}: {}",
            dir.display(),
            dry.stderr
        );
        assert_eq!(dry.code, real.code);
        // The dry run's errors are the run's, file by file.
        assert_eq!(dry.stderr, real.stderr, "{}", dir.display());
    }
}
