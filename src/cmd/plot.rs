//! `manage plot -n NAME --output FILE.png`: a quick-look map of one time step.
//!
//! Gridded data is drawn as cells of the dataset's grid resolution, point
//! data as dots, on longitude/latitude axes (plate carrée), coloured with
//! viridis, or with a diverging red-blue scale centred on zero when the
//! values of that time change sign. Only the documents of the plotted time
//! are read from the store. The text is set in DejaVu Sans, embedded in the
//! binary, so no system font or fontconfig is needed.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bson::{Bson, Document};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle, RGBColor};

use crate::cmd::dataset::{
    array_fields, describe_id, document_time, number, point_coordinates, point_property, Dataset,
    Kind,
};
use crate::cmd::export::{parse_at, shortest};
use crate::error::{Error, Result};
use crate::model::{fields, iso_date};
use crate::store;

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

/// Draw a map of one time step of a dataset to a PNG file.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Gridded data is drawn as cells of the dataset's `gridres` (1 degree when it has
none), point data as dots; null cells are grey. The colour scale is viridis, or
red-blue centred on zero when the values of that time change sign.

Examples:
  manage plot -n casa_2004 --output casa_2004.png
  manage plot -n casa_2004 --at 2004-06-30T12:00:00 --width 1600 -O noon.png
  manage plot -n kriged_2009 --param errors -O kriged_errors.png")]
pub struct Args {
    /// The dataset to plot
    #[arg(
        short = 'n',
        long = "collection_name",
        visible_alias = "collection-name",
        value_name = "NAME"
    )]
    pub name: String,

    /// The time step to draw (ISO 8601, UTC unless an offset is given) [default: the first]
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,

    /// The parameter to draw: values, errors, ...
    #[arg(long, value_name = "PARAM", default_value = "values")]
    pub param: String,

    /// The PNG file to write
    #[arg(short = 'O', long = "output", value_name = "FILE.png")]
    pub output: PathBuf,

    /// Width of the image in pixels; the height follows the map's extent
    #[arg(long, value_name = "PX", default_value_t = 1200,
          value_parser = clap::value_parser!(u32).range(320..=8000))]
    pub width: u32,

    /// Leave out the coastlines (Natural Earth: 1:110m on maps wider than
    /// 90 degrees, 1:50m on smaller regions)
    #[arg(long = "no-coastlines")]
    pub no_coastlines: bool,
}

pub fn run(db: Option<&str>, args: &Args) -> Result<()> {
    let png = args
        .output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !png {
        return Err(Error::Usage(format!(
            "--output {}: plot writes PNG images; give a file name ending in .png",
            crate::error::shown(&args.output)
        )));
    }
    let at = parse_at(args.at.as_deref())?;
    let store = store::open_for_reading(db)?;
    let dataset = Dataset::open(&*store, &args.name)?;
    let snap = Snapshot::read(&dataset, at, &args.param)?;
    let (image, height) = render(&snap, args.width, !args.no_coastlines)?;
    write_png(&args.output, &image, args.width, height)?;

    let nulls = snap.marks.iter().filter(|m| m.value.is_none()).count();
    let range = match snap.range() {
        Some((lo, hi)) => format!(
            "{} from {} to {}{}",
            snap.param,
            shortest_text(lo),
            shortest_text(hi),
            if snap.units.is_empty() {
                String::new()
            } else {
                format!(" {}", snap.units)
            }
        ),
        None => format!("no {} (every one is null)", snap.param),
    };
    println!(
        "wrote {} ({} x {height} px): {} at {}Z, {} {}{}, {range}",
        crate::error::shown(&args.output),
        args.width,
        args.name,
        iso_date(snap.time),
        snap.marks.len(),
        if snap.kind == Kind::Gridded {
            "cells"
        } else {
            "points"
        },
        if nulls > 0 {
            format!(" ({nulls} null)")
        } else {
            String::new()
        },
    );
    Ok(())
}

/// One cell or point and its value.
struct Mark {
    x: f64,
    y: f64,
    value: Option<f64>,
}

