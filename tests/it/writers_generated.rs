//! Files written on the spot by SciPy and h5py (the writers scientists use;
//! Octave is not needed to run the tests, its files are in the fixture
//! corpus): several variables, long names, vector shapes, the MAT v4 kinds
//! `manage` refuses, and HDF5 filters it cannot decode. Python with scipy,
//! h5py and hdf5plugin is part of the test environment (feature
//! `python-tests`, provided by `scripts/with-test-env`).

use crate::common;

use std::path::Path;

use common::Env;

/// Run `script` with the tests' Python in `dir`; what it prints.
fn python(dir: &Path, script: &str) -> String {
    common::python_output(&["numpy", "scipy", "h5py", "hdf5plugin"], dir, script)
}

/// The matrix every file holds (3 cells: x, y, then 2 steps), and the values
/// the old tool stored for it, computed by Python with its own `'%.2f'`.
const MATRIX: &str = r#"
import numpy as np, json
M = np.array([[-100.5, 40.5, 0.125, 2.675],
              [-99.5, 40.5, -1.005, 4.35],
              [-98.5, 41.5, 7.0, 123.456]])
def stored(m):
    return [[float('%.2f' % v) for v in m[:, k]] for k in range(2, m.shape[1])]
"#;

/// `manage load` of `file` as a SpatioTemporalMatrix into `g`, with HDF5
/// plugins from the environment kept out.
fn load(env: &Env, file: &Path, options: &str) -> common::Run {
    let out = env
        .command(&[
            "load",
            "-p",
            file.to_str().unwrap(),
            "-m",
            "SpatioTemporalMatrix",
            "-n",
            "g",
            "-o",
            &format!("timestamp=2004-06-30{options}"),
        ])
        .env_remove("HDF5_PLUGIN_PATH")
        .output()
        .unwrap();
    common::Run::from(out)
}

fn values(env: &Env) -> serde_json::Value {
    let docs = env.run(&["export", "-n", "g"]).ok().json_lines();
    serde_json::Value::Array(docs.iter().map(|d| d["values"].clone()).collect())
}

/// Several variables, chosen by `var_name` or else the first whose name does
/// not start with `__`, and a long name, for each writer.
#[test]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn several_variables_and_long_names_for_every_writer() {
    let env = Env::new();
    let long = "v".repeat(60);
    let script = format!(
        r#"{MATRIX}
import scipy.io, h5py
long = "{long}"
d = {{"__note": M * 0, "first": M, "second": M * 2, long: M * 3}}
scipy.io.savemat("v5.mat", d, do_compression=True)
scipy.io.savemat("v5plain.mat", d)
scipy.io.savemat("v4.mat", d, format="4")
with h5py.File("h5.h5", "w") as f:
    for k, v in d.items():
        f.create_dataset(k, data=v, compression="gzip")
# h5py lists datasets in name order: "__note" is skipped, "first" is first.
print(json.dumps({{"first": stored(M), "second": stored(M * 2), "long": stored(M * 3)}}))
"#
    );
    let out = python(env.dir.path(), &script);
    let want: serde_json::Value = serde_json::from_str(&out).unwrap();
    for file in ["v5.mat", "v5plain.mat", "v4.mat", "h5.h5"] {
        let p = env.path(file);
        for (option, key) in [
            ("", "first"),
            (";var_name=second", "second"),
            (&format!(";var_name={long}")[..], "long"),
        ] {
            env.run(&["remove", "-n", "g"]);
            let r = load(&env, &p, option);
            assert_eq!(r.code, 0, "{file} {option}: {}", r.stderr);
            assert_eq!(values(&env), want[key], "{file} {option}");
        }
        let r = load(&env, &p, ";var_name=third");
        assert_eq!(r.code, 1, "{file}");
        assert!(
            r.stderr.contains("'third'") && r.stderr.contains("second"),
            "{file}: {}",
            r.stderr
        );
    }
}

/// 1×N and N×1 matrices are refused as vectors by every writer's file.
#[test]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn vectors_are_refused_for_every_writer() {
    let env = Env::new();
    let script = r#"
