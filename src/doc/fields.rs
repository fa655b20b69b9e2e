//! The names of the fields of stored documents, shared by the models that
//! write them and the commands that read them back (`export`, `plot` and
//! the dataset reader). The names are the old tool's, which the Carbon Data
//! Explorer reads; they are part of the stored format.

/// Every document's key: a date (one document per time), a point's
/// `"YYYY-MM-DD/x/y"`, or a dataset's name (`metadata`, `coord_index`).
pub const ID: &str = "_id";

// A document of a gridded dataset, one per time:
// `{_id: <date>, _span: <seconds>, values: [...], errors: [...]}`, its
// arrays in the order of the `coord_index` entry.

/// The seconds a kriged map covers.
pub const SPAN: &str = "_span";
/// The values of every cell.
pub const VALUES: &str = "values";
/// The errors of every cell (kriged maps).
pub const ERRORS: &str = "errors";

// A document of a point dataset, one per point:
// `{_id, timestamp: <date>, coordinates: [x, y], properties: {value, error}}`.

/// The date of a point.
pub const TIMESTAMP: &str = "timestamp";
/// A point's `[x, y]`.
pub const COORDINATES: &str = "coordinates";
/// A point's measured values.
pub const PROPERTIES: &str = "properties";
/// The value among a point's properties.
pub const VALUE: &str = "value";
/// The error among a point's properties.
pub const ERROR: &str = "error";

// The `coord_index` entry: `{_id: <dataset>, i: [[x, y], ...]}`.

/// The cells' coordinates of a `coord_index` entry.
pub const CELLS: &str = "i";

// The `metadata` entry of a dataset.

pub const TITLE: &str = "title";
/// The units: an object keyed by coordinate and parameter, or one string.
pub const UNITS: &str = "units";
/// The decimals the values are rounded to.
pub const PRECISION: &str = "precision";
/// The conversion `units_to` applied at load (`{from, to, scale, offset}`).
pub const UNITS_CONVERSION: &str = "units_conversion";
/// `true` for a grid (a document per time), `false` for points.
pub const GRIDDED: &str = "gridded";
/// The cell size of a grid: `{units, x, y}`.
pub const GRIDRES: &str = "gridres";
/// The old tool's name of `gridres`, written beside it.
pub const GRID: &str = "grid";
/// The geometry of point data: `{type: "Point"}`.
pub const GEOMETRY: &str = "geometry";
/// The seconds between a grid's steps.
pub const STEPS: &str = "steps";
/// The seconds each date covers (kriged maps).
pub const SPANS: &str = "spans";
/// The dates: every one, or the first and last of a grid over time.
pub const DATES: &str = "dates";
/// `[minx, miny, maxx, maxy]` of the coordinates.
pub const BBOX: &str = "bbox";
/// The MD5 of the bbox, by which the web client compares grids.
pub const BBOXMD5: &str = "bboxmd5";
/// The statistics of each parameter.
pub const STATS: &str = "stats";
