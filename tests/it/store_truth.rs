//! Read commands read: they open an embedded store read-only, never
//! create one, and leave its files byte for byte as they were. Names with
//! control characters are refused.

use crate::common;

use common::{sample, Env};

fn files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    out
}

const READS: &[&[&str]] = &[
    &["db", "-a"],
    &["db", "-l", "collections", "-x"],
    &["db", "-l", "metadata"],
    &["db", "-n", "s"],
    &["export", "-n", "s"],
    &["export", "-n", "s", "--format", "csv"],
];

#[test]
fn read_commands_never_create_a_store() {
    let env = Env::new();
    let typo = env.path("typo.db");
    let nested = env.path("no/such/dir/store.db");
    for db in [&typo, &nested] {
        let db = db.to_str().unwrap();
        for cmd in READS.iter().copied().chain([
            &["db", "-a", "--fix"][..],
            &["remove", "-n", "s"],
            &["rename", "-n", "s", "-r", "t"],
        ]) {
            let mut args = vec!["--db", db];
            args.extend(cmd);
            let r = env.run(&args);
            assert_eq!(r.code, 1, "{cmd:?} on {db}: {}{}", r.stdout, r.stderr);
            assert!(r.stderr.contains("does not exist"), "{}", r.stderr);
            assert!(r.stderr.contains(db), "{}", r.stderr);
            assert!(r.stdout.is_empty(), "{}", r.stdout);
        }
    }
    assert!(
        files(env.dir.path()).is_empty(),
        "{:?}",
        files(env.dir.path())
            .iter()
            .map(|f| &f.0)
            .collect::<Vec<_>>()
    );
    assert!(!env.path("no").exists());
}

#[test]
fn read_commands_leave_a_store_byte_for_byte_and_work_when_it_is_read_only() {
    let env = Env::new();
    let dir = env.path("ro");
    std::fs::create_dir(&dir).unwrap();
    let db = dir.join("s.db");
    let dbs = db.to_str().unwrap();
    env.run(&[
        "--db",
        dbs,
        "load",
        "-p",
        sample().to_str().unwrap(),
        "-m",
        "SpatioTemporalMatrix",
        "-n",
        "s",
    ])
    .ok();
    let before = files(&dir);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    for cmd in READS {
        let mut args = vec!["--db", dbs];
        args.extend(*cmd);
        let r = env.run(&args);
        assert_eq!(r.code, 0, "{cmd:?}: {}", r.stderr);
        assert!(!r.stdout.is_empty(), "{cmd:?}");
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(
        files(&dir),
        before,
        "a read command changed the store's files"
    );
}

#[test]
fn names_with_control_characters_are_refused() {
    let env = Env::new();
    for name in ["a\nb", "tab\there", "\u{1b}[31mred", "cr\r", "del\u{7f}"] {
        let r = env.run(&[
            "load",
            "-p",
            sample().to_str().unwrap(),
            "-m",
            "SpatioTemporalMatrix",
            "-n",
            name,
        ]);
        assert_eq!(r.code, 1, "{name:?}: {}", r.stdout);
        assert_eq!(r.stderr.lines().count(), 1, "{name:?}: {}", r.stderr);
        assert!(r.stderr.contains("control character"), "{}", r.stderr);
        assert!(
            !r.stderr.contains(name),
            "{name:?} printed raw: {}",
            r.stderr
        );
    }
    // A rename onto one is refused as well, the dataset kept.
    env.run(&[
        "load",
        "-p",
        sample().to_str().unwrap(),
        "-m",
        "SpatioTemporalMatrix",
        "-n",
        "s",
    ])
    .ok();
    let r = env.run(&["rename", "-n", "s", "-r", "a\nb"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(env
        .run(&["db", "-l", "collections"])
        .ok()
        .stdout
        .contains('s'));
}

#[test]
fn a_precision_of_2_0_is_the_whole_number_2() {
    let env = Env::new();
    let load = |n: &str, p: &str| {
        env.run(&[
            "load",
            "-p",
            sample().to_str().unwrap(),
            "-m",
            "SpatioTemporalMatrix",
            "-n",
            n,
            "-o",
            &format!("precision={p}"),
        ])
    };
    load("a", "2.0").ok();
    load("b", "2").ok();
    let a = env.run(&["export", "-n", "a"]).ok().stdout;
    assert_eq!(a, env.run(&["export", "-n", "b"]).ok().stdout);
    for bad in ["2.5", "-1.0", "16.0", "1e300"] {
        assert_eq!(load("c", bad).code, 1, "precision={bad}");
    }
}

/// Another program's SQLite database given as `--db` is refused by every
/// command, naming a table of its, and left byte for byte as it was (a
/// load would have switched it to WAL and added tables).
#[test]
fn another_programs_sqlite_database_is_refused_unchanged() {
    let env = Env::new();
    let dir = env.path("theirs");
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("birds.sqlite");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("CREATE TABLE birds(name TEXT); INSERT INTO birds VALUES ('wren');")
            .unwrap();
    }
    let before = files(&dir);
    let db = db.to_str().unwrap();
    let sample = sample();
    let load: &[&str] = &[
        "load",
        "-p",
        sample.to_str().unwrap(),
        "-m",
        "SpatioTemporalMatrix",
        "-n",
        "s",
    ];
    for cmd in READS.iter().copied().chain([
        load,
        &["db", "-a", "--fix"][..],
        &["remove", "-n", "s"],
        &["rename", "-n", "s", "-r", "t"],
    ]) {
        let mut args = cmd.to_vec();
        args.extend(["--db", db]);
        let r = env.run(&args);
        assert_eq!(r.code, 1, "{args:?}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains("another program's SQLite database") && r.stderr.contains("'birds'"),
            "{args:?}: {}",
            r.stderr
        );
        assert_eq!(files(&dir), before, "{args:?} changed the file");
    }
}
