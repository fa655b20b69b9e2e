//! The map of a [`Snapshot`] as RGB pixels: a title on top, the map with
//! its axes, and a colour bar on the right.

use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle, RGBColor};

use super::scale::{degrees, tick_label, Scale};
use super::snapshot::Snapshot;
use crate::doc::fields;
use crate::error::{Error, Result};
use crate::read::Kind;

/// DejaVu Sans (Bitstream Vera licence, see `assets/fonts/LICENSE`).
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

/// Cells whose value is null.
const NO_DATA: RGBColor = RGBColor(190, 190, 190);
const INK: RGBColor = RGBColor(40, 40, 40);
const GRID: RGBColor = RGBColor(225, 225, 225);
/// Coastlines: black, which neither colour scale nor the grey of missing
/// cells uses.
const COAST: RGBColor = RGBColor(0, 0, 0);
/// Bands the colour bar is drawn in.
const BAR_STEPS: usize = 256;

/// A part of the image.
type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

fn font_ready() -> Result<()> {
    static READY: OnceLock<bool> = OnceLock::new();
    if *READY.get_or_init(|| register_font(FAMILY, FontStyle::Normal, FONT).is_ok()) {
        Ok(())
    } else {
        Err(Error::Usage(
            "the font built into manage cannot be read (a damaged build)".into(),
        ))
    }
}

fn draw_error<E: std::fmt::Debug>(e: E) -> Error {
    Error::Usage(format!("cannot draw the map: {e:?}"))
}

fn px(f: f64) -> u32 {
    f.round() as u32
}

/// Where everything goes, in pixels, for an image `width` wide.
struct Layout {
    width: u32,
    /// The base font size; the rest scales with it.
    font: f64,
    title_h: u32,
    /// Above the map and the bar.
    top: u32,
    /// Left of the map: the latitude labels.
    left: u32,
    /// Below the map: the longitude labels.
    bottom: u32,
    /// Between the map and the bar.
    gap: u32,
    bar_w: u32,
    /// Right of the bar: its widest tick label and a space.
    bar_labels: u32,
    /// The width of the bar's part of the image.
    right: u32,
    plot_w: u32,
    plot_h: u32,
    height: u32,
    /// `[x0, x1, y0, y1]` of the map, in degrees.
    extent: [f64; 4],
}

impl Layout {
    fn new(snap: &Snapshot, scale: Scale, width: u32) -> Result<Layout> {
        let font = (f64::from(width) / 72.0).clamp(11.0, 40.0);
        let title_h = px(font * 2.6);
        let top = px(font * 0.8);
        let left = px(font * 5.0);
        let bottom = px(font * 3.2);
        let gap = px(font * 1.6);
        let bar_w = px(font * 1.4);
        // Room for the colour bar's widest tick label, then the units.
        let (lo, hi) = scale.bounds();
        let widest = [lo, hi, (lo + hi) / 2.0, lo + (hi - lo) * 0.9]
            .iter()
            .map(|v| {
                (FAMILY, font)
                    .into_font()
                    .box_size(&tick_label(*v, hi - lo))
                    .map(|(w, _)| w)
                    .map_err(draw_error)
            })
            .try_fold(0, |m, w| w.map(|w| m.max(w)))?;
        let bar_labels = widest + px(font * 1.2);
        let right = gap + bar_w + bar_labels + px(font * 2.2);
        let extent = snap.extent();
        let [x0, x1, y0, y1] = extent;
        let plot_w = width.saturating_sub(px(font * 0.6) + left + right).max(50);
        // Degrees of latitude and longitude the same length on screen, within reason.
        let aspect = ((y1 - y0) / (x1 - x0)).clamp(0.25, 1.4);
        let plot_h = px(f64::from(plot_w) * aspect);
        Ok(Layout {
            width,
            font,
            title_h,
            top,
            left,
            bottom,
            gap,
            bar_w,
            bar_labels,
            right,
            plot_w,
            plot_h,
            height: title_h + top + plot_h + bottom,
            extent,
        })
    }

    /// Tick labels.
    fn label_style(&self) -> TextStyle<'static> {
        (FAMILY, self.font).into_font().color(&INK)
    }

    /// Axis descriptions and the units.
    fn desc_style(&self) -> TextStyle<'static> {
        (FAMILY, self.font * 1.05).into_font().color(&INK)
    }
}

