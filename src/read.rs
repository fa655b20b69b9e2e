//! A stored dataset read back for `export --format csv` and `plot`: whether
//! it is a grid or a set of points, its cell coordinates, and the documents
//! of one time, streamed from the store one at a time.
//!
//! Gridded datasets (SpatioTemporalMatrix, KrigedXCO2Matrix) hold one
//! document per time, `{_id: <date>, values: [...], errors: [...]}`, whose
//! arrays follow the order of the `coord_index` entry. Point datasets
//! (XCO2Matrix) hold one document per point, `{_id, timestamp: <date>,
//! coordinates: [x, y], properties: {value, error}}`. Which one a dataset is
//! comes from its metadata (`gridded`) and, where that is missing, from the
//! shape of its documents; never from the name of the model that loaded it.
//!
//! Also here: what `export` selects ([`Selection`]: a time, a time range,
//! a box), and a dataset's stored summary ([`stored_summary`]), which an
//! append merges into and a time range reads the times from.

use bson::{Bson, Document};

use crate::config::parse_timestamp;
use crate::doc::summary::{self as entry};
use crate::doc::{fields, COORD_INDEX, METADATA, SUMMARY};
use crate::error::{Error, Result};
use crate::model::Summary;
use crate::store::{Filter, Store, Stored};
use crate::time::iso_date;

/// How the documents of a dataset are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One document per time, arrays parallel to `coord_index`.
    Gridded,
    /// One document per point, with its own time and coordinates.
    Points,
}

impl Kind {
    /// The layout of one document, by its shape.
    pub fn of_document(doc: &Document) -> Kind {
        if doc.get_array(fields::COORDINATES).is_ok()
            || doc.get_document(fields::PROPERTIES).is_ok()
        {
            Kind::Points
        } else {
            Kind::Gridded
        }
    }
}

/// A dataset of the store, with what its metadata says about it.
pub struct Dataset<'s> {
    pub store: &'s dyn Store,
    pub name: String,
    /// The `metadata` entry, if there is one.
    pub metadata: Option<Document>,
}

impl<'s> Dataset<'s> {
    /// The dataset `name`; an unknown name is an error that lists the
    /// existing ones.
    pub fn open(store: &'s dyn Store, name: &str) -> Result<Self> {
        crate::store::Datasets::require(store, name)?;
        Ok(Self {
            store,
            name: name.to_string(),
            metadata: store.entry(METADATA, name)?,
        })
    }

    /// The layout the metadata declares (`gridded: true|false`), if it does.
    pub fn declared_kind(&self) -> Option<Kind> {
        match self.metadata.as_ref()?.get_bool(fields::GRIDDED) {
            Ok(true) => Some(Kind::Gridded),
            Ok(false) => Some(Kind::Points),
            Err(_) => None,
        }
    }

    /// The layout of the dataset: declared, else that of `doc`.
    pub fn kind(&self, doc: &Document) -> Kind {
        self.declared_kind()
            .unwrap_or_else(|| Kind::of_document(doc))
    }

    /// The `[x, y]` of every cell, in the order of the gridded arrays.
    pub fn coordinates(&self) -> Result<Vec<[f64; 2]>> {
        let entry = self.store.entry(COORD_INDEX, &self.name)?.ok_or_else(|| {
            Error::collection(
                &self.name,
                "has no coord_index entry, so its cells have no coordinates; `manage db -a` checks the store",
            )
        })?;
        crate::doc::coordinates_of(&entry).ok_or_else(|| {
            Error::collection(
                &self.name,
                "its coord_index entry is not a list of [x, y] pairs",
            )
        })
    }

    /// A metadata string, e.g. `title`.
    pub fn metadata_str(&self, key: &str) -> Option<&str> {
        self.metadata.as_ref()?.get_str(key).ok()
    }

    /// The earliest time the metadata lists in `dates`, in ms since the epoch.
    pub fn first_listed_time(&self) -> Option<i64> {
        self.metadata
            .as_ref()?
            .get_array(fields::DATES)
            .ok()?
            .iter()
            .filter_map(|d| match d {
                Bson::String(s) => crate::config::parse_timestamp(s).map(|t| t.timestamp_millis()),
                Bson::DateTime(d) => Some(d.timestamp_millis()),
                _ => None,
            })
            .min()
    }

