//! Writes a small seed corpus for the fuzz targets in `fuzz/` from files the
//! project generates: MAT v5 files (compressed or not, several classes), and
//! configs and `-o` strings of every documented form.
//!
//!     cargo run --example fuzz_seeds

use std::fs;
use std::path::{Path, PathBuf};

use fluxpy::synth::{self, Grid, Sample};
use matrw::MatlabType;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mat = root.join("mat_v5");
    fs::create_dir_all(&mat).unwrap();
    let small = Grid::NORTH_AMERICA.with_window(-100.0, -96.0, 40.0, 42.0);
    let m = synth::flux_matrix(&small, 3, 3.0);
    synth::write_mat_v5(&mat.join("double_compressed.mat"), "flux", &m, true).unwrap();
    synth::write_mat_v5(&mat.join("double_plain.mat"), "flux", &m, false).unwrap();
    let dims = m.dim();
    let values = synth::column_major(&m);
    synth::write_mat_v5_value(
        &mat.join("single.mat"),
        "flux",
        dims,
        MatlabType::F32(values.iter().map(|&v| v as f32).collect()),
        false,
    )
    .unwrap();
    synth::write_mat_v5_value(
        &mat.join("int16.mat"),
        "flux",
        dims,
        MatlabType::I16(values.iter().map(|&v| (v * 100.0) as i16).collect()),
        true,
    )
    .unwrap();

    let h5 = root.join("hdf5_file");
    fs::create_dir_all(&h5).unwrap();
    let cols = synth::Columns::of(&m);
    synth::write_mat_v73(
        &h5.join("v73.mat"),
        "flux",
        &cols,
        &synth::H5Layout::default(),
    )
    .unwrap();
    synth::write_hdf5(
        &h5.join("plain.h5"),
        "fluxes/flux",
        &cols,
        &synth::H5Layout::default(),
    )
    .unwrap();
    let chunked = synth::H5Layout {
        element: synth::Element::Single,
        chunk: Some((4, 2)),
        gzip: Some(4),
        ..Default::default()
    };
    synth::write_hdf5(&h5.join("chunked_gzip.h5"), "flux", &cols, &chunked).unwrap();

    let nc = root.join("netcdf_file");
    fs::create_dir_all(&nc).unwrap();
    for (name, options) in [
        ("cf_netcdf4.nc", netcdf::Options::NETCDF4),
        ("cf_classic.nc", netcdf::Options::CLASSIC),
        ("cf_64bit_offset.nc", netcdf::Options::_64BIT_OFFSET),
    ] {
        write_cf(&nc.join(name), options).unwrap();
    }

    let cfg = root.join("config_file");
    fs::create_dir_all(&cfg).unwrap();
    write(
        &cfg,
        "sample.json",
        &serde_json::to_string_pretty(&Sample::config()).unwrap(),
    );
    for name in [
        "SpatioTemporalMatrix",
        "KrigedXCO2Matrix",
        "XCO2Matrix",
        "CFGrid",
    ] {
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("configs/{name}.json"));
        if let Ok(text) = fs::read_to_string(src) {
            write(&cfg, &format!("{name}.json"), &text);
        }
    }

    let o = root.join("overrides");
    fs::create_dir_all(&o).unwrap();
    for (i, s) in [
        "timestamp=2004-06-30T00:00:00;title=MyData",
        "gridres={'units':'degrees','x':1.0,'y':1.0};flag=True",
        "steps=[3600];units={\"values\": \"mol;m-2\"}",
        "t=(1, 2);n=None;x=-1.5e-3",
        "2004-06-30T03:00:00+02:00",
    ]
    .iter()
    .enumerate()
    {
        write(&o, &format!("seed{i}"), s);
    }
    println!("wrote seeds under {}", root.display());
}

fn write(dir: &Path, name: &str, text: &str) {
    fs::write(dir.join(name), text).unwrap();
}

/// A small CF grid `flux(time, latitude, longitude)` with fill values and
/// packing, in the NetCDF format `options` selects.
fn write_cf(path: &Path, options: netcdf::Options) -> netcdf::Result<()> {
    let mut f = netcdf::create_with(path, options)?;
    f.add_attribute("title", "seed")?;
    f.add_dimension("time", 3)?;
    f.add_dimension("latitude", 2)?;
    f.add_dimension("longitude", 4)?;
    let mut v = f.add_variable::<f64>("time", &["time"])?;
    v.put_attribute("units", "hours since 2004-06-30 01:30:00")?;
    v.put_attribute("calendar", "standard")?;
    let mut v = f.add_variable::<f32>("latitude", &["latitude"])?;
    v.put_attribute("standard_name", "latitude")?;
    let mut v = f.add_variable::<f32>("longitude", &["longitude"])?;
    v.put_attribute("units", "degrees_east")?;
    let mut v = f.add_variable::<i16>("flux", &["time", "latitude", "longitude"])?;
    v.set_fill_value(-32768i16)?;
    v.put_attribute("scale_factor", 0.01f32)?;
    v.put_attribute("add_offset", 1.0f32)?;
    v.put_attribute("units", "mol m-2 s-1")?;
    // A classic file takes values only out of define mode.
    f.enddef()?;
    let missing = || netcdf::Error::Str("variable defined above".into());
    f.variable_mut("time")
        .ok_or_else(missing)?
        .put_values(&[0.0, 3.0, 9.0], ..)?;
    f.variable_mut("latitude")
        .ok_or_else(missing)?
        .put_values(&[0.5f32, -0.5], ..)?;
    f.variable_mut("longitude")
        .ok_or_else(missing)?
        .put_values(&[0.5f32, 90.5, 180.5, 270.5], ..)?;
    let values: Vec<i16> = (0..24)
        .map(|i| if i % 5 == 0 { -32768 } else { i * 7 })
        .collect();
    f.variable_mut("flux")
        .ok_or_else(missing)?
        .put_values(&values, ..)?;
    f.close()
}
