//! Looking at a file before loading it (`manage info`), taking out what is
//! needed (`export --from/--to/--bbox/--output/--format netcdf`), and what
//! `db` says of a dataset for scripts.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common;

/// The data files of `../shared/fixtures/DIR` that `load -p DIR` would
/// take (the loader's extensions), in name order: files added later are
/// covered too.
fn data_files(dir: &str) -> Vec<PathBuf> {
    let folder = common::shared().join("fixtures").join(dir);
    assert!(folder.is_dir(), "{} is not there", folder.display());
    let mut out: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("mat" | "h5" | "hdf5" | "nc")
                )
        })
        .collect();
    out.sort();
    out
}

fn s(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// `info FILE --config` gives a config that `load -c` takes as it is, on
/// every file of the three fixture folders; a load writes the documents
/// `info` said it would; a file `info` says no model can load is refused
/// by `load` under every model.
#[test]
#[cfg_attr(no_shared, ignore = "needs ../shared/fixtures")]
fn info_config_loads_every_fixture_as_is() {
    let env = common::Env::new();
    let mut loaded = 0;
    let mut refused = 0;
    for dir in ["fluxpy", "writers", "netcdf"] {
        for (i, file) in data_files(dir).iter().enumerate() {
            let info = env.run(&["info", s(file), "--json"]);
            let config = env.run(&["info", s(file), "--config"]);
            let name = format!("{dir}_{i}");
            if config.code == 0 {
                let described = info.ok().json();
                let model = described["model"].as_str().expect("a model").to_string();
                let cfg = env.path(&format!("{name}.json"));
                std::fs::write(&cfg, &config.stdout).unwrap();
                let r = env.load(file, &model, &name, &["-c", s(&cfg), "--json"]);
                assert_eq!(
                    r.code,
                    0,
                    "{}: load -c of info's config failed: {}\nconfig: {}",
                    file.display(),
                    r.stderr,
                    config.stdout
                );
                let docs = env.export(&name);
                assert_eq!(
                    docs.len() as u64,
                    described["load"]["documents"].as_u64().unwrap(),
                    "{}: documents info announced",
                    file.display()
                );
                loaded += 1;
            } else {
                assert!(
                    config.stderr.contains("no model can load it"),
                    "{}: {}",
                    file.display(),
                    config.stderr
                );
                for model in [
                    "SpatioTemporalMatrix",
                    "KrigedXCO2Matrix",
                    "XCO2Matrix",
                    "CFGrid",
                ] {
                    let r = env.load(file, model, &name, &["-o", "timestamp=2000-01-01"]);
                    assert_eq!(r.code, 1, "{}: load -m {model} took it", file.display());
                }
                refused += 1;
            }
        }
    }
    // The suite loads every one of these files: a refusal is a failure of info.
    assert_eq!(refused, 0);
    assert!(loaded >= 14, "only {loaded} files were found");
}

/// `info --json` of a CarbonTracker-like NetCDF file names every variable
/// with the shape, type, units and fill value netCDF4-python reads, and
/// the time axis netCDF4's num2date decodes; CFGrid is the model, and the
/// cells and bbox are those of the file's grid.
#[test]
#[cfg_attr(no_shared, ignore = "needs ../shared/fixtures")]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn info_describes_a_netcdf_file_as_netcdf4_reads_it() {
    let env = common::Env::new();
    let python = common::python_with(&["netCDF4", "numpy"]);
    for name in [
        "ct_like_netcdf4.nc",
        "ct_like_netcdf3_classic.nc",
        "ct_like_packed_int16.nc",
    ] {
        let file = common::shared_fixture("netcdf", name);
        let info = env.run(&["info", s(&file), "--json"]).ok().json();
        let script = r#"
import json, sys, netCDF4, numpy as np
ds = netCDF4.Dataset(sys.argv[1])
ds.set_auto_mask(False)
out = {"vars": {}, "title": getattr(ds, "title", None)}
for n, v in ds.variables.items():
    d = {"shape": list(v.shape), "dtype": str(v.dtype), "dims": list(v.dimensions)}
    for a in ("units", "_FillValue"):
        if a in v.ncattrs():
            x = v.getncattr(a)
            d[a] = x if isinstance(x, str) else float(np.asarray(x).ravel()[0])
    out["vars"][n] = d
t = ds.variables["time"]
dates = netCDF4.num2date(t[:], t.units, getattr(t, "calendar", "standard"))
out["first"] = dates[0].strftime("%Y-%m-%dT%H:%M:%SZ")
out["last"] = dates[-1].strftime("%Y-%m-%dT%H:%M:%SZ")
out["count"] = len(dates)
out["step"] = float((dates[1] - dates[0]).total_seconds())
lat = ds.variables["latitude"][:]; lon = ds.variables["longitude"][:]
lon = np.where(lon > 180, lon - 360, lon)
out["cells"] = int(lat.size * lon.size)
out["bbox"] = [float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())]
print(json.dumps(out))
"#;
        let out = Command::new(&python)
            .args(["-c", script, s(&file)])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let want: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let numpy_type = |t: &str| {
            match t {
                "double" => "float64",
                "single" => "float32",
                other => other,
            }
            .to_string()
        };
        let vars = info["variables"].as_array().unwrap();
        assert_eq!(
            vars.len(),
            want["vars"].as_object().unwrap().len(),
            "{name}"
        );
        for v in vars {
            let w = &want["vars"][v["name"].as_str().unwrap()];
            assert_eq!(v["shape"], w["shape"], "{name} {}", v["name"]);
            assert_eq!(v["dimensions"], w["dims"], "{name} {}", v["name"]);
            assert_eq!(
                numpy_type(v["type"].as_str().unwrap()),
                w["dtype"],
                "{name} {}",
                v["name"]
            );
            assert_eq!(v["units"], w["units"], "{name} {}", v["name"]);
            if let Some(f) = w["_FillValue"].as_f64() {
                assert_eq!(v["_FillValue"].as_f64(), Some(f), "{name} {}", v["name"]);
            }
        }
        assert_eq!(
            info["format"].as_str().unwrap().starts_with("NetCDF-4"),
            name != "ct_like_netcdf3_classic.nc"
        );
        assert_eq!(info["attributes"]["title"], want["title"]);
        assert_eq!(info["time"]["first"], want["first"], "{name}");
        assert_eq!(info["time"]["last"], want["last"], "{name}");
        assert_eq!(info["time"]["count"], want["count"], "{name}");
        assert_eq!(
            info["time"]["step_seconds"].as_f64(),
            want["step"].as_f64(),
            "{name}"
        );
        assert_eq!(info["model"], "CFGrid", "{name}");
        let fits: Vec<&str> = info["models"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["fits"] == true)
            .map(|m| m["model"].as_str().unwrap())
            .collect();
        assert!(fits.contains(&"CFGrid"), "{name}: {fits:?}");
        for m in info["models"].as_array().unwrap() {
            assert!(!m["why"].as_str().unwrap().is_empty());
        }
        assert_eq!(info["load"]["cells"], want["cells"], "{name}");
        assert_eq!(info["load"]["documents"], want["count"], "{name}");
        assert_eq!(info["load"]["bbox"], want["bbox"], "{name}");
        assert!(
            info["load"]["largest_document_bytes"].as_u64().unwrap()
                < info["load"]["document_limit_bytes"].as_u64().unwrap()
        );
    }
}