/// The map as RGB pixels, `width` wide; returns them and the height.
pub fn render(snap: &Snapshot, width: u32, coastlines: bool) -> Result<(Vec<u8>, u32)> {
    font_ready()?;
    let values: Vec<f64> = snap.marks.iter().filter_map(|m| m.value).collect();
    let scale = Scale::for_values(&values);
    let layout = Layout::new(snap, scale, width)?;
    let height = layout.height;

    let mut buf = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let (title_area, body) = root.split_vertically(layout.title_h);
        draw_title(&title_area, snap, &layout)?;
        let (map_area, bar_area) = body.split_horizontally(width - layout.right);
        draw_map(&map_area, snap, scale, &layout, coastlines)?;
        draw_colour_bar(&root, &bar_area, snap, scale, &layout)?;
        root.present().map_err(draw_error)?;
    }
    Ok((buf, height))
}

/// The title: the dataset's title, the parameter unless it is the usual
/// one, and the time; smaller type if it would not fit.
fn draw_title(area: &Area, snap: &Snapshot, layout: &Layout) -> Result<()> {
    let mut title = snap.title.clone();
    if snap.param != fields::VALUES {
        title.push_str(&format!(" ({})", snap.param));
    }
    let when = bson::DateTime::from_millis(snap.time)
        .to_chrono()
        .format("%Y-%m-%d %H:%M UTC");
    let title = format!("{title}, {when}");
    let mut size = layout.font * 1.3;
    let fits = |size: f64| -> Result<bool> {
        let (tw, _) = area
            .estimate_text_size(&title, &TextStyle::from((FAMILY, size).into_font()))
            .map_err(draw_error)?;
        Ok(tw + px(layout.font) < layout.width)
    };
    while size > 9.0 && !fits(size)? {
        size -= 1.0;
    }
    let style = TextStyle::from((FAMILY, size).into_font())
        .color(&INK)
        .pos(Pos::new(HPos::Center, VPos::Center));
    area.draw_text(
        &title,
        &style,
        ((layout.width / 2) as i32, (layout.title_h / 2) as i32),
    )
    .map_err(draw_error)
}

/// The map: longitude and latitude axes, the cells or points, the
/// coastlines over them and a frame.
fn draw_map(
    area: &Area,
    snap: &Snapshot,
    scale: Scale,
    layout: &Layout,
    coastlines: bool,
) -> Result<()> {
    let font = layout.font;
    let [x0, x1, y0, y1] = layout.extent;
    let mut map = ChartBuilder::on(area)
        .margin_top(layout.top)
        .margin_left(px(font * 0.6))
        .x_label_area_size(layout.bottom)
        .y_label_area_size(layout.left)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(draw_error)?;
    let lon = |v: &f64| degrees(*v, 'E', 'W');
    let lat = |v: &f64| degrees(*v, 'N', 'S');
    map.configure_mesh()
        .x_labels((layout.plot_w / px(font * 5.0)).max(2) as usize)
        .y_labels((layout.plot_h / px(font * 3.0)).max(2) as usize)
        .x_label_formatter(&lon)
        .y_label_formatter(&lat)
        .x_desc("Longitude")
        .y_desc("Latitude")
        .label_style(layout.label_style())
        .axis_desc_style(layout.desc_style())
        .axis_style(INK)
        .set_all_tick_mark_size(px(font * 0.4))
        .bold_line_style(GRID)
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(draw_error)?;
    let colour = |v: Option<f64>| v.map_or(NO_DATA, |v| scale.colour(v));
    match snap.kind {
        Kind::Gridded => {
            let (hx, hy) = (snap.res.0 / 2.0, snap.res.1 / 2.0);
            map.draw_series(snap.marks.iter().map(|m| {
                Rectangle::new(
                    [(m.x - hx, m.y - hy), (m.x + hx, m.y + hy)],
                    colour(m.value).filled(),
                )
            }))
            .map_err(draw_error)?;
        }
        Kind::Points => {
            let r = (f64::from(layout.width) / 300.0).clamp(2.0, 8.0).round() as i32;
            map.draw_series(
                snap.marks
                    .iter()
                    .map(|m| Circle::new((m.x, m.y), r, colour(m.value).filled())),
            )
            .map_err(draw_error)?;
            map.draw_series(
                snap.marks
                    .iter()
                    .map(|m| Circle::new((m.x, m.y), r, INK.mix(0.6).stroke_width(1))),
            )
            .map_err(draw_error)?;
        }
    }
    // Coastlines over the cells, clipped to the map.
    if coastlines {
        let width = (f64::from(layout.width) / 1200.0).round().max(1.0) as u32;
        let stroke = COAST.stroke_width(width);
        map.draw_series(
            super::coastlines::segments(x0, x1, y0, y1)
                .into_iter()
                .map(|s| PathElement::new(s.to_vec(), stroke)),
        )
        .map_err(draw_error)?;
    }
    // A frame on top of the cells.
    map.plotting_area()
        .draw(&Rectangle::new([(x0, y0), (x1, y1)], INK.stroke_width(1)))
        .map_err(draw_error)
}

