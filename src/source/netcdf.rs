//! NetCDF files with CF conventions (NetCDF-3 classic and 64-bit, NetCDF-4),
//! through the `netcdf` crate over the system libnetcdf.
//!
//! A CF variable over time, latitude and longitude (in any dimension order,
//! with any other dimensions of length 1) is handed out as the matrix the
//! SpatioTemporalMatrix model reads: one row per grid cell, the columns
//! longitude, latitude, then one column per time step. Cells are ordered
//! south to north, and west to east within a latitude, whatever order the
//! file stores them in; longitudes over 180° are written as their
//! equivalent west of Greenwich (0…360 becomes −180…180), as the web map
//! expects. So two files of one grid give the same `coord_index` however
//! they were written.
//!
//! Values are unpacked as CF says: a value equal to `_FillValue` (or the
//! library's default fill value when there is none), to one of
//! `missing_value`, or outside `valid_range`/`valid_min`/`valid_max` (all in
//! packed units) is missing (NaN, stored as null); the others become
//! `value * scale_factor + add_offset`. Blocks of time steps are read as
//! hyperslabs, so only the block is in memory.
//!
//! The times come from the time coordinate's CF `units` and `calendar`; see
//! [`parse_time_units`].

use std::path::Path;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use ndarray::{Array2, ShapeBuilder};
use netcdf::types::NcVariableType;
use netcdf::{AttributeValue, Extent, Variable};

use super::{Matrix, MatrixInfo};
use crate::error::{Error, Result};

/// What the CF metadata of the file says about the grid, for the model.
#[derive(Debug, Clone)]
pub struct GridFacts {
    /// The time of each step, ms since the epoch, increasing.
    pub times_ms: Vec<i64>,
    /// The file's global `title`.
    pub title: Option<String>,
    /// The variable's `units`.
    pub units: Option<String>,
    /// Mean spacing of the longitude and latitude centres, in degrees
    /// (`None` for a single row or column).
    pub dx: Option<f64>,
    pub dy: Option<f64>,
    /// The `scale_factor` of a packed variable (an integer variable with a
    /// `scale_factor` or `add_offset`): its values are steps of it.
    pub packing_step: Option<f64>,
}

pub struct NetCdfMatrix {
    info: MatrixInfo,
    file: netcdf::File,
    /// The path the library opened, held as long as the file.
    _opened: super::LibraryPath,
    facts: GridFacts,
    /// Length of each dimension of the variable, in file order.
    dims: Vec<usize>,
    /// Positions of the time, latitude and longitude dimensions.
    t_axis: usize,
    lat_axis: usize,
    lon_axis: usize,
    /// File indices of the latitudes and longitudes in output order, and
    /// the output coordinates (longitudes in −180…180).
    lat_order: Vec<usize>,
    lon_order: Vec<usize>,
    lats: Vec<f64>,
    lons: Vec<f64>,
    packing: Packing,
    netcdf4: bool,
    /// Where each output cell sits within one step of a block, for the
    /// block strides `offsets_for`; kept from block to block.
    offsets: Vec<usize>,
    offsets_for: (usize, usize),
    /// The same offsets as runs of consecutive ones (start, length): a
    /// row of longitudes in the file's order is one run, read as a slice.
    runs: Vec<(usize, usize)>,
    /// The values of the last block as the file stores them, the buffer
    /// kept for the next block.
    raw_f32: Vec<f32>,
    raw_f64: Vec<f64>,
}

/// CF packing and missing-value attributes, in packed units.
#[derive(Debug, Clone, Default)]
struct Packing {
    /// `_Unsigned = "true"` on a signed type of this many bits: a negative
    /// stored value `x` is `x + 2^bits`.
    unsigned_bits: Option<i32>,
    scale: f64,
    offset: f64,
    missing: Vec<f64>,
    valid_min: Option<f64>,
    valid_max: Option<f64>,
}

impl Packing {
    /// A stored value (or a missing-value attribute's) as the type the
    /// variable means: unsigned under `_Unsigned`.
    #[inline]
    fn as_meant(&self, raw: f64) -> f64 {
        match self.unsigned_bits {
            // 2^bits built from its exponent: `powi` is a call into the
            // runtime, which the reading loop made for every value.
            Some(bits) if raw < 0.0 => raw + f64::from_bits(((bits + 1023) as u64) << 52),
            _ => raw,
        }
    }

    #[inline]
    fn unpack(&self, raw: f64) -> f64 {
        let raw = self.as_meant(raw);
        if raw.is_nan()
            || self.missing.contains(&raw)
            || self.valid_min.is_some_and(|m| raw < m)
            || self.valid_max.is_some_and(|m| raw > m)
        {
            f64::NAN
        } else {
            raw * self.scale + self.offset
        }
    }
}

/// Whether an HDF5 file is NetCDF-4: libnetcdf marks the files it writes
/// with a root attribute `_NCProperties` (since 4.4.1), and the dimensions
/// of older ones with `_Netcdf4Dimid` attributes.
pub fn is_netcdf4(path: &Path) -> bool {
    super::quiet_hdf5();
    // Looking must not open what an external link names.
    super::hdf5_origin::forbid_external_links();
    let Ok(opened) = super::LibraryPath::new(path) else {
        return false;
    };
    let Ok(file) = ::hdf5::File::open(opened.path()) else {
        return false;
    };
    if super::hdf5_origin::has_attr(file.id(), "_NCProperties") {
        return true;
    }
    file.datasets().is_ok_and(|ds| {
        ds.iter()
            .any(|d| super::hdf5_origin::has_attr(d.id(), "_Netcdf4Dimid"))
    })
}

