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
