//! One MAT v5 reader for every variable, whatever its size, storage type,
//! byte order or compression: what `manage` reads is what SciPy's
//! `scipy.io.loadmat` reads, bit for bit. The files are written by SciPy
//! (every numeric dtype, compressed and not), by a small writer below in
//! the layouts SciPy does not write (big-endian `MI`, a double class stored
//! as miUINT8 or miINT16 as MATLAB saves it, small data elements), and are
//! every MAT v5 file of `../shared/fixtures/writers` and `fluxpy`.

use crate::common;

use std::path::{Path, PathBuf};

use common::Env;

/// Run `script` with the tests' Python in `dir`; what it prints.
fn python(dir: &Path, script: &str) -> String {
    common::python_output(&["numpy", "scipy"], dir, script)
}

/// `reference(paths, precision)`: for each file, every numeric variable as
/// `scipy.io.loadmat` reads it: name, class and shape (`whosmat`), its
/// values as float64, column-major, little-endian, in hex, and with a
/// precision, the values rounded to it as the old tool rounded them.
const REFERENCE: &str = r#"
import numpy as np, scipy.io, json, struct, zlib

def reference(paths, precision=None):
    out = {}
    for p in paths:
        data = scipy.io.loadmat(p)
        got = []
        for name, shape, cls in scipy.io.whosmat(p):
            a = np.asarray(data[name])
            if a.dtype.kind not in "iuf":
                continue
            v = {"name": name, "class": cls, "shape": list(a.shape),
                 "values": a.astype("<f8").tobytes(order="F").hex()}
            if precision is not None:
                # As the old tool rounded a stored value.
                v["rounded"] = [float("%.*f" % (precision, x)) for x in a.ravel(order="F")]
            got.append(v)
        out[p] = got
    return out

# A MAT v5 writer for what SciPy does not write: byte order `o` ("<" or
# ">"), values stored as the dtype of `stored` whatever the class `cls`, in
# a small data element when they take at most 4 bytes.
MI = {"i1": 1, "u1": 2, "i2": 3, "u2": 4, "i4": 5, "u4": 6, "f4": 7, "f8": 9, "i8": 12, "u8": 13}
MX = {"f8": 6, "f4": 7, "i1": 8, "u1": 9, "i2": 10, "u2": 11, "i4": 12, "u4": 13, "i8": 14, "u8": 15}

def element(o, name, stored, cls):
    st = stored.dtype.str[1:]
    data = stored.astype(o + st).tobytes(order="F")
    tag = lambda t, n: struct.pack(o + "II", t, n)
    pad = lambda b: b + b"\0" * (-len(b) % 8)
    body = tag(6, 8) + struct.pack(o + "II", MX[cls], 0)
    body += tag(5, 8) + struct.pack(o + "ii", *stored.shape)
    body += pad(tag(1, len(name)) + name.encode())
    if len(data) <= 4:
        body += struct.pack(o + "I", (len(data) << 16) | MI[st]) + data.ljust(4, b"\0")
    else:
        body += pad(tag(MI[st], len(data)) + data)
    return tag(14, len(body)) + body

def write(path, o, variables, compress):
    head = b"MATLAB 5.0 MAT-file, written by manage's tests".ljust(116) + b"\0" * 8
    head += b"\x00\x01IM" if o == "<" else b"\x01\x00MI"
    with open(path, "wb") as f:
        f.write(head)
        for name, stored, cls in variables:
            e = element(o, name, stored, cls)
            if compress:
                z = zlib.compress(e)
                e = struct.pack(o + "II", 15, len(z)) + z
            f.write(e)
"#;

/// The files of `one_reader_for_every_dtype_size_order_and_compression`:
/// each holds `small` (2 × 2), `grid` (3 cells: x, y and 4 steps, values
/// that a load stores exactly) and `big` (70 × 900, values over the whole
/// range of the type).
const WRITE: &str = r#"
rng = np.random.default_rng(32)
files = []
def values(dt, shape):
    if np.dtype(dt).kind in "iu":
        i = np.iinfo(dt)
        v = rng.integers(i.min, i.max, size=shape, dtype=dt, endpoint=True)
        v.flat[:2] = [i.min, i.max]
        return v
    v = (rng.standard_normal(shape) * 10.0 ** rng.integers(-30, 30, size=shape)).astype(dt)
    v.flat[:4] = [np.nan, np.inf, -np.inf, np.finfo(dt).tiny]
    return v
def grid(dt):
    steps = (np.arange(12).reshape(3, 4) * 7 % 100).astype("f8")
    if np.dtype(dt).kind == "f":
        steps = steps * 0.25 - 3.0
    return np.hstack([[[10.5], [11.5], [12.5]] if np.dtype(dt).kind == "f" else [[10], [11], [12]],
                      [[40], [40], [41]], steps]).astype(dt)
for dt in ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
           "float32", "float64"]:
    for c in [False, True]:
        f = "%s_%s.mat" % (dt, "z" if c else "plain")
        scipy.io.savemat(f, {"small": np.array([[1, 2], [3, 4]], dtype=dt),
                             "grid": grid(dt), "big": values(dt, (70, 900))},
                         do_compression=c)
        files.append(f)
