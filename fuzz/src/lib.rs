//! What the file-reading fuzz targets share.

use std::sync::Once;

/// Replace libfuzzer-sys's abort-on-panic hook by a silent one, so that a
/// panic `manage` catches is not reported as a crash; a panic that escapes
/// still aborts (libfuzzer-sys wraps every run in `catch_unwind`).
pub fn contain_parser_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|_| {})));
}

/// Write `data` to a temporary file and read its whole matrix, in blocks of
/// at most 3 columns as a load does.
pub fn open_and_read(data: &[u8], name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, data).unwrap();
    if let Ok(mut m) = fluxpy::source::open(&path, None) {
        let cols = m.info().cols;
        let mut start = 0;
        while start < cols {
            let n = 3.min(cols - start);
            if m.read_columns(start, n).is_err() {
                break;
            }
            start += n;
        }
    }
}

/// The only value the files outside the input hold; no dataset of the
/// input holds it.
pub const OUTSIDE: f64 = 7777.0;

/// Paths the tree's operations name: plain and nested names, absolute ones,
/// `.`/`..` components and a trailing slash.
const NAMES: [&str; 16] = [
    "a", "b", "g", "g/a", "g/b", "g/h", "g/h/a", "/a", "/g/a", "a/", ".", "..", "g/../a", "/", "h",
    "g/h/../b",
];

/// What every input's tree starts from: external links cannot be created
/// once `manage` has removed their class from the library (which it does on
/// its first open), so they are made first, in a few template files.
struct Templates {
    dir: tempfile::TempDir,
    /// The file every external link, external storage and virtual source
    /// names: `/m` and `/g/a` hold `OUTSIDE` only.
    other: std::path::PathBuf,
    /// Raw bytes of `OUTSIDE`, for external storage.
    raw: std::path::PathBuf,
    files: Vec<std::path::PathBuf>,
}

fn templates() -> &'static Templates {
    static T: std::sync::OnceLock<Templates> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        hdf5::silence_errors(true);
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("other.h5");
        let raw = dir.path().join("other.raw");
        let outside = vec![OUTSIDE; 4 * 3 * 16];
        let bytes: Vec<u8> = outside.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&raw, bytes).unwrap();
        {
            let f = hdf5::File::create(&other).unwrap();
            for at in ["m", "g/a"] {
                let d = f
                    .new_dataset::<f64>()
                    .shape((4, 3))
                    .create_intermediate_group(true)
                    .create(at)
                    .unwrap();
                d.write_raw(&outside[..12]).unwrap();
            }
        }
        let o = other.to_str().unwrap();
        // (group to create first, link name, target in `other`)
        let links: [&[(&str, &str)]; 8] = [
            &[],
            &[("a", "/m")],
            &[("b", "/")],
            &[("g", "/g")],
            &[("g/a", "/m")],
            &[("h", "/m"), ("a", "/g/a")],
            &[("a", "/missing")],
            &[("g/h", "/")],
        ];
        let files = links
            .iter()
            .enumerate()
            .map(|(i, set)| {
                let p = dir.path().join(format!("template{i}.h5"));
                let f = hdf5::File::create(&p).unwrap();
                for (name, target) in set.iter() {
                    if let Some((parent, _)) = name.rsplit_once('/') {
                        f.create_group(parent).unwrap();
                    }
                    f.link_external(o, target, name).unwrap();
                }
                p
            })
            .collect();
        Templates {
            dir,
            other,
            raw,
            files,
        }
    })
}

/// Build an HDF5 tree from `data` (a template chosen by the first byte,
/// then operations of three bytes each) and read it as a load does, by the
/// default choice and by a named path; a value from outside the file is a
/// crash.
pub fn walk_object_tree(data: &[u8]) {
    let t = templates();
    let Some((&first, ops)) = data.split_first() else {
        return;
    };
    let dir = tempfile::tempdir_in(t.dir.path()).unwrap();
    let path = dir.path().join("input.h5");
    std::fs::copy(&t.files[first as usize % t.files.len()], &path).unwrap();
    let other = t.other.to_str().unwrap();
    let raw = t.raw.to_str().unwrap();
    {
        let Ok(f) = hdf5::File::open_rw(&path) else {
            return;
        };
        // Failures (a name taken, a parent missing) are part of the tree.
        for op in ops.chunks_exact(3) {
            let (a, b) = (NAMES[op[1] as usize % 16], NAMES[op[2] as usize % 16]);
            let values: Vec<f64> = (0..12).map(|i| f64::from(op[2]) * 100.0 + f64::from(i)).collect();
            let shape = (4, 3);
            let _ = match op[0] % 10 {
                0 => f.create_group(a).map(drop),
                1 => f
                    .new_dataset::<f64>()
                    .shape(shape)
                    .create(a)
                    .and_then(|d| d.write_raw(&values)),
                2 => f.link_soft(b, a),
                3 => f.link_hard(b, a),
                4 => f
                    .new_dataset::<f64>()
                    .shape(shape)
                    .external(raw, 0, 12 * 8)
                    .create(a)
                    .map(drop),
                5 => f
                    .new_dataset::<f64>()
                    .shape(shape)
                    .virtual_map(other, "/m", shape, hdf5::Selection::All, shape, hdf5::Selection::All)
                    .create(a)
                    .map(drop),
                6 => f
                    .new_dataset::<f64>()
                    .shape(shape)
                    .virtual_map(".", b, shape, hdf5::Selection::All, shape, hdf5::Selection::All)
                    .create(a)
                    .map(drop),
                7 => f
                    .new_dataset::<f64>()
                    .shape(op[2] as usize % 5)
                    .create(a)
                    .map(drop),
                8 => f.unlink(a),
                _ => f
                    .new_dataset::<i32>()
                    .shape((2, 3 + op[2] as usize % 3))
                    .chunk((1, 2))
                    .deflate(1)
                    .create(a)
                    .map(drop),
            };
        }
    }
    let named = NAMES[ops.first().copied().unwrap_or(0) as usize % 16];
    for var in [None, Some(named)] {
        let Ok(mut m) = fluxpy::source::open(&path, var) else {
            continue;
        };
        let cols = m.info().cols;
        let mut start = 0;
        while start < cols {
            let n = 3.min(cols - start);
            let Ok(block) = m.read_columns(start, n) else {
                break;
            };
            assert!(
                !block.iter().any(|&v| v == OUTSIDE),
                "{var:?} read a value from another file"
            );
            start += n;
        }
    }
}
