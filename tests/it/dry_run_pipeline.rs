//! `load --dry-run` goes through the load's own pipeline: over a store, it
//! says exactly what a real `load` of the same input then does (the same
//! documents, dates, times and refusals, the same exit code), and it
//! leaves the store as it was, byte for byte (the embedded store's files)
//! or document for document (MongoDB, listed through the driver). What is expected
//! comes from the real load that follows each dry run.

use crate::common;

use std::path::{Path, PathBuf};

use common::Target;
use fluxpy::synth;
use serde_json::Value;

const STM: &str = "SpatioTemporalMatrix";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The inputs, in the order they are loaded: a first file, an append of
/// new dates, an append on another grid, the first file again, a file
/// whose config gives another precision, and the same grid again with new
/// values for dates the dataset holds (which replaces them).
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let grid = synth::Grid::NORTH_AMERICA.with_window(-100.0, -90.0, 30.0, 36.0);
    let other = synth::Grid::NORTH_AMERICA.with_window(-110.0, -100.0, 30.0, 36.0);
    let m = synth::flux_matrix(&grid, 3, 3.0);
    let n = synth::flux_matrix(&other, 3, 3.0);
    // The same cells (the first two columns), every value doubled.
    let mut twice = m.clone();
    twice
        .slice_mut(ndarray::s![.., 2..])
        .mapv_inplace(|x| 2.0 * x);
    let files = [
        ("first.mat", &m, 1, ""),
        ("new_dates.mat", &m, 2, ""),
        ("other_grid.mat", &n, 3, ""),
        ("again/first.mat", &m, 1, ""),
        ("precision.mat", &m, 4, r#", "precision": 4"#),
        ("redelivered.mat", &twice, 2, ""),
    ];
    files
        .iter()
        .map(|(f, data, day, extra)| {
            let p = dir.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            synth::write_mat_v5(&p, "flux", data, true).unwrap();
            std::fs::write(
                p.with_extension("json"),
                format!(r#"{{"timestamp": "2004-06-{day:02}"{extra}}}"#),
            )
            .unwrap();
            p
        })
        .collect()
}

/// The file `again/first.mat` is `first.mat` itself: the same name, bytes
/// and config, so the ingest log knows it.
fn same_as_first(files: &[PathBuf]) {
    std::fs::copy(&files[0], &files[3]).unwrap();
}

/// What a run said of one file: exit code, status, documents, dates and
/// error (of `--json`).
#[derive(Debug, PartialEq)]
struct Said {
    code: i32,
    status: String,
    documents: u64,
    dates: Vec<String>,
    error: Value,
}

fn said(r: &common::Run) -> Said {
    let lines = r.json_lines();
    assert_eq!(lines.len(), 1, "{}", r.stdout);
    let l = &lines[0];
    Said {
        code: r.code,
        status: l["status"]
            .as_str()
            .unwrap()
            .replace("would_load", "loaded"),
        documents: l["documents"].as_u64().unwrap(),
        dates: l["dates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().to_string())
            .collect(),
        error: l["error"].clone(),
    }
}

/// The `N times (FIRST to LAST)` a text report line ends with.
fn times_of(line: &str) -> (usize, Option<(String, String)>) {
    let at = line.rfind(" time").expect("a count of times");
    let n = line[..at]
        .rsplit([' ', ','])
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let span = line[at..].split_once('(').map(|(_, rest)| {
        let (a, b) = rest.split_once(" to ").unwrap();
        (a.to_string(), b[..b.find(')').unwrap()].to_string())
    });
    (n, span)
}

/// Everything the store holds: the embedded store's files, byte for byte;
/// MongoDB's collections, indexes and documents, read through the driver.
fn contents(t: &Target) -> Vec<u8> {
    match &t.mongo {
        None => {
            let db = t.env.db();
            let stem = db.file_name().unwrap().to_string_lossy().into_owned();
            let mut files: Vec<_> = std::fs::read_dir(db.parent().unwrap())
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&stem))
                .collect();
            files.sort();
            let mut out = Vec::new();
            for f in files {
                out.extend_from_slice(f.file_name().unwrap().as_encoded_bytes());
                out.push(0);
                out.extend(std::fs::read(&f).unwrap());
            }
            out
        }
        Some(m) => {
            let db = mongodb::sync::Client::with_uri_str(common::mongodb_uri())
                .unwrap()
                .database(&m.name);
            let mut names = db.list_collection_names().run().unwrap();
            names.sort();
            let mut out = Vec::new();
            for c in names {
                let coll = db.collection::<bson::RawDocumentBuf>(&c);
                let mut indexes = coll.list_index_names().run().unwrap();
                indexes.sort();
                out.extend(format!("collection {c} {indexes:?}\n").into_bytes());
                let found = coll.find(bson::doc! {}).sort(bson::doc! {"_id": 1});
                for d in found.run().unwrap() {
                    out.extend(d.unwrap().into_bytes());
                }
            }
            out
        }
    }
}