/// `info` of MAT and HDF5 files written by SciPy, Octave and h5py names the
/// variables scipy.io.whosmat / h5py list, with their shapes and classes,
/// and picks the model each file is loaded with elsewhere in the suite.
#[test]
#[cfg_attr(no_shared, ignore = "needs ../shared/fixtures")]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn info_lists_mat_and_hdf5_variables_as_scipy_and_h5py_do() {
    let env = common::Env::new();
    let python = common::python_with(&["scipy", "h5py"]);
    let script = r##"
import json, sys, scipy.io, h5py
p = sys.argv[1]
try:
    print(json.dumps({n: [list(s), c] for n, s, c in scipy.io.whosmat(p)}))
except Exception:
    out = {}
    with h5py.File(p, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and not name.startswith("#"):
                cls = obj.attrs.get("MATLAB_class")
                shape = list(obj.shape)
                if cls is not None:
                    shape = shape[::-1]
                out[name] = [shape, str(obj.dtype).replace("float64", "double").replace("float32", "single")]
        f.visititems(visit)
    print(json.dumps(out))
"##;
    let mut files = data_files("writers");
    files.extend(data_files("fluxpy"));
    for file in &files {
        let info = env.run(&["info", s(file), "--json"]).ok().json();
        let out = Command::new(&python)
            .args(["-c", script, s(file)])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let want: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let got: serde_json::Map<String, serde_json::Value> = info["variables"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| !v["name"].as_str().unwrap().starts_with('#'))
            .map(|v| {
                (
                    v["name"].as_str().unwrap().to_string(),
                    serde_json::json!([v["shape"], v["type"]]),
                )
            })
            .collect();
        assert_eq!(serde_json::Value::Object(got), want, "{}", file.display());
        let expected = match file.file_name().unwrap().to_str().unwrap() {
            "xco2.mat" => "XCO2Matrix",
            "kriged_xco2.mat" => "KrigedXCO2Matrix",
            _ => "SpatioTemporalMatrix",
        };
        assert_eq!(info["model"], expected, "{}", file.display());
    }
}

/// `info` of a file no model loads (a 1-D vector) says so and exits 1,
/// and `load` refuses the file under every model.
#[test]
fn info_of_a_file_nothing_loads_says_so_as_load_does() {
    let env = common::Env::new();
    let file = env.path("vector.mat");
    fluxpy::synth::write_mat_v5(&file, "v", &ndarray::Array2::from_elem((1, 40), 1.5), false)
        .unwrap();
    let info = env.run(&["info", s(&file), "--json"]).ok().json();
    assert_eq!(info["model"], serde_json::Value::Null);
    assert_eq!(info["variables"][0]["shape"], serde_json::json!([1, 40]));
    assert!(info["models"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["fits"] == false));
    let config = env.run(&["info", s(&file), "--config"]);
    assert_eq!(config.code, 1);
    assert!(config.stdout.is_empty());
    assert!(
        config.stderr.contains("no model can load it"),
        "{}",
        config.stderr
    );
    for model in [
        "SpatioTemporalMatrix",
        "KrigedXCO2Matrix",
        "XCO2Matrix",
        "CFGrid",
    ] {
        let r = env.load(&file, model, "v", &["-o", "timestamp=2000-01-01"]);
        assert_eq!(r.code, 1, "load -m {model} took it");
    }
}

