//! Aggregating a grid to a coarser one at load (`coarsen`): block means
//! checked against xarray's `coarsen`, the refusal of a grid too large for
//! one document naming the smallest factor that fits, and grids of 0.25°
//! and 0.1° (made at test time) loaded with it.

use std::path::{Path, PathBuf};

use crate::common;

/// The test Python: `make` writes a CF NetCDF grid with netCDF4-python
/// (float32 values, NaN-free fill where a mask says, latitudes descending
/// when asked, as many files have them); `check` computes the coarse grid
/// with xarray from that file and compares it with `manage export --format
/// csv` of the load: the cell centres, which cells are missing, and every
/// value (to the stored precision of 6 decimals).
const SCRIPT: &str = r##"
import sys, csv, datetime
import numpy as np

mode = sys.argv[1]
T0 = datetime.datetime(2004, 6, 30)

if mode == "make":
    import netCDF4
    path = sys.argv[2]
    res, lat0, lat1, lon0, lon1 = map(float, sys.argv[3:8])
    steps, descending = int(sys.argv[8]), sys.argv[9] == "desc"
    lat = np.round(np.arange(round((lat1 - lat0) / res)) * res + lat0 + res / 2, 6)
    lon = np.round(np.arange(round((lon1 - lon0) / res)) * res + lon0 + res / 2, 6)
    la, lo = np.radians(lat)[:, None], np.radians(lon)[None, :]
    v = np.stack([3 + np.sin(3 * la) * np.cos(2 * lo) + 0.25 * k + np.cos(7 * lo) * 0.5 for k in range(steps)])
    # A mask ("ocean") missing at every step, and some cells missing at one.
    ocean = (np.sin(5 * lo) * np.cos(4 * la)) > 0.6
    ocean[0, :] = ocean[:, 0] = False  # the grid's edges are in every file
    v[:, ocean] = np.nan
    v[0, :: 7, :: 3] = np.nan
    # The north-east corner block of 4 x 4 cells missing entirely.
    v[:, -3:, -3:] = np.nan
    if descending:
        lat, v = lat[::-1], v[:, ::-1, :]
    d = netCDF4.Dataset(path, "w", format="NETCDF4")
    d.title = "coarsen test grid"
    d.createDimension("time", steps)
    d.createDimension("lat", len(lat))
    d.createDimension("lon", len(lon))
    t = d.createVariable("time", "f8", ("time",))
    t.units = "hours since 2004-06-30 00:00:00"
    t.calendar = "standard"
    t[:] = np.arange(steps) * 3.0
    y = d.createVariable("lat", "f8", ("lat",)); y.units = "degrees_north"; y[:] = lat
    x = d.createVariable("lon", "f8", ("lon",)); x.units = "degrees_east"; x[:] = lon
    f = d.createVariable("flux", "f4", ("time", "lat", "lon"), fill_value=np.float32(-9999.0), zlib=False)
    f.units = "mol m-2 s-1"
    f[:] = np.ma.masked_invalid(v.astype(np.float32))
    d.close()
    print(len(lat) * len(lon))