/// Refuse a NetCDF-4 file any of whose datasets is stored outside it, by
/// the dataset's name.
pub(super) fn check_nothing_elsewhere(path: &Path, lib_path: &Path) -> Result<()> {
    super::quiet_hdf5();
    super::hdf5_origin::forbid_external_links();
    let file = ::hdf5::File::open(lib_path).map_err(|e| {
        Error::format(
            path,
            format!("cannot be read as NetCDF-4 ({e}); the file may be damaged or truncated"),
        )
    })?;
    super::hdf5_origin::check_every_dataset(&file).map_err(|(at, why)| {
        Error::variable(
            path,
            &super::hdf5_origin::shown(at.trim_start_matches('/')),
            why,
        )
    })
}

/// Which CF axis a coordinate variable is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Axis {
    Time,
    Lat,
    Lon,
}

fn string_attr(v: &Variable, name: &str) -> Option<String> {
    match v.attribute_value(name)? {
        Ok(AttributeValue::Str(s)) => Some(s),
        _ => None,
    }
}

/// A numeric attribute as `f64`s (a scalar is one value); `Err` when it
/// is present but not numeric.
fn numbers_attr(v: &Variable, name: &str) -> std::result::Result<Option<Vec<f64>>, ()> {
    let Some(value) = v.attribute_value(name) else {
        return Ok(None);
    };
    use AttributeValue as A;
    let n = match value.map_err(|_| ())? {
        A::Uchar(x) => vec![x as f64],
        A::Schar(x) => vec![x as f64],
        A::Ushort(x) => vec![x as f64],
        A::Short(x) => vec![x as f64],
        A::Uint(x) => vec![x as f64],
        A::Int(x) => vec![x as f64],
        A::Ulonglong(x) => vec![x as f64],
        A::Longlong(x) => vec![x as f64],
        A::Float(x) => vec![x as f64],
        A::Double(x) => vec![x],
        A::Uchars(x) => x.into_iter().map(f64::from).collect(),
        A::Schars(x) => x.into_iter().map(f64::from).collect(),
        A::Ushorts(x) => x.into_iter().map(f64::from).collect(),
        A::Shorts(x) => x.into_iter().map(f64::from).collect(),
        A::Uints(x) => x.into_iter().map(f64::from).collect(),
        A::Ints(x) => x.into_iter().map(f64::from).collect(),
        A::Ulonglongs(x) => x.into_iter().map(|x| x as f64).collect(),
        A::Longlongs(x) => x.into_iter().map(|x| x as f64).collect(),
        A::Floats(x) => x.into_iter().map(f64::from).collect(),
        A::Doubles(x) => x,
        A::Str(_) | A::Strs(_) => return Err(()),
    };
    Ok(Some(n))
}

const LAT_UNITS: &[&str] = &[
    "degrees_north",
    "degree_north",
    "degree_n",
    "degrees_n",
    "degreen",
    "degreesn",
];
const LON_UNITS: &[&str] = &[
    "degrees_east",
    "degree_east",
    "degree_e",
    "degrees_e",
    "degreee",
    "degreese",
];

/// The CF axis of a coordinate variable, from `standard_name`, `units`
/// or `axis`.
fn axis_of(v: &Variable) -> Option<Axis> {
    let standard = string_attr(v, "standard_name").map(|s| s.trim().to_ascii_lowercase());
    let units = string_attr(v, "units").map(|s| s.trim().to_ascii_lowercase());
    let axis = string_attr(v, "axis").map(|s| s.trim().to_ascii_uppercase());
    let degrees = units.as_deref().is_none_or(|u| u.starts_with("degree"));
    match standard.as_deref() {
        Some("time") => return Some(Axis::Time),
        Some("latitude") => return Some(Axis::Lat),
        Some("longitude") => return Some(Axis::Lon),
        _ => {}
    }
    if let Some(u) = units.as_deref() {
        if LAT_UNITS.contains(&u) {
            return Some(Axis::Lat);
        }
        if LON_UNITS.contains(&u) {
            return Some(Axis::Lon);
        }
        if u.contains(" since ") {
            return Some(Axis::Time);
        }
    }
    match axis.as_deref() {
        Some("T") => Some(Axis::Time),
        Some("Y") if degrees => Some(Axis::Lat),
        Some("X") if degrees => Some(Axis::Lon),
        _ => None,
    }
}

fn is_numeric(t: &NcVariableType) -> bool {
    matches!(t, NcVariableType::Int(_) | NcVariableType::Float(_))
}

pub(super) fn type_name(t: &NcVariableType) -> &'static str {
    use netcdf::types::{FloatType, IntType};
    match t {
        NcVariableType::Float(FloatType::F64) => "double",
        NcVariableType::Float(FloatType::F32) => "single",
        NcVariableType::Int(IntType::I8) => "int8",
        NcVariableType::Int(IntType::U8) => "uint8",
        NcVariableType::Int(IntType::I16) => "int16",
        NcVariableType::Int(IntType::U16) => "uint16",
        NcVariableType::Int(IntType::I32) => "int32",
        NcVariableType::Int(IntType::U32) => "uint32",
        NcVariableType::Int(IntType::I64) => "int64",
        NcVariableType::Int(IntType::U64) => "uint64",
        NcVariableType::String | NcVariableType::Char => "char",
        _ => "other",
    }
}