/// Each input in turn: a dry run, which changes nothing, and then the
/// load, which does what the dry run said.
fn each_dry_run_says_what_the_load_then_does(t: &Target) {
    let dir = t.env.path("in");
    std::fs::create_dir(&dir).unwrap();
    let files = inputs(&dir);
    same_as_first(&files);
    let load = |f: &Path, extra: &[&str]| {
        let mut a = vec!["load", "-p", s(f), "-m", STM, "-n", "d"];
        a.extend_from_slice(extra);
        t.run(&a)
    };
    let mut statuses = Vec::new();
    for f in &files {
        let before = contents(t);
        let dry = load(f, &["--dry-run", "--json"]);
        let dry_text = load(f, &["--dry-run"]);
        assert!(
            contents(t) == before,
            "{}: the dry run changed the store",
            f.display()
        );
        let real = load(f, &["--json"]);
        let (got, want) = (said(&dry), said(&real));
        assert_eq!(got, want, "{}: {}", f.display(), real.stderr);
        assert_eq!(dry.stderr, real.stderr, "{}", f.display());
        assert_eq!(dry_text.code, real.code);
        if want.status == "loaded" {
            // The dry run's times are the file's own: those the load wrote.
            let line = dry_text.stdout.lines().next().unwrap();
            let (times, span) = times_of(line);
            assert_eq!(times, want.dates.len(), "{line}");
            let (a, b) = (want.dates.first().unwrap(), want.dates.last().unwrap());
            assert_eq!(span, Some((a.clone(), b.clone())), "{line}");
            assert!(
                contents(t) != before,
                "{}: the load wrote nothing",
                f.display()
            );
        }
        statuses.push((want.status, want.code));
    }
    let st = |s: &str, c: i32| (s.to_string(), c);
    assert_eq!(
        statuses,
        [
            st("loaded", 0),
            st("loaded", 0),
            st("failed", 1),
            st("skipped", 0),
            st("failed", 1),
            st("loaded", 0),
        ]
    );
    // What the refusals said, as the loads said it.
    let errors: Vec<String> = files
        .iter()
        .map(|f| load(f, &["--dry-run", "--json", "--force"]))
        .filter(|r| r.code != 0)
        .map(|r| r.json_lines()[0]["error"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("coord_index differs"), "{}", errors[0]);
    assert!(
        errors[1].contains("its values have precision"),
        "{}",
        errors[1]
    );
}

crate::on_both_stores!(
    each_dry_run_says_what_the_load_then_does_on,
    each_dry_run_says_what_the_load_then_does
);

/// One dry run of every input into a new dataset says, file by file,
/// what one run of them all then does: each checked against what the
/// files before it would have loaded.
fn one_dry_run_of_every_input_says_what_the_run_does(t: &Target) {
    let dir = t.env.path("in");
    std::fs::create_dir(&dir).unwrap();
    let files = inputs(&dir);
    same_as_first(&files);
    let run = |extra: &[&str]| {
        let mut a = vec!["load", "--json", "-m", STM, "-n", "d", "-p"];
        a.extend(files.iter().map(|f| s(f)));
        a.extend_from_slice(extra);
        t.run(&a)
    };
    let before = contents(t);
    let dry = run(&["--dry-run"]);
    assert!(contents(t) == before, "the dry run changed the store");
    let real = run(&[]);
    let lines = |r: &common::Run| -> Vec<(String, String, Value, Value)> {
        r.json_lines()
            .iter()
            .map(|l| {
                (
                    l["path"].as_str().unwrap().to_string(),
                    l["status"]
                        .as_str()
                        .unwrap()
                        .replace("would_load", "loaded"),
                    l["documents"].clone(),
                    l["dates"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(lines(&dry), lines(&real), "{}", real.stderr);
    assert_eq!(dry.code, real.code);
    assert_eq!(dry.stderr, real.stderr);
    // In name order (file name, then path): the first file again is
    // skipped.
    let statuses: Vec<String> = lines(&real).into_iter().map(|l| l.1).collect();
    assert_eq!(
        statuses,
        ["loaded", "skipped", "loaded", "failed", "failed", "loaded"],
        "{}",
        real.stdout
    );
}

crate::on_both_stores!(
    one_dry_run_of_every_input_says_what_the_run_does_on,
    one_dry_run_of_every_input_says_what_the_run_does
);

/// Points the old tool stored are refused by a load (they would be
/// stored twice); the dry run, which is the load's pipeline, refuses them
/// with the same words and changes nothing.
#[test]
#[cfg_attr(no_shared, ignore = "needs ../shared/fixtures")]
fn a_dry_run_refuses_points_the_old_tool_stored_as_the_load_does() {
    let env = common::Env::new();
    let t = Target::embedded(&env);
    common::old_tool_into_embedded(&env.db(), "xco2");
    let xco2 = common::shared_fixture("fluxpy", "xco2.mat");
    let load = |extra: &[&str]| {
        let mut a = vec![
            "load",
            "-p",
            s(&xco2),
            "-m",
            "XCO2Matrix",
            "-n",
            "xco2",
            "-o",
            "timestamp=2009-06-15",
        ];
        a.extend_from_slice(extra);
        env.run(&a)
    };
    let before = contents(&t);
    let dry = load(&["--dry-run"]);
    assert!(contents(&t) == before, "the dry run changed the store");
    let real = load(&[]);
    assert_eq!(real.code, 1, "{}", real.stderr);
    assert!(
        real.stderr.contains("stored 1 day after the file's"),
        "{}",
        real.stderr
    );
    assert_eq!((dry.code, &dry.stderr), (real.code, &real.stderr));
    assert_eq!(dry.stdout, real.stdout);
}