import numpy as np, scipy.io, h5py
for name, m in [("row", np.arange(6.0).reshape(1, 6)), ("col", np.arange(6.0).reshape(6, 1))]:
    scipy.io.savemat(name + "_v5.mat", {"m": m}, do_compression=True)
    scipy.io.savemat(name + "_v4.mat", {"m": m}, format="4")
    with h5py.File(name + ".h5", "w") as f:
        f["m"] = m
"#;
    python(env.dir.path(), script);
    for shape in ["row", "col"] {
        for ext in ["_v5.mat", "_v4.mat", ".h5"] {
            let file = format!("{shape}{ext}");
            let r = load(&env, &env.path(&file), "");
            assert_eq!(r.code, 1, "{file}: {}", r.stdout);
            assert!(
                r.stderr.contains("variable 'm'") && r.stderr.contains("is a vector"),
                "{file}: {}",
                r.stderr
            );
            assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
        }
    }
}

/// The MAT v4 kinds that are not a real numeric matrix, as SciPy writes them.
#[test]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn mat_v4_text_sparse_and_complex_are_refused_by_name() {
    let env = Env::new();
    let script = r#"
import numpy as np, scipy.io, scipy.sparse
scipy.io.savemat("text.mat", {"t": "some text"}, format="4")
scipy.io.savemat("sparse.mat", {"s": scipy.sparse.csc_matrix(np.eye(4))}, format="4")
scipy.io.savemat("complex.mat", {"c": np.ones((3, 4)) * (1 + 2j)}, format="4")
"#;
    python(env.dir.path(), script);
    for (file, var, what) in [
        ("text.mat", "'t'", "char array"),
        ("sparse.mat", "'s'", "sparse"),
        ("complex.mat", "'c'", "complex"),
    ] {
        let r = load(&env, &env.path(file), "");
        assert_eq!(r.code, 1, "{file}");
        assert!(
            r.stderr.contains(var) && r.stderr.contains(what),
            "{file}: {}",
            r.stderr
        );
    }
    assert_eq!(env.run(&["db", "-l", "collections"]).ok().stdout, "");
}

/// A dataset compressed with a filter this build lacks is refused naming
/// the filter and the way to rewrite the file; not "damaged", and no
/// library path in the message.
#[test]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn hdf5_filters_that_are_not_available_are_named() {
    let env = Env::new();
    let script = r#"
import numpy as np, h5py, hdf5plugin
m = np.arange(40.0).reshape(10, 4)
with h5py.File("zstd.h5", "w") as f:
    f.create_dataset("m", data=m, chunks=(5, 4), **hdf5plugin.Zstd())
with h5py.File("bzip2.h5", "w") as f:
    f.create_dataset("m", data=m, chunks=(5, 4), **hdf5plugin.BZip2())
with h5py.File("lzf.h5", "w") as f:
    f.create_dataset("m", data=m, chunks=(5, 4), compression="lzf", fletcher32=True)
with h5py.File("blosc.h5", "w") as f:
    f.create_dataset("m", data=m, chunks=(5, 4), **hdf5plugin.Blosc())
"#;
    python(env.dir.path(), script);
    for (file, id, name) in [
        ("zstd.h5", "32015", "Zstandard"),
        ("bzip2.h5", "307", "bzip2"),
    ] {
        let r = load(&env, &env.path(file), "");
        let err = &r.stderr;
        assert_eq!(r.code, 1, "{file}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!("filter {id} ({name})"))
                && err.contains("h5repack -f GZIP=4")
                && !err.contains("damaged")
                && !err.contains("plugin"),
            "{file}: {err}"
        );
    }
    // LZF and Blosc are built in: both load, with the matrix's values.
    for file in ["lzf.h5", "blosc.h5"] {
        env.run(&["remove", "-n", "g"]);
        let r = load(&env, &env.path(file), "");
        assert_eq!(r.code, 0, "{file}: {}", r.stderr);
        let v = values(&env);
        assert_eq!(v[0][0], serde_json::json!(2.0), "{file}");
        assert_eq!(v[1][9], serde_json::json!(39.0), "{file}");
    }
}
