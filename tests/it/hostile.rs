//! Hostile input: every malformed file, config and argument is refused with
//! exit code 1, one line on stderr naming the file (or the argument) at
//! fault, no panic, and a store left exactly as it was.

use crate::common;

use std::path::{Path, PathBuf};

use common::{python_with, run_python, sample, Env, Run};
use fluxpy::doc::{COORD_INDEX, METADATA};
use fluxpy::synth;
use matrw::{matvar, MatVariable, MatlabType, NumericArray};

const STM: &str = "SpatioTemporalMatrix";

/// A store holding the sample, and a way to see whether anything changed.
struct Guarded {
    env: Env,
    before: (Vec<(String, u64)>, Vec<Vec<u8>>),
}

impl Guarded {
    fn new() -> Self {
        let env = Env::new();
        env.run(&[
            "load",
            "-p",
            sample().to_str().unwrap(),
            "-m",
            STM,
            "-n",
            "s",
        ])
        .ok();
        let before = Self::state(&env);
        Self { env, before }
    }

    /// Everything the store shows, read through the library (a refusal is
    /// checked against it hundreds of times): every collection with its
    /// count, the documents of every collection, metadata and coord_index
    /// included, as their BSON bytes in `_id` order.
    fn state(env: &Env) -> (Vec<(String, u64)>, Vec<Vec<u8>>) {
        use fluxpy::store::{Datasets, Filter, Store};
        let store = fluxpy::store::embedded::Embedded::open_read_only(&env.db()).unwrap();
        let mut names = store.collections().unwrap();
        names.extend([METADATA.to_string(), COORD_INDEX.to_string()]);
        let mut counts = vec![];
        let mut docs = vec![];
        for c in names {
            counts.push((c.clone(), store.count(&c).unwrap()));
            store
                .scan(&c, &Filter::All, &mut |d| {
                    docs.push(bson::to_vec(&d).unwrap());
                    Ok(())
                })
                .unwrap();
        }
        (counts, docs)
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.env.path(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn mat(&self, name: &str, var: MatVariable) -> PathBuf {
        let p = self.env.path(name);
        synth::write_mat_v5_variables(&p, vec![("v".into(), var)], true).unwrap();
        p
    }

    /// Run a load that must fail: exit 1, one stderr line containing every
    /// `needle`, no panic, store unchanged.
    fn refuse(&self, args: &[&str], needles: &[&str]) -> Run {
        let mut a = vec!["load"];
        a.extend(args);
        if !args.contains(&"-n") {
            a.extend(["-n", "s"]);
        }
        let r = self.env.run(&a);
        assert_eq!(r.code, 1, "{a:?} should exit 1: {}{}", r.stdout, r.stderr);
        assert_eq!(
            r.stderr.lines().count(),
            1,
            "{a:?}: not one line:\n{}",
            r.stderr
        );
        assert!(
            !r.stderr.contains("panicked") && !r.stderr.contains("internal error"),
            "{}",
            r.stderr
        );
        for n in needles {
            assert!(r.stderr.contains(n), "{a:?}: '{n}' not in: {}", r.stderr);
        }
        assert_eq!(
            Self::state(&self.env),
            self.before,
            "{a:?} changed the store"
        );
        // `SHOW_REFUSALS=1 cargo test --test hostile -- --nocapture` lists them.
        if std::env::var_os("SHOW_REFUSALS").is_some() {
            eprintln!("{}", r.stderr.trim_end());
        }
        r
    }

    fn refuse_file(&self, p: &Path, needles: &[&str]) -> Run {
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        let mut n: Vec<&str> = vec![&name];
        n.extend(needles);
        self.refuse(
            &[
                "-p",
                p.to_str().unwrap(),
                "-m",
                STM,
                "-o",
                "timestamp=2004-06-30",
            ],
            &n,
        )
    }
}

fn sample_bytes() -> Vec<u8> {
    std::fs::read(sample()).unwrap()
}

fn numeric(rows: usize, cols: usize, values: MatlabType, imag: Option<MatlabType>) -> MatVariable {
    MatVariable::NumericArray(NumericArray::new(vec![rows, cols], values, imag).unwrap())
}

#[test]
fn files_that_are_not_mat_files() {
    let g = Guarded::new();
    g.refuse_file(&g.file("empty.mat", b""), &["empty"]);
    g.refuse_file(
        &g.file("notes.mat", "a text file\n".repeat(50).as_bytes()),
        &["not a MATLAB"],
    );
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    g.refuse_file(&g.file("noise.mat", &noise), &["not a MATLAB"]);
}

#[test]
fn truncated_mat_files() {
    let g = Guarded::new();
    let full = sample_bytes();
    g.refuse_file(
        &g.file("cut_header.mat", &full[..100]),
        &["header is incomplete"],
    );
    g.refuse_file(&g.file("after_header.mat", &full[..128]), &["no variable"]);
    g.refuse_file(
        &g.file("cut_middle.mat", &full[..full.len() / 2]),
        &["truncated"],
    );
    // A damaged body whose sizes still add up: the parser's refusal is one line.
    let mut flipped = full.clone();
    for b in &mut flipped[200..400] {
        *b ^= 0x5a;
    }
    g.refuse_file(&g.file("flipped.mat", &flipped), &[]);
}

#[test]
fn variables_that_are_not_numeric_matrices() {
    let g = Guarded::new();
    let cases: Vec<(&str, MatVariable, &str)> = vec![
        ("cell.mat", matvar!([1.0, "abc"]), "cell array"),
        ("struct.mat", matvar!({ a: 1.0, b: 2.0 }), "struct"),
        ("char.mat", matvar!("some text"), "char"),
        (
            "complex.mat",
            numeric(
                2,
                3,
                MatlabType::F64(vec![1.0; 6]),
                Some(MatlabType::F64(vec![2.0; 6])),
            ),
            "complex",
        ),
        (
            "sparse.mat",
            numeric(
                2,
                3,
                MatlabType::F64(vec![0.0, 1.0, 0.0, 0.0, 2.0, 0.0]),
                None,
            )
            .to_sparse()
            .unwrap(),
            "sparse",
        ),
        ("vector.mat", matvar!([1.0, 2.0, 3.0]), "vector"),
        ("empty_var.mat", matvar!([]), "empty"),
        (
            "logical.mat",
            numeric(2, 3, MatlabType::BOOL(vec![true; 6]), None),
            "logical",
        ),
    ];
    for (file, var, what) in cases {
        let p = g.mat(file, var);
        g.refuse_file(&p, &["variable 'v'", what]);
    }
}

#[test]
fn wrong_shape_or_missing_variable() {
    let g = Guarded::new();
    let two_cols = numeric(
        3,
        2,
        MatlabType::F64(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        None,
    );
    g.refuse_file(&g.mat("two_columns.mat", two_cols), &["2 columns"]);
    let p = sample();
    g.refuse(
        &["-p", p.to_str().unwrap(), "-m", STM, "-o", "var_name=nope"],
        &["flux_na_2004.mat", "'nope'", "flux_na_2004"],
    );
}

#[test]
fn bad_configs() {
    let g = Guarded::new();
    let data = g.env.path("data.mat");
    std::fs::copy(sample(), &data).unwrap();
    let d = data.to_str().unwrap();
    let cfg = g.env.path("data.json");
    for (text, needles) in [
        (
            "{\"timestamp\": \"2004-06-30\",",
            vec!["data.json", "not valid JSON"],
        ),
        ("[1, 2]", vec!["data.json", "one JSON object"]),
        (
            "{\"timestamp\": \"2004-06-30\", \"steps\": [\"three hours\"]}",
            vec!["data.json", "'steps'"],
        ),
        (
            "{\"timestamp\": \"2004-13-45\"}",
            vec!["data.json", "'timestamp'", "2004-13-45"],
        ),
        (
            "{\"steps\": [10800]}",
            vec!["data.mat", "'timestamp' is missing"],
        ),
        (
            "{\"timestamp\": \"2004-06-30\", \"precision\": -1}",
            vec!["data.json", "'precision'"],
        ),
    ] {
        std::fs::write(&cfg, text).unwrap();
        g.refuse(&["-p", d, "-m", STM], &needles);
    }
    std::fs::write(&cfg, "{\"timestamp\": \"2004-06-30\"}").unwrap();
    g.refuse(&["-p", d, "-m", STM, "-o", "steps"], &["-o", "key=value"]);
    g.refuse(&["-p", d, "-m", STM, "-o", "=1"], &["-o", "empty key"]);
    g.refuse(
        &["-p", d, "-m", STM, "-c", "/no/such/config.json"],
        &["/no/such/config.json"],
    );
    g.refuse(
        &["-p", d, "-m", "FluxMatrix"],
        &["unknown model 'FluxMatrix'"],
    );
    g.refuse(&["-p", d, "-m", STM, "-d", "Grid3D"], &["Grid3D"]);
}

#[test]
fn bad_collection_names() {
    let g = Guarded::new();
    let p = sample();
    let p = p.to_str().unwrap();
    let long = "n".repeat(121);
    for name in [
        "metadata",
        "coord_index",
        "summary_stats",
        "system.js",
        "_x",
        "",
        long.as_str(),
        "a$b",
    ] {
        g.refuse(&["-p", p, "-m", STM, "-n", name], &["collection name"]);
    }
    // A NUL cannot travel in a command-line argument; the check is unit-tested
    // in store::tests::names_that_are_refused.
}

#[test]
fn paths_that_cannot_be_read() {
    let g = Guarded::new();
    g.refuse(
        &["-p", "/no/such/file.mat", "-m", STM],
        &["/no/such/file.mat"],
    );
    let dir = g.env.path("a_directory.mat");
    std::fs::create_dir(&dir).unwrap();
    g.refuse(
        &["-p", dir.to_str().unwrap(), "-m", STM],
        &["a_directory.mat", "directory"],
    );
}

#[test]
fn export_and_db_of_unknown_things_are_one_line() {
    let g = Guarded::new();
    for args in [
        vec!["export", "-n", "nope"],
        vec!["export", "-n", "s", "--at", "not-a-time"],
        vec!["db", "-n", "nope"],
        vec!["remove", "-n", "nope"],
        vec!["rename", "-n", "nope", "-r", "other"],
    ] {
        let r = g.env.run(&args);
        assert_eq!(r.code, 1, "{args:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(
            r.stderr.contains("nope") || r.stderr.contains("not-a-time"),
            "{}",
            r.stderr
        );
    }
    assert_eq!(Guarded::state(&g.env), g.before);
}

fn small_grid() -> ndarray::Array2<f64> {
    synth::flux_matrix(
        &synth::Grid::NORTH_AMERICA.with_window(-100.0, -90.0, 30.0, 36.0),
        12,
        3.0,
    )
}

#[test]
fn truncated_and_damaged_hdf5_files() {
    common::without_hdf5_file_locks();
    let g = Guarded::new();
    let m = small_grid();
    let cols = synth::Columns::of(&m);

    let v73 = g.env.path("whole73.mat");
    synth::write_mat_v73(&v73, "flux", &cols, &synth::H5Layout::default()).unwrap();
    let bytes = std::fs::read(&v73).unwrap();
    g.refuse_file(&g.file("cut73.mat", &bytes[..bytes.len() / 2]), &[]);
    g.refuse_file(&g.file("cut73_header.mat", &bytes[..600]), &[]);

    let gz = synth::H5Layout {
        chunk: Some((20, 2)),
        gzip: Some(6),
        ..Default::default()
    };
    let h5 = g.env.path("whole.h5");
    synth::write_hdf5(&h5, "flux", &cols, &gz).unwrap();
    let bytes = std::fs::read(&h5).unwrap();
    g.refuse_file(&g.file("cut.h5", &bytes[..bytes.len() * 2 / 3]), &[]);
    // Damage the compressed chunks (the end of the file), not the superblock.
    let mut damaged = bytes.clone();
    let n = damaged.len();
    for b in &mut damaged[n - n / 3..n - 16] {
        *b = b.wrapping_mul(31).wrapping_add(7);
    }
    g.refuse_file(&g.file("damaged_chunk.h5", &damaged), &[]);
}

#[test]
fn hdf5_datasets_that_declare_more_than_the_file_holds() {
    common::without_hdf5_file_locks();
    let g = Guarded::new();
    // Chunked, 100,000 × 10 declared, nothing written: HDF5 would hand back
    // fill values for every cell.
    let empty = g.env.path("unwritten.h5");
    {
        let f = hdf5::File::create(&empty).unwrap();
        f.new_dataset::<f64>()
            .chunk([1000, 10])
            .shape([100_000, 10])
            .create("flux")
            .unwrap();
    }
    g.refuse_file(&empty, &["variable 'flux'", "chunks"]);

    // An impossible shape: refused before anything is allocated.
    let absurd = g.env.path("absurd.h5");
    {
        let f = hdf5::File::create(&absurd).unwrap();
        f.new_dataset::<f64>()
            .chunk([1, 1])
            .shape([1usize << 31, 1usize << 31])
            .create("flux")
            .unwrap();
    }
    g.refuse_file(&absurd, &["variable 'flux'"]);

    // A contiguous dataset whose file was cut after its metadata.
    let m = small_grid();
    let whole = g.env.path("contiguous.h5");
    synth::write_hdf5(
        &whole,
        "flux",
        &synth::Columns::of(&m),
        &synth::H5Layout::default(),
    )
    .unwrap();
    let bytes = std::fs::read(&whole).unwrap();
    g.refuse_file(
        &g.file("contiguous_cut.h5", &bytes[..bytes.len() - 2000]),
        &[],
    );
}

#[test]
fn regressions_found_by_fuzzing() {
    let g = Guarded::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for f in files {
        g.refuse_file(&f, &[]);
    }
    // libhdf5 1.10 itself crashes on these (a read through a null pointer
    // while it parses the file's metadata; the fourth, a group's local
    // heap, in `H5F__accum_read`): the crash guard turns that into the
    // one-line refusal. (The first is now refused by a check of the chunk
    // index before libhdf5 reads it.)
    for n in 2..=4 {
        g.refuse_file(
            &dir.join(format!("hdf5-library-crash-{n}.h5")),
            &["the HDF5 library crashed reading this file"],
        );
    }
    // A driver information block that declares 2.3 GB in a 1.8 KB file:
    // libhdf5 1.10 allocated (and touched) the 2.3 GB before reading it.
    g.refuse_file(
        &dir.join("hdf5-driver-information-declares-2-gb.h5"),
        &[
            "damaged superblock",
            "driver information block at byte 1024 declares 2298478592 bytes",
        ],
    );
    // libhdf5 1.10 wrote a chunk it found by offset into the buffer sized
    // for another entry of the same offset: refused before any chunk read.
    g.refuse_file(
        &dir.join("hdf5-chunk-listed-twice.h5"),
        &["'flux'", "[0, 0]", "the index lists it more than once"],
    );
    // A chunk stored without filters in fewer bytes than a chunk holds:
    // libhdf5 1.10 read the stored bytes, then copied a whole chunk.
    g.refuse_file(
        &dir.join("hdf5-unfiltered-chunk-stored-short.h5"),
        &[
            "'flux'",
            "27 bytes stored for a chunk of 32, without compression",
        ],
    );
    // More rows than the dataspace's maximum: the library cannot count the
    // chunks, and the reader allocated for 14 quadrillion rows.
    g.refuse_file(
        &dir.join("hdf5-more-rows-than-its-maximum.h5"),
        &["'flux'", "a chunk index the library cannot read"],
    );
    // A dimension name that is not UTF-8: the netcdf crate panicked.
    g.refuse_file(
        &dir.join("netcdf3-name-not-utf8.nc"),
        &["a name that is not UTF-8", "latit\\xf5de"],
    );
    // A NetCDF-4 variable libnetcdf cannot inquire: the netcdf crate's
    // listing of variables unwrapped the error.
    g.refuse_file(
        &dir.join("netcdf4-variable-the-library-cannot-inquire.nc"),
        &["the netcdf library failed on it"],
    );
    // A variable of type 12 (NetCDF-4's string) in a NetCDF-3 header:
    // libnetcdf divided by its size, 0, and the process died on SIGFPE.
    g.refuse_file(
        &dir.join("netcdf3-variable-of-netcdf4-string-type.nc"),
        &["damaged NetCDF-3 file", "variable type 12", "at byte 532"],
    );
    // libhdf5 1.10 looped forever on a global heap whose free space
    // declares 0 bytes, on the first attribute libnetcdf read.
    g.refuse_file(
        &dir.join("netcdf4-global-heap-free-space-of-0-bytes.nc"),
        &["damaged global heap", "at byte 2384", "declares 0 bytes"],
    );
}

/// Variable-length data lives in global heap collections, which libhdf5
/// 1.10 walks object by object without checking each step: a free space
/// of 0 bytes made it loop forever, an object longer than its collection
/// made it read outside it. Both are refused before the library opens the
/// file; the same file undamaged loads.
#[test]
fn global_heaps_the_library_cannot_walk() {
    common::without_hdf5_file_locks();
    let g = Guarded::new();
    let good = g.env.path("vlen.h5");
    {
        let file = hdf5::File::create(&good).unwrap();
        let d = file
            .new_dataset_builder()
            .with_data(&ndarray::Array2::<f64>::from_shape_fn((4, 10), |(r, c)| {
                (r * 10 + c) as f64
            }))
            .create("flux")
            .unwrap();
        let units: hdf5::types::VarLenUnicode = "mol m-2 s-1".parse().unwrap();
        d.new_attr::<hdf5::types::VarLenUnicode>()
            .create("units")
            .unwrap()
            .write_scalar(&units)
            .unwrap();
    }
    let bytes = std::fs::read(&good).unwrap();
    let heap = bytes
        .windows(4)
        .position(|w| w == b"GCOL")
        .expect("the attribute is in a global heap");
    // The collection's header is 16 bytes; object 1 (the string, padded to
    // 16 bytes) follows it, then the free space, object 0.
    let object = |bytes: &[u8], at: usize| {
        (
            u16::from_le_bytes([bytes[at], bytes[at + 1]]),
            u64::from_le_bytes(bytes[at + 8..at + 16].try_into().unwrap()),
        )
    };
    assert_eq!(object(&bytes, heap + 16), (1, 11));
    let free = heap + 16 + 16 + 16;
    assert_eq!(object(&bytes, free).0, 0);
    let with_size = |at: usize, size: u64| {
        let mut b = bytes.clone();
        b[at + 8..at + 16].copy_from_slice(&size.to_le_bytes());
        b
    };
    g.refuse_file(
        &g.file("free_space_of_0.h5", &with_size(free, 0)),
        &[
            "damaged global heap",
            &format!("byte {heap}"),
            "declares 0 bytes",
        ],
    );
    g.refuse_file(
        &g.file("object_past_the_end.h5", &with_size(heap + 16, 1 << 40)),
        &[
            "damaged global heap",
            "object 1 declares 1099511627776 bytes",
        ],
    );
    let r = g.env.run(&[
        "load",
        "-p",
        good.to_str().unwrap(),
        "-m",
        STM,
        "-n",
        "vlen",
        "-o",
        "timestamp=2004-06-30",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// NetCDF-3 headers are walked before libnetcdf reads them, which
/// allocates what a count declares before checking the file holds it. The
/// three NetCDF-3 formats as netCDF4-python writes them (classic, 64-bit
/// offsets, CDF-5 with its 64-bit counts and unsigned types) load; every cut
/// of their headers, and a count raised past the file's end, is refused.
#[test]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn netcdf3_headers_that_declare_more_than_the_file_holds() {
    let py = python_with(&["netCDF4", "numpy"]);
    let g = Guarded::new();
    let script = r#"
import sys, netCDF4, numpy as np
path, fmt = sys.argv[1], sys.argv[2]
d = netCDF4.Dataset(path, "w", format=fmt)
d.title = "three bytes over"
d.createDimension("time", None)
d.createDimension("latitude", 3)
d.createDimension("longitude", 4)
t = d.createVariable("time", "f8", ("time",))
t.units = "hours since 2004-06-30 00:00:00"
t.standard_name = "time"
la = d.createVariable("latitude", "f4", ("latitude",))
la.units = "degrees_north"
la.valid_range = np.array([-90, 90], "i2")
la[:] = [10, 11, 12]
lo = d.createVariable("longitude", "f4", ("longitude",))
lo.units = "degrees_east"
lo.setncattr("flags", np.array([1, 2, 3], "i1"))
lo[:] = [1, 2, 3, 4]
v = d.createVariable("flux", "f8", ("time", "latitude", "longitude"), fill_value=-999.0)
v.units = "mol m-2 s-1"
if fmt == "NETCDF3_64BIT_DATA":
    for name, kind in [("a", "u1"), ("b", "u2"), ("c", "u4"), ("e", "i8"), ("f", "u8")]:
        v.setncattr(name, np.array([1, 2], kind))
t[:] = np.arange(5) * 3.0
v[:] = np.arange(60.0).reshape(5, 3, 4)
d.close()
"#;
    for (i, format) in [
        "NETCDF3_CLASSIC",
        "NETCDF3_64BIT_OFFSET",
        "NETCDF3_64BIT_DATA",
    ]
    .into_iter()
    .enumerate()
    {
        let path = g.env.path(&format!("{format}.nc"));
        run_python(&py, script, &[path.to_str().unwrap(), format]);
        // Loaded into a store of its own: `g`'s must stay as it was.
        let r = Env::new().run(&[
            "load",
            "-p",
            path.to_str().unwrap(),
            "-m",
            "CFGrid",
            "-n",
            &format!("nc3_{i}"),
        ]);
        assert_eq!(r.code, 0, "{format}: {}", r.stderr);
        let bytes = std::fs::read(&path).unwrap();
        // Cut every 7 bytes: up to the last attribute's value the cut is
        // in the header, and the walk refuses it; after it, the file is
        // still refused (a header cut short, or values missing).
        let units = bytes.windows(11).position(|w| w == b"mol m-2 s-1").unwrap();
        for cut in (5..units + 64).step_by(7) {
            let needles: &[&str] = if cut <= units {
                &["is a damaged NetCDF-3 file"]
            } else {
                &[]
            };
            g.refuse(
                &[
                    "-p",
                    g.file(&format!("{format}_{cut}.nc"), &bytes[..cut])
                        .to_str()
                        .unwrap(),
                    "-m",
                    "CFGrid",
                ],
                needles,
            );
        }
        // The title's length, raised past the end of the file.
        let at = bytes.windows(5).position(|w| w == b"title").unwrap() - if i == 2 { 8 } else { 4 };
        let mut big = bytes.clone();
        if i == 2 {
            big[at..at + 8].copy_from_slice(&(1u64 << 40).to_be_bytes());
        } else {
            big[at..at + 4].copy_from_slice(&0x7fff_fff0u32.to_be_bytes());
        }
        g.refuse(
            &[
                "-p",
                g.file(&format!("{format}_big.nc"), &big).to_str().unwrap(),
                "-m",
                "CFGrid",
            ],
            &[
                "is a damaged NetCDF-3 file",
                "bytes of a name",
                "more than the",
            ],
        );
    }
}

/// A MAT v4 variable: the 20-byte header (type, rows, columns, imaginary
/// flag, name length with its NUL), the name, then `data` as given.
fn v4(mopt: i32, rows: i32, cols: i32, imagf: i32, name: &str, data: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [mopt, rows, cols, imagf, name.len() as i32 + 1] {
        b.extend(v.to_le_bytes());
    }
    b.extend(name.as_bytes());
    b.push(0);
    b.extend(data);
    b
}

fn doubles(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| (i as f64).to_le_bytes()).collect()
}

#[test]
fn hostile_mat_v4_files() {
    let g = Guarded::new();
    let good = v4(0, 3, 4, 0, "m", &doubles(12));
    // Cut short at every few bytes: inside the header, the name, the data.
    for cut in [21, 22, 30, good.len() - 8, good.len() - 1] {
        g.refuse_file(&g.file(&format!("cut{cut}.mat"), &good[..cut]), &[]);
    }
    g.refuse_file(
        &g.file("cut_data.mat", &good[..good.len() - 8]),
        &["truncated MAT v4 file", "'m'", "3 × 4"],
    );
    // Sizes that no file could hold, refused before anything is allocated.
    g.refuse_file(
        &g.file(
            "absurd.mat",
            &v4(0, i32::MAX, i32::MAX, 0, "m", &doubles(4)),
        ),
        &["'m'", "2147483647 × 2147483647"],
    );
    g.refuse_file(
        &g.file("big.mat", &v4(0, 100_000, 100_000, 0, "m", &doubles(4))),
        &["truncated MAT v4 file", "'m'", "100000 × 100000"],
    );
    g.refuse_file(
        &g.file("negative.mat", &v4(0, -3, 4, 0, "m", &doubles(12))),
        &[],
    );
    // The imaginary part is declared (and present): complex is refused.
    g.refuse_file(
        &g.file("complex.mat", &v4(0, 3, 4, 1, "m", &doubles(24))),
        &["'m'", "complex"],
    );
    // Imaginary part declared but missing: truncated.
    g.refuse_file(
        &g.file("complex_cut.mat", &v4(0, 3, 4, 1, "m", &doubles(12))),
        &["truncated MAT v4 file"],
    );
    // Text (T = 1) and sparse (T = 2) by their type digit.
    g.refuse_file(
        &g.file("text.mat", &v4(1, 1, 4, 0, "t", &doubles(4))),
        &["'t'", "char array"],
    );
    g.refuse_file(
        &g.file("sparse.mat", &v4(2, 3, 4, 0, "s", &doubles(12))),
        &["'s'", "sparse"],
    );
    // A second variable of a VAX number format after a good one.
    let mut two = good.clone();
    two.extend(v4(2000, 3, 4, 0, "vax", &doubles(12)));
    g.refuse_file(&g.file("vax.mat", &two), &["damaged MAT v4 file"]);
    // Trailing garbage shorter than a header.
    let mut tail = good.clone();
    tail.extend([1, 2, 3]);
    g.refuse_file(&g.file("tail.mat", &tail), &["damaged MAT v4 file"]);
    // A vector, and a missing variable.
    g.refuse_file(
        &g.file("vector.mat", &v4(0, 1, 12, 0, "m", &doubles(12))),
        &["'m'", "vector"],
    );
    let p = g.file("good.mat", &good);
    g.refuse(
        &[
            "-p",
            p.to_str().unwrap(),
            "-m",
            STM,
            "-o",
            "timestamp=2004-06-30;var_name=nope",
        ],
        &["'nope'", "it holds: m"],
    );
}

#[test]
fn mat_v4_in_every_element_type_and_both_byte_orders() {
    let env = Env::new();
    // 3 cells × 4 columns: x, y, two steps; stored as each v4 precision.
    let m: Vec<f64> = vec![
        -100.0, -99.0, -98.0, 40.0, 40.0, 41.0, 1.0, 2.0, 3.0, 4.0, 5.0, 250.0,
    ];
    let encode = |p: i32, big: bool| -> Vec<u8> {
        let mut b = Vec::new();
        for v in &m {
            let bytes: Vec<u8> = match (p, big) {
                (0, false) => v.to_le_bytes().to_vec(),
                (0, true) => v.to_be_bytes().to_vec(),
                (1, false) => (*v as f32).to_le_bytes().to_vec(),
                (1, true) => (*v as f32).to_be_bytes().to_vec(),
                (2, false) => (*v as i32).to_le_bytes().to_vec(),
                (2, true) => (*v as i32).to_be_bytes().to_vec(),
                (3, false) => (*v as i16).to_le_bytes().to_vec(),
                (3, true) => (*v as i16).to_be_bytes().to_vec(),
                _ => unreachable!(),
            };
            b.extend(bytes);
        }
        b
    };
    for p in 0..=3i32 {
        for big in [false, true] {
            let mut file = Vec::new();
            let mopt = if big { 1000 + p * 10 } else { p * 10 };
            for v in [mopt, 3i32, 4, 0, 2] {
                file.extend(if big {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                });
            }
            file.extend(b"m\0");
            file.extend(encode(p, big));
            let path = env.path(&format!("p{p}_{big}.mat"));
            std::fs::write(&path, &file).unwrap();
            env.run(&["remove", "-n", "v4"]);
            env.run(&[
                "load",
                "-p",
                path.to_str().unwrap(),
                "-m",
                STM,
                "-n",
                "v4",
                "-o",
                "timestamp=2004-06-30",
            ])
            .ok();
            let docs = env.run(&["export", "-n", "v4"]).ok().json_lines();
            assert_eq!(docs[0]["values"], serde_json::json!([1.0, 2.0, 3.0]));
            assert_eq!(docs[1]["values"], serde_json::json!([4.0, 5.0, 250.0]));
        }
    }
}

/// Malformed CF files, written by netCDF4-python (`tests/python/cf_reference.py bad`).
#[test]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn netcdf_files_that_are_not_cf_grids() {
    let python = python_with(&["netCDF4", "numpy"]);
    let g = Guarded::new();
    let dir = g.env.path("bad_nc");
    std::fs::create_dir(&dir).unwrap();
    let out = std::process::Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/cf_reference.py"
        ))
        .args(["bad", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cf = |file: &str, options: &str, needles: &[&str]| {
        let p = dir.join(file);
        let mut n = vec![file];
        n.extend(needles);
        let mut args = vec!["-p", p.to_str().unwrap(), "-m", "CFGrid"];
        if !options.is_empty() {
            args.extend(["-o", options]);
        }
        g.refuse(&args, &n);
    };
    cf(
        "no_time.nc",
        "",
        &["no numeric variable over time, latitude and longitude"],
    );
    cf(
        "no_time.nc",
        "var_name=flux",
        &["'flux'", "has no time dimension"],
    );
    cf("one_d.nc", "var_name=flux", &["'flux'", "has 1 dimension"]);
    cf("not_monotonic.nc", "", &["'lat'", "not monotonic"]);
    cf(
        "bad_time_unit.nc",
        "",
        &["'time'", "fortnights since 2004-06-30", "cannot be read"],
    );
    cf("strings.nc", "var_name=flux", &["'flux'", "strings"]);
    cf("noleap.nc", "", &["calendar 'noleap'"]);
    cf("time_back.nc", "", &["'time'", "does not increase"]);
    cf(
        "no_time.nc",
        "var_name=nothing",
        &["'nothing'", "is not in the file"],
    );
    // Not NetCDF at all, with a .nc name; and the NetCDF-3 magic on a cut file.
    g.refuse(
        &[
            "-p",
            g.file("noise.nc", b"not a netcdf file").to_str().unwrap(),
            "-m",
            "CFGrid",
        ],
        &["noise.nc", "not a MATLAB .mat, HDF5 or NetCDF file"],
    );
    let mut cut = std::fs::read(dir.join("not_monotonic.nc")).unwrap();
    cut.truncate(40);
    let cut = g.file("cut.nc", &cut);
    g.refuse(&["-p", cut.to_str().unwrap(), "-m", "CFGrid"], &["cut.nc"]);
    let mut classic = b"CDF\x01".to_vec();
    classic.extend([0xff; 60]);
    let classic = g.file("classic_cut.nc", &classic);
    g.refuse(
        &["-p", classic.to_str().unwrap(), "-m", "CFGrid"],
        &["classic_cut.nc"],
    );
}
