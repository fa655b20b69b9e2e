//! `export --format netcdf`: a gridded dataset as a CF-1.8 NetCDF-4 file,
//! through the `netcdf` crate over libnetcdf (the library that reads
//! NetCDF inputs).
//!
//! Dimensions `time` (unlimited), `lat` and `lon`: the distinct latitudes
//! and longitudes of the selected cells, ascending. One double variable per
//! stored parameter (`values`, `errors`) over `(time, lat, lon)`, with the
//! dataset's units, `_FillValue` where a value is missing or no cell is
//! stored, zlib level 4 with shuffle. `time` is in seconds since the epoch
//! (standard calendar), so every stored millisecond is kept. The metadata's
//! scalar fields (title, precision, gridres, steps …) are global
//! attributes. Documents are written one at a time as they are read.

use std::path::Path;

use bson::{Bson, Document};

use crate::doc::fields;
use crate::error::{Error, Result};
use crate::read::Selection;
use crate::read::{array_fields, document_time, number, Dataset, Kind};

/// The fill value of missing cells: libnetcdf's default for doubles
/// (`NC_FILL_DOUBLE`), which every CF reader knows.
pub const FILL: f64 = 9.969_209_968_386_869e36;

fn nc_error(path: &Path, e: netcdf::Error) -> Error {
    Error::Usage(format!(
        "cannot write NetCDF file {}: {e}",
        crate::error::shown(path)
    ))
}

/// The grid of the selected cells: each cell's place in the lat × lon
/// array, and the axes.
struct Grid {
    lats: Vec<f64>,
    lons: Vec<f64>,
    /// For each cell of coord_index: its flat index in lat × lon, or `None`
    /// when it is outside the box.
    place: Vec<Option<usize>>,
}

impl Grid {
    fn of(coords: &[[f64; 2]], sel: &Selection) -> Grid {
        let inside = |c: &[f64; 2]| sel.bbox.is_none_or(|b| b.contains(*c));
        let axis = |k: usize| {
            let mut v: Vec<f64> = coords.iter().filter(|c| inside(c)).map(|c| c[k]).collect();
            v.sort_by(f64::total_cmp);
            v.dedup();
            v
        };
        let (lons, lats) = (axis(0), axis(1));
        let find = |axis: &[f64], x: f64| axis.binary_search_by(|a| a.total_cmp(&x)).ok();
        let place = coords
            .iter()
            .map(|c| {
                if !inside(c) {
                    return None;
                }
                Some(find(&lats, c[1])? * lons.len() + find(&lons, c[0])?)
            })
            .collect();
        Grid { lats, lons, place }
    }
}

/// A metadata value as a NetCDF attribute value, when it is one.
fn attribute(b: &Bson) -> Option<netcdf::AttributeValue> {
    use netcdf::AttributeValue as A;
    Some(match b {
        Bson::String(s) => A::Str(s.clone()),
        Bson::Double(x) => A::Double(*x),
        Bson::Int32(i) => A::Int(*i),
        Bson::Int64(i) => A::Longlong(*i),
        Bson::Boolean(v) => A::Str(v.to_string()),
        Bson::Array(a) if !a.is_empty() => {
            if let Some(n) = a
                .iter()
                .map(|x| match x {
                    Bson::Double(x) => Some(*x),
                    Bson::Int32(i) => Some(f64::from(*i)),
                    Bson::Int64(i) => Some(*i as f64),
                    _ => None,
                })
                .collect::<Option<Vec<f64>>>()
            {
                A::Doubles(n)
            } else {
                A::Strs(
                    a.iter()
                        .map(|x| match x {
                            Bson::String(s) => Some(s.clone()),
                            _ => None,
                        })
                        .collect::<Option<Vec<String>>>()?,
                )
            }
        }
        _ => return None,
    })
}

/// The units the metadata gives parameter `p`.
fn units_of(md: Option<&Document>, p: &str) -> Option<String> {
    match md?.get(fields::UNITS)? {
        Bson::Document(d) => d.get_str(p).ok().map(str::to_string),
        Bson::String(s) if p == fields::VALUES => Some(s.clone()),
        _ => None,
    }
}

