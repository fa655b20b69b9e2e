//! What one time step of a dataset looks like: its cells or points and
//! their values, read from the store one document at a time, and the
//! metadata a map is labelled with.

use bson::{Bson, Document};

use crate::doc::fields;
use crate::error::{Error, Result};
use crate::read::{
    array_fields, describe_id, document_time, number, point_property, Dataset, Kind,
};

/// One cell or point and its value.
pub struct Mark {
    pub x: f64,
    pub y: f64,
    pub value: Option<f64>,
}

/// What one time step of a dataset looks like: everything a map needs.
pub struct Snapshot {
    /// The dataset's title (else its name), as it is meant to be read.
    pub title: String,
    /// The units of the parameter, empty when the metadata has none.
    pub units: String,
    pub param: String,
    /// The time step, in ms since the epoch.
    pub time: i64,
    pub kind: Kind,
    /// Cell size in degrees (x, y).
    pub res: (f64, f64),
    pub marks: Vec<Mark>,
}

impl Snapshot {
    /// Read the documents of time `at` (the dataset's first time when
    /// `None`), one at a time, keeping only coordinates and values.
    pub fn read(dataset: &Dataset, at: Option<i64>, param: &str) -> Result<Snapshot> {
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
    pub fn range(&self) -> Option<(f64, f64)> {
        self.marks
            .iter()
            .filter_map(|m| m.value)
            .fold(None, |r, v| match r {
                None => Some((v, v)),
                Some((lo, hi)) => Some((f64::min(lo, v), f64::max(hi, v))),
            })
    }

    /// `[x0, x1, y0, y1]` to draw: every cell whole, or every point with a margin.
    pub fn extent(&self) -> [f64; 4] {
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
    let [x, y] = dataset.point_xy(doc)?;
    marks.push(Mark {
        x,
        y,
        value: point_property(doc, key),
    });
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

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
}