for o in "<>":
    for c in [False, True]:
        f = "hand_%s_%s.mat" % ("IM" if o == "<" else "MI", "z" if c else "plain")
        write(f, o, [
            ("d_as_u8", (np.arange(12).reshape(3, 4) * 21).astype("u1"), "f8"),
            ("d_as_i16", (np.arange(35).reshape(5, 7) * 900 - 15000).astype("i2"), "f8"),
            ("i32_as_i16", (np.arange(12).reshape(4, 3) - 6).astype("i2"), "i4"),
            ("u8_small", np.array([[0, 200], [1, 255]], dtype="u1"), "u1"),
            ("i8_small", np.array([[-128, 5], [-5, 127]], dtype="i1"), "i1"),
            ("d_small_u8", np.array([[7, 9], [8, 10]], dtype="u1"), "f8"),
            ("s", values("float32", (3, 5)), "f4"),
            ("d_big", values("float64", (40, 500)), "f8"),
            ("grid", grid("int16"), "f8"),
        ], c)
        files.append(f)
print(json.dumps(reference(files)))
"#;

/// One variable as loadmat reads it.
struct Reference {
    name: String,
    class: String,
    shape: (usize, usize),
    values: Vec<f64>,
    /// The values rounded to the stored precision, where it was given.
    rounded: Vec<f64>,
}

fn references(out: &str) -> Vec<(PathBuf, Vec<Reference>)> {
    let json: serde_json::Value = serde_json::from_str(out).unwrap();
    let mut files: Vec<(PathBuf, Vec<Reference>)> = json
        .as_object()
        .unwrap()
        .iter()
        .map(|(file, vars)| {
            let vars = vars
                .as_array()
                .unwrap()
                .iter()
                .map(|v| {
                    let hex = v["values"].as_str().unwrap();
                    let bytes: Vec<u8> = (0..hex.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                        .collect();
                    Reference {
                        name: v["name"].as_str().unwrap().to_string(),
                        class: v["class"].as_str().unwrap().to_string(),
                        shape: (
                            v["shape"][0].as_u64().unwrap() as usize,
                            v["shape"][1].as_u64().unwrap() as usize,
                        ),
                        values: bytes
                            .chunks_exact(8)
                            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                            .collect(),
                        rounded: v["rounded"]
                            .as_array()
                            .map(|a| a.iter().map(|x| x.as_f64().unwrap()).collect())
                            .unwrap_or_default(),
                    }
                })
                .collect();
            (PathBuf::from(file), vars)
        })
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files
}

/// Every value of `var` as `manage`'s reader reads it (what a load
/// reads: `fluxpy::source::open`, a few columns at a time, out of order
/// once), compared bit for bit with loadmat's; and the class.
fn same_values(path: &Path, r: &Reference) {
    let what = format!("{} '{}'", path.display(), r.name);
    let mut m = fluxpy::source::open(path, Some(&r.name)).unwrap_or_else(|e| panic!("{what}: {e}"));
    let info = m.info().clone();
    assert_eq!(info.class, r.class, "{what}");
    assert_eq!((info.rows, info.cols), r.shape, "{what}");
    let mut got = vec![f64::NAN; info.rows * info.cols];
    // Blocks of 3 columns, the last block first, then in order.
    let mut starts: Vec<usize> = (0..info.cols).step_by(3).collect();
    let last = starts.pop().unwrap();
    starts.insert(0, last);
    for start in starts {
        let n = 3.min(info.cols - start);
        let block = m
            .read_columns(start, n)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        for c in 0..n {
            for row in 0..info.rows {
                got[(start + c) * info.rows + row] = block[[row, c]];
            }
        }
    }
    for (i, (a, b)) in got.iter().zip(&r.values).enumerate() {
        assert_eq!(
            a.to_bits(),
            b.to_bits(),
            "{what}: value {i} (column {}) is {a}, loadmat reads {b}",
            i / info.rows
        );
    }
}

/// `manage info --json` lists every variable loadmat lists, with its shape
/// and class.
fn same_listing(env: &Env, path: &Path, vars: &[Reference]) {
    let listed = env
        .run(&["info", "--json", path.to_str().unwrap()])
        .ok()
        .json();
    let listed = listed["variables"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"));
    for r in vars {
        let v = listed
            .iter()
            .find(|v| v["name"] == r.name.as_str())
            .unwrap_or_else(|| panic!("{}: info does not list '{}'", path.display(), r.name));
        assert_eq!(
            v["type"],
            r.class.as_str(),
            "{} '{}'",
            path.display(),
            r.name
        );
        assert_eq!(
            v["shape"],
            serde_json::json!([r.shape.0, r.shape.1]),
            "{} '{}'",
            path.display(),
            r.name
        );
    }
}

/// SciPy's files of every numeric dtype, compressed and not, and files in
/// the layouts SciPy does not write (both byte orders, a double class
/// stored as an integer type, small data elements), compressed and not:
/// every value of every variable is loadmat's, through the reader and
/// through a load of `manage` and its export.
#[test]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn one_reader_for_every_dtype_size_order_and_compression() {
    let env = Env::new();
    let out = python(env.dir.path(), &format!("{REFERENCE}{WRITE}"));
    let files = references(&out);
    assert_eq!(files.len(), 24, "20 SciPy files and 4 written here");
    let mut variables = 0;
    for (file, vars) in &files {
        let path = env.path(file.to_str().unwrap());
        assert!(
            vars.len() >= 3,
            "{}: {} variables",
            file.display(),
            vars.len()
        );
        for r in vars {
            same_values(&path, r);
            variables += 1;
        }
        same_listing(&env, &path, vars);
        // The load: the grid's steps, as the export gives them, are
        // loadmat's (values a load stores exactly).
        let grid = vars.iter().find(|r| r.name == "grid").expect("a grid");
        env.run(&["remove", "-n", "g"]);
        let r = env.load(
            &path,
            "SpatioTemporalMatrix",
            "g",
            &["-o", "timestamp=2004-06-30;var_name=grid"],
        );
        assert_eq!(r.code, 0, "{}: {}", file.display(), r.stderr);
        let docs = env.export("g");
        assert_eq!(docs.len(), 4, "{}", file.display());
        for (k, doc) in docs.iter().enumerate() {
            let got: Vec<f64> = doc["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let want = &grid.values[(2 + k) * 3..(3 + k) * 3];
            assert_eq!(got, want, "{}: step {k}", file.display());
        }
    }
    eprintln!(
        "{variables} variables in {} files read as loadmat reads them",
        files.len()
    );
}

/// `../shared/fixtures/DIR`'s MAT v5 files (header version 0x0100, either
/// byte order).
fn mat_v5_files(dir: &str) -> Vec<PathBuf> {
    let dir = common::shared().join("fixtures").join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let bytes = std::fs::read(p).unwrap();
            bytes.len() >= 128
                && (&bytes[124..128] == b"\x00\x01IM" || &bytes[124..128] == b"\x01\x00MI")
        })
        .collect();
    files.sort();
    files
}

