//! The input formats, one row each, as the models have their table: what
//! a format is called, the file-name extensions a directory is searched
//! for, how it is checked before a library opens it, how it is opened,
//! and whether opening it reads little of it. The help texts, the manual
//! pages, `load -p DIR`, the refusal of a file of no known format and the
//! parallel opening of a load all come from here.
//!
//! What a file is, is told by its first bytes in one place, `sniffed` in
//! `mod.rs`, not per row: the signatures overlap (a v7.3 MAT-file is HDF5
//! behind a MATLAB header, a NetCDF-4 file is HDF5 that libnetcdf wrote),
//! so the order in which they are tried is one decision.

use std::path::Path;

use serde_json::Map;

use super::listing::{self, Listed, Listing};
use super::{hdf5_heaps, matv4, matv5, netcdf3_header, FileFormat, Matrix, Sniffed};
use crate::error::Result;

/// How a format's reader opens the matrix `var` (or the default one) of
/// a checked file.
pub type Open = fn(&Path, Option<&str>) -> Result<Box<dyn Matrix>>;

/// How `info` lists a format's variables and global attributes.
pub type List = fn(&Path) -> Result<Listed>;

/// One input format.
pub struct Format {
    pub format: FileFormat,
    /// Its name, as the help texts list it.
    pub name: &'static str,
    /// Its name, as `info` prints it.
    pub label: &'static str,
    /// The family a refusal names ("not a MATLAB .mat, HDF5 or NetCDF
    /// file").
    pub family: &'static str,
    /// What its first bytes are, as a refusal names them.
    pub signature: &'static str,
    /// The extensions (lower case, no dot) `load -p DIR` and `info DIR`
    /// take from a directory; files are told apart by content, not name.
    pub extensions: &'static [&'static str],
    /// Whether opening it reads little of it (its blocks are read as they
    /// are converted), so that a load opens it beside the hash of the file.
    pub lazy: bool,
    /// The structural checks made before a library opens the file, which
    /// may tell the format better (HDF5 that libnetcdf wrote is NetCDF-4).
    pub check: fn(&Path, &Sniffed) -> Result<FileFormat>,
    /// Open the matrix `var` (or the default one) of a checked file.
    pub open: Open,
    /// Its variables and global attributes (`info`).
    pub list: List,
}

/// Every input format, in the order the help texts list them.
pub static FORMATS: &[Format] = &[
    Format {
        format: FileFormat::MatV5,
        name: "MATLAB MAT-file v5/v7 (compressed or not)",
        label: "MATLAB v5/v7 MAT-file",
        family: "MATLAB .mat",
        signature: "a MAT-file header",
        extensions: &["mat"],
        lazy: false,
        check: |_, _| Ok(FileFormat::MatV5),
        open: |p, v| Ok(Box::new(matv5::MatV5Matrix::open(p, v)?)),
        list: |p| Ok((listing::mat_v5(p)?, Map::new())),
    },
    Format {
        format: FileFormat::MatV73,
        name: "MATLAB MAT-file v7.3 (HDF5 inside)",
        label: "MATLAB v7.3 MAT-file (HDF5)",
        family: "MATLAB .mat",
        signature: "a MAT-file header",
        extensions: &["mat"],
        lazy: true,
        check: |p, s| {
            hdf5_heaps::check(p, s.hdf5_base)?;
            Ok(FileFormat::MatV73)
        },
        open: |p, v| Ok(Box::new(super::hdf5::Hdf5Matrix::open(p, v)?)),
        list: |p| listing::hdf5(p, true),
    },
    Format {
        format: FileFormat::MatV4,
        name: "MATLAB MAT-file v4",
        label: "MATLAB v4 MAT-file",
        family: "MATLAB .mat",
        signature: "a MAT v4 variable header",
        extensions: &["mat"],
        lazy: false,
        check: |_, _| Ok(FileFormat::MatV4),
        open: |p, v| Ok(Box::new(matv4::MatV4Matrix::open(p, v)?)),
        list: |p| Ok((listing::mat_v4(p)?, Map::new())),
    },
    Format {
        format: FileFormat::Hdf5,
        name: "HDF5",
        label: "HDF5",
        family: "HDF5",
        signature: "the HDF5 signature",
        extensions: &["h5", "hdf5"],
        lazy: true,
        check: |p, s| {
            hdf5_heaps::check(p, s.hdf5_base)?;
            super::crash_guard::reading(p);
            let netcdf4 = super::netcdf::is_netcdf4(p);
            super::crash_guard::clear();
            Ok(if netcdf4 {
                FileFormat::NetCdf4
            } else {
                FileFormat::Hdf5
            })
        },
        open: |p, v| Ok(Box::new(super::hdf5::Hdf5Matrix::open(p, v)?)),
        list: |p| listing::hdf5(p, false),
    },
    Format {
        format: FileFormat::NetCdf3,
        name: "NetCDF-3 (classic, 64-bit offset, 64-bit data)",
        label: "NetCDF-3",
        family: "NetCDF",
        signature: "the NetCDF-3 magic CDF",
        extensions: &["nc"],
        lazy: true,
        check: |p, s| {
            netcdf3_header::check(p, s.netcdf_version)?;
            Ok(FileFormat::NetCdf3)
        },
        open: |p, v| Ok(Box::new(super::netcdf::NetCdfMatrix::open(p, v, false)?)),
        list: |p| super::netcdf::contained(p, || listing::netcdf(p, false)),
    },
    Format {
        format: FileFormat::NetCdf4,
        name: "NetCDF-4 (HDF5 that libnetcdf wrote)",
        label: "NetCDF-4 (HDF5)",
        family: "NetCDF",
        signature: "the HDF5 signature",
        extensions: &["nc"],
        lazy: true,
        // Told from HDF5 by the HDF5 row's check; never sniffed as such.
        check: |_, _| Ok(FileFormat::NetCdf4),
        open: |p, v| Ok(Box::new(super::netcdf::NetCdfMatrix::open(p, v, true)?)),
        list: |p| super::netcdf::contained(p, || listing::netcdf(p, true)),
    },
];

