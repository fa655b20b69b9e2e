//! Natural Earth coastlines for `plot`, carried inside the binary.
//!
//! `assets/coastlines-110m.bin` and `assets/coastlines-50m.bin` are the
//! outlines of Natural Earth's land polygons (public domain) at 1:110 million
//! and 1:50 million, written by `scripts/coastlines.py` from the npm package
//! `world-atlas`: b"FXCOAST1", a u32 count of lines, then per line a u32
//! count of points and the points as (i16, i16) hundredths of a degree of
//! longitude and latitude, little-endian.

const COARSE: &[u8] = include_bytes!("../../assets/coastlines-110m.bin");
const FINE: &[u8] = include_bytes!("../../assets/coastlines-50m.bin");

/// A map wider than this (degrees of longitude) is a world or continental
/// view and gets the 1:110m lines; a smaller region the 1:50m ones.
pub const FINE_BELOW_DEGREES: f64 = 90.0;

/// The coastlines for a map of `x0..x1` by `y0..y1` degrees, as segments
/// clipped to it; longitudes are repeated 360° east and west so that a grid
/// on 0..360 gets them too.
pub fn segments(x0: f64, x1: f64, y0: f64, y1: f64) -> Vec<[(f64, f64); 2]> {
    let data = if x1 - x0 > FINE_BELOW_DEGREES {
        COARSE
    } else {
        FINE
    };
    let mut out = Vec::new();
    for line in lines(data) {
        for offset in [-360.0, 0.0, 360.0] {
            for pair in line.windows(2) {
                let a = (pair[0].0 + offset, pair[0].1);
                let b = (pair[1].0 + offset, pair[1].1);
                if let Some(s) = clip(a, b, x0, x1, y0, y1) {
                    out.push(s);
                }
            }
        }
    }
    out
}

/// The lines of an encoded file, in degrees.
pub fn lines(data: &[u8]) -> Vec<Vec<(f64, f64)>> {
    assert!(data.starts_with(b"FXCOAST1"), "coastline data");
    let u32_at =
        |i: usize| u32::from_le_bytes(data[i..i + 4].try_into().expect("4 bytes")) as usize;
    let i16_at = |i: usize| f64::from(i16::from_le_bytes([data[i], data[i + 1]])) / 100.0;
    let count = u32_at(8);
    let mut at = 12;
    let mut lines = Vec::with_capacity(count);
    for _ in 0..count {
        let n = u32_at(at);
        at += 4;
        lines.push(
            (0..n)
                .map(|k| (i16_at(at + 4 * k), i16_at(at + 4 * k + 2)))
                .collect(),
        );
        at += 4 * n;
    }
    lines
}

/// The part of segment a–b inside the rectangle (Liang–Barsky), if any.
fn clip(
    a: (f64, f64),
    b: (f64, f64),
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
) -> Option<[(f64, f64); 2]> {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [
        (-dx, a.0 - x0),
        (dx, x1 - a.0),
        (-dy, a.1 - y0),
        (dy, y1 - a.1),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                t0 = t0.max(r);
            } else {
                t1 = t1.min(r);
            }
            if t0 > t1 {
                return None;
            }
        }
    }
    let at = |t: f64| (a.0 + t * dx, a.1 + t * dy);
    Some([at(t0), at(t1)])
}

#[cfg(test)]
mod tests {
    use super::*;

    // The counts scripts/coastlines.py printed when it wrote the files.
    const LINES_110M: usize = 128;
    const LINES_50M: usize = 1422;

    #[test]
    fn both_files_decode_to_lines_on_the_globe() {
        for (data, lines_expected) in [(COARSE, LINES_110M), (FINE, LINES_50M)] {
            let lines = lines(data);
            assert_eq!(lines.len(), lines_expected);
            assert!(lines.iter().all(|l| l.len() >= 2));
            assert!(lines
                .iter()
                .flatten()
                .all(|&(x, y)| (-180.0..=180.0).contains(&x) && (-90.0..=90.0).contains(&y)));
        }
    }

    #[test]
    fn segments_are_clipped_to_the_map() {
        assert_eq!(
            clip((-10.0, 0.0), (10.0, 0.0), 0.0, 5.0, -1.0, 1.0),
            Some([(0.0, 0.0), (5.0, 0.0)])
        );
        assert_eq!(clip((-10.0, 5.0), (10.0, 5.0), 0.0, 5.0, -1.0, 1.0), None);
        let s = segments(-10.0, 10.0, 35.0, 45.0);
        assert!(!s.is_empty());
        assert!(s
            .iter()
            .flatten()
            .all(|&(x, y)| (-10.0..=10.0).contains(&x) && (35.0..=45.0).contains(&y)));
    }
}
