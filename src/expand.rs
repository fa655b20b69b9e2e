//! What `load -p` names: files, directories (their data files) and glob
//! patterns, expanded to the data files in name order.

use std::path::{Path, PathBuf};

use crate::error::{shown, shown_text};
use crate::source::formats::{extensions_text, is_data_extension};

/// The data files `-p` names, in name order (file name, then path), each
/// once; and the arguments that name none, with why.
pub fn expand(args: &[PathBuf]) -> (Vec<PathBuf>, Vec<(PathBuf, String)>) {
    let mut files = Vec::new();
    let mut unmatched = Vec::new();
    for arg in args {
        if arg.is_dir() {
            let found = data_files_in(arg);
            match found {
                Ok(f) if !f.is_empty() => files.extend(f),
                Ok(_) => unmatched.push((
                    arg.clone(),
                    format!(
                        "{}: directory holds no {} file",
                        shown(arg),
                        extensions_text()
                    ),
                )),
                Err(e) => unmatched.push((arg.clone(), format!("{}: {e}", shown(arg)))),
            }
            continue;
        }
        let text = arg.to_string_lossy();
        if arg.exists() || !text.contains(['*', '?', '[']) {
            // A missing plain path is reported when it is loaded, by name.
            files.push(arg.clone());
            continue;
        }
        if arg.to_str().is_none() {
            unmatched.push((
                arg.clone(),
                format!(
                    "{}: a pattern is matched as text, and this one is not UTF-8; name its folder or its files instead",
                    shown(arg)
                ),
            ));
            continue;
        }
        let mut matched = 0;
        match glob::glob(&text) {
            Err(e) => unmatched.push((
                arg.clone(),
                format!("{}: not a valid pattern: {e}", shown_text(&text)),
            )),
            Ok(paths) => {
                for p in paths {
                    match p {
                        Ok(p) if p.is_dir() => {}
                        Ok(p) => {
                            matched += 1;
                            files.push(p);
                        }
                        Err(e) => {
                            matched += 1;
                            let msg = format!("{}: {}", shown(e.path()), e.error());
                            unmatched.push((e.path().to_path_buf(), msg));
                        }
                    }
                }
                // The glob crate matches only names that are UTF-8: the
                // others it skips, silently. They are files like any other.
                for p in not_utf8_matches(&text) {
                    matched += 1;
                    files.push(p);
                }
                if matched == 0 {
                    unmatched.push((
                        arg.clone(),
                        format!("{}: no file matches this pattern", shown_text(&text)),
                    ));
                }
            }
        }
    }
    files.sort_by(|a, b| (a.file_name(), a).cmp(&(b.file_name(), b)));
    files.dedup();
    (files, unmatched)
}

/// The files whose names are not UTF-8 that `pattern`'s last component
/// matches (as text, each byte that is not UTF-8 read as U+FFFD), in the
/// folders its other components name.
fn not_utf8_matches(pattern: &str) -> Vec<PathBuf> {
    let (dirs, last) = match pattern.rsplit_once('/') {
        Some((d, last)) => (Some(if d.is_empty() { "/" } else { d }), last),
        None => (None, pattern),
    };
    let Ok(last) = glob::Pattern::new(last) else {
        return Vec::new();
    };
    let folders: Vec<Option<PathBuf>> = match dirs {
        None => vec![None],
        Some(d) if !d.contains(['*', '?', '[']) => vec![Some(PathBuf::from(d))],
        Some(d) => glob::glob(d)
            .map(|g| g.flatten().filter(|p| p.is_dir()).map(Some).collect())
            .unwrap_or_default(),
    };
    let mut out = Vec::new();
    for folder in folders {
        let Ok(entries) = std::fs::read_dir(folder.as_deref().unwrap_or(Path::new("."))) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            if name.to_str().is_some() || !last.matches(&name.to_string_lossy()) {
                continue;
            }
            let p = match &folder {
                Some(f) => f.join(&name),
                None => PathBuf::from(&name),
            };
            if !p.is_dir() {
                out.push(p);
            }
        }
    }
    out
}

fn data_files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        let ext = p
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        // Regular files of a data file's name, and those that cannot even
        // be looked at (a link that leads nowhere, as to an archive not
        // mounted; a loop of links; a file the filesystem fails to stat):
        // these fail to load, reported by name, never skipped. Folders,
        // FIFOs and devices are not data files and are passed over.
        let listed = std::fs::metadata(&p).map_or(true, |md| md.is_file());
        if listed && ext.as_deref().is_some_and(is_data_extension) {
            out.push(p);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_sorts_by_name_and_reports_what_matches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("sub")).unwrap();
        for f in ["b_2.mat", "a_3.mat", "sub/a_1.mat", "c.json"] {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        let pat = |p: &str| d.join(p);
        let (files, bad) = expand(&[
            pat("*.mat"),
            pat("sub/*.mat"),
            pat("a_3.mat"),
            pat("*.nothing"),
        ]);
        let names: Vec<_> = files
            .iter()
            .map(|p| p.strip_prefix(d).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["sub/a_1.mat", "a_3.mat", "b_2.mat"]);
        assert_eq!(bad.len(), 1);
        assert!(bad[0].1.contains("no file matches"), "{bad:?}");
        // A directory stands for its data files; a plain missing path is kept.
        let (files, bad) = expand(&[pat("sub"), pat("missing.mat")]);
        assert_eq!(files, [pat("sub/a_1.mat"), pat("missing.mat")]);
        assert!(bad.is_empty());
    }
}