/// The row of `format`.
pub fn of(format: FileFormat) -> &'static Format {
    FORMATS
        .iter()
        .find(|f| f.format == format)
        .expect("every format has a row")
}

/// List the variables of `path`.
pub fn list(path: &Path) -> Result<Listing> {
    let format = super::detect(path)?;
    let (variables, attributes) = (of(format).list)(path)?;
    Ok(Listing {
        format,
        variables,
        attributes,
    })
}

/// Each value of `field` once, in the table's order.
fn distinct(field: impl Fn(&Format) -> Vec<&'static str>) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for f in FORMATS {
        for v in field(f) {
            if !out.contains(&v) {
                out.push(v);
            }
        }
    }
    out
}

/// `a, b or c`.
fn or_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// Whether a directory's file of extension `ext` (lower case) is a data file.
pub fn is_data_extension(ext: &str) -> bool {
    FORMATS.iter().any(|f| f.extensions.contains(&ext))
}

/// Every extension a directory is searched for, with its dot, in order:
/// `.mat, .h5, .hdf5 or .nc`.
pub fn extensions_text() -> String {
    let exts: Vec<String> = distinct(|f| f.extensions.to_vec())
        .iter()
        .map(|e| format!(".{e}"))
        .collect();
    or_list(&exts)
}

/// The formats and their extensions, one line each (`--help`, man pages).
pub fn formats_lines() -> Vec<String> {
    FORMATS
        .iter()
        .map(|f| {
            let exts: Vec<String> = f.extensions.iter().map(|e| format!(".{e}")).collect();
            format!("{}: {}", f.name, exts.join(", "))
        })
        .collect()
}

/// What `-p` (and `info`'s paths) take: `Data files (…): paths,
/// directories (their .mat, … files) or quoted glob patterns`.
pub fn paths_help() -> String {
    let names: Vec<&str> = FORMATS
        .iter()
        .map(|f| f.name.split(" (").next().unwrap_or(f.name))
        .collect();
    format!(
        "Data files ({}): paths, directories (their {} files) or quoted glob patterns",
        names.join(", "),
        extensions_text()
    )
}

/// Why a file of no known format is refused: the families, and the first
/// bytes each is told by.
pub fn unknown_format_text() -> String {
    let families: Vec<String> = distinct(|f| vec![f.family])
        .into_iter()
        .map(String::from)
        .collect();
    let signatures: Vec<String> = distinct(|f| vec![f.signature])
        .into_iter()
        .map(String::from)
        .collect();
    format!(
        "not a {} file (expected {})",
        or_list(&families),
        or_list(&signatures)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_has_one_row() {
        for f in [
            FileFormat::MatV5,
            FileFormat::MatV4,
            FileFormat::MatV73,
            FileFormat::Hdf5,
            FileFormat::NetCdf3,
            FileFormat::NetCdf4,
        ] {
            assert_eq!(FORMATS.iter().filter(|r| r.format == f).count(), 1, "{f:?}");
        }
        assert_eq!(extensions_text(), ".mat, .h5, .hdf5 or .nc");
        assert_eq!(
            unknown_format_text(),
            "not a MATLAB .mat, HDF5 or NetCDF file (expected a MAT-file header, a MAT v4 variable header, the HDF5 signature or the NetCDF-3 magic CDF)"
        );
    }
}