/// The CFGrid fixtures, loaded with `-m CFGrid` into `env` as NAME.
fn load_cf(env: &common::Env, file: &str, name: &str) -> PathBuf {
    let path = common::shared_fixture("netcdf", file);
    env.load(&path, "CFGrid", name, &[]).ok();
    path
}

/// `export --format netcdf` (whole, and with --from/--to/--bbox) and
/// `--format csv` with the same selection, read back with netCDF4-python
/// and checked against the original file as netCDF4 reads it: times in the
/// range (both ends included), the latitudes and longitudes inside the box
/// (ascending), the values (masked where the original is masked, and
/// equal to its float32 values to 1e-7), units, `_FillValue`, title.
#[test]
#[cfg_attr(no_shared, ignore = "needs ../shared/fixtures")]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn export_netcdf_and_csv_of_a_selection_match_the_original() {
    let env = common::Env::new();
    let python = common::python_with(&["netCDF4", "numpy"]);
    let script = r##"
import sys, csv, datetime, netCDF4, numpy as np
orig, out, csv_path, t0, t1, W, S, E, N = sys.argv[1:10]
W, S, E, N = map(float, (W, S, E, N))
o = netCDF4.Dataset(orig)
var = o.variables["bio_flux_opt"]
t = o.variables["time"]
dates = netCDF4.num2date(t[:], t.units, getattr(t, "calendar", "standard"))
secs = np.array([round((datetime.datetime(d.year, d.month, d.day, d.hour, d.minute, d.second) - datetime.datetime(1970, 1, 1)).total_seconds()) for d in dates])
lo = -np.inf if t0 == "-" else (datetime.datetime.fromisoformat(t0) - datetime.datetime(1970, 1, 1)).total_seconds()
hi = np.inf if t1 == "-" else (datetime.datetime.fromisoformat(t1) - datetime.datetime(1970, 1, 1)).total_seconds()
ti = np.where((secs >= lo) & (secs <= hi))[0]
lat = o.variables["latitude"][:].astype(float)
lon = o.variables["longitude"][:].astype(float)
lon = np.where(lon > 180, lon - 360, lon)
yi = np.where((lat >= S) & (lat <= N))[0]; yi = yi[np.argsort(lat[yi])]
xi = np.where((lon >= W) & (lon <= E))[0]; xi = xi[np.argsort(lon[xi])]
want = np.ma.masked_invalid(var[:][ti][:, yi][:, :, xi].astype(float))

r = netCDF4.Dataset(out)
assert r.data_model == "NETCDF4", r.data_model
assert r.Conventions.startswith("CF-"), r.Conventions
assert r.title == o.title, (r.title, o.title)
assert list(r.variables["values"].dimensions) == ["time", "lat", "lon"]
assert r.variables["values"].units == var.units
assert r.variables["lat"].units == "degrees_north" and r.variables["lon"].units == "degrees_east"
fill = r.variables["values"]._FillValue
assert np.isfinite(fill)
got_t = netCDF4.num2date(r.variables["time"][:], r.variables["time"].units, r.variables["time"].calendar)
assert [d.isoformat() for d in got_t] == [d.isoformat() for d in dates[ti]], (got_t, dates[ti])
assert np.array_equal(r.variables["lat"][:], lat[yi]), (r.variables["lat"][:], lat[yi])
assert np.array_equal(r.variables["lon"][:], lon[xi])
got = r.variables["values"][:]
assert got.shape == want.shape, (got.shape, want.shape)
assert np.array_equal(np.ma.getmaskarray(got), np.ma.getmaskarray(want)), "masks differ"
raw = r.variables["values"]; raw.set_auto_mask(False)
assert np.all(raw[:][np.ma.getmaskarray(want)] == fill)
ok = ~np.ma.getmaskarray(want)
assert ok.sum() > 0
assert np.allclose(got.data[ok], want.data[ok], rtol=1e-7, atol=1e-18), "values differ"

rows = list(csv.reader(open(csv_path)))
assert rows[0] == ["timestamp", "x", "y", "values"], rows[0]
expected = []
for k, i in enumerate(ti):
    stamp = dates[i].strftime("%Y-%m-%dT%H:%M:%SZ")
    for a, y in enumerate(yi):
        for b, x in enumerate(xi):
            expected.append((stamp, lon[x], lat[y], None if want.mask[k, a, b] else want.data[k, a, b]))
assert len(rows) - 1 == len(expected), (len(rows) - 1, len(expected))
for row, (stamp, x, y, v) in zip(rows[1:], expected):
    assert row[0] == stamp and float(row[1]) == x and float(row[2]) == y, (row, stamp, x, y)
    if v is None:
        assert row[3] == "", row
    else:
        assert abs(float(row[3]) - v) <= 1e-7 * abs(v) + 1e-18, (row, v)