/// Write the selected documents of gridded `dataset` to the NetCDF-4 file
/// `path`; the number of documents written.
pub fn write(dataset: &Dataset, sel: &Selection, path: &Path) -> Result<u64> {
    crate::source::quiet_hdf5();
    let err = |e| nc_error(path, e);
    if dataset.declared_kind() == Some(Kind::Points) {
        return Err(Error::Usage(format!(
            "dataset '{}' is point data (one document per point): --format netcdf writes gridded datasets; use csv",
            dataset.name
        )));
    }
    let mut file = netcdf::create(path).map_err(err)?;
    let md = dataset.metadata.as_ref();
    file.add_attribute("Conventions", "CF-1.8").map_err(err)?;
    file.add_attribute(
        "source",
        format!(
            "manage {} export of dataset {}",
            env!("CARGO_PKG_VERSION"),
            dataset.name
        ),
    )
    .map_err(err)?;
    file.add_attribute(
        "history",
        format!(
            "{} manage export -n {} --format netcdf",
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ"),
            dataset.name
        ),
    )
    .map_err(err)?;
    if let Some(md) = md {
        for (k, v) in md {
            if matches!(
                k.as_str(),
                "_id" | "Conventions" | "source" | "history" | "stats" | "files" | "units"
            ) {
                continue;
            }
            match v {
                Bson::Document(d) => {
                    for (k2, v2) in d {
                        if let Some(a) = attribute(v2) {
                            file.add_attribute(&format!("{k}_{k2}"), a).map_err(err)?;
                        }
                    }
                }
                other => {
                    if let Some(a) = attribute(other) {
                        file.add_attribute(k, a).map_err(err)?;
                    }
                }
            }
        }
    }

    let mut written = 0u64;
    let mut grid: Option<(Grid, Vec<String>)> = None;
    let mut buf: Vec<f64> = Vec::new();
    sel.scan(dataset, &mut |doc| {
        if Kind::of_document(&doc) == Kind::Points {
            return Err(Error::Usage(format!(
                "dataset '{}' holds point documents: --format netcdf writes gridded datasets; use csv",
                dataset.name
            )));
        }
        if grid.is_none() {
            let coords = dataset.coordinates()?;
            let g = Grid::of(&coords, sel);
            if g.lats.is_empty() {
                return Err(Error::collection(
                    &dataset.name,
                    "has no cell inside --bbox: nothing to write",
                ));
            }
            let params = array_fields(&doc);
            file.add_unlimited_dimension("time").map_err(err)?;
            file.add_dimension("lat", g.lats.len()).map_err(err)?;
            file.add_dimension("lon", g.lons.len()).map_err(err)?;
            let mut t = file.add_variable::<f64>("time", &["time"]).map_err(err)?;
            t.put_attribute("standard_name", "time").map_err(err)?;
            t.put_attribute("long_name", "time").map_err(err)?;
            t.put_attribute("units", "seconds since 1970-01-01 00:00:00")
                .map_err(err)?;
            t.put_attribute("calendar", "standard").map_err(err)?;
            t.put_attribute("axis", "T").map_err(err)?;
            for (name, units, standard, axis, values) in [
                ("lat", "degrees_north", "latitude", "Y", &g.lats),
                ("lon", "degrees_east", "longitude", "X", &g.lons),
            ] {
                let mut v = file.add_variable::<f64>(name, &[name]).map_err(err)?;
                v.put_attribute("standard_name", standard).map_err(err)?;
                v.put_attribute("long_name", standard).map_err(err)?;
                v.put_attribute("units", units).map_err(err)?;
                v.put_attribute("axis", axis).map_err(err)?;
                v.put_values(values, ..).map_err(err)?;
            }
            for p in &params {
                let mut v = file
                    .add_variable::<f64>(p, &["time", "lat", "lon"])
                    .map_err(err)?;
                v.set_fill_value(FILL).map_err(err)?;
                v.set_chunking(&[1, g.lats.len().max(1), g.lons.len().max(1)])
                    .map_err(err)?;
                v.set_compression(4, true).map_err(err)?;
                if let Some(u) = units_of(md, p) {
                    v.put_attribute("units", u).map_err(err)?;
                }
                let title = md.and_then(|m| m.get_str(fields::TITLE).ok());
                let long = match (p.as_str(), title) {
                    ("values", Some(t)) => t.to_string(),
                    (p, Some(t)) => format!("{t} ({p})"),
                    (p, None) => p.to_string(),
                };
                v.put_attribute("long_name", long).map_err(err)?;
                v.put_attribute("coordinates", "lat lon").map_err(err)?;
            }
            buf = vec![FILL; g.lats.len() * g.lons.len()];
            grid = Some((g, params));
        }
        let (g, params) = grid.as_ref().expect("set above");
        let t = written as usize;
        let ms = document_time(&doc).ok_or_else(|| {
            Error::collection(
                &dataset.name,
                format!(
                    "document {} has no time",
                    crate::read::describe_id(&doc)
                ),
            )
        })?;
        file.variable_mut("time")
            .expect("defined above")
            .put_value(ms as f64 / 1000.0, [t])
            .map_err(err)?;
        for p in params {
            buf.iter_mut().for_each(|x| *x = FILL);
            if let Ok(a) = doc.get_array(p) {
                if a.len() != g.place.len() {
                    return Err(Error::collection(
                        &dataset.name,
                        format!(
                            "document {} has {} {p} but its coord_index has {} cells",
                            crate::read::describe_id(&doc),
                            a.len(),
                            g.place.len()
                        ),
                    ));
                }
                for (i, b) in a.iter().enumerate() {
                    if let (Some(at), Some(x)) = (g.place[i], number(b)) {
                        buf[at] = x;
                    }
                }
            }
            file.variable_mut(p)
                .expect("defined above")
                .put_values(&buf, ([t, 0, 0], [1, g.lats.len(), g.lons.len()]))
                .map_err(err)?;
        }
        written += 1;
        Ok(())
    })?;
    file.close().map_err(err)?;
    Ok(written)
}