/// The library's default fill value of a type (`NC_FILL_BYTE` …
/// `NC_FILL_DOUBLE`), which marks values never written when a variable
/// has no `_FillValue`.
fn default_fill(t: &NcVariableType) -> Option<f64> {
    use netcdf::types::{FloatType, IntType};
    Some(match t {
        NcVariableType::Float(FloatType::F32) => 9.969_21e36_f32 as f64,
        NcVariableType::Float(FloatType::F64) => 9.969_209_968_386_869e36,
        NcVariableType::Int(IntType::I8) => -127.0,
        NcVariableType::Int(IntType::U8) => 255.0,
        NcVariableType::Int(IntType::I16) => -32767.0,
        NcVariableType::Int(IntType::U16) => 65535.0,
        NcVariableType::Int(IntType::I32) => -2_147_483_647.0,
        NcVariableType::Int(IntType::U32) => 4_294_967_295.0,
        NcVariableType::Int(IntType::I64) => -9_223_372_036_854_775_806.0,
        NcVariableType::Int(IntType::U64) => 18_446_744_073_709_551_614.0,
        _ => return None,
    })
}

/// Whether the variable's fill mode is on (`nc_inq_var_fill`): values
/// never written hold its fill value. Off (`NC_NOFILL`) they hold
/// whatever was on the disk.
fn fill_mode_on(v: &Variable) -> bool {
    use netcdf::types::{FloatType, IntType};
    let on = match v.vartype() {
        NcVariableType::Float(FloatType::F32) => v.fill_value::<f32>().map(|f| f.is_some()),
        NcVariableType::Float(FloatType::F64) => v.fill_value::<f64>().map(|f| f.is_some()),
        NcVariableType::Int(IntType::I8) => v.fill_value::<i8>().map(|f| f.is_some()),
        NcVariableType::Int(IntType::U8) => v.fill_value::<u8>().map(|f| f.is_some()),
        NcVariableType::Int(IntType::I16) => v.fill_value::<i16>().map(|f| f.is_some()),
        NcVariableType::Int(IntType::U16) => v.fill_value::<u16>().map(|f| f.is_some()),
        NcVariableType::Int(IntType::I32) => v.fill_value::<i32>().map(|f| f.is_some()),
        NcVariableType::Int(IntType::U32) => v.fill_value::<u32>().map(|f| f.is_some()),
        NcVariableType::Int(IntType::I64) => v.fill_value::<i64>().map(|f| f.is_some()),
        NcVariableType::Int(IntType::U64) => v.fill_value::<u64>().map(|f| f.is_some()),
        _ => Ok(true),
    };
    on.unwrap_or(true)
}

/// The width in bits of a signed integer type whose values the variable's
/// `_Unsigned = "true"` says are unsigned (how NetCDF-3, which has no
/// unsigned types, stores them; NUG and CF).
fn unsigned_bits(v: &Variable) -> Option<i32> {
    use netcdf::types::IntType;
    let bits = match v.vartype() {
        NcVariableType::Int(IntType::I8) => 8,
        NcVariableType::Int(IntType::I16) => 16,
        NcVariableType::Int(IntType::I32) => 32,
        NcVariableType::Int(IntType::I64) => 64,
        _ => return None,
    };
    string_attr(v, "_Unsigned")
        .is_some_and(|u| u.trim().eq_ignore_ascii_case("true"))
        .then_some(bits)
}

/// The size in bytes of a numeric type's value.
fn type_size(t: &NcVariableType) -> usize {
    use netcdf::types::{FloatType, IntType};
    match t {
        NcVariableType::Int(IntType::I8 | IntType::U8) => 1,
        NcVariableType::Int(IntType::I16 | IntType::U16) => 2,
        NcVariableType::Int(IntType::I32 | IntType::U32)
        | NcVariableType::Float(FloatType::F32) => 4,
        _ => 8,
    }
}