else:
    import xarray as xr
    path, factor, out_path, weights = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
    ds = xr.open_dataset(path).sortby(["lat", "lon"])
    v = ds["flux"].astype("float64")
    lat, lon = ds["lat"].values.astype(float), ds["lon"].values.astype(float)

    def bounds(c):
        mid = (c[1:] + c[:-1]) / 2
        return (np.concatenate([[c[0] - (c[1] - c[0]) / 2], mid]),
                np.concatenate([mid, [c[-1] + (c[-1] - c[-2]) / 2]]))

    if weights == "area":
        s, n = bounds(lat)
        wy = np.sin(np.radians(np.clip(n, -90, 90))) - np.sin(np.radians(np.clip(s, -90, 90)))
        w0, w1 = bounds(lon)
        wx = w1 - w0
    else:
        wy, wx = np.ones(len(lat)), np.ones(len(lon))
    w = xr.DataArray(wy[:, None] * wx[None, :], dims=("lat", "lon"), coords={"lat": ds["lat"], "lon": ds["lon"]})
    c = dict(lat=factor, lon=factor, boundary="pad")
    num = (v * w).coarsen(**c).sum()
    den = w.where(v.notnull()).coarsen(**c).sum()
    want = (num / den).where(den > 0).transpose("time", "lat", "lon").values
    nb = lambda n: -(-n // factor)
    lat_c = [round(lat[i * factor:(i + 1) * factor].mean(), 4) for i in range(nb(len(lat)))]
    lon_c = [round(lon[j * factor:(j + 1) * factor].mean(), 4) for j in range(nb(len(lon)))]
    assert want.shape == (v.shape[0], len(lat_c), len(lon_c)), want.shape

if mode == "checknc":
    import json
    out = xr.open_dataset(out_path)
    g = out["values"]
    assert g.dims == ("time", "lat", "lon"), g.dims
    assert g.attrs["units"] == ds["flux"].attrs["units"], g.attrs
    assert np.isfinite(g.encoding["_FillValue"]), g.encoding
    assert out["lat"].attrs["units"] == "degrees_north" and out["lon"].attrs["units"] == "degrees_east"
    assert np.allclose(out["lat"].values, lat_c, atol=1e-4), (out["lat"].values, lat_c)
    assert np.allclose(out["lon"].values, lon_c, atol=1e-4), (out["lon"].values, lon_c)
    assert (out["time"].values == ds["time"].values).all(), (out["time"].values, ds["time"].values)
    got = g.values
    assert np.array_equal(np.isnan(got), np.isnan(want)), "missing cells differ"
    ok = ~np.isnan(want)
    assert ok.sum() > 0 and (~ok).sum() > 0
    assert np.allclose(got[ok], want[ok], rtol=0, atol=6e-7), np.abs(got[ok] - want[ok]).max()
    # What cdo info prints per step: missing count, minimum, mean, maximum.
    print(json.dumps([[int(np.isnan(w).sum()), float(np.nanmin(w)), float(np.nanmean(w)), float(np.nanmax(w))] for w in want]))

if mode == "check":
    csv_path = out_path
    got = {}
    rows = list(csv.reader(open(csv_path)))
    assert rows[0] == ["timestamp", "x", "y", "values"], rows[0]
    for r in rows[1:]:
        key = (r[0], round(float(r[1]), 4), round(float(r[2]), 4))
        assert key not in got, key
        got[key] = None if r[3] == "" else float(r[3])
    assert len(got) == want.size, (len(got), want.size)
    missing = checked = 0
    for k in range(want.shape[0]):
        stamp = (T0 + datetime.timedelta(hours=3 * k)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for i, y in enumerate(lat_c):
            for j, x in enumerate(lon_c):
                g, e = got[(stamp, x, y)], want[k, i, j]
                if np.isnan(e):
                    assert g is None, (stamp, x, y, g)
                    missing += 1
                else:
                    assert g is not None and abs(g - e) <= 6e-7 + 1e-12 * abs(e), (stamp, x, y, g, e)
                    checked += 1
    assert missing > 0 and checked > 0
    print(checked, missing)
"##;

fn s(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// A CF grid of `res` degrees over `[lat0, lat1] × [lon0, lon1]` with
/// `steps` steps, written by netCDF4-python; its cell count.
fn make_grid(python: &Path, path: &Path, res: f64, window: [f64; 4], steps: usize) -> usize {
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(SCRIPT)
        .arg("make")
        .arg(path)
        .args([res, window[0], window[1], window[2], window[3]].map(|v| v.to_string()))
        .args([steps.to_string(), "desc".to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn check_against_xarray(python: &Path, nc: &Path, factor: usize, csv: &Path, weights: &str) {
    common::run_python(
        python,
        SCRIPT,
        &["check", s(nc), &factor.to_string(), s(csv), weights],
    );
}

fn grid_file(
    env: &common::Env,
    name: &str,
    res: f64,
    window: [f64; 4],
    steps: usize,
) -> (PathBuf, usize) {
    let python = common::python_with(&["netCDF4", "numpy", "xarray"]);
    let path = env.path(name);
    let n = make_grid(&python, &path, res, window, steps);
    (path, n)
}

/// A 0.5° grid of 23 × 30 cells near the pole (so the area weights
/// matter, and the top blocks are partial), loaded as CFGrid with
/// `coarsen: 4` (area weights) and as SpatioTemporalMatrix would not be
/// (that model reads MAT files; see `a_matlab_grid_coarsens_unweighted`):
/// the stored grid is xarray's `coarsen(lat=4, lon=4, boundary="pad")` of
/// the area-weighted values, cell for cell and step for step, with the
/// block of no valid cell missing; gridres and the metadata say so.
fn cf_grid_coarsened(t: &common::Target) {
    let (nc, cells) = grid_file(t.env, "polar.nc", 0.5, [78.5, 90.0, -15.0, 0.0], 3);
    assert_eq!(cells, 23 * 30);
    t.run(&[
        "load",
        "-p",
        s(&nc),
        "-m",
        "CFGrid",
        "-n",
        "polar",
        "-o",
        "coarsen=4;precision=6",
    ])
    .ok();
    let md = t.run(&["db", "-n", "polar"]).ok().json();
    assert_eq!(md["gridres"]["x"], 2.0, "{md}");
    assert_eq!(md["gridres"]["y"], 2.0, "{md}");
    let c = &md["coarsened"];
    assert_eq!(c["factor"], 4, "{md}");
    assert_eq!(c["weights"], "area");
    assert_eq!(c["source_gridres"]["x"], 0.5);
    assert_eq!(c["source_gridres"]["y"], 0.5);
    assert_eq!(c["source_cells"], 690);
    assert_eq!(c["cells"], 6 * 8);
    assert!(c["method"]
        .as_str()
        .unwrap()
        .contains("sin(lat_north)-sin(lat_south)"));
    let csv = t.env.path("polar.csv");
    t.run(&[
        "export",
        "-n",
        "polar",
        "--format",
        "csv",
        "--output",
        s(&csv),
    ])
    .ok();
    let python = common::python_with(&["xarray"]);
    check_against_xarray(&python, &nc, 4, &csv, "area");
}

crate::on_both_stores!(
    a_cf_grid_coarsened_is_xarrays_weighted_coarsen,
    cf_grid_coarsened
);

/// A SpatioTemporalMatrix MAT file (written by SciPy from the same grid,
/// ocean cells left out as rows) with `coarsen: {"resolution": 1.5,
/// "weights": "none"}`: blocks of 3 × 3 cells, unweighted, equal to
/// xarray's unweighted coarsen of the full grid (absent rows are missing).
#[test]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn a_matlab_grid_coarsens_unweighted_to_a_resolution() {
    let env = common::Env::new();
    let (nc, _) = grid_file(&env, "g.nc", 0.5, [-10.0, 1.0, 100.0, 113.0], 2);
    let mat = env.path("g.mat");
    let python = common::python_with(&["scipy", "netCDF4", "numpy", "xarray"]);
    common::run_python(
        &python,
        r#"
import sys, netCDF4, numpy as np, scipy.io
d = netCDF4.Dataset(sys.argv[1])
lat, lon = d["lat"][:], d["lon"][:]
v = np.ma.filled(d["flux"][:].astype(float), np.nan)
rows = []
for i, y in enumerate(lat):
    for j, x in enumerate(lon):
        if not np.all(np.isnan(v[:, i, j])):
            rows.append([x, y] + list(v[:, i, j]))
scipy.io.savemat(sys.argv[2], {"flux": np.array(rows)})
"#,
        &[s(&nc), s(&mat)],
    );
    env.run(&[
        "load",
        "-p",
        s(&mat),
        "-m",
        "SpatioTemporalMatrix",
        "-n",
        "g",
        "-o",
        "timestamp=2004-06-30;step=10800;precision=6;gridres={\"units\": \"degrees\", \"x\": 0.5, \"y\": 0.5};coarsen={\"resolution\": 1.5, \"weights\": \"none\"}",
    ])
    .ok();
    let md = env.metadata("g");
    assert_eq!(md["gridres"]["x"], 1.5, "{md}");
    assert_eq!(md["coarsened"]["factor"], 3, "{md}");
    assert_eq!(md["coarsened"]["weights"], "none", "{md}");
    let csv = env.path("g.csv");
    env.run(&["export", "-n", "g", "--format", "csv", "--output", s(&csv)])
        .ok();
    // Blocks whose cells are all absent rows are not stored at all: the
    // check wants every block, so compare on the full grid's file only
    // where the export has the cell.
    common::run_python(
        &python,
        &SCRIPT
            .replace(
                "assert len(got) == want.size, (len(got), want.size)",
                "pass",
            )
            .replace(
                "g, e = got[(stamp, x, y)], want[k, i, j]",
                "g, e = got.get((stamp, x, y), None), want[k, i, j]",
            ),
        &["check", s(&nc), "3", s(&csv), "none"],
    );
    // A resolution that is not a multiple of the file's spacing, and
    // coarsening point data, are refused by name.
    let r = env.run(&[
        "load",
        "-p",
        s(&mat),
        "-m",
        "SpatioTemporalMatrix",
        "-n",
        "h",
        "-o",
        "timestamp=2004-06-30;coarsen={\"resolution\": 1.2}",
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("not a whole multiple"), "{}", r.stderr);
    let r = env.run(&[
        "load",
        "-p",
        s(&mat),
        "-m",
        "XCO2Matrix",
        "-n",
        "p",
        "-o",
        "timestamp=2004-06-30;coarsen=2",
    ]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("config key 'coarsen'") && r.stderr.contains("XCO2Matrix"),
        "{}",
        r.stderr
    );
}

/// The most `[x, y]` pairs a `coord_index` entry of dataset `name` holds
/// within 16 MiB, as pymongo's `bson` encodes it (bisected in Python).
fn coord_index_bound(name: &str) -> usize {
    let python = common::python_with(&["bson"]);
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(
            r#"
import sys, bson
name = sys.argv[1]
size = lambda n: len(bson.encode({"_id": name, "i": [[0.5, 0.5]] * n}))
lo, hi = 1, 2_000_000
while lo < hi:
    mid = (lo + hi + 1) // 2
    if size(mid) <= 16 * 1024 * 1024:
        lo = mid
    else:
        hi = mid - 1
print(lo)
"#,
        )
        .arg(name)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Global grids of 0.25° (1,036,800 cells, 2 steps) and 0.1° (6,480,000
/// cells, 1 step), made at test time: a load without `coarsen` is refused
/// naming the bound that fits both documents (the coord_index entry's, as
/// pymongo's `bson` measures it) and the smallest factor whose grid fits
/// (2: 720 × 360 cells; 4: 900 × 450, where 3 gives 1200 × 600, too
/// many, which a load with `coarsen: 3` shows); `info` names it too, and
/// its starter config (`info --config`) has it. With that config each
/// loads, and its values are xarray's area-weighted coarsen of the file.
#[test]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn global_grids_too_large_name_and_load_with_the_coarsening_that_fits() {
    let env = common::Env::new();
    let python = common::python_with(&["xarray"]);
    let bound = coord_index_bound("q");
    assert_eq!(coord_index_bound("d"), bound);
    for (file, res, steps, factor, too_small) in [
        ("q.nc", 0.25, 2, 2usize, None),
        ("d.nc", 0.1, 1, 4, Some(3usize)),
    ] {
        let (nc, cells) = grid_file(&env, file, res, [-90.0, 90.0, -180.0, 180.0], steps);
        let (nx, ny) = ((360.0 / res) as usize, (180.0 / res) as usize);
        assert_eq!(cells, nx * ny);
        let name = &file[..1];
        let coarse = nx.div_ceil(factor) * ny.div_ceil(factor);
        assert!(coarse <= bound);
        let r = env.load(&nc, "CFGrid", name, &[]);
        assert_ne!(r.code, 0, "{}", r.stdout);
        for want in [
            format!("has {cells} cells"),
            format!("at most {bound} cells fit both"),
            format!("\"coarsen\": {factor} in the config"),
            format!("stores {coarse} cells, which fit"),
        ] {
            assert!(r.stderr.contains(&want), "{want} in {}", r.stderr);
        }
        // info: the models fit with that factor, and a load would store
        // the coarse grid.
        let info = env.run(&["info", s(&nc)]).ok().stdout;
        for want in [
            format!("with \"coarsen\": {factor} (the file's grid is too large for one document)"),
            format!("{steps} documents, {steps} times, {coarse} cells"),
        ] {
            assert!(info.contains(&want), "{want} in {info}");
        }
        if let Some(f) = too_small {
            assert!(nx.div_ceil(f) * ny.div_ceil(f) > bound);
            let r = env.load(&nc, "CFGrid", name, &["-o", &format!("coarsen={f}")]);
            assert_ne!(r.code, 0);
            assert!(
                r.stderr.contains("coord_index entry would be"),
                "{}",
                r.stderr
            );
        }
        // info's starter config has the factor, and loads as it is.
        let cfg: serde_json::Value = serde_json::from_str(
            &env.run(&["info", s(&nc), "--config", "-m", "CFGrid"])
                .ok()
                .stdout,
        )
        .unwrap();
        assert_eq!(cfg["coarsen"], factor, "{cfg}");
        let cfg_path = env.path(&format!("{name}.json"));
        std::fs::write(&cfg_path, cfg.to_string()).unwrap();
        env.load(
            &nc,
            "CFGrid",
            name,
            &["-c", s(&cfg_path), "-o", "precision=6"],
        )
        .ok();
        let md = env.metadata(name);
        assert_eq!(md["coarsened"]["cells"], coarse, "{md}");
        assert_eq!(md["coarsened"]["source_cells"], cells);
        let near = |v: &serde_json::Value, want: f64| (v.as_f64().unwrap() - want).abs() < 1e-9;
        assert!(near(&md["gridres"]["x"], res * factor as f64), "{md}");
        assert!(
            near(&md["bbox"][0], -180.0 + res * factor as f64 / 2.0),
            "{md}"
        );
        let csv = env.path(&format!("{name}.csv"));
        env.run(&["export", "-n", name, "--format", "csv", "--output", s(&csv)])
            .ok();
        check_against_xarray(&python, &nc, factor, &csv, "area");
    }
}

/// `cdo ARGS…`; fails the test (with how to install it) where cdo is not
/// there: a test that calls this is marked with the feature `cdo-tests`.
fn cdo(args: &[&str]) -> String {
    let out = std::process::Command::new("cdo").args(args).output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => panic!("cdo {args:?} failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => panic!(
            "cdo cannot be run ({e}): run the tests with scripts/with-test-env (as root it installs cdo), \
             or without the cdo-tests feature"
        ),
    }
}

/// `export --format netcdf` of a coarsened dataset read back by xarray
/// (dimensions, units, `_FillValue`, times, the coarse coordinates and
/// values, equal to xarray's own coarsen of the source file) and by cdo:
/// `sinfo` sees a 8 × 6 lonlat grid of 3 steps at the source's times, and
/// `info`'s per-step missing count, minimum, mean and maximum are numpy's
/// of xarray's coarse grid.
#[test]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
#[cfg_attr(not(feature = "cdo-tests"), ignore = "needs cdo (feature cdo-tests)")]
fn a_netcdf_export_reads_back_in_xarray_and_cdo() {
    let env = common::Env::new();
    let (nc, _) = grid_file(&env, "polar.nc", 0.5, [78.5, 90.0, -15.0, 0.0], 3);
    env.load(&nc, "CFGrid", "polar", &["-o", "coarsen=4;precision=6"])
        .ok();
    let out = env.path("out.nc");
    env.run(&[
        "export",
        "-n",
        "polar",
        "--format",
        "netcdf",
        "--output",
        s(&out),
    ])
    .ok();
    let python = common::python_with(&["xarray", "netCDF4"]);
    let stats = std::process::Command::new(&python)
        .arg("-c")
        .arg(SCRIPT)
        .args(["checknc", s(&nc), "4", s(&out), "area"])
        .output()
        .unwrap();
    assert!(
        stats.status.success(),
        "{}",
        String::from_utf8_lossy(&stats.stderr)
    );
    let stats: Vec<[f64; 4]> = serde_json::from_slice(&stats.stdout).unwrap();

    let sinfo = cdo(&["sinfo", s(&out)]);
    for want in [
        "lonlat",
        "points=48 (8x6)",
        "time : 3 steps",
        "2004-06-30 00:00:00",
        "2004-06-30 03:00:00",
        "2004-06-30 06:00:00",
    ] {
        let squeezed = sinfo.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(squeezed.contains(want), "{want} in {sinfo}");
    }
    // "  1 : 2004-06-30 00:00:00  0  48  1 :  2.0492  2.3730  2.6475 : -1"
    let info = cdo(&["-s", "info", s(&out)]);
    let rows: Vec<Vec<&str>> = info
        .lines()
        .skip(1)
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|p| p.len() >= 4)
        .collect();
    assert_eq!(rows.len(), 3, "{info}");
    for (row, want) in rows.iter().zip(&stats) {
        // Date and time hold colons too: the last three fields are
        // "level gridsize miss", "min mean max", "parameter".
        let n = row.len();
        let miss: f64 = row[n - 3]
            .split_whitespace()
            .last()
            .unwrap()
            .parse()
            .unwrap();
        let mmm: Vec<f64> = row[n - 2]
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        assert_eq!(miss, want[0], "{info}");
        for (got, w) in mmm.iter().zip(&want[1..]) {
            assert!((got - w).abs() <= 1e-4 * w.abs(), "{got} vs {w}: {info}");
        }
    }
}

/// Send `signal` to `manage ARGS` once `ready` holds (its temporary file
/// or folder exists), and return its exit code and stderr; the command
/// must still be running when the signal is sent.
fn interrupt_when(
    mut cmd: std::process::Command,
    signal: nix::sys::signal::Signal,
    ready: impl Fn() -> bool,
) -> (Option<i32>, String) {
    use std::time::{Duration, Instant};
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !ready() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "manage ended before it made its temporary file"
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no temporary file"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "manage ended before the signal: make its work longer"
    );
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, signal).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// SIGINT and SIGTERM during `export --output` (CSV and NetCDF) and during
/// `info`: `manage` ends with 130 and 143 and leaves nothing behind: no
/// output file, no temporary file beside it, no temporary folder of
/// `info`'s trial loads (in TMPDIR).
#[test]
fn interrupted_exports_and_info_leave_nothing_behind() {
    use nix::sys::signal::Signal;
    let env = common::Env::new();
    // 0.5° global, 48 steps: exports take seconds.
    let grid = env.grid_file("g.mat", &fluxpy::synth::Grid::GLOBAL_HALF_DEGREE, 48);
    env.run(&common::stm_load_args(&grid, "g")).ok();
    for (signal, code, name) in [
        (Signal::SIGINT, 130, "SIGINT"),
        (Signal::SIGTERM, 143, "SIGTERM"),
    ] {
        for format in ["csv", "netcdf"] {
            let dir = env.path(&format!("out-{format}-{code}"));
            std::fs::create_dir(&dir).unwrap();
            let out = dir.join(format!("g.{format}"));
            let cmd = env.command(&["export", "-n", "g", "--format", format, "--output", s(&out)]);
            let (got, stderr) = interrupt_when(cmd, signal, || !entries(&dir).is_empty());
            assert_eq!(got, Some(code), "{format} {name}: {stderr}");
            assert!(
                stderr.contains(&format!("interrupted: {name} received")),
                "{stderr}"
            );
            assert_eq!(entries(&dir), Vec::<String>::new(), "{format} {name}");
        }
        let tmp = env.path(&format!("tmp-{code}"));
        std::fs::create_dir(&tmp).unwrap();
        let mut cmd = env.command(&["info", s(&grid)]);
        cmd.env("TMPDIR", &tmp);
        let (got, stderr) = interrupt_when(cmd, signal, || !entries(&tmp).is_empty());
        assert_eq!(got, Some(code), "info {name}: {stderr}");
        assert_eq!(entries(&tmp), Vec::<String>::new(), "info {name}");
    }
}
