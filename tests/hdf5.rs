//! HDF5 and MATLAB v7.3 inputs, end to end: the same matrix saved as MAT v5,
//! as v7.3 and as plain HDF5 loads into the same documents and metadata.

mod common;

use std::path::{Path, PathBuf};

use common::Env;
use fluxpy::config::{parse_overrides, Config};
use fluxpy::model::{Model, SpatioTemporal};
use fluxpy::synth::{
    flux_matrix, write_hdf5, write_mat_v5, write_mat_v5_value, write_mat_v73, Columns, Element,
    Grid, H5Layout,
};
use matrw::MatlabType;
use ndarray::Array2;
use serde_json::{json, Value};

const STM: &str = "SpatioTemporalMatrix";
const H5_PATH: &str = "fluxes/2004/flux";

/// A 1° window of 10 × 6 cells and 5 steps: small, but several blocks.
fn matrix() -> Array2<f64> {
    let grid = Grid::NORTH_AMERICA.with_window(-100.0, -90.0, 30.0, 36.0);
    flux_matrix(&grid, 5, 3.0)
}

fn chunked_gzip() -> H5Layout {
    H5Layout {
        chunk: Some((7, 2)),
        gzip: Some(5),
        columns_per_write: 3,
        ..Default::default()
    }
}

/// Load `file` into a fresh store as `flux`; its export and metadata.
fn load(file: &Path, extra: &str) -> (String, Value) {
    let env = Env::new();
    let o = format!("timestamp=2004-06-30T00:00:00{extra}");
    let r = env
        .run(&[
            "load",
            "-q",
            "-p",
            file.to_str().unwrap(),
            "-m",
            STM,
            "-n",
            "flux",
            "-o",
            &o,
        ])
        .ok();
    assert_eq!(r.stderr, "", "nothing on stderr with -q off a terminal");
    let docs = env.run(&["export", "-n", "flux"]).ok().stdout;
    let mut md = env.run(&["db", "-n", "flux"]).ok().json();
    // `db -n` adds the files the dataset came from; they differ by design.
    md.as_object_mut().unwrap().remove("files");
    (docs, md)
}

#[test]
fn v73_and_plain_hdf5_give_the_documents_of_mat_v5() {
    common::without_hdf5_file_locks();
    let dir = tempfile::tempdir().unwrap();
    let m = matrix();
    let v5 = dir.path().join("flux_v5.mat");
    write_mat_v5(&v5, "flux", &m, true).unwrap();
    let (want_docs, want_md) = load(&v5, "");
    assert_eq!(want_docs.lines().count(), 5);
    assert_eq!(want_md["bbox"], json!([-99.5, 30.5, -90.5, 35.5]));

    let mut files: Vec<(PathBuf, &str)> = vec![];
    for (i, layout) in [H5Layout::default(), chunked_gzip()].iter().enumerate() {
        let v73 = dir.path().join(format!("flux_{i}.mat"));
        write_mat_v73(&v73, "flux", &Columns::of(&m), layout).unwrap();
        files.push((v73, ""));
        // Not named .h5: the format is told from the bytes.
        let h5 = dir.path().join(format!("flux_{i}.data"));
        write_hdf5(&h5, H5_PATH, &Columns::of(&m), layout).unwrap();
        files.push((h5, ";var_name=fluxes/2004/flux"));
    }
    for (file, extra) in &files {
        let (docs, md) = load(file, extra);
        assert_eq!(docs, want_docs, "documents of {}", file.display());
        assert_eq!(md, want_md, "metadata of {}", file.display());
        assert_eq!(md["bboxmd5"], want_md["bboxmd5"]);
    }
    // Without var_name the nested dataset is found by the default rule.
    let (docs, _) = load(&files[1].0, "");
    assert_eq!(docs, want_docs);
}