/// The dimensions of a variable as `name(len)`, for messages.
fn dims_text(v: &Variable) -> String {
    v.dimensions()
        .iter()
        .map(|d| format!("{}({})", d.name(), d.len()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The axes of a variable's dimensions, through their coordinate
/// variables (a 1-D variable named as its dimension).
fn dim_axes(file: &netcdf::File, v: &Variable) -> Vec<Option<Axis>> {
    v.dimensions()
        .iter()
        .map(|d| {
            let name = d.name();
            file.variable(&name)
                .filter(|c| c.dimensions().len() == 1 && c.dimensions()[0].name() == name)
                .and_then(|c| axis_of(&c))
        })
        .collect()
}

/// Whether a variable is a CF grid over time, latitude and longitude.
fn is_grid(file: &netcdf::File, v: &Variable) -> bool {
    let axes = dim_axes(file, v);
    let count = |a| axes.iter().filter(|x| **x == Some(a)).count();
    is_numeric(&v.vartype())
        && count(Axis::Time) == 1
        && count(Axis::Lat) == 1
        && count(Axis::Lon) == 1
        && axes
            .iter()
            .zip(v.dimensions())
            .all(|(a, d)| a.is_some() || d.len() == 1)
}

impl NetCdfMatrix {
    pub fn open(path: &Path, var_name: Option<&str>, netcdf4: bool) -> Result<Self> {
        // Some of the `netcdf` crate's listings unwrap the library's errors
        // (a damaged NetCDF-4 variable made `variables()` panic; found by
        // fuzzing): a damaged file must still end in a one-line refusal.
        contained(path, || Self::open_unguarded(path, var_name, netcdf4))
    }

    fn open_unguarded(path: &Path, var_name: Option<&str>, netcdf4: bool) -> Result<Self> {
        if netcdf4 {
            super::quiet_hdf5();
            // libnetcdf reads through libhdf5: its compressed chunks are
            // inflated by the project's deflate filter too (faster than
            // the library's, and refusing what the library's refuses).
            super::hdf5_deflate::registered();
            super::crash_guard::reading(path);
        }
        let opened = super::LibraryPath::new(path)?;
        if netcdf4 {
            // libnetcdf opens the variables it needs by itself; first make
            // sure that none of the file's datasets keeps its values in
            // another file (HDF5 external storage, virtual sources), as for
            // any HDF5 file.
            check_nothing_elsewhere(path, opened.path())?;
        }
        let file = netcdf::open(opened.path()).map_err(|e| {
            Error::format(
                path,
                format!("cannot be read as NetCDF ({e}); the file may be damaged or truncated"),
            )
        })?;
        let var = match var_name {
            // `/name` is the root group's `name`, as HDF5 paths write it.
            Some(v) if v.trim_start_matches('/').contains('/') => {
                return Err(Error::variable(
                    path,
                    v,
                    "is in a group; manage reads the variables of a NetCDF file's root group",
                ))
            }
            Some(v) => v.trim_start_matches('/').to_string(),
            None => find_default(path, &file)?,
        };
        let v = file.variable(&var).ok_or_else(|| {
            let names: Vec<String> = file.variables().map(|v| v.name()).collect();
            Error::variable(
                path,
                &var,
                format!("is not in the file; it holds {}", names.join(", ")),
            )
        })?;
        let bad = |msg: String| Error::variable(path, &var, msg);
        let vt = v.vartype();
        if !is_numeric(&vt) {
            return Err(bad(format!(
                "is of {}; a numeric variable over time, latitude and longitude is needed",
                match vt {
                    NcVariableType::String | NcVariableType::Char => "strings (text)",
                    _ => "a compound, enum, opaque or variable-length type",
                }
            )));
        }
        let axes = dim_axes(&file, &v);
        let dims: Vec<usize> = v.dimensions().iter().map(|d| d.len()).collect();
        let need = "CFGrid needs a variable over time, latitude and longitude (coordinates found by their CF standard_name, units or axis)";
        let find = |a: Axis, what: &str| -> Result<usize> {
            let at: Vec<usize> = (0..axes.len()).filter(|&i| axes[i] == Some(a)).collect();
            match at.as_slice() {
                [i] => Ok(*i),
                [] => Err(bad(format!(
                    "has no {what} dimension ({}); {need}",
                    dims_text(&v)
                ))),
                _ => Err(bad(format!(
                    "has more than one {what} dimension ({})",
                    dims_text(&v)
                ))),
            }
        };
        let t_axis = find(Axis::Time, "time")?;
        if dims.len() < 3 {
            return Err(bad(format!(
                "has {} dimension{} ({}); {need}",
                dims.len(),
                if dims.len() == 1 { "" } else { "s" },
                dims_text(&v)
            )));
        }
        let lat_axis = find(Axis::Lat, "latitude")?;
        let lon_axis = find(Axis::Lon, "longitude")?;
        for (i, d) in v.dimensions().iter().enumerate() {
            if axes[i].is_none() && d.len() != 1 {
                return Err(bad(format!(
                    "has a dimension '{}' of length {} besides time, latitude and longitude; only dimensions of length 1 can be left over",
                    d.name(),
                    d.len()
                )));
            }
        }
        if dims.contains(&0) {
            return Err(bad(format!("is empty ({})", dims_text(&v))));
        }

        let dim_name = |i: usize| v.dimensions()[i].name();
        let coord = |i: usize| -> Result<Vec<f64>> {
            let name = dim_name(i);
            let c = file
                .variable(&name)
                .expect("coordinate variable found above");
            if !is_numeric(&c.vartype()) {
                return Err(Error::variable(
                    path,
                    &name,
                    "is a coordinate that is not numeric",
                ));
            }
            let values: Vec<f64> = c
                .get_values(..)
                .map_err(|e| Error::variable(path, &name, format!("cannot be read: {e}")))?;
            if values.iter().any(|x| !x.is_finite()) {
                return Err(Error::variable(
                    path,
                    &name,
                    "is a coordinate with a value that is not a finite number",
                ));
            }
            let up = values.windows(2).all(|w| w[1] > w[0]);
            let down = values.windows(2).all(|w| w[1] < w[0]);
            if !(up || down) {
                return Err(Error::variable(
                    path,
                    &name,
                    "is a coordinate that is not monotonic (its values must all increase or all decrease)",
                ));
            }
            Ok(values)
        };
        let (lat_raw, lon_raw, t_raw) = (coord(lat_axis)?, coord(lon_axis)?, coord(t_axis)?);
        if let Some(l) = lat_raw.iter().find(|l| l.abs() > 90.0) {
            return Err(Error::variable(
                path,
                &dim_name(lat_axis),
                format!("has latitude {l}, outside -90 to 90"),
            ));
        }
        let spacing =
            |r: &[f64]| (r.len() > 1).then(|| (r[r.len() - 1] - r[0]).abs() / (r.len() - 1) as f64);
        let (dx, dy) = (spacing(&lon_raw), spacing(&lat_raw));

        let mut lat_order: Vec<usize> = (0..lat_raw.len()).collect();
        lat_order.sort_by(|&a, &b| lat_raw[a].total_cmp(&lat_raw[b]));
        let lats: Vec<f64> = lat_order.iter().map(|&i| lat_raw[i]).collect();
        let wrap = |x: f64| {
            let w = (x + 180.0).rem_euclid(360.0) - 180.0;
            // 180 stays 180 rather than becoming -180.
            if w == -180.0 && x > 0.0 {
                180.0
            } else {
                w
            }
        };
        let lon_wrapped: Vec<f64> = lon_raw.iter().map(|&x| wrap(x)).collect();
        let mut lon_order: Vec<usize> = (0..lon_raw.len()).collect();
        lon_order.sort_by(|&a, &b| lon_wrapped[a].total_cmp(&lon_wrapped[b]));
        let lons: Vec<f64> = lon_order.iter().map(|&i| lon_wrapped[i]).collect();
        if lons.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::variable(
                path,
                &dim_name(lon_axis),
                "names one meridian twice (as x and x + 360 degrees)",
            ));
        }

        let tname = dim_name(t_axis);
        let tvar = file.variable(&tname).expect("time coordinate found above");
        let units = string_attr(&tvar, "units").ok_or_else(|| {
            Error::variable(
                path,
                &tname,
                "has no 'units' such as \"days since 2000-01-01\"",
            )
        })?;
        let calendar = string_attr(&tvar, "calendar");
        let (unit_ms, origin) = parse_time_units(&units, calendar.as_deref())
            .map_err(|e| Error::variable(path, &tname, e))?;
        if t_raw.windows(2).any(|w| w[1] <= w[0]) {
            return Err(Error::variable(
                path,
                &tname,
                "is a time coordinate that does not increase from step to step",
            ));
        }
        let times_ms = t_raw
            .iter()
            .map(|&t| {
                let ms = (t * unit_ms).round();
                let total = origin.timestamp_millis() as f64 + ms;
                // Within chrono's and BSON's range of dates.
                if total.abs() < 8.0e15 {
                    Ok(total as i64)
                } else {
                    Err(Error::variable(
                        path,
                        &tname,
                        format!("has time {t} {units}, beyond any date that can be stored"),
                    ))
                }
            })
            .collect::<Result<Vec<i64>>>()?;
        let title = file.attribute("title").and_then(|a| match a.value() {
            Ok(AttributeValue::Str(s)) => Some(s),
            _ => None,
        });

        let num = |name: &str| {
            numbers_attr(&v, name)
                .map_err(|_| bad(format!("has a '{name}' attribute that is not a number")))
        };
        let one = |name: &str| -> Result<Option<f64>> {
            match num(name)? {
                None => Ok(None),
                Some(x) if x.len() == 1 && x[0].is_finite() => Ok(Some(x[0])),
                Some(_) => Err(bad(format!(
                    "has a '{name}' attribute that is not one finite number"
                ))),
            }
        };
        // Chunks are inflated whole: an enormous one is refused before.
        if netcdf4 {
            if let Ok(Some(chunk)) = v.chunking() {
                super::check_chunk_size(path, &var, &chunk, type_size(&vt))?;
            }
        }
        let unsigned = unsigned_bits(&v);
        let meant = |x: f64| match unsigned {
            Some(bits) if x < 0.0 => x + 2f64.powi(bits),
            _ => x,
        };
        // Without a `_FillValue`, the type's default fill value marks what
        // was never written (CF 2.5.1; as netCDF4-python reads it): for
        // bytes only while the fill mode is on, since a byte variable
        // written without fill may use all 256 values (NUG).
        let mut missing = match num("_FillValue")? {
            Some(f) => f,
            None => {
                let byte = type_size(&vt) == 1;
                default_fill(&vt)
                    .filter(|_| !byte || fill_mode_on(&v))
                    .into_iter()
                    .collect()
            }
        };
        missing.extend(num("missing_value")?.unwrap_or_default());
        let missing: Vec<f64> = missing.into_iter().map(meant).collect();
        let (mut valid_min, mut valid_max) =
            (one("valid_min")?.map(meant), one("valid_max")?.map(meant));
        if let Some(r) = num("valid_range")?.map(|r| r.into_iter().map(meant).collect::<Vec<_>>()) {
            match r.as_slice() {
                [lo, hi] if lo <= hi => (valid_min, valid_max) = (Some(*lo), Some(*hi)),
                _ => {
                    return Err(bad(
                        "has a 'valid_range' that is not two increasing numbers".into(),
                    ))
                }
            }
        }
        let (scale_attr, offset_attr) = (one("scale_factor")?, one("add_offset")?);
        let packing = Packing {
            unsigned_bits: unsigned,
            scale: scale_attr.unwrap_or(1.0),
            offset: one("add_offset")?.unwrap_or(0.0),
            missing,
            valid_min,
            valid_max,
        };
        let units = string_attr(&v, "units");
        let class = type_name(&vt);
        let integer = matches!(vt, NcVariableType::Int(_));
        let packing_step =
            (integer && (scale_attr.is_some() || offset_attr.is_some())).then_some(packing.scale);
        let rows = lats.len() * lons.len();
        let cols = 2 + times_ms.len();
        drop(tvar);
        drop(v);
        Ok(Self {
            info: MatrixInfo {
                path: path.to_path_buf(),
                var_name: var,
                rows,
                cols,
                class,
            },
            file,
            _opened: opened,
            facts: GridFacts {
                times_ms,
                title,
                units,
                dx,
                dy,
                packing_step,
            },
            dims,
            t_axis,
            lat_axis,
            lon_axis,
            lat_order,
            lon_order,
            lats,
            lons,
            packing,
            netcdf4,
            offsets: Vec::new(),
            offsets_for: (0, 0),
            runs: Vec::new(),
            raw_f32: Vec::new(),
            raw_f64: Vec::new(),
        })
    }

    /// Steps `start..start + count` into `out`, `rows × count` values in
    /// column order (each step's values contiguous). A float variable is
    /// read as the type it is stored in, into a buffer kept for the next
    /// block (the library's conversion to doubles and a fresh buffer per
    /// block cost more than the reordering below, mostly in page faults);
    /// widening a float to a double here is the same exact conversion.
    fn read_steps(&mut self, start: usize, count: usize, out: Steps<'_>) -> Result<()> {
        let extents: Vec<Extent> = self
            .dims
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let (start, count) = if i == self.t_axis {
                    (start, count)
                } else {
                    (0, n)
                };
                Extent::SliceCount {
                    start,
                    count,
                    stride: 1,
                }
            })
            .collect();
        let total: usize = self
            .dims
            .iter()
            .enumerate()
            .map(|(i, &n)| if i == self.t_axis { count } else { n })
            .product();
        // Strides of the block, C order over the variable's dimensions.
        let mut strides = vec![0usize; self.dims.len()];
        let mut s = 1;
        for i in (0..self.dims.len()).rev() {
            strides[i] = s;
            s *= if i == self.t_axis {
                count
            } else {
                self.dims[i]
            };
        }
        let (st, sla, slo) = (
            strides[self.t_axis],
            strides[self.lat_axis],
            strides[self.lon_axis],
        );
        let nlon = self.lons.len();
        let rows = self.info.rows;
        // Where each output cell sits within one step of the block.
        if self.offsets.len() != rows || self.offsets_for != (sla, slo) {
            self.offsets = (0..rows)
                .map(|r| self.lat_order[r / nlon] * sla + self.lon_order[r % nlon] * slo)
                .collect();
            self.offsets_for = (sla, slo);
            self.runs = runs_of(&self.offsets);
        }
        let var = &self.info.var_name;
        let v = self
            .file
            .variable(var)
            .ok_or_else(|| Error::variable(&self.info.path, var, "is no longer in the file"))?;
        let unreadable = |e: netcdf::Error| {
            Error::variable(&self.info.path, var, format!("cannot be read: {e}"))
        };
        // Runs where they are long (longitude the fastest axis of the
        // file), else each offset by itself.
        let runs = (self.runs.len() * 8 <= rows).then_some(self.runs.as_slice());
        let (cells, packing) = (
            Cells {
                offsets: &self.offsets,
                runs,
            },
            &self.packing,
        );
        if self.info.class == "single" {
            let raw = &mut self.raw_f32;
            // Filled whole by the library: cleared only when its size
            // changes (zeroing megabytes for every block cost a few % of
            // a NetCDF load).
            if raw.len() != total {
                raw.clear();
                raw.resize(total, 0.0);
            }
            v.get_values_into(raw, extents).map_err(unreadable)?;
            reorder(raw, st, rows, count, cells, out, |x| {
                packing.unpack(f64::from(x))
            });
        } else {
            let raw = &mut self.raw_f64;
            // Filled whole by the library: cleared only when its size
            // changes (zeroing megabytes for every block cost a few % of
            // a NetCDF load).
            if raw.len() != total {
                raw.clear();
                raw.resize(total, 0.0);
            }
            v.get_values_into(raw, extents).map_err(unreadable)?;
            reorder(raw, st, rows, count, cells, out, |x| packing.unpack(x));
        }
        Ok(())
    }
}