/// What one time step of a dataset looks like: everything a map needs.
struct Snapshot {
    title: String,
    units: String,
    param: String,
    time: i64,
    kind: Kind,
    /// Cell size in degrees (x, y).
    res: (f64, f64),
    marks: Vec<Mark>,
}

impl Snapshot {
    /// Read the documents of time `at` (the dataset's first time when
    /// `None`), one at a time, keeping only coordinates and values.
    fn read(dataset: &Dataset, at: Option<i64>, param: &str) -> Result<Snapshot> {
        // The first time is in the metadata; without it, the earliest
        // document found while reading them all is kept.
        let mut time = at.or_else(|| dataset.first_listed_time());
        let earliest = time.is_none();
        let mut kind = None;
        let mut coords: Option<Vec<[f64; 2]>> = None;
        let mut marks = Vec::new();
        dataset.scan(time, &mut |doc| {
            if earliest {
                match (document_time(&doc), time) {
                    (Some(t), Some(cur)) if t > cur => return Ok(()),
                    (Some(t), Some(cur)) if t < cur => {
                        marks.clear();
                        time = Some(t);
                    }
                    (Some(t), None) => time = Some(t),
                    _ => {}
                }
            }
            let k = *kind.get_or_insert_with(|| dataset.kind(&doc));
            match k {
                Kind::Gridded => {
                    if coords.is_none() {
                        coords = Some(dataset.coordinates()?);
                    }
                    let coords = coords.as_deref().unwrap_or_default();
                    grid_marks(dataset, &doc, param, coords, &mut marks)
                }
                Kind::Points => point_mark(dataset, &doc, param, &mut marks),
            }
        })?;
        let (Some(time), Some(kind)) = (time, kind) else {
            return Err(match at {
                Some(t) => dataset.nothing_at(t),
                None => Error::collection(&dataset.name, "has no documents to plot"),
            });
        };
        let md = dataset.metadata.as_ref();
        Ok(Snapshot {
            title: readable(dataset.metadata_str(fields::TITLE).unwrap_or(&dataset.name)),
            units: md.map(|m| units_of(m, param)).unwrap_or_default(),
            param: param.to_string(),
            time,
            kind,
            res: md.map(gridres).unwrap_or((1.0, 1.0)),
            marks,
        })
    }

    /// The smallest and largest value, if any is not null.
    fn range(&self) -> Option<(f64, f64)> {
        self.marks
            .iter()
            .filter_map(|m| m.value)
            .fold(None, |r, v| match r {
                None => Some((v, v)),
                Some((lo, hi)) => Some((f64::min(lo, v), f64::max(hi, v))),
            })
    }

