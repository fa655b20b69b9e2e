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

use bson::{Bson, Document};

use crate::doc::{fields, COORD_INDEX, METADATA};
use crate::error::{Error, Result};
use crate::store::{Filter, Store};
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
