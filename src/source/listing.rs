//! What a data file holds, for `manage info`: its format and every
//! variable (name, shape, element type, attributes), read from the file's
//! headers only; no values are read here.
//!
//! The file is checked as a load checks it ([`super::detect`]) before a
//! library opens it, and the same guards hold (no external links or
//! storage followed, a library's panic is a refusal).

use std::path::Path;

use serde_json::{Map, Value};

use super::FileFormat;

/// The variables of a file and its global attributes, as `info` lists them.
pub type Listed = (Vec<Variable>, Map<String, Value>);
use crate::error::{Error, Result};

/// One variable (MAT-file variable, HDF5 dataset, NetCDF variable).
#[derive(Debug, Clone)]
pub struct Variable {
    /// Its name (an HDF5 dataset's path, `group/name`).
    pub name: String,
    /// Its shape: a MATLAB variable's as MATLAB shows it (rows × columns),
    /// an HDF5 or NetCDF variable's as the file stores it.
    pub shape: Vec<usize>,
    /// The names of its dimensions (NetCDF only).
    pub dimensions: Vec<String>,
    /// The element type (`double`, `single`, `int16`, …) or what it is
    /// when it is not numeric (`char`, `struct`, `cell`, …).
    pub class: String,
    /// Its attributes, with their values (units, fill values, CF
    /// attributes, MATLAB_class …).
    pub attributes: Map<String, Value>,
}

/// What a file holds.
#[derive(Debug, Clone)]
pub struct Listing {
    pub format: FileFormat,
    pub variables: Vec<Variable>,
    /// The file's global attributes (NetCDF, HDF5 root group).
    pub attributes: Map<String, Value>,
}

pub(super) fn mat_v5(path: &Path) -> Result<Vec<Variable>> {
    let vars = super::mat_structure::check(path)?;
    Ok(vars
        .iter()
        .map(|h| {
            let class = match h.class {
                1 => "cell",
                2 => "struct",
                3 => "object",
                4 => "char",
                5 => "sparse",
                16 => "function_handle",
                c => super::matv5::class_name(c).unwrap_or("unknown"),
            };
            let class = match (h.logical, h.complex) {
                (true, _) => "logical".to_string(),
                (_, true) => format!("complex {class}"),
                _ => class.to_string(),
            };
            Variable {
                name: h.name.clone(),
                shape: h.dims.clone(),
                dimensions: vec![],
                class,
                attributes: Map::new(),
            }
        })
        .collect())
}

pub(super) fn mat_v4(path: &Path) -> Result<Vec<Variable>> {
    let (_, headers) = super::matv4::headers(path)?;
    Ok(headers
        .iter()
        .map(|h| {
            let class = match h.kind {
                1 => "char".to_string(),
                2 => "sparse".to_string(),
                _ if h.imaginary => format!("complex {}", h.class()),
                _ => h.class().to_string(),
            };
            Variable {
                name: h.name.clone(),
                shape: vec![h.rows as usize, h.cols as usize],
                dimensions: vec![],
                class,
                attributes: Map::new(),
            }
        })
        .collect())
}

/// An HDF5 attribute's value: numbers (one, or a list), or text.
fn hdf5_attr_value(a: &::hdf5::Attribute) -> Value {
    use ::hdf5::types::{FixedAscii, FixedUnicode, TypeDescriptor, VarLenAscii, VarLenUnicode};
    let text = |s: &str| Value::String(s.trim_end_matches('\0').to_string());
    match a.dtype().and_then(|t| t.to_descriptor()) {
        Ok(TypeDescriptor::VarLenUnicode) => a
            .read_scalar::<VarLenUnicode>()
            .map(|s| text(s.as_str()))
            .unwrap_or(Value::Null),
        Ok(TypeDescriptor::VarLenAscii) => a
            .read_scalar::<VarLenAscii>()
            .map(|s| text(s.as_str()))
            .unwrap_or(Value::Null),
        Ok(TypeDescriptor::FixedAscii(_)) => a
            .read_scalar::<FixedAscii<1024>>()
            .map(|s| text(s.as_str()))
            .unwrap_or(Value::Null),
        Ok(TypeDescriptor::FixedUnicode(_)) => a
            .read_scalar::<FixedUnicode<1024>>()
            .map(|s| text(s.as_str()))
            .unwrap_or(Value::Null),
        Ok(t) if super::hdf5::element_class(&t).is_some() => match a.read_raw::<f64>() {
            Ok(v) if v.len() == 1 => number(v[0]),
            Ok(v) if v.len() <= 16 => Value::Array(v.into_iter().map(number).collect()),
            Ok(v) => Value::String(format!("({} numbers)", v.len())),
            Err(_) => Value::Null,
        },
        Ok(t) => Value::String(format!("({t})")),
        Err(_) => Value::Null,
    }
}

fn number(x: f64) -> Value {
    serde_json::Number::from_f64(x)
        .map(Value::Number)
        .unwrap_or_else(|| Value::String(x.to_string()))
}