/// Where a step's cells sit in a block: each by its offset, and the same
/// as runs of consecutive offsets where there are few of them.
struct Cells<'a> {
    offsets: &'a [usize],
    runs: Option<&'a [(usize, usize)]>,
}

/// Consecutive offsets as runs (start, length).
fn runs_of(offsets: &[usize]) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &o in offsets {
        match runs.last_mut() {
            Some((start, len)) if *start + *len == o => *len += 1,
            _ => runs.push((o, 1)),
        }
    }
    runs
}

/// The `count` steps of `raw` (step `k` from `k · st`), each cell's value
/// at its offset, unpacked: into columns of cells, or only the least
/// non-zero magnitude among them.
fn reorder<T: Copy>(
    raw: &[T],
    st: usize,
    rows: usize,
    count: usize,
    cells: Cells<'_>,
    out: Steps<'_>,
    unpack: impl Fn(T) -> f64,
) {
    debug_assert_eq!(cells.offsets.len(), rows);
    match (out, cells.runs) {
        (Steps::Append(out), Some(runs)) => {
            for k in 0..count {
                let step = &raw[k * st..];
                for &(start, len) in runs {
                    out.extend(step[start..start + len].iter().map(|&x| unpack(x)));
                }
            }
        }
        (Steps::Append(out), None) => {
            for k in 0..count {
                let step = &raw[k * st..];
                out.extend(cells.offsets.iter().map(|&o| unpack(step[o])));
            }
        }
        (Steps::Smallest(smallest), Some(runs)) => {
            for k in 0..count {
                let step = &raw[k * st..];
                for &(start, len) in runs {
                    *smallest = step[start..start + len]
                        .iter()
                        .fold(*smallest, |s, &x| super::least_magnitude(s, unpack(x)));
                }
            }
        }
        (Steps::Smallest(smallest), None) => {
            for k in 0..count {
                let step = &raw[k * st..];
                *smallest = cells.offsets.iter().fold(*smallest, |s, &o| {
                    super::least_magnitude(s, unpack(step[o]))
                });
            }
        }
    }
}

