//! `plot` draws Natural Earth coastlines over the map: black pixels where
//! land meets sea, at places whose geography is well known, and none over
//! open ocean or deep inland.

use crate::common;

use std::path::Path;

use common::Env;

const STM: &str = "SpatioTemporalMatrix";

/// Decoded RGB pixels of a PNG.
struct Image {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

impl Image {
    fn read(path: &Path) -> Image {
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        buf.truncate(info.buffer_size());
        Image {
            width: info.width as usize,
            height: info.height as usize,
            rgb: buf,
        }
    }

    fn at(&self, x: usize, y: usize) -> [u8; 3] {
        let i = 3 * (y * self.width + x);
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    fn black(&self, x: usize, y: usize) -> bool {
        self.at(x, y) == [0, 0, 0]
    }

    /// A pixel of the map: a colour of the scale (not a grey of text or
    /// axes) or a coastline.
    fn on_map(&self, x: usize, y: usize) -> bool {
        let [r, g, b] = self.at(x, y);
        !(r == g && g == b) || self.black(x, y)
    }

    /// The map's pixel box, found from the image alone: the coloured run
    /// through the middle row (the colour bar is beyond a white gap) and
    /// through the middle of that run vertically.
    fn map_box(&self) -> (usize, usize, usize, usize) {
        let row = self.height / 2;
        let left = (0..self.width).find(|&x| self.on_map(x, row)).unwrap();
        let mut right = left;
        while right + 1 < self.width && self.on_map(right + 1, row) {
            right += 1;
        }
        let col = (left + right) / 2;
        let top = (0..self.height).find(|&y| self.on_map(col, y)).unwrap();
        let mut bottom = top;
        while bottom + 1 < self.height && self.on_map(col, bottom + 1) {
            bottom += 1;
        }
        (left, right, top, bottom)
    }

    /// Whether a coastline pixel lies within `r` degrees of (lon, lat) on a
    /// map of the extent given.
    fn coast_near(&self, extent: [f64; 4], lon: f64, lat: f64, r: f64) -> bool {
        let (left, right, top, bottom) = self.map_box();
        let [x0, x1, y0, y1] = extent;
        let px = |lon: f64| left as f64 + (lon - x0) / (x1 - x0) * (right - left) as f64;
        let py = |lat: f64| top as f64 + (y1 - lat) / (y1 - y0) * (bottom - top) as f64;
        let (xa, xb) = (px(lon - r).max(left as f64), px(lon + r).min(right as f64));
        let (ya, yb) = (py(lat + r).max(top as f64), py(lat - r).min(bottom as f64));
        // One pixel in from the frame, which is not a coastline.
        let (xa, xb) = (
            (xa.round() as usize).max(left + 2),
            (xb.round() as usize).min(right - 2),
        );
        let (ya, yb) = (
            (ya.round() as usize).max(top + 2),
            (yb.round() as usize).min(bottom - 2),
        );
        (ya..=yb).any(|y| (xa..=xb).any(|x| self.black(x, y)))
    }
}

fn plot(env: &Env, grid: fluxpy::synth::Grid, name: &str, extra: &[&str]) -> Image {
    let mat = env.path(&format!("{name}.mat"));
    if !mat.exists() {
        // Positive values, so that the colour scale is viridis, which has no
        // grey: every pixel of the map is then told apart from the black lines.
        let mut m = fluxpy::synth::flux_matrix(&grid, 1, 3.0);
        m.column_mut(2).mapv_inplace(|v| v + 100.0);
        fluxpy::synth::write_mat_v5(&mat, "flux", &m, false).unwrap();
        env.run(&[
            "load",
            "-p",
            mat.to_str().unwrap(),
            "-m",
            STM,
            "-n",
            name,
            "-o",
            "timestamp=2005-01-01;gridres={\"units\":\"degrees\",\"x\":0.5,\"y\":0.5}",
        ])
        .ok();
    }
    let png = env.path(&format!("{name}{}.png", extra.len()));
    let mut args = vec![
        "plot",
        "-n",
        name,
        "--width",
        "1600",
        "--output",
        png.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    env.run(&args).ok();
    Image::read(&png)
}

#[test]
fn a_world_map_has_coastlines_at_coasts_and_none_at_sea_or_inland() {
    let env = Env::new();
    let image = plot(&env, fluxpy::synth::Grid::GLOBAL_HALF_DEGREE, "world", &[]);
    let world = [-180.0, 180.0, -90.0, 90.0];
    let (left, right, top, bottom) = image.map_box();
    // The map keeps the grid's 2:1 shape (within a pixel or two per side).
    let ratio = (right - left) as f64 / (bottom - top) as f64;
    assert!(
        (ratio - 2.0).abs() < 0.05,
        "map box {left}..{right} x {top}..{bottom}"
    );
    for (place, lon, lat) in [
        ("Cape Agulhas", 20.0, -34.8),
        ("Dakar", -17.4, 14.7),
        ("Cape Horn", -67.3, -55.9),
        ("the tip of Florida", -80.9, 25.2),
        ("Cape York", 142.5, -10.7),
        ("Cape Farewell, Greenland", -43.9, 59.8),
    ] {
        assert!(
            image.coast_near(world, lon, lat, 1.5),
            "no coastline at {place}"
        );
    }
    for (place, lon, lat) in [
        ("the South Atlantic", -30.0, -30.0),
        ("the central Pacific", -150.0, 0.0),
        ("the Indian Ocean", 80.0, -30.0),
        ("the North Atlantic", -40.0, 45.0),
        ("the Sahara", 20.0, 22.0),
        ("central Australia", 134.0, -25.0),
        ("the Great Plains", -100.0, 40.0),
        ("Siberia", 100.0, 62.0),
    ] {
        assert!(
            !image.coast_near(world, lon, lat, 2.0),
            "a coastline in {place}"
        );
    }
}

#[test]
fn no_coastlines_turns_them_off() {
    let env = Env::new();
    let image = plot(
        &env,
        fluxpy::synth::Grid::GLOBAL_HALF_DEGREE,
        "world",
        &["--no-coastlines"],
    );
    let (left, right, top, bottom) = image.map_box();
    assert!(!(top..=bottom).any(|y| (left..=right).any(|x| image.black(x, y))));
}

#[test]
fn a_small_region_gets_the_finer_lines() {
    let env = Env::new();
    // Iberia and the western Mediterranean.
    let grid = fluxpy::synth::Grid::GLOBAL_HALF_DEGREE.with_window(-10.0, 10.0, 35.0, 45.0);
    let image = plot(&env, grid, "iberia", &[]);
    let extent = [-10.0, 10.0, 35.0, 45.0];
    for (place, lon, lat) in [
        ("Cabo da Roca", -9.5, 38.78),
        ("Barcelona", 2.17, 41.38),
        ("Marseille", 5.37, 43.3),
        ("the Strait of Gibraltar", -5.6, 36.0),
        ("Mallorca", 3.0, 39.35),
    ] {
        assert!(
            image.coast_near(extent, lon, lat, 0.4),
            "no coastline at {place}"
        );
    }
    for (place, lon, lat) in [
        ("Madrid", -3.7, 40.4),
        ("the Massif Central", 3.0, 45.0 - 0.6),
        ("the sea off Algiers", 5.0, 38.0),
    ] {
        assert!(
            !image.coast_near(extent, lon, lat, 0.4),
            "a coastline at {place}"
        );
    }
}