/// Every MAT v5 file of the fixture folders (MATLAB's, SciPy's and
/// Octave's, compressed and not): every numeric variable reads as loadmat
/// reads it, `info` lists it as `whosmat` does, and a load of a
/// SpatioTemporalMatrix of them stores loadmat's values rounded to the
/// stored precision (as the old tool rounded them, `'%.Nf'`).
#[test]
#[cfg_attr(no_shared, ignore = "needs ../shared/fixtures")]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn every_mat_v5_fixture_reads_as_loadmat_reads_it() {
    let env = Env::new();
    let mut paths = mat_v5_files("writers");
    assert!(!paths.is_empty(), "no MAT v5 file in the writers fixtures");
    let fluxpy = mat_v5_files("fluxpy");
    assert!(!fluxpy.is_empty(), "no MAT v5 file in the fluxpy fixtures");
    paths.extend(fluxpy);
    // The precision a load of the casagfed2004 config stores.
    let config = common::fixture("casagfed2004.json");
    let load = |path: &Path| {
        env.run(&["remove", "-n", "casa"]);
        let r = env.load(
            path,
            "SpatioTemporalMatrix",
            "casa",
            &["-c", config.to_str().unwrap()],
        );
        assert_eq!(r.code, 0, "{}: {}", path.display(), r.stderr);
    };
    load(&common::fixture("casagfed2004.mat"));
    let precision = env.metadata("casa")["precision"]
        .as_u64()
        .expect("a precision in the metadata");
    let list: Vec<String> = paths
        .iter()
        .map(|p| format!("{:?}", p.to_str().unwrap()))
        .collect();
    let script = format!(
        "{REFERENCE}\nprint(json.dumps(reference([{}], {precision})))",
        list.join(", ")
    );
    let files = references(&python(env.dir.path(), &script));
    assert_eq!(files.len(), paths.len());
    let mut loads = 0;
    for (path, vars) in &files {
        assert!(!vars.is_empty(), "{}: no numeric variable", path.display());
        for r in vars {
            same_values(path, r);
        }
        same_listing(&env, path, vars);
        let Some(casa) = vars.iter().find(|r| r.name == "casa_gfed_2004") else {
            continue;
        };
        load(path);
        let docs = env.export("casa");
        let rows = casa.shape.0;
        assert_eq!(docs.len(), casa.shape.1 - 2, "{}", path.display());
        for (k, doc) in docs.iter().enumerate() {
            let got: Vec<f64> = doc["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let want = &casa.rounded[(2 + k) * rows..(3 + k) * rows];
            assert_eq!(got, want, "{}: step {k}", path.display());
        }
        loads += 1;
    }
    assert!(loads >= 1, "no fixture was loaded");
    eprintln!("{} MAT v5 fixture files, {loads} loaded", files.len());
}