impl Drop for NetCdfMatrix {
    fn drop(&mut self) {
        if self.netcdf4 {
            super::crash_guard::clear();
        }
    }
}

impl NetCdfMatrix {
    fn read_columns_unguarded(&mut self, start: usize, count: usize) -> Result<Array2<f64>> {
        let nlon = self.lons.len();
        let coords = 2usize.saturating_sub(start).min(count);
        // A reused block buffer (see `blocks`), not a fresh one per block.
        let rows = self.info.rows;
        // Filled as it is written, not zeroed first.
        let mut values = super::blocks::buffer(rows * count);
        // Column-major: each column (a coordinate or a step) is one run.
        for j in 0..coords {
            values.extend((0..rows).map(|r| {
                if start + j == 0 {
                    self.lons[r % nlon]
                } else {
                    self.lats[r / nlon]
                }
            }));
        }
        if count > coords && rows > 0 {
            self.read_steps(
                start + coords - 2,
                count - coords,
                Steps::Append(&mut values),
            )?;
        }
        values.resize(rows * count, 0.0);
        Ok(Array2::from_shape_vec((rows, count).f(), values).expect("rows × count values"))
    }
}

/// Run `f`, turning a panic of the `netcdf` crate into the refusal of a
/// damaged file.
pub(super) fn contained<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(Error::format(
            path,
            "cannot be read as NetCDF: the netcdf library failed on it; the file is damaged",
        ))
    })
}