#[test]
fn single_and_integer_datasets_load_like_their_mat_v5_twins() {
    common::without_hdf5_file_locks();
    let dir = tempfile::tempdir().unwrap();
    let m = matrix();
    let dims = m.dim();
    let col_major = |f: &dyn Fn(f64) -> f64| -> Vec<f64> {
        fluxpy::synth::column_major(&m).into_iter().map(f).collect()
    };

    // single: values as f32, rounded from the f32 value
    let as_f32 = m.mapv(|v| v as f32 as f64);
    let v5 = dir.path().join("single_v5.mat");
    let singles: Vec<f32> = col_major(&|v| v).iter().map(|&v| v as f32).collect();
    write_mat_v5_value(&v5, "flux", dims, MatlabType::F32(singles), false).unwrap();
    let single = H5Layout {
        element: Element::Single,
        ..chunked_gzip()
    };
    let v73 = dir.path().join("single.mat");
    write_mat_v73(&v73, "flux", &Columns::of(&m), &single).unwrap();
    let h5 = dir.path().join("single.h5");
    write_hdf5(&h5, H5_PATH, &Columns::of(&m), &single).unwrap();
    let (want, want_md) = load(&v5, "");
    for f in [&v73, &h5] {
        let (docs, md) = load(f, "");
        assert_eq!(docs, want, "{}", f.display());
        assert_eq!(md, want_md, "{}", f.display());
    }
    let first: Value = serde_json::from_str(want.lines().next().unwrap()).unwrap();
    for i in [0, 17, 59] {
        let expect = fluxpy::model::round_to(as_f32[[i, 2]], 2);
        assert_eq!(first["values"][i].as_f64().unwrap(), expect, "cell {i}");
    }

    // int32: coordinates and fluxes in hundredths, as integers
    let scaled = m.mapv(|v| (v * 100.0).trunc());
    let v5 = dir.path().join("int_v5.mat");
    let ints: Vec<i32> = fluxpy::synth::column_major(&scaled)
        .iter()
        .map(|&v| v as i32)
        .collect();
    write_mat_v5_value(&v5, "flux", dims, MatlabType::I32(ints), true).unwrap();
    let h5 = dir.path().join("int.h5");
    let int32 = H5Layout {
        element: Element::Int32,
        ..Default::default()
    };
    write_hdf5(&h5, H5_PATH, &Columns::of(&scaled), &int32).unwrap();
    let v73 = dir.path().join("int.mat");
    write_mat_v73(&v73, "flux", &Columns::of(&scaled), &int32).unwrap();
    let (want, want_md) = load(&v5, "");
    for f in [&h5, &v73] {
        let (docs, md) = load(f, "");
        assert_eq!(docs, want, "{}", f.display());
        assert_eq!(md, want_md, "{}", f.display());
    }
    let last: Value = serde_json::from_str(want.lines().last().unwrap()).unwrap();
    assert_eq!(last["values"][3].as_f64().unwrap(), scaled[[3, 6]]);
    assert_eq!(want_md["bbox"], json!([-9950.0, 3050.0, -9050.0, 3550.0]));

    // int16 and uint8 through the HDF5 source itself
    for element in [Element::Int16, Element::UInt8] {
        let f = dir.path().join(format!("{element:?}.mat"));
        let small = m.mapv(|v| v.abs().trunc());
        let layout = H5Layout {
            element,
            ..Default::default()
        };
        write_mat_v73(&f, "flux", &Columns::of(&small), &layout).unwrap();
        let mut src = fluxpy::source::open(&f, None).unwrap();
        assert_eq!(src.info().class, element.matlab_class());
        assert_eq!(src.read_columns(0, 7).unwrap(), small);
    }
}

#[test]
fn nan_and_infinities_are_stored_as_such_and_left_out_of_stats() {
    common::without_hdf5_file_locks();
    let dir = tempfile::tempdir().unwrap();
    let mut m = matrix();
    m[[0, 2]] = f64::NAN;
    m[[1, 2]] = f64::INFINITY;
    m[[2, 3]] = f64::NEG_INFINITY;
    for element in [Element::Double, Element::Single] {
        let layout = H5Layout {
            element,
            ..chunked_gzip()
        };
        let f = dir.path().join(format!("nan_{element:?}.mat"));
        write_mat_v73(&f, "flux", &Columns::of(&m), &layout).unwrap();
        let (docs, md) = load(&f, "");
        let docs: Vec<Value> = docs
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let missing = |s: &str| serde_json::json!({ "$numberDouble": s });
        assert_eq!(docs[0]["values"][0], missing("NaN"));
        assert_eq!(docs[0]["values"][1], missing("Infinity"));
        assert_eq!(docs[1]["values"][2], missing("-Infinity"));
        assert!(docs[0]["values"][2].is_f64());

        let stored: Vec<f64> = docs
            .iter()
            .flat_map(|d| d["values"].as_array().unwrap().clone())
            .filter_map(|v| v.as_f64())
            .collect();
        assert_eq!(stored.len(), 60 * 5 - 3, "three missing values");
        let stats = &md["stats"]["values"];
        let mean = stored.iter().sum::<f64>() / stored.len() as f64;
        assert!(
            (stats["mean"].as_f64().unwrap() - mean).abs() < 1e-9,
            "{stats}"
        );
        let min = stored.iter().copied().fold(f64::INFINITY, f64::min);
        let max = stored.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(stats["min"].as_f64().unwrap(), min);
        assert_eq!(stats["max"].as_f64().unwrap(), max);
        assert!(stats["std"].as_f64().unwrap().is_finite());
    }
}

