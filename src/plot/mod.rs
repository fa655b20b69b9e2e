//! Quick-look maps of one time step of a dataset, for `manage plot`.
//!
//! Gridded data is drawn as cells of the dataset's grid resolution, point
//! data as dots, on longitude/latitude axes (plate carrée), coloured with
//! viridis, or with a diverging red-blue scale centred on zero when the
//! values of that time change sign. Only the documents of the plotted time
//! are read from the store ([`Snapshot::read`]). The text is set in DejaVu
//! Sans, embedded in the binary, so no system font or fontconfig is needed.

pub mod coastlines;
mod render;
mod scale;
mod snapshot;

use std::path::Path;

use crate::error::{Error, Result};

pub use render::render;
pub use scale::Scale;
pub use snapshot::{Mark, Snapshot};

/// Draw the map of `snap`, `width` pixels wide, to the PNG file `path`;
/// returns the image's height.
pub fn draw(snap: &Snapshot, path: &Path, width: u32, coastlines: bool) -> Result<u32> {
    let (image, height) = render(snap, width, coastlines)?;
    write_png(path, &image, width, height)?;
    Ok(height)
}

/// Encode the pixels as PNG into a temporary file beside `path`, then move
/// it into place: a failure leaves no half-written image. The file is
/// created as any other (permissions from the umask).
pub fn write_png(path: &Path, rgb: &[u8], width: u32, height: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Error::Usage(format!(
            "--output {}: the folder {} does not exist",
            crate::error::shown(path),
            crate::error::shown(dir)
        )));
    }
    let io = |e: std::io::Error| Error::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let encode = |e: png::EncodingError| match e {
        png::EncodingError::IoError(e) => io(e),
        e => Error::format(path, format!("cannot encode PNG: {e}")),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    // Removed when dropped, so on every error below.
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(io)?;
    let mut out = std::io::BufWriter::new(tmp.as_file());
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(encode)?;
    writer.write_image_data(rgb).map_err(encode)?;
    writer.finish().map_err(encode)?;
    out.flush().map_err(io)?;
    drop(out);
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}