impl Matrix for NetCdfMatrix {
    fn info(&self) -> &MatrixInfo {
        &self.info
    }

    fn read_columns(&mut self, start: usize, count: usize) -> Result<Array2<f64>> {
        super::quiet_hdf5();
        let path = self.info.path.clone();
        contained(&path, || self.read_columns_unguarded(start, count))
    }

    fn grid_facts(&self) -> Option<&GridFacts> {
        Some(&self.facts)
    }

    /// The steps' values as they are read, without reordering them into a
    /// block of cells (the precision scan reads the whole file for this).
    fn smallest_magnitude(&mut self, start: usize, count: usize) -> Result<f64> {
        super::quiet_hdf5();
        let path = self.info.path.clone();
        if start < 2 || self.info.rows == 0 {
            let block = self.read_columns(start, count)?;
            let smallest = block
                .iter()
                .fold(f64::INFINITY, |s, &x| super::least_magnitude(s, x));
            super::blocks::recycle(block);
            return Ok(smallest);
        }
        let mut smallest = f64::INFINITY;
        contained(&path, || {
            self.read_steps(start - 2, count, Steps::Smallest(&mut smallest))
        })?;
        Ok(smallest)
    }
}

/// What [`NetCdfMatrix::read_steps`] does with the values it reads.
enum Steps<'a> {
    /// Reorder them into columns of cells appended to these.
    Append(&'a mut Vec<f64>),
    /// Lower this to the least non-zero magnitude among them.
    Smallest(&'a mut f64),
}

/// The only variable over time, latitude and longitude.
fn find_default(path: &Path, file: &netcdf::File) -> Result<String> {
    let grids: Vec<String> = file
        .variables()
        .filter(|v| is_grid(file, v))
        .map(|v| v.name())
        .collect();
    match grids.as_slice() {
        [one] => Ok(one.clone()),
        [] => {
            let all: Vec<String> = file
                .variables()
                .map(|v| {
                    let dims: Vec<String> = v.dimensions().iter().map(|d| d.name()).collect();
                    format!("{}({})", v.name(), dims.join(", "))
                })
                .collect();
            Err(Error::format(
                path,
                format!(
                    "no numeric variable over time, latitude and longitude (coordinates found by their CF standard_name, units or axis); the file holds {}",
                    if all.is_empty() { "no variable".to_string() } else { all.join(", ") }
                ),
            ))
        }
        many => Err(Error::format(
            path,
            format!(
                "several variables over time, latitude and longitude ({}); name one with var_name, e.g. -o var_name={}",
                many.join(", "),
                many[0]
            ),
        )),
    }
}

/// Milliseconds per unit and the origin of a CF time `units` string such
/// as `days since 2000-01-01 00:00:00` (units `days`, `hours`, `minutes`,
/// `seconds` and their CF abbreviations; the origin as a date, optionally
/// a time with fractional seconds, optionally `Z`, `UTC` or an offset),
/// in the `standard`/`gregorian` or `proleptic_gregorian` calendar (a
/// missing calendar is `standard`). The mixed Julian/Gregorian `standard`
/// calendar equals the proleptic one from 1582-10-15; an origin before that
/// is refused rather than mis-dated.
pub fn parse_time_units(
    units: &str,
    calendar: Option<&str>,
) -> std::result::Result<(f64, DateTime<Utc>), String> {
    let cal = calendar
        .map(|c| c.trim().to_ascii_lowercase())
        .unwrap_or_else(|| "standard".into());
    let proleptic = match cal.as_str() {
        "standard" | "gregorian" => false,
        "proleptic_gregorian" => true,
        other => {
            return Err(format!(
                "has calendar '{other}', which manage does not convert; it reads the standard, gregorian and proleptic_gregorian calendars"
            ))
        }
    };
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(
            r"(?ix)^\s*(days?|d|hours?|hrs?|hr|h|minutes?|mins?|min|seconds?|secs?|sec|s)\s+since\s+
              (-?\d{1,4})-(\d{1,2})-(\d{1,2})
              (?:(?:T|\s+)(\d{1,2}):(\d{1,2})(?::(\d{1,2}(?:\.\d+)?))?)?
              \s*(Z|UTC|GMT|[+-]\d{1,2}(?::?\d{2})?)?\s*$",
        )
        .expect("valid regex")
    });
    let bad = || {
        format!(
            "has time units '{units}' that cannot be read; CF time units look like \"days since 2000-01-01 00:00:00\" (days, hours, minutes or seconds)"
        )
    };
    let c = re.captures(units).ok_or_else(bad)?;
    let unit = c[1].to_ascii_lowercase();
    let ms = match unit.chars().next() {
        Some('d') => 86_400_000.0,
        Some('h') => 3_600_000.0,
        Some('m') => 60_000.0,
        _ => 1_000.0,
    };
    let num = |i: usize| c.get(i).map_or(Ok(0), |m| m.as_str().parse::<i64>());
    let (y, mo, d) = (
        num(2).map_err(|_| bad())?,
        num(3).map_err(|_| bad())?,
        num(4).map_err(|_| bad())?,
    );
    let (h, mi) = (num(5).map_err(|_| bad())?, num(6).map_err(|_| bad())?);
    let sec: f64 = c
        .get(7)
        .map_or(Ok(0.0), |m| m.as_str().parse())
        .map_err(|_| bad())?;
    let date = NaiveDate::from_ymd_opt(y as i32, mo as u32, d as u32).ok_or_else(bad)?;
    if !proleptic && date < NaiveDate::from_ymd_opt(1582, 10, 15).expect("date") {
        return Err(format!(
            "has time units '{units}' with an origin before 1582-10-15 in the mixed Julian/Gregorian '{cal}' calendar, which manage does not convert; use proleptic_gregorian if that is what the file means"
        ));
    }
    if h > 23 || mi > 59 || !(0.0..61.0).contains(&sec) {
        return Err(bad());
    }
    let offset_min = match c.get(8).map(|m| m.as_str().to_ascii_uppercase()) {
        None => 0,
        Some(z) if z == "Z" || z == "UTC" || z == "GMT" => 0,
        Some(o) => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let digits: String = o[1..].chars().filter(|c| c.is_ascii_digit()).collect();
            let (hh, mm) = if digits.len() > 2 {
                (&digits[..digits.len() - 2], &digits[digits.len() - 2..])
            } else {
                (digits.as_str(), "0")
            };
            sign * (hh.parse::<i64>().map_err(|_| bad())? * 60
                + mm.parse::<i64>().map_err(|_| bad())?)
        }
    };
    let naive = date.and_hms_opt(h as u32, mi as u32, 0).ok_or_else(bad)?;
    let origin = Utc.from_utc_datetime(&naive)
        + chrono::Duration::milliseconds((sec * 1000.0).round() as i64)
        - chrono::Duration::minutes(offset_min);
    Ok((ms, origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iso(units: &str, cal: Option<&str>) -> (f64, String) {
        let (ms, t) = parse_time_units(units, cal).unwrap();
        (ms, t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string())
    }

    #[test]
    fn cf_time_units() {
        assert_eq!(
            iso("days since 2000-01-01 00:00:00", Some("standard")),
            (86_400_000.0, "2000-01-01T00:00:00.000".into())
        );
        assert_eq!(
            iso("hours since 2004-6-30", None),
            (3_600_000.0, "2004-06-30T00:00:00.000".into())
        );
        assert_eq!(
            iso("seconds since 1970-01-01T00:00:00Z", Some("gregorian")),
            (1000.0, "1970-01-01T00:00:00.000".into())
        );
        assert_eq!(
            iso(
                "minutes since 2010-01-01 06:30:15.5 +02:00",
                Some("proleptic_gregorian")
            ),
            (60_000.0, "2010-01-01T04:30:15.500".into())
        );
        assert_eq!(iso("d since 2000-01-01", None).0, 86_400_000.0);
        assert_eq!(
            iso("days since 1500-01-01", Some("proleptic_gregorian")).1,
            "1500-01-01T00:00:00.000"
        );
    }

    #[test]
    fn unreadable_units_and_other_calendars_are_refused() {
        for u in [
            "months since 2000-01-01",
            "days after 2000-01-01",
            "days since",
            "days since 2000-13-01",
            "",
        ] {
            let e = parse_time_units(u, None).unwrap_err();
            assert!(e.contains("cannot be read"), "{u}: {e}");
        }
        for c in ["noleap", "360_day", "julian", "all_leap", "365_day"] {
            let e = parse_time_units("days since 2000-01-01", Some(c)).unwrap_err();
            assert!(e.contains(&format!("calendar '{c}'")), "{e}");
        }
        let e = parse_time_units("days since 1000-01-01", Some("standard")).unwrap_err();
        assert!(e.contains("1582-10-15"), "{e}");
    }

    #[test]
    fn packing_and_missing_values() {
        let p = Packing {
            unsigned_bits: None,
            scale: 0.5,
            offset: 10.0,
            missing: vec![-32768.0],
            valid_min: Some(-100.0),
            valid_max: Some(100.0),
        };
        assert_eq!(p.unpack(4.0), 12.0);
        assert!(p.unpack(-32768.0).is_nan());
        assert!(p.unpack(101.0).is_nan());
        assert!(p.unpack(-101.0).is_nan());
        assert!(p.unpack(f64::NAN).is_nan());
        assert_eq!(p.unpack(100.0), 60.0);
    }
}
