//! Files written by the tools scientists use (SciPy, Octave, hdf5storage,
//! h5py): every file in `../shared/fixtures/writers/` must load and give
//! exactly what `casagfed2004.mat`, written by MATLAB, gives. The test walks
//! the folder, so a file added there is covered without a change here.

use crate::common;

use std::path::{Path, PathBuf};

use common::{fixture, Env};

/// `../shared/fixtures/writers`.
fn writers_dir() -> PathBuf {
    let dir = common::shared().join("fixtures/writers");
    assert!(
        dir.is_dir(),
        "the fixture folder {} is missing",
        dir.display()
    );
    dir
}

/// The `-o` a file needs, from the folder's README: the row of the table
/// naming the file may say `` `-o var_name=...` `` (h5py datasets have no
/// MATLAB variable naming convention to fall back on).
fn options_from_readme(readme: &str, file: &str) -> Option<String> {
    let row = readme
        .lines()
        .find(|l| l.starts_with('|') && l.contains(&format!("`{file}`")))?;
    let start = row.find("`-o ")? + 4;
    let rest = &row[start..];
    Some(rest[..rest.find('`')?].to_string())
}

/// What a load of `file` gives: the export, the coord_index entry and the
/// metadata without its ingest log (`files`: path, size, sha256, timing and
/// who loaded it, which differ per file by nature).
fn load(file: &Path, config: &Path, options: Option<&str>) -> (String, String, serde_json::Value) {
    let env = Env::new();
    let mut args = vec![
        "load",
        "-p",
        file.to_str().unwrap(),
        "-m",
        "SpatioTemporalMatrix",
        "-n",
        "casa",
        "-c",
        config.to_str().unwrap(),
    ];
    if let Some(o) = options {
        args.extend(["-o", o]);
    }
    let r = env.run(&args);
    assert_eq!(r.code, 0, "{} did not load: {}", file.display(), r.stderr);
    let export = env.run(&["export", "-n", "casa"]).ok().stdout;
    let store = fluxpy::store::open(Some(env.db().to_str().unwrap())).unwrap();
    let coord = store
        .entry("coord_index", "casa")
        .unwrap()
        .expect("a coord_index entry");
    let coord = bson::Bson::Document(coord)
        .into_relaxed_extjson()
        .to_string();
    let mut meta = env.run(&["db", "-n", "casa"]).ok().json();
    let files = meta
        .as_object_mut()
        .unwrap()
        .remove("files")
        .expect("an ingest log");
    assert_eq!(files.as_array().map(Vec::len), Some(1));
    (export, coord, meta)
}

#[test]
#[cfg_attr(no_shared, ignore = "needs ../shared/fixtures")]
fn every_writer_gives_what_matlab_gives() {
    let dir = writers_dir();
    let reference = fixture("casagfed2004.mat");
    let config = fixture("casagfed2004.json");
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap_or_default();
    let expected = load(&reference, &config, None);
    assert_eq!(expected.0.lines().count(), 8, "8 steps in the reference");

    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_none_or(|e| e != "md"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no files in {}", dir.display());
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        let options = options_from_readme(&readme, name);
        let got = load(f, &config, options.as_deref());
        assert!(
            got.0 == expected.0,
            "{name}: export differs from casagfed2004.mat"
        );
        assert_eq!(got.1, expected.1, "{name}: coord_index differs");
        assert_eq!(got.2, expected.2, "{name}: metadata differs");
        eprintln!("{name}: same export, coord_index and metadata as casagfed2004.mat");
    }
}

#[test]
fn readme_options_are_read_from_the_table() {
    let readme =
        "| `a.h5` | h5py | chunks (`-o var_name=flux/casa`) |\n| `b.mat` | SciPy | plain |";
    assert_eq!(
        options_from_readme(readme, "a.h5").as_deref(),
        Some("var_name=flux/casa")
    );
    assert_eq!(options_from_readme(readme, "b.mat"), None);
}