    /// `[x0, x1, y0, y1]` to draw: every cell whole, or every point with a margin.
    fn extent(&self) -> [f64; 4] {
        let mut e = [
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        for m in &self.marks {
            e = [e[0].min(m.x), e[1].max(m.x), e[2].min(m.y), e[3].max(m.y)];
        }
        let (px, py) = match self.kind {
            Kind::Gridded => (self.res.0 / 2.0, self.res.1 / 2.0),
            Kind::Points => {
                let pad = ((e[1] - e[0]).max(e[3] - e[2]) * 0.03).max(0.5);
                (pad, pad)
            }
        };
        [e[0] - px, e[1] + px, e[2] - py, e[3] + py]
    }
}

/// The cells of one gridded document.
fn grid_marks(
    dataset: &Dataset,
    doc: &Document,
    param: &str,
    coords: &[[f64; 2]],
    marks: &mut Vec<Mark>,
) -> Result<()> {
    let values = doc.get_array(param).map_err(|_| {
        Error::collection(
            &dataset.name,
            format!(
                "has no parameter '{param}' at {}; it has {}",
                describe_id(doc),
                list_or_none(&array_fields(doc))
            ),
        )
    })?;
    if values.len() != coords.len() {
        return Err(Error::collection(
            &dataset.name,
            format!(
                "document {} has {} {param} but its coord_index has {} cells",
                describe_id(doc),
                values.len(),
                coords.len()
            ),
        ));
    }
    marks.extend(coords.iter().zip(values).map(|([x, y], v)| Mark {
        x: *x,
        y: *y,
        value: number(v),
    }));
    Ok(())
}

/// The point of one point document. `--param values` names the property
/// `value` (and `errors` the `error`), as gridded datasets name their arrays.
fn point_mark(dataset: &Dataset, doc: &Document, param: &str, marks: &mut Vec<Mark>) -> Result<()> {
    let props = doc.get_document(fields::PROPERTIES).ok();
    let key = [param, param.strip_suffix('s').unwrap_or(param)]
        .into_iter()
        .find(|k| props.is_some_and(|p| p.contains_key(k)))
        .ok_or_else(|| {
            let has: Vec<String> = props
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            Error::collection(
                &dataset.name,
                format!(
                    "point {} has no property '{param}'; it has {}",
                    describe_id(doc),
                    list_or_none(&has)
                ),
            )
        })?;
    let [x, y] = point_coordinates(doc).ok_or_else(|| {
        Error::collection(
            &dataset.name,
            format!(
                "point document {} has no coordinates [x, y]",
                describe_id(doc)
            ),
        )
    })?;
    marks.push(Mark {
        x,
        y,
        value: point_property(doc, key),
    });
    Ok(())
}

fn shortest_text(x: f64) -> String {
    let mut s = String::new();
    shortest(x, &mut s);
    s
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// The units of `param` from the metadata's `units` (an object keyed by
/// parameter, or one string), made readable.
fn units_of(md: &Document, param: &str) -> String {
    let singular = param.strip_suffix('s').unwrap_or(param);
    match md.get(fields::UNITS) {
        Some(Bson::String(s)) => readable(s),
        Some(Bson::Document(u)) => [param, singular, fields::VALUES, fields::VALUE]
            .iter()
            .find_map(|k| u.get_str(k).ok())
            .map(readable)
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// The metadata's `gridres` (or `grid`): `{x, y}` in degrees, or one number.
fn gridres(md: &Document) -> (f64, f64) {
    let positive = |b: Option<&Bson>| b.and_then(number).filter(|v| *v > 0.0);
    match md.get(fields::GRIDRES).or_else(|| md.get(fields::GRID)) {
        Some(Bson::Document(g)) => {
            let x = positive(g.get("x")).unwrap_or(1.0);
            (x, positive(g.get("y")).unwrap_or(x))
        }
        b => {
            let r = positive(b).unwrap_or(1.0);
            (r, r)
        }
    }
}

/// Metadata text as it is meant to be read: HTML entities such as
/// `&mu;mol/m&sup2;` (as the web client's configs write units) decoded.
fn readable(s: &str) -> String {
    html_escape::decode_html_entities(s).trim().to_string()
}

/// How values become colours.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scale {
    /// Viridis from `lo` (dark blue) to `hi` (yellow).
    Viridis { lo: f64, hi: f64 },
    /// Blue below zero, white at zero, red above, symmetric about zero.
    Diverging { max: f64 },
}

impl Scale {
    /// The scale for a time step's values: diverging when they change sign.
    /// Its ends are the 1st and 99th percentiles (symmetric about zero when
    /// diverging), so that a few extreme cells do not wash out the rest;
    /// values beyond take the end colours and the bar shows arrow ends.
    fn for_values(values: &[f64]) -> Scale {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Scale::Viridis { lo: 0.0, hi: 1.0 };
        }
        v.sort_by(f64::total_cmp);
        let (min, max) = (v[0], v[v.len() - 1]);
        let last = (v.len() - 1) as f64;
        let (p_lo, p_hi) = (
            v[(last * 0.01).floor() as usize],
            v[(last * 0.99).ceil() as usize],
        );
        if min < 0.0 && max > 0.0 {
            let m = p_lo.abs().max(p_hi.abs());
            Scale::Diverging {
                max: if m > 0.0 { m } else { min.abs().max(max) },
            }
        } else if p_lo < p_hi {
            Scale::Viridis { lo: p_lo, hi: p_hi }
        } else if min < max {
            Scale::Viridis { lo: min, hi: max }
        } else {
            // One value only: a band around it, so it gets a colour and a label.
            let d = if min == 0.0 { 1.0 } else { min.abs() * 0.1 };
            Scale::Viridis {
                lo: min - d,
                hi: min + d,
            }
        }
    }

    fn bounds(self) -> (f64, f64) {
        match self {
            Scale::Viridis { lo, hi } => (lo, hi),
            Scale::Diverging { max } => (-max, max),
        }
    }

    fn colour(self, v: f64) -> RGBColor {
        let (lo, hi) = self.bounds();
        let t = ((v - lo) / (hi - lo)).clamp(0.0, 1.0);
        let c = match self {
            Scale::Viridis { .. } => colorous::VIRIDIS.eval_continuous(t),
            // colorous' RdBu runs red to blue; negative fluxes (uptake) are blue.
            Scale::Diverging { .. } => colorous::RED_BLUE.eval_continuous(1.0 - t),
        };
        RGBColor(c.r, c.g, c.b)
    }
}

/// A tick label for `v` on an axis spanning `span`: the digits that tell
/// ticks apart and no trailing zeros (`-2.5`, `388`, `0.04`), exponent form
/// for very large or very small numbers (`2.5e-8`).
fn tick_label(v: f64, span: f64) -> String {
    let span = if span > 0.0 { span } else { v.abs().max(1.0) };
    let mag = v.abs().max(span);
    if v != 0.0 && !(1e-3..1e6).contains(&mag) {
        let digits = ((mag / span).log10().ceil().max(0.0) as usize + 2).min(6);
        let s = format!("{v:.digits$e}");
        let (m, e) = s.split_once('e').expect("exponent form");
        return format!("{}e{e}", trim_zeros(m));
    }
    let decimals = (-(span / 1000.0).log10().floor()).clamp(0.0, 12.0) as usize;
    let s = trim_zeros(&format!("{v:.decimals$}")).to_string();
    // No "-0" for a tick at zero.
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

/// `2.500` → `2.5`, `388.0` → `388`.
fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// A longitude (`120°W`) or latitude (`35°N`) label.
fn degrees(v: f64, pos: char, neg: char) -> String {
    let a = v.abs();
    let n = if (a - a.round()).abs() < 1e-9 {
        format!("{}", a.round())
    } else {
        format!("{a:.1}")
    };
    match v {
        v if v.abs() < 1e-9 => "0°".into(),
        v if v > 0.0 => format!("{n}°{pos}"),
        _ => format!("{n}°{neg}"),
    }
}

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

/// The map as RGB pixels, `width` wide; returns them and the height.
fn render(snap: &Snapshot, width: u32, coastlines: bool) -> Result<(Vec<u8>, u32)> {
    font_ready()?;
    let w = f64::from(width);
    let font = (w / 72.0).clamp(11.0, 40.0);
    let px = |f: f64| f.round() as u32;

    // Layout, in pixels: title on top, map with axes, colour bar on the right.
    let title_h = px(font * 2.6);
    let top = px(font * 0.8);
    let left = px(font * 5.0);
    let bottom = px(font * 3.2);
    let gap = px(font * 1.6);
    let bar_w = px(font * 1.4);
    // Room for the colour bar's widest tick label, then the units.
    let values: Vec<f64> = snap.marks.iter().filter_map(|m| m.value).collect();
    let scale = Scale::for_values(&values);
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
    let [x0, x1, y0, y1] = snap.extent();
    let plot_w = width.saturating_sub(px(font * 0.6) + left + right).max(50);
    // Degrees of latitude and longitude the same length on screen, within reason.
    let aspect = ((y1 - y0) / (x1 - x0)).clamp(0.25, 1.4);
    let plot_h = px(f64::from(plot_w) * aspect);
    let height = title_h + top + plot_h + bottom;

    let mut buf = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let (title_area, body) = root.split_vertically(title_h);

        // Title: the dataset's title, the parameter unless it is the usual
        // one, and the time; smaller type if it would not fit.
        let mut title = snap.title.clone();
        if snap.param != fields::VALUES {
            title.push_str(&format!(" ({})", snap.param));
        }
        let when = bson::DateTime::from_millis(snap.time)
            .to_chrono()
            .format("%Y-%m-%d %H:%M UTC");
        let title = format!("{title}, {when}");
        let mut size = font * 1.3;
        let fits = |size: f64| -> Result<bool> {
            let (tw, _) = title_area
                .estimate_text_size(&title, &TextStyle::from((FAMILY, size).into_font()))
                .map_err(draw_error)?;
            Ok(tw + px(font) < width)
        };
        while size > 9.0 && !fits(size)? {
            size -= 1.0;
        }
        let style = TextStyle::from((FAMILY, size).into_font())
            .color(&INK)
            .pos(Pos::new(HPos::Center, VPos::Center));
        title_area
            .draw_text(&title, &style, ((width / 2) as i32, (title_h / 2) as i32))
            .map_err(draw_error)?;

        let (map_area, bar_area) = body.split_horizontally(width - right);
        let label_style = (FAMILY, font).into_font().color(&INK);
        let desc_style = (FAMILY, font * 1.05).into_font().color(&INK);

        // The map.
        let mut map = ChartBuilder::on(&map_area)
            .margin_top(top)
            .margin_left(px(font * 0.6))
            .x_label_area_size(bottom)
            .y_label_area_size(left)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(draw_error)?;
        let lon = |v: &f64| degrees(*v, 'E', 'W');
        let lat = |v: &f64| degrees(*v, 'N', 'S');
        map.configure_mesh()
            .x_labels((plot_w / px(font * 5.0)).max(2) as usize)
            .y_labels((plot_h / px(font * 3.0)).max(2) as usize)
            .x_label_formatter(&lon)
            .y_label_formatter(&lat)
            .x_desc("Longitude")
            .y_desc("Latitude")
            .label_style(label_style.clone())
            .axis_desc_style(desc_style.clone())
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
                let r = (w / 300.0).clamp(2.0, 8.0).round() as i32;
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
            let stroke = COAST.stroke_width((w / 1200.0).round().max(1.0) as u32);
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
            .map_err(draw_error)?;

        // The colour bar, as tall as the map, labelled with the units.
        let mut bar = ChartBuilder::on(&bar_area)
            .margin_top(top)
            .margin_left(gap)
            .margin_right(right - gap - bar_w - bar_labels)
            .x_label_area_size(bottom)
            .right_y_label_area_size(bar_labels)
            .build_cartesian_2d(0.0..1.0, lo..hi)
            .map_err(draw_error)?;
        let fmt = |v: &f64| tick_label(*v, hi - lo);
        bar.configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .x_labels(0)
            .y_labels((plot_h / px(font * 2.5)).max(2) as usize)
            .y_label_formatter(&fmt)
            .label_style(label_style)
            .axis_style(INK)
            .set_all_tick_mark_size(px(font * 0.4))
            .draw()
            .map_err(draw_error)?;
        const STEPS: usize = 256;
        let d = (hi - lo) / STEPS as f64;
        bar.draw_series((0..STEPS).map(|k| {
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
        // Arrow ends when some values lie beyond the scale's ends.
        let (xs, ys) = bar.plotting_area().get_pixel_range();
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
        // The units, read upwards along the bar, inside the image.
        let units = if snap.units.is_empty() {
            &snap.param
        } else {
            &snap.units
        };
        bar_area
            .draw_text(
                units,
                &desc_style
                    .transform(FontTransform::Rotate270)
                    .pos(Pos::new(HPos::Center, VPos::Center)),
                (
                    (gap + bar_w + bar_labels + px(font * 0.9)) as i32,
                    (top + plot_h / 2) as i32,
                ),
            )
            .map_err(draw_error)?;
        root.present().map_err(draw_error)?;
    }
    Ok((buf, height))
}

/// Encode the pixels as PNG into a temporary file beside `path`, then move
/// it into place: a failure leaves no half-written image. The file is
/// created as any other (permissions from the umask).
fn write_png(path: &Path, rgb: &[u8], width: u32, height: u32) -> Result<()> {
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
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let io = |e: std::io::Error| Error::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let encode = |e: png::EncodingError| match e {
        png::EncodingError::IoError(e) => io(e),
        e => Error::format(path, format!("cannot encode PNG: {e}")),
    };
    let written = (|| {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io)?;
        let mut enc = png::Encoder::new(std::io::BufWriter::new(&file), width, height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(encode)?;
        writer.write_image_data(rgb).map_err(encode)?;
        writer.finish().map_err(encode)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn sign_changes_pick_a_diverging_scale_centred_on_zero() {
        let s = Scale::for_values(&[-2.0, 5.0, 1.0]);
        assert_eq!(s, Scale::Diverging { max: 5.0 });
        assert_eq!(s.bounds(), (-5.0, 5.0));
        // Zero is the light middle of RdBu; negatives blue, positives red.
        let RGBColor(r, g, b) = s.colour(0.0);
        assert!(r > 230 && g > 230 && b > 230, "{r} {g} {b}");
        let RGBColor(r, _, b) = s.colour(-4.0);
        assert!(b > r);
        let RGBColor(r, _, b) = s.colour(4.0);
        assert!(r > b);

        let v = Scale::for_values(&[3.0, 1.0, 2.0]);
        assert_eq!(v, Scale::Viridis { lo: 1.0, hi: 3.0 });
        // Viridis ends: dark purple and yellow.
        assert_eq!(v.colour(1.0), RGBColor(0x44, 0x01, 0x54));
        let RGBColor(r, g, b) = v.colour(3.0);
        assert!(r > 240 && g > 220 && b < 60, "{r} {g} {b}");
        // A single value still gets a non-empty scale.
        let (lo, hi) = Scale::for_values(&[2.0, 2.0]).bounds();
        assert!(lo < 2.0 && hi > 2.0);
    }

    #[test]
    fn a_few_extreme_values_do_not_set_the_scale() {
        let mut v: Vec<f64> = (0..1000).map(|i| f64::from(i % 10) - 4.0).collect();
        v[17] = -400.0;
        v[18] = 50.0;
        assert_eq!(Scale::for_values(&v), Scale::Diverging { max: 5.0 });
        let v: Vec<f64> = (1..=1000).map(f64::from).chain([1e6]).collect();
        let Scale::Viridis { lo, hi } = Scale::for_values(&v) else {
            panic!("positive values take viridis")
        };
        assert!(
            (1.0..=20.0).contains(&lo) && (980.0..=1000.0).contains(&hi),
            "{lo} {hi}"
        );
    }

    #[test]
    fn units_and_titles_are_readable_text() {
        let md = doc! {"units": {"x": "degrees", "values": "&mu;mol/m&sup2;"}, "gridres": {"units": "degrees", "x": 0.5, "y": 0.5}};
        assert_eq!(units_of(&md, "values"), "μmol/m²");
        assert_eq!(units_of(&md, "errors"), "μmol/m²");
        assert_eq!(units_of(&doc! {"units": "ppm"}, "value"), "ppm");
        assert_eq!(gridres(&md), (0.5, 0.5));
        assert_eq!(gridres(&doc! {}), (1.0, 1.0));
        assert_eq!(gridres(&doc! {"grid": 2.5}), (2.5, 2.5));
        assert_eq!(readable("CO&#8322; flux &amp; more"), "CO₂ flux & more");
    }

    #[test]
    fn labels() {
        assert_eq!(degrees(-120.0, 'E', 'W'), "120°W");
        assert_eq!(degrees(35.5, 'N', 'S'), "35.5°N");
        assert_eq!(degrees(0.0, 'E', 'W'), "0°");
        assert_eq!(tick_label(-2.5, 10.0), "-2.5");
        assert_eq!(tick_label(4.0, 10.0), "4");
        assert_eq!(tick_label(0.0, 100.0), "0");
        assert_eq!(tick_label(-0.00001, 0.2), "0");
        assert_eq!(tick_label(0.1 + 0.2, 1.0), "0.3");
        assert_eq!(tick_label(2.5e-8, 1e-7), "2.5e-8");
        assert_eq!(tick_label(3e-8, 1e-7), "3e-8");
        assert_eq!(tick_label(1.25e7, 2e7), "1.25e7");
        assert_eq!(tick_label(402.5, 10.0), "402.5");
    }
}