    /// Every document of time `at` (ms), or every document when `at` is
    /// `None`, in `_id` order, handed to `f` one at a time.
    ///
    /// A gridded dataset's time is its document's `_id`, read by key; a
    /// point's is its `timestamp`, which the store filters on (MongoDB on
    /// the server). Without metadata the layout is not known, so every
    /// document is read and its time compared.
    pub fn scan(&self, at: Option<i64>, f: &mut dyn FnMut(Document) -> Result<()>) -> Result<()> {
        match at {
            None => self.store.scan(&self.name, &Filter::All, f),
            Some(ms) if self.declared_kind() == Some(Kind::Gridded) => self.store.scan(
                &self.name,
                &Filter::Id(Bson::DateTime(bson::DateTime::from_millis(ms))),
                f,
            ),
            Some(ms) if self.declared_kind() == Some(Kind::Points) => self.store.scan(
                &self.name,
                &Filter::Field(
                    fields::TIMESTAMP.into(),
                    Bson::DateTime(bson::DateTime::from_millis(ms)),
                ),
                f,
            ),
            Some(ms) => self.store.scan(&self.name, &Filter::All, &mut |d| {
                if document_time(&d) == Some(ms) {
                    f(d)
                } else {
                    Ok(())
                }
            }),
        }
    }

    /// A point document's `[x, y]`; a point without them is an error.
    pub fn point_xy(&self, doc: &Document) -> Result<[f64; 2]> {
        point_coordinates(doc).ok_or_else(|| {
            Error::collection(
                &self.name,
                format!(
                    "point document {} has no coordinates [x, y]",
                    describe_id(doc)
                ),
            )
        })
    }

    /// The error for a time at which the dataset has no document.
    pub fn nothing_at(&self, at: i64) -> Error {
        Error::collection(
            &self.name,
            format!(
                "has no document at {}Z; `manage db -n {} --times` lists its times",
                iso_date(at),
                self.name
            ),
        )
    }
}

/// The time of a document, in ms: its `timestamp` (points), else its `_id`
/// (one document per time).
pub fn document_time(doc: &Document) -> Option<i64> {
    match doc.get(fields::TIMESTAMP).or_else(|| doc.get(fields::ID))? {
        Bson::DateTime(d) => Some(d.timestamp_millis()),
        _ => None,
    }
}

/// A point document's `[x, y]`.
pub fn point_coordinates(doc: &Document) -> Option<[f64; 2]> {
    match doc.get_array(fields::COORDINATES).ok()?.as_slice() {
        [x, y] => Some([number(x)?, number(y)?]),
        _ => None,
    }
}

/// A point document's property `key` (`value`, `error`); `None` when it is
/// null, missing or not a number.
pub fn point_property(doc: &Document, key: &str) -> Option<f64> {
    number(doc.get_document(fields::PROPERTIES).ok()?.get(key)?)
}

/// The per-cell arrays of a gridded document, in document order
/// (`values`, `errors`): every array field but `_id`.
pub fn array_fields(doc: &Document) -> Vec<String> {
    doc.iter()
        .filter(|(k, v)| !k.starts_with('_') && matches!(v, Bson::Array(_)))
        .map(|(k, _)| k.clone())
        .collect()
}

/// A stored number as `f64`; null, NaN and anything else as `None`.
pub fn number(b: &Bson) -> Option<f64> {
    let x = match b {
        Bson::Double(x) => *x,
        Bson::Int32(i) => f64::from(*i),
        Bson::Int64(i) => *i as f64,
        _ => return None,
    };
    x.is_finite().then_some(x)
}

/// A document's `_id` for error messages.
pub fn describe_id(doc: &Document) -> String {
    match doc.get(fields::ID) {
        Some(Bson::DateTime(d)) => format!("{}Z", iso_date(d.timestamp_millis())),
        Some(b) => b.to_string(),
        None => "(no _id)".into(),
    }
}

/// `--bbox W,S,E,N`: a box of longitudes and latitudes, edges included.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bbox {
    pub west: f64,
    pub south: f64,
    pub east: f64,
    pub north: f64,
}

impl Bbox {
    pub fn contains(&self, [x, y]: [f64; 2]) -> bool {
        (self.west..=self.east).contains(&x) && (self.south..=self.north).contains(&y)
    }
}

/// Which documents, and which of their cells, to write.
#[derive(Debug, Clone, Copy, Default)]
pub struct Selection {
    pub at: Option<i64>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub bbox: Option<Bbox>,
}

impl Selection {
    pub fn time(t: &Option<String>, flag: &str) -> Result<Option<i64>> {
        t.as_deref()
            .map(|s| {
                parse_timestamp(s)
                    .map(|t| t.timestamp_millis())
                    .ok_or_else(|| {
                        Error::Usage(format!(
                            "{flag} '{s}' is not a valid ISO 8601 time such as 2004-06-30T03:00:00"
                        ))
                    })
            })
            .transpose()
    }

    /// Whether a document of time `ms` is selected.
    pub fn keeps_time(&self, ms: Option<i64>) -> bool {
        match ms {
            None => self.from.is_none() && self.to.is_none(),
            Some(t) => self.from.is_none_or(|f| t >= f) && self.to.is_none_or(|e| t <= e),
        }
    }