/// The colour bar, as tall as the map, with arrow ends when some values
/// lie beyond the scale's, labelled with the units.
fn draw_colour_bar(
    root: &Area,
    area: &Area,
    snap: &Snapshot,
    scale: Scale,
    layout: &Layout,
) -> Result<()> {
    let font = layout.font;
    let (lo, hi) = scale.bounds();
    let mut bar = ChartBuilder::on(area)
        .margin_top(layout.top)
        .margin_left(layout.gap)
        .margin_right(layout.right - layout.gap - layout.bar_w - layout.bar_labels)
        .x_label_area_size(layout.bottom)
        .right_y_label_area_size(layout.bar_labels)
        .build_cartesian_2d(0.0..1.0, lo..hi)
        .map_err(draw_error)?;
    let fmt = |v: &f64| tick_label(*v, hi - lo);
    bar.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .x_labels(0)
        .y_labels((layout.plot_h / px(font * 2.5)).max(2) as usize)
        .y_label_formatter(&fmt)
        .label_style(layout.label_style())
        .axis_style(INK)
        .set_all_tick_mark_size(px(font * 0.4))
        .draw()
        .map_err(draw_error)?;
    let d = (hi - lo) / BAR_STEPS as f64;
    bar.draw_series((0..BAR_STEPS).map(|k| {
        let v0 = lo + d * k as f64;
        Rectangle::new(
            [(0.0, v0), (1.0, v0 + d)],
            scale.colour(v0 + d / 2.0).filled(),
        )
    }))
    .map_err(draw_error)?;
    bar.plotting_area()
        .draw(&Rectangle::new([(0.0, lo), (1.0, hi)], INK.stroke_width(1)))
        .map_err(draw_error)?;
    draw_arrow_ends(
        root,
        bar.plotting_area().get_pixel_range(),
        snap,
        scale,
        font,
    )?;
    // The units, read upwards along the bar, inside the image.
    let units = if snap.units.is_empty() {
        &snap.param
    } else {
        &snap.units
    };
    area.draw_text(
        units,
        &layout
            .desc_style()
            .transform(FontTransform::Rotate270)
            .pos(Pos::new(HPos::Center, VPos::Center)),
        (
            (layout.gap + layout.bar_w + layout.bar_labels + px(font * 0.9)) as i32,
            (layout.top + layout.plot_h / 2) as i32,
        ),
    )
    .map_err(draw_error)
}

/// Arrow ends on the bar whose pixels are `(xs, ys)`, when some values lie
/// beyond the scale's ends, in the colours of those ends.
fn draw_arrow_ends(
    root: &Area,
    (xs, ys): (std::ops::Range<i32>, std::ops::Range<i32>),
    snap: &Snapshot,
    scale: Scale,
    font: f64,
) -> Result<()> {
    let (lo, hi) = scale.bounds();
    let tip = px(font * 0.7) as i32;
    let (data_lo, data_hi) = snap.range().unwrap_or((lo, hi));
    for (beyond, y, dir, v) in [
        (data_hi > hi, ys.start, -1, hi),
        (data_lo < lo, ys.end - 1, 1, lo),
    ] {
        if beyond {
            let (a, b, m) = (xs.start, xs.end - 1, (xs.start + xs.end - 1) / 2);
            let tri = vec![(a, y), (b, y), (m, y + dir * tip)];
            root.draw(&Polygon::new(tri.clone(), scale.colour(v).filled()))
                .map_err(draw_error)?;
            root.draw(&PathElement::new([tri, vec![(a, y)]].concat(), INK))
                .map_err(draw_error)?;
        }
    }
    Ok(())
}
