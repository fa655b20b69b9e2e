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
