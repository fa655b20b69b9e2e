//! Loads in bounded memory: a MAT v5 file as SciPy writes it (uncompressed)
//! of a 0.5° global grid is read a few columns at a time, so that the
//! loading process stays far below the size of the file, and the values
//! stored are those Python's own `'%.2f'` formatting gives.

use crate::common;

use common::Env;

/// Steps of the file: 259,200 cells × 162 columns of doubles, 336 MB (a
/// reader that holds the variable whole needs three times that).
const STEPS: usize = 160;
/// The peak resident memory the load must stay under.
const BOUND_MIB: u64 = 256;

/// `manage ARGS` on `env`'s store run to its end by a small Python process:
/// its exit code and its peak resident memory in KiB. (Measured from a
/// parent of its own: a process spawned from this test binary starts with
/// the binary's own peak on its books, whatever its own.)
fn run_measured(env: &Env, python: &std::path::Path, args: &[&str]) -> (i32, u64) {
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(
            "import resource, subprocess, sys\n\
             r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n\
             print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)",
        )
        .arg(env!("CARGO_BIN_EXE_manage"))
        .args(args)
        .env("FLUXPY_DB", env.db())
        .env_remove("RUST_BACKTRACE")
        .env_remove("HDF5_USE_FILE_LOCKING")
        .output()
        .expect("run python");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text
        .split_whitespace()
        .map(|w| w.parse::<i64>().expect("a number"));
    let code = words.next().expect("the exit code");
    let peak = words.next().expect("the peak memory");
    (code as i32, peak as u64)
}

#[test]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn a_large_mat_v5_file_written_by_scipy_loads_in_bounded_memory() {
    let env = Env::new();
    let python = common::python_with(&["numpy", "scipy.io"]);
    let path = env.path("global.mat");
    let reference = env.path("reference.json");
    let checked = [0, 77, STEPS - 1];
    common::run_python(
        &python,
        r#"
import json, sys
import numpy as np
import scipy.io
path, reference, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
checked = [int(k) for k in sys.argv[4].split(",")]
lon = np.arange(-179.75, 180, 0.5)
lat = np.arange(-89.75, 90, 0.5)
x, y = np.meshgrid(lon, lat)
x, y = x.ravel(), y.ravel()
cells = x.size
m = np.empty((cells, 2 + steps))
m[:, 0], m[:, 1] = x, y
base = np.cos(np.radians(2 * y)) * np.sin(np.radians(3 * x))
for k in range(steps):
    m[:, 2 + k] = 12.5 * base * np.cos(k / 8.0) + 0.001 * k
scipy.io.savemat(path, {"flux": m}, do_compression=False)
# The old tool's rounding: float('%.2f' % v).
json.dump({str(k): [float("%.2f" % v) for v in m[:, 2 + k].tolist()] for k in checked},
          open(reference, "w"))
"#,
        &[
            path.to_str().unwrap(),
            reference.to_str().unwrap(),
            &STEPS.to_string(),
            &checked.map(|k| k.to_string()).join(","),
        ],
    );
    let file_mib = std::fs::metadata(&path).unwrap().len() >> 20;
    assert!(file_mib > BOUND_MIB, "the file is {file_mib} MiB");

    let (code, peak_kib) = run_measured(
        &env,
        &python,
        &[
            "load",
            "-p",
            path.to_str().unwrap(),
            "-m",
            "SpatioTemporalMatrix",
            "-n",
            "big",
            "-o",
            "timestamp=2004-01-01",
            "-q",
        ],
    );
    assert_eq!(code, 0, "the load failed");
    eprintln!(
        "peak memory of the load: {} MiB for a {file_mib} MiB file",
        peak_kib >> 10
    );
    assert!(
        peak_kib >> 10 < BOUND_MIB,
        "the load took {} MiB for a {file_mib} MiB file",
        peak_kib >> 10
    );

    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&reference).unwrap()).unwrap();
    for k in checked {
        let hours = 3 * k;
        let at = format!("2004-01-{:02}T{:02}:00:00Z", 1 + hours / 24, hours % 24);
        let docs = env
            .run(&["export", "-n", "big", "--at", &at])
            .ok()
            .json_lines();
        assert_eq!(docs.len(), 1, "step {k}");
        let got = docs[0]["values"].as_array().expect("values");
        let want = want[k.to_string()].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "step {k}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert_eq!(g.as_f64(), w.as_f64(), "step {k}, cell {i}");
        }
    }
    assert_eq!(env.export("big").len(), STEPS);
}