print("ok", len(ti), len(yi), len(xi))
"##;
    // File, --from, --to, --bbox.
    type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>);
    let cases: [Case; 3] = [
        ("ct_like_netcdf4.nc", None, None, None),
        (
            "ct_like_netcdf4.nc",
            Some("2004-06-30T04:30:00"),
            Some("2004-06-30T13:30:00"),
            Some("-130.5,19.5,-60,55"),
        ),
        (
            "ct_like_netcdf3_classic.nc",
            Some("2004-06-30T04:00:00"),
            None,
            Some("100,-70,150,-50"),
        ),
    ];
    for (i, (file, from, to, bbox)) in cases.iter().enumerate() {
        let name = format!("ct{i}");
        let orig = load_cf(&env, file, &name);
        let nc = env.path(&format!("{name}.nc"));
        let csv = env.path(&format!("{name}.csv"));
        let mut sel: Vec<&str> = vec![];
        if let Some(f) = from {
            sel.extend(["--from", f]);
        }
        if let Some(t) = to {
            sel.extend(["--to", t]);
        }
        if let Some(b) = bbox {
            sel.extend(["--bbox", b]);
        }
        let mut a = vec![
            "export",
            "-n",
            &name,
            "--format",
            "netcdf",
            "--output",
            s(&nc),
        ];
        a.extend(&sel);
        env.run(&a).ok();
        let mut a = vec![
            "export",
            "-n",
            &name,
            "--format",
            "csv",
            "--output",
            s(&csv),
        ];
        a.extend(&sel);
        env.run(&a).ok();
        let [w, so, e, n] = match bbox {
            Some(b) => {
                let v: Vec<&str> = b.split(',').collect();
                [v[0], v[1], v[2], v[3]]
            }
            None => ["-180", "-90", "180", "90"],
        };
        let out = Command::new(&python)
            .args([
                "-c",
                script,
                s(&orig),
                s(&nc),
                s(&csv),
                from.unwrap_or("-"),
                to.unwrap_or("-"),
                w,
                so,
                e,
                n,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "case {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A CFGrid fixture loaded, exported to NetCDF and loaded again (CFGrid,
/// `var_name=values`) gives the same documents, byte for byte as exported,
/// and the same grid, bbox, dates, units and title.
#[test]
#[cfg_attr(no_shared, ignore = "needs ../shared/fixtures")]
fn netcdf_export_loads_back_to_the_same_documents() {
    let env = common::Env::new();
    for (i, file) in data_files("netcdf").iter().enumerate() {
        let a = format!("first{i}");
        let b = format!("again{i}");
        env.load(file, "CFGrid", &a, &[]).ok();
        let nc = env.path(&format!("{a}.nc"));
        env.run(&["export", "-n", &a, "--format", "netcdf", "--output", s(&nc)])
            .ok();
        env.load(&nc, "CFGrid", &b, &["-o", "var_name=values"]).ok();
        let first = env.run(&["export", "-n", &a]).ok().stdout;
        let again = env.run(&["export", "-n", &b]).ok().stdout;
        assert!(!first.is_empty());
        assert!(first == again, "{}: documents differ", file.display());
        let (ma, mb) = (env.metadata(&a), env.metadata(&b));
        for key in [
            "gridres", "bbox", "bboxmd5", "dates", "units", "title", "steps",
        ] {
            assert_eq!(ma[key], mb[key], "{}: {key}", file.display());
        }
        let csv_a = env
            .run(&["export", "-n", &a, "--format", "csv"])
            .ok()
            .stdout;
        let csv_b = env
            .run(&["export", "-n", &b, "--format", "csv"])
            .ok()
            .stdout;
        assert!(
            csv_a == csv_b,
            "{}: cell coordinates differ",
            file.display()
        );
    }
}

/// Only the entries of `dir`, by name.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// `--output FILE` is written whole or not at all: a failed export (a
/// time that is not stored, in CSV, JSON lines and NetCDF) leaves nothing
/// in the folder and an existing FILE as it was; a successful one writes
/// what stdout gets. Without --output, a time that is not stored writes
/// nothing to stdout (no header-only CSV).
#[test]
fn export_output_is_atomic() {
    let env = common::Env::new();
    env.run(&[
        "load",
        "-p",
        s(&common::sample()),
        "-m",
        "SpatioTemporalMatrix",
        "-n",
        "flux",
        "-c",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/configs/SpatioTemporalMatrix.json"
        ),
    ])
    .ok();
    let out = env.path("out");
    std::fs::create_dir(&out).unwrap();
    for format in ["csv", "jsonl", "netcdf"] {
        let f = out.join(format!("f.{format}"));
        let r = env.run(&[
            "export",
            "-n",
            "flux",
            "--at",
            "1999-01-01",
            "--format",
            format,
            "--output",
            s(&f),
        ]);
        assert_eq!(r.code, 1, "{format}: {}", r.stderr);
        assert!(
            r.stderr.contains("no document at 1999-01-01"),
            "{}",
            r.stderr
        );
        assert!(
            entries(&out).is_empty(),
            "{format}: left {:?}",
            entries(&out)
        );
        let r = env.run(&[
            "export",
            "-n",
            "flux",
            "--from",
            "1999-01-01",
            "--to",
            "1999-02-01",
            "--format",
            format,
            "--output",
            s(&f),
        ]);
        assert_eq!(r.code, 1, "{format}: {}", r.stderr);
        assert!(
            entries(&out).is_empty(),
            "{format}: left {:?}",
            entries(&out)
        );
    }
    // An existing file is left as it was by a failure.
    let kept = out.join("kept.csv");
    std::fs::write(&kept, "earlier\n").unwrap();
    let r = env.run(&[
        "export",
        "-n",
        "flux",
        "--at",
        "1999-01-01",
        "--format",
        "csv",
        "--output",
        s(&kept),
    ]);
    assert_eq!(r.code, 1);
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), "earlier\n");
    assert_eq!(entries(&out), ["kept.csv"]);
    // A success replaces it with what stdout gets.
    let at = "2004-06-30T03:00:00";
    let stdout = env
        .run(&["export", "-n", "flux", "--at", at, "--format", "csv"])
        .ok()
        .stdout;
    env.run(&[
        "export",
        "-n",
        "flux",
        "--at",
        at,
        "--format",
        "csv",
        "--output",
        s(&kept),
    ])
    .ok();
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), stdout);
    assert!(stdout.lines().count() > 1);
    assert_eq!(entries(&out), ["kept.csv"]);
    // To stdout, a time that is not stored writes nothing at all.
    let r = env.run(&[
        "export",
        "-n",
        "flux",
        "--at",
        "1999-01-01",
        "--format",
        "csv",
    ]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "");
    // NetCDF needs a file; JSON lines of a grid cannot carry --bbox.
    let r = env.run(&["export", "-n", "flux", "--format", "netcdf"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("--output"), "{}", r.stderr);
    let r = env.run(&["export", "-n", "flux", "--bbox", "-100,30,-80,45"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("--format csv or netcdf"), "{}", r.stderr);
}

/// `--bbox` on point data keeps the points inside the box, as many as
/// SciPy counts in the file's matrix, every one with its coordinates; with
/// `--from/--to` only the points of those times.
#[test]
#[cfg_attr(no_shared, ignore = "needs ../shared/fixtures")]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn export_bbox_keeps_the_points_inside() {
    let env = common::Env::new();
    let file = common::fixture("xco2.mat");
    env.load(&file, "XCO2Matrix", "x", &[]).ok();
    let python = common::python_with(&["scipy", "numpy"]);
    let out = Command::new(&python)
        .args([
            "-c",
            "import sys, scipy.io, numpy as np\n\
             a = scipy.io.loadmat(sys.argv[1])['XCO2']\n\
             x, y = a[:, 0], a[:, 1]\n\
             print(int(((x >= -100) & (x <= -80) & (y >= 30) & (y <= 45)).sum()))\n\
             print(int(((a[:, 4] == 2009) & (a[:, 3] == 166)).sum()))",
            s(&file),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counts: Vec<usize> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    let (want, on_the_15th) = (counts[0], counts[1]);
    assert!(want > 0);
    let docs = env
        .run(&["export", "-n", "x", "--bbox", "-100,30,-80,45"])
        .ok()
        .json_lines();
    assert_eq!(docs.len(), want);
    for d in &docs {
        let c = d["coordinates"].as_array().unwrap();
        let (x, y) = (c[0].as_f64().unwrap(), c[1].as_f64().unwrap());
        assert!(
            (-100.0..=-80.0).contains(&x) && (30.0..=45.0).contains(&y),
            "{d}"
        );
    }
    let rows = env
        .run(&[
            "export",
            "-n",
            "x",
            "--bbox",
            "-100,30,-80,45",
            "--format",
            "csv",
        ])
        .ok()
        .stdout;
    assert_eq!(rows.lines().count(), want + 1);
    // The points of 2009-06-15 (day 166): both ends of the range included.
    let day = env
        .run(&[
            "export",
            "-n",
            "x",
            "--from",
            "2009-06-15",
            "--to",
            "2009-06-15",
        ])
        .ok()
        .json_lines();
    assert!(on_the_15th > 0);
    assert_eq!(day.len(), on_the_15th);
    let r = env.run(&["export", "-n", "x", "--to", "1999-06-14"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "");
}

/// `db -n NAME --times` (and `--json`) lists the times of the stored
/// summary, reading no document: a document put in place of another
/// behind the summary's back does not show until the summary is gone (then
/// the documents are scanned). `db -l` and `db -a` print JSON for scripts.
fn times_and_json(t: &common::Target) {
    use bson::Bson;

    let sample = common::sample();
    t.run(&[
        "load",
        "-p",
        s(&sample),
        "-m",
        "SpatioTemporalMatrix",
        "-n",
        "flux",
        "-c",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/configs/SpatioTemporalMatrix.json"
        ),
    ])
    .ok();
    // The config's first time and step, and the file's steps (columns
    // after x and y).
    let steps = fluxpy::source::open(&sample, None).unwrap().info().cols - 2;
    let start = chrono::NaiveDate::from_ymd_opt(2004, 6, 30)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let want: Vec<String> = (0..steps)
        .map(|k| {
            (start + chrono::Duration::seconds(10800 * k as i64))
                .format("%Y-%m-%dT%H:%M:%S")
                .to_string()
        })
        .collect();
    let text = t.run(&["db", "-n", "flux", "--times"]).ok().stdout;
    assert_eq!(text.lines().collect::<Vec<_>>(), want);
    let json: serde_json::Value = serde_json::from_str(
        &t.run(&["db", "-n", "flux", "--times", "--json"])
            .ok()
            .stdout,
    )
    .unwrap();
    let items = json.as_array().unwrap();
    assert_eq!(items.len(), steps);
    for (item, w) in items.iter().zip(&want) {
        assert_eq!(item["time"], w.as_str());
        assert_eq!(item["documents"], 1);
        assert_eq!(item["span"], serde_json::Value::Null);
    }

    // A document of 2030 in place of the first one, the count unchanged:
    // the times still come from the summary.
    {
        let store = t.store();
        let first = store
            .get(
                "flux",
                &Bson::DateTime(bson::DateTime::from_millis(
                    start.and_utc().timestamp_millis(),
                )),
            )
            .unwrap()
            .expect("the first step is stored");
        let mut moved = first.clone();
        let y2030 = chrono::NaiveDate::from_ymd_opt(2030, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis();
        moved.insert("_id", Bson::DateTime(bson::DateTime::from_millis(y2030)));
        store.delete("flux", first.get("_id").unwrap()).unwrap();
        store.put("flux", &moved).unwrap();
    }
    let text = t.run(&["db", "-n", "flux", "--times"]).ok().stdout;
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        want,
        "times were not the summary's"
    );
    // Without the summary entry, the documents are read.
    t.store()
        .delete(SUMMARY, &Bson::String("flux".into()))
        .unwrap();
    let text = t.run(&["db", "-n", "flux", "--times"]).ok().stdout;
    let mut scanned = want[1..].to_vec();
    scanned.push("2030-01-01T00:00:00".into());
    assert_eq!(text.lines().collect::<Vec<_>>(), scanned);

    // -l and -a as JSON.
    let l = t.run(&["db", "-l", "collections", "--json"]).ok();
    assert_eq!(l.json(), serde_json::json!(["flux"]));
    let l = t.run(&["db", "-l", "collections", "-x", "--json"]).ok();
    assert_eq!(
        l.json(),
        serde_json::json!([{"name": "flux", "documents": steps}])
    );
    for what in ["metadata", "coord_index"] {
        let l = t.run(&["db", "-l", what, "--json"]).ok();
        assert_eq!(l.json(), serde_json::json!(["flux"]), "{what}");
    }
    let a = t.run(&["db", "-a", "--json"]).ok().json();
    assert_eq!(a["ok"], true, "{a}");
    assert_eq!(a["problems"], serde_json::json!([]));
    t.store()
        .delete(COORD_INDEX, &Bson::String("flux".into()))
        .unwrap();
    let r = t.run(&["db", "-a", "--json"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    let a = r.json();
    assert_eq!(a["ok"], false);
    let problems = a["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{a}");
    assert!(
        problems[0]
            .as_str()
            .unwrap()
            .contains("no coord_index entry"),
        "{a}"
    );
}

crate::on_both_stores!(db_times_from_the_summary_and_json, times_and_json);

/// The extensions `load -p DIR` takes, as the table of input formats
/// (src/source/formats.rs) lists them, each once.
fn loader_extensions() -> Vec<String> {
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/source/formats.rs"
    ))
    .unwrap();
    let start = src.find("pub static FORMATS").expect("the formats table");
    let table = &src[start..start + src[start..].find("];").unwrap()];
    let re = regex::Regex::new(r#"&\[([^\]]*)\]"#).unwrap();
    let quoted = regex::Regex::new(r#""([a-z0-9]+)""#).unwrap();
    let mut exts: Vec<String> = re
        .captures_iter(table)
        .flat_map(|c| {
            quoted
                .captures_iter(c.get(1).unwrap().as_str())
                .map(|q| q[1].to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    exts.sort();
    exts.dedup();
    exts
}

/// `manage man --dir DIR` writes manage.1 and a page for every command
/// `manage --help` lists; every page and the help texts name the input
/// formats (MATLAB v4, v5, v7.3, HDF5, NetCDF) and exactly the extensions
/// the loader takes from a directory, which a dry run confirms.
#[test]
fn man_pages_for_every_command_name_every_input_format() {
    let env = common::Env::new();
    let exts = loader_extensions();
    assert!(exts.len() >= 4, "{exts:?}");
    // The loader takes exactly these from a directory (a MAT-file under
    // each name: files are told apart by content), and not a .txt.
    let dir = env.path("inputs");
    std::fs::create_dir(&dir).unwrap();
    for e in exts.iter().map(String::as_str).chain(["txt"]) {
        std::fs::copy(common::sample(), dir.join(format!("f.{e}"))).unwrap();
    }
    let r = env.run(&[
        "load",
        "-p",
        s(&dir),
        "-m",
        "SpatioTemporalMatrix",
        "-n",
        "f",
        "-c",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/configs/SpatioTemporalMatrix.json"
        ),
        "--dry-run",
        "--json",
        "--force",
    ]);
    let mut taken: Vec<String> = r
        .json_lines()
        .iter()
        .map(|l| {
            let p = l["path"].as_str().unwrap();
            p.rsplit('.').next().unwrap().to_string()
        })
        .collect();
    taken.sort();
    assert_eq!(taken, exts, "{}", r.stdout);

    let help = env.run(&["--help"]).ok().stdout;
    let commands: Vec<String> = help
        .split("Commands:")
        .nth(1)
        .unwrap()
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        // A command's line; its wrapped description is indented further.
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect();
    for c in ["info", "load", "export", "db", "man"] {
        assert!(commands.iter().any(|x| x == c), "{c} not in {commands:?}");
    }
    let formats = ["MATLAB", "v4", "v5", "v7.3", "HDF5", "NetCDF"];
    for args in [
        vec!["--help"],
        vec!["load", "--help"],
        vec!["info", "--help"],
    ] {
        let h = env.run(&args).ok().stdout;
        for f in formats {
            assert!(h.contains(f), "{args:?} does not name {f}");
        }
    }

    let man = env.path("man");
    env.run(&["man", "--dir", s(&man)]).ok();
    let mut want: Vec<String> = commands.iter().map(|c| format!("manage-{c}.1")).collect();
    want.push("manage.1".into());
    want.sort();
    assert_eq!(entries(&man), want);
    let ext_re = regex::Regex::new(r"\.([a-z0-9]+)\b").unwrap();
    let see_also = regex::Regex::new(r"\\fB(manage[^\\]*)\\fR\(1\)").unwrap();
    for page in &want {
        let text = std::fs::read_to_string(man.join(page)).unwrap();
        let name = page.trim_end_matches(".1");
        assert!(
            text.contains(&format!("\n.TH {name} 1")),
            "{page}: {}",
            &text[..60]
        );
        let section = text
            .split(".SH \"INPUT FORMATS\"")
            .nth(1)
            .unwrap_or_else(|| panic!("{page} has no INPUT FORMATS"));
        // Its text, without the roff requests (`.br`).
        let section: String = section
            .split(".SH")
            .next()
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('.'))
            .collect::<Vec<_>>()
            .join("\n");
        for f in formats {
            assert!(section.contains(f), "{page} does not name {f}");
        }
        let mut named: Vec<String> = ext_re
            .captures_iter(&section)
            .map(|c| c[1].to_string())
            .filter(|e| !e.chars().all(|c| c.is_ascii_digit()))
            .collect();
        named.sort();
        named.dedup();
        assert_eq!(named, exts, "{page}");
        // Every page it refers to exists.
        for other in see_also.captures_iter(&text) {
            let p = format!("{}.1", other[1].replace("\\-", "-"));
            assert!(want.contains(&p), "{page} refers to {p}");
        }
    }
    let one = env.run(&["man"]).ok().stdout;
    assert!(one.contains("\n.TH manage 1") && one.contains("INPUT FORMATS"));
}

/// The README's cron example, run as written on a fresh machine: its
/// lines are read from README.md, the environment lines set as cron sets
/// them, each command run by /bin/sh with cron's PATH and a HOME where no
/// log folder exists yet. Only the store (the test deployment in place of
/// db1), the binary and the data folders are put in place of the
/// example's. Both lines load into that one store and their logs are
/// written.
#[test]
#[cfg_attr(no_shared, ignore = "needs ../shared/fixtures")]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
fn readme_cron_lines_run_as_written() {
    let env = common::Env::new();
    let db = common::FreshDb::new(&common::mongodb_uri());
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split("## Running from cron").nth(1).unwrap();
    let block = section
        .split("```cron\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let assignment = regex::Regex::new(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$").unwrap();
    let job = regex::Regex::new(r"^(\S+\s+){5}(.+)$").unwrap();
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut commands: Vec<String> = Vec::new();
    for line in block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        if let Some(c) = assignment.captures(line) {
            vars.push((c[1].to_string(), c[2].to_string()));
        } else if let Some(c) = job.captures(line) {
            commands.push(c[2].to_string());
        } else {
            panic!("not a crontab line: {line}");
        }
    }
    assert_eq!(commands.len(), 2, "{block}");
    assert!(
        vars.iter()
            .any(|(k, v)| k == "FLUXPY_DB" && v.starts_with("mongodb://")),
        "{vars:?}"
    );
    // The example's data folders, with the old tool's files in them.
    let data = env.path("data");
    std::fs::create_dir_all(data.join("kriged")).unwrap();
    std::fs::create_dir_all(data.join("xco2")).unwrap();
    std::fs::copy(
        common::fixture("kriged_xco2.mat"),
        data.join("kriged/Kriged_20090615_v1.mat"),
    )
    .unwrap();
    std::fs::copy(common::fixture("xco2.mat"), data.join("xco2/xco2.mat")).unwrap();
    let home = env.path("home");
    std::fs::create_dir(&home).unwrap();
    let bin = env!("CARGO_BIN_EXE_manage");
    for command in &commands {
        let command = command
            .replace("/usr/local/bin/manage", bin)
            .replace("/data/", &format!("{}/", data.display()));
        let mut sh = Command::new("/bin/sh");
        sh.args(["-c", &command])
            .env_clear()
            .env("HOME", &home)
            .env("PATH", "/usr/bin:/bin")
            .env("SHELL", "/bin/sh");
        for (k, v) in &vars {
            let v = if k == "FLUXPY_DB" {
                db.uri.clone()
            } else {
                v.clone()
            };
            sh.env(k, v);
        }
        let out = sh.output().unwrap();
        assert!(
            out.status.success(),
            "{command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let logs = home.join("log/fluxpy");
    let jsonl = std::fs::read_to_string(logs.join("kriged.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{jsonl}");
    assert_eq!(lines[0]["status"], "loaded");
    assert_eq!(
        std::fs::read_to_string(logs.join("kriged.err")).unwrap(),
        ""
    );
    assert_eq!(std::fs::read_to_string(logs.join("xco2.err")).unwrap(), "");
    // Both datasets in the one store the FLUXPY_DB line names.
    let l = env
        .run_on(&db.uri, &["db", "-l", "collections", "--json"])
        .ok();
    assert_eq!(l.json(), serde_json::json!(["kriged_xco2", "xco2"]));
    // And run again the next night, both skip what they loaded.
    for command in &commands {
        let command = command
            .replace("/usr/local/bin/manage", bin)
            .replace("/data/", &format!("{}/", data.display()));
        let mut sh = Command::new("/bin/sh");
        sh.args(["-c", &command])
            .env_clear()
            .env("HOME", &home)
            .env("PATH", "/usr/bin:/bin");
        for (k, v) in &vars {
            sh.env(k, if k == "FLUXPY_DB" { &db.uri } else { v });
        }
        assert!(sh.status().unwrap().success());
    }
    let jsonl = std::fs::read_to_string(logs.join("kriged.jsonl")).unwrap();
    assert_eq!(jsonl.lines().count(), 2);
    assert!(
        jsonl.lines().nth(1).unwrap().contains("\"skipped\""),
        "{jsonl}"
    );
}

/// `copy -n NAME --to DB`, from the embedded store into MongoDB and back
/// into a new embedded store: each copy exports byte for byte as the
/// original (JSON lines and CSV), with the same metadata, times and files;
/// the target audits clean, and a load of the same file into it is
/// skipped (the ingest log came along). A NAME in the target is refused,
/// and left as it was, unless --force, which replaces it.
#[test]
#[cfg_attr(
    not(feature = "mongodb-tests"),
    ignore = "needs MongoDB (feature mongodb-tests)"
)]
fn copy_between_stores_exports_identically() {
    let env = common::Env::new();
    let mongo = common::FreshDb::new(&common::mongodb_uri());
    let embedded = env.db();
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/SpatioTemporalMatrix.json"
    );
    let sample = common::sample();
    let load = |db: &str, extra: &[&str]| {
        let mut a = vec![
            "load",
            "-p",
            s(&sample),
            "-m",
            "SpatioTemporalMatrix",
            "-n",
            "flux",
            "-c",
            config,
        ];
        a.extend_from_slice(extra);
        env.run_on(db, &a)
    };
    load(s(&embedded), &[]).ok();
    // What the target holds under NAME before: another time.
    load(&mongo.uri, &["-o", "timestamp=2010-01-01"]).ok();
    let views = |db: &str| -> Vec<String> {
        let mut md = env.run_on(db, &["db", "-n", "flux"]).ok().json();
        // The files' entries are compared whole; the metadata as stored.
        md.as_object_mut().unwrap().remove("_id");
        vec![
            env.run_on(db, &["export", "-n", "flux"]).ok().stdout,
            env.run_on(db, &["export", "-n", "flux", "--format", "csv"])
                .ok()
                .stdout,
            env.run_on(db, &["db", "-n", "flux", "--times"]).ok().stdout,
            md.to_string(),
        ]
    };
    let original = views(s(&embedded));
    let before = views(&mongo.uri);
    assert_ne!(original[0], before[0]);

    let r = env.run_on(s(&embedded), &["copy", "-n", "flux", "--to", &mongo.uri]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    assert_eq!(
        views(&mongo.uri),
        before,
        "a refused copy changed the target"
    );

    env.run_on(
        s(&embedded),
        &["copy", "-n", "flux", "--to", &mongo.uri, "--force"],
    )
    .ok();
    assert_eq!(views(&mongo.uri), original);
    let audit = env.run_on(&mongo.uri, &["db", "-a"]);
    assert_eq!(audit.code, 0, "{}", audit.stdout);

    // Back into a new embedded store.
    let back = env.path("back.db");
    env.run_on(&mongo.uri, &["copy", "-n", "flux", "--to", s(&back)])
        .ok();
    assert_eq!(views(s(&back)), original);
    assert_eq!(env.run_on(s(&back), &["db", "-a"]).code, 0);

    // The ingest log came along: the same file is skipped in the copies.
    for db in [mongo.uri.as_str(), s(&back)] {
        let r = load(db, &["--json"]).ok();
        assert_eq!(r.json()["status"], "skipped", "{db}");
    }
    // A store is not copied onto itself; an unknown NAME is named.
    let r = env.run_on(s(&back), &["copy", "-n", "flux", "--to", s(&back)]);
    assert_eq!(r.code, 1);
    let r = env.run_on(s(&back), &["copy", "-n", "nope", "--to", &mongo.uri]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("'nope'"), "{}", r.stderr);
}
use fluxpy::doc::{COORD_INDEX, SUMMARY};