/// The model as `load` builds it, with a chosen block size.
fn model(block_values: usize) -> SpatioTemporal {
    let mut c = Config::new();
    c.push("defaults", SpatioTemporal::defaults());
    c.push("-o", parse_overrides("timestamp=2004-06-30").unwrap());
    SpatioTemporal::from_config("flux", &c)
        .unwrap()
        .with_block_values(block_values)
}

fn documents(file: &Path, block_values: usize) -> (Vec<Vec<u8>>, usize) {
    let mut src = fluxpy::source::open(file, None).unwrap();
    let mut docs = vec![];
    let mut batches = 0;
    model(block_values)
        .convert(&mut *src, &mut |b| {
            batches += 1;
            docs.extend(b.raw_documents().into_iter().map(|d| d.into_bytes()));
            Ok(())
        })
        .unwrap();
    (docs, batches)
}

#[test]
fn many_small_blocks_give_the_documents_of_one_block() {
    common::without_hdf5_file_locks();
    let dir = tempfile::tempdir().unwrap();
    let m = flux_matrix(
        &Grid::NORTH_AMERICA.with_window(-100.0, -90.0, 30.0, 36.0),
        23,
        3.0,
    );
    let v5 = dir.path().join("whole.mat");
    write_mat_v5(&v5, "flux", &m, true).unwrap();
    let (whole, one) = documents(&v5, usize::MAX);
    assert_eq!((whole.len(), one), (23, 1));
    let v73 = dir.path().join("blocks.mat");
    write_mat_v73(&v73, "flux", &Columns::of(&m), &chunked_gzip()).unwrap();
    let h5 = dir.path().join("blocks.h5");
    write_hdf5(&h5, H5_PATH, &Columns::of(&m), &chunked_gzip()).unwrap();
    for f in [&v73, &h5] {
        // 60 cells: one step per block, then three (not a chunk multiple).
        for (values, blocks) in [(1, 23), (180, 8)] {
            let (docs, n) = documents(f, values);
            assert_eq!(n, blocks, "{}", f.display());
            assert!(docs == whole, "{} in blocks of {values}", f.display());
        }
    }
}