fn hdf5_attrs(loc: &::hdf5::Location) -> Map<String, Value> {
    let mut out = Map::new();
    for name in loc.attr_names().unwrap_or_default() {
        // What libnetcdf and h5py keep for themselves says nothing of the data.
        if name.starts_with("_Netcdf4") || name == "DIMENSION_LIST" || name == "REFERENCE_LIST" {
            continue;
        }
        if let Ok(a) = loc.attr(&name) {
            out.insert(name, hdf5_attr_value(&a));
        }
    }
    out
}

pub(super) fn hdf5(path: &Path, matlab: bool) -> Result<(Vec<Variable>, Map<String, Value>)> {
    use super::hdf5_origin::Visited;
    super::hdf5::silence_library();
    super::crash_guard::reading(path);
    let lib = |e: ::hdf5::Error| Error::format(path, format!("cannot be read as HDF5 ({e})"));
    let opened = super::LibraryPath::new(path)?;
    let r = (|| {
        let file = ::hdf5::File::open(opened.path()).map_err(lib)?;
        let names =
            super::hdf5::all_datasets(&file, "", &mut Visited::from_root(&file)).map_err(lib)?;
        let mut out = Vec::new();
        for name in names {
            let d = file.dataset(&name).map_err(lib)?;
            let mclass = super::hdf5::matlab_class(&d);
            let class = match d.dtype().and_then(|t| t.to_descriptor()) {
                Ok(t) => super::hdf5::element_class(&t)
                    .map(str::to_string)
                    .unwrap_or_else(|| t.to_string()),
                Err(_) => "unknown".to_string(),
            };
            let class = match &mclass {
                Some(c) if c != &class && !matches!(c.as_str(), "double" | "single") => c.clone(),
                _ => class,
            };
            let mut shape = d.shape();
            if matlab || mclass.is_some() {
                // MATLAB writes its column-major matrices with the
                // dimensions reversed.
                shape.reverse();
            }
            out.push(Variable {
                name,
                shape,
                dimensions: vec![],
                class,
                attributes: hdf5_attrs(&d),
            });
        }
        let root = hdf5_attrs(&file);
        Ok((out, root))
    })();
    super::crash_guard::clear();
    r
}

fn nc_value(v: netcdf::AttributeValue) -> Value {
    use netcdf::AttributeValue as A;
    let many = |v: Vec<f64>| {
        if v.len() == 1 {
            number(v[0])
        } else {
            Value::Array(v.into_iter().map(number).collect())
        }
    };
    match v {
        A::Uchar(x) => number(x as f64),
        A::Schar(x) => number(x as f64),
        A::Ushort(x) => number(x as f64),
        A::Short(x) => number(x as f64),
        A::Uint(x) => number(x as f64),
        A::Int(x) => number(x as f64),
        A::Ulonglong(x) => number(x as f64),
        A::Longlong(x) => number(x as f64),
        A::Float(x) => number(x as f64),
        A::Double(x) => number(x),
        A::Uchars(x) => many(x.into_iter().map(f64::from).collect()),
        A::Schars(x) => many(x.into_iter().map(f64::from).collect()),
        A::Ushorts(x) => many(x.into_iter().map(f64::from).collect()),
        A::Shorts(x) => many(x.into_iter().map(f64::from).collect()),
        A::Uints(x) => many(x.into_iter().map(f64::from).collect()),
        A::Ints(x) => many(x.into_iter().map(f64::from).collect()),
        A::Ulonglongs(x) => many(x.into_iter().map(|x| x as f64).collect()),
        A::Longlongs(x) => many(x.into_iter().map(|x| x as f64).collect()),
        A::Floats(x) => many(x.into_iter().map(f64::from).collect()),
        A::Doubles(x) => many(x),
        A::Str(s) => Value::String(s),
        A::Strs(s) => Value::Array(s.into_iter().map(Value::String).collect()),
    }
}

pub(super) fn netcdf(path: &Path, netcdf4: bool) -> Result<(Vec<Variable>, Map<String, Value>)> {
    if netcdf4 {
        super::quiet_hdf5();
        super::crash_guard::reading(path);
    }
    let opened = super::LibraryPath::new(path)?;
    let r = (|| {
        if netcdf4 {
            super::netcdf::check_nothing_elsewhere(path, opened.path())?;
        }
        let file = netcdf::open(opened.path()).map_err(|e| {
            Error::format(
                path,
                format!("cannot be read as NetCDF ({e}); the file may be damaged or truncated"),
            )
        })?;
        let attrs = |it: &mut dyn Iterator<Item = netcdf::Attribute>| {
            let mut m = Map::new();
            for a in it {
                if let Ok(v) = a.value() {
                    m.insert(a.name().to_string(), nc_value(v));
                }
            }
            m
        };
        let mut out = Vec::new();
        for v in file.variables() {
            let dims = v.dimensions();
            out.push(Variable {
                name: v.name(),
                shape: dims.iter().map(|d| d.len()).collect(),
                dimensions: dims.iter().map(|d| d.name()).collect(),
                class: super::netcdf::type_name(&v.vartype()).to_string(),
                attributes: attrs(&mut v.attributes()),
            });
        }
        let global = attrs(&mut file.attributes());
        Ok((out, global))
    })();
    if netcdf4 {
        super::crash_guard::clear();
    }
    r
}