    /// Every selected document, in _id order.
    ///
    /// A time range of a gridded dataset (one document per time, its
    /// `_id`) reads only the documents of the range: the times come from
    /// the stored summary, each document is read by its `_id`. Without a
    /// usable summary every document is read and its time compared.
    pub fn scan(&self, dataset: &Dataset, f: &mut dyn FnMut(Document) -> Result<()>) -> Result<()> {
        if self.at.is_none()
            && (self.from.is_some() || self.to.is_some())
            && dataset.declared_kind() == Some(Kind::Gridded)
        {
            if let Some((summary, _)) = stored_summary(dataset.store, &dataset.name)? {
                for &t in summary.times.keys() {
                    if self.keeps_time(Some(t)) {
                        dataset.scan(Some(t), f)?;
                    }
                }
                return Ok(());
            }
        }
        dataset.scan(self.at, &mut |doc| {
            if self.keeps_time(document_time(&doc)) {
                f(doc)
            } else {
                Ok(())
            }
        })
    }

    /// [`Selection::scan`], each document as the store keeps it (see
    /// [`Store::scan_stored`]): the compact form of a step is
    /// written from without being turned into BSON.
    pub fn scan_stored(
        &self,
        dataset: &Dataset,
        f: &mut dyn FnMut(Stored<'_>) -> Result<()>,
    ) -> Result<()> {
        if self.at.is_none()
            && (self.from.is_some() || self.to.is_some())
            && dataset.declared_kind() == Some(Kind::Gridded)
        {
            if let Some((summary, _)) = stored_summary(dataset.store, &dataset.name)? {
                for &t in summary.times.keys() {
                    if self.keeps_time(Some(t)) {
                        scan_stored_at(dataset, Some(t), f)?;
                    }
                }
                return Ok(());
            }
        }
        scan_stored_at(dataset, self.at, &mut |stored| {
            if self.keeps_time(document_time(stored.outline())) {
                f(stored)
            } else {
                Ok(())
            }
        })
    }

    /// The error for a selection that holds no document.
    pub fn nothing(&self, dataset: &Dataset) -> Option<Error> {
        if let Some(ms) = self.at {
            return Some(dataset.nothing_at(ms));
        }
        if self.from.is_none() && self.to.is_none() {
            return None;
        }
        let t = |x: Option<i64>| x.map(|ms| format!("{}Z", iso_date(ms)));
        let range = match (t(self.from), t(self.to)) {
            (Some(a), Some(b)) => format!("from {a} to {b}"),
            (Some(a), None) => format!("from {a} on"),
            (None, Some(b)) => format!("up to {b}"),
            (None, None) => unreachable!("checked above"),
        };
        Some(Error::collection(
            &dataset.name,
            format!(
                "has no document {range}; `manage db -n {} --times` lists its times",
                dataset.name
            ),
        ))
    }
}

/// [`Dataset::scan`] through [`store::Store::scan_stored`].
fn scan_stored_at(
    dataset: &Dataset,
    at: Option<i64>,
    f: &mut dyn FnMut(Stored<'_>) -> Result<()>,
) -> Result<()> {
    let store = dataset.store;
    let time = |ms| bson::Bson::DateTime(bson::DateTime::from_millis(ms));
    match at {
        None => store.scan_stored(&dataset.name, &Filter::All, f),
        Some(ms) if dataset.declared_kind() == Some(Kind::Gridded) => {
            store.scan_stored(&dataset.name, &Filter::Id(time(ms)), f)
        }
        Some(ms) if dataset.declared_kind() == Some(Kind::Points) => store.scan_stored(
            &dataset.name,
            &Filter::Field(fields::TIMESTAMP.into(), time(ms)),
            f,
        ),
        Some(ms) => store.scan_stored(&dataset.name, &Filter::All, &mut |s| {
            if document_time(s.outline()) == Some(ms) {
                f(s)
            } else {
                Ok(())
            }
        }),
    }
}

/// The stored summary of dataset `name` and the digest of its coordinates,
/// when the dataset is complete and the summary is one this version wrote
/// for as many documents as the collection holds.
pub fn stored_summary(store: &dyn Store, name: &str) -> Result<Option<(Summary, String)>> {
    let Some(entry) = store.entry(SUMMARY, name)? else {
        return Ok(None);
    };
    let Some((stored, digest)) = entry::parts(&entry) else {
        return Ok(None);
    };
    if store.entry(METADATA, name)?.is_none() {
        return Ok(None);
    }
    let summary = Summary::from_stored(stored);
    let digest = Some(digest.to_string());
    // Checked against the collection's document count as the store keeps
    // it (an exact count reads every document on MongoDB).
    match (summary, digest) {
        (Some(s), Some(d)) if s.documents == store.count_kept(name)? => Ok(Some((s, d))),
        _ => Ok(None),
    }
}