#[test]
fn what_is_not_a_numeric_matrix_is_refused_in_one_line() {
    common::without_hdf5_file_locks();
    let env = Env::new();
    let f = env.path("odd.h5");
    {
        let file = hdf5::File::create(&f).unwrap();
        file.new_dataset::<f64>()
            .shape([4])
            .create("vector")
            .unwrap();
        file.new_dataset::<f64>()
            .shape([0, 3])
            .create("empty")
            .unwrap();
        file.new_dataset::<f64>()
            .shape([2, 3, 4])
            .create("cube")
            .unwrap();
        let text: hdf5::types::VarLenUnicode = "a".parse().unwrap();
        file.new_dataset_builder()
            .with_data(&ndarray::arr2(&[
                [text.clone(), text.clone()],
                [text.clone(), text],
            ]))
            .create("g/text")
            .unwrap();
        file.new_dataset::<Complex>()
            .shape([2, 2])
            .create("complex")
            .unwrap();
        let chars = file
            .new_dataset::<u16>()
            .shape([3, 2])
            .create("chars")
            .unwrap();
        chars
            .new_attr::<hdf5::types::FixedAscii<8>>()
            .create("MATLAB_class")
            .unwrap()
            .write_scalar(&hdf5::types::FixedAscii::<8>::from_ascii("char").unwrap())
            .unwrap();
    }
    let p = f.to_str().unwrap();
    for (var, needle) in [
        ("vector", "is a vector (4 values)"),
        ("empty", "is empty"),
        ("cube", "has 3 dimensions (2×3×4)"),
        ("g/text", "is text"),
        ("complex", "is complex"),
        ("chars", "is a char array (text)"),
        ("g", "is a group, not a dataset"),
        (
            "nope",
            "is not in the file; it holds: chars, complex, cube, empty, g/text, vector",
        ),
    ] {
        let o = format!("timestamp=2004-06-30;var_name={var}");
        let r = env.run(&["load", "-p", p, "-m", STM, "-n", "x", "-o", &o]);
        assert_eq!(r.code, 1, "{var}");
        assert_eq!(r.stderr.lines().count(), 1, "{var}: {}", r.stderr);
        assert!(
            r.stderr.contains(&format!("variable '{var}' {needle}")),
            "{var}: {}",
            r.stderr
        );
        assert!(r.stderr.contains("odd.h5"), "{}", r.stderr);
    }
    // A truncated v7.3 file: the header is there, the HDF5 data is not whole.
    let m = matrix();
    let good = env.path("good.mat");
    write_mat_v73(&good, "flux", &Columns::of(&m), &H5Layout::default()).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let cut = env.path("cut.mat");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let r = env.run(&[
        "load",
        "-p",
        cut.to_str().unwrap(),
        "-m",
        STM,
        "-n",
        "x",
        "-o",
        "timestamp=2004-06-30",
    ]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("cut.mat"), "{}", r.stderr);
    assert_eq!(env.run(&["db", "-l", "collections"]).ok().stdout, "");
}

#[derive(hdf5::H5Type, Clone, Copy)]
#[repr(C)]
struct Complex {
    real: f64,
    imag: f64,
}

/// A row-major matrix of little-endian doubles stored contiguously is read
/// straight from the file, the others through the library. Written by h5py
/// (an independent writer) in three layouts, and two of them behind a user
/// block of h5py's (zeros, not MATLAB's header: the file starts with no
/// signature at all), each loads into the documents MAT v5 gives of the
/// same matrix (the MAT v5 reader is another code path entirely).
#[test]
fn row_major_files_read_straight_or_through_the_library_agree() {
    common::without_hdf5_file_locks();
    let Some(python) = common::python_with(&["h5py", "numpy"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let m = matrix();
    let v5 = dir.path().join("flux_v5.mat");
    write_mat_v5(&v5, "flux", &m, true).unwrap();
    let (want_docs, want_md) = load(&v5, "");
    // The matrix goes to Python as the text of its doubles, bit for bit.
    let values: Vec<String> = m.iter().map(|v| format!("{:?}", v)).collect();
    let text = dir.path().join("matrix.txt");
    std::fs::write(&text, values.join("\n")).unwrap();
    let script = r#"
import sys, h5py, numpy as np
text, out, rows, cols = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
m = np.array([float(v) for v in open(text).read().split()]).reshape(rows, cols)
layouts = {
    "le_contiguous.h5": dict(dtype="<f8"),
    "be_contiguous.h5": dict(dtype=">f8"),
    "le_chunked.h5": dict(dtype="<f8", chunks=(7, 2), compression="gzip"),
}
for name, how in layouts.items():
    dtype = how.pop("dtype")
    with h5py.File(out + "/" + name, "w") as f:
        f.create_dataset("fluxes/2004/flux", data=m.astype(dtype), **how)
    if name != "be_contiguous.h5":
        with h5py.File(out + "/userblock_" + name, "w", userblock_size=4096) as f:
            f.create_dataset("fluxes/2004/flux", data=m.astype(dtype), **how)
"#;
    let (rows, cols) = (m.nrows().to_string(), m.ncols().to_string());
    let out = dir.path().to_str().unwrap();
    common::run_python(
        &python,
        script,
        &[text.to_str().unwrap(), out, &rows, &cols],
    );
    for name in [
        "le_contiguous.h5",
        "be_contiguous.h5",
        "le_chunked.h5",
        "userblock_le_contiguous.h5",
        "userblock_le_chunked.h5",
    ] {
        let (docs, md) = load(&dir.path().join(name), ";var_name=fluxes/2004/flux");
        assert_eq!(docs, want_docs, "documents of {name}");
        assert_eq!(md, want_md, "metadata of {name}");
    }
}
