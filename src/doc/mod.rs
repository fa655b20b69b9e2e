//! The stored document format: what a document, a `coord_index` entry, a
//! summary entry and an ingest-log entry look like in either store, and
//! how big a document may be. It sits below both the models, which write
//! documents in it, and the stores, which move them: neither imports the
//! other.
//!
//! - `fields`: the field names of stored documents (the old tool's, which
//!   the Carbon Data Explorer reads);
//! - [`packed`]: the compact form of a step document, which the embedded
//!   store keeps and MongoDB gets joined back into BSON;
//! - `encode`: array keys and the pool of megabyte buffers that
//!   step documents take;
//! - [`sort_key`]: byte keys that sort like MongoDB sorts `_id`;
//! - [`summary`] and [`ingest_log`]: the entries of a dataset's summary and
//!   of its ingest log, with one owner for their field names;
//! - here: the collection names, the document size limit and its
//!   arithmetic, and the `coord_index` entry.

pub mod encode;
pub mod fields;
pub mod ingest_log;
mod key;
pub mod packed;
pub mod summary;

use bson::{doc, Bson, Document, RawDocumentBuf};

use crate::error::{Error, Result};

pub use encode::recycle;
pub use key::sort_key;

/// The collection of one metadata document per dataset.
pub const METADATA: &str = "metadata";

/// The collection of one coordinate list per dataset.
pub const COORD_INDEX: &str = "coord_index";

/// The collection of one mergeable summary per dataset (its times and its
/// tables of value counts, see `model::Summary::to_stored`) and the
/// digest of its coordinates, so that an append merges into it instead of
/// reading every stored document. Written with each load; a dataset without
/// one gets it from its next load.
pub const SUMMARY: &str = "summary_stats";

/// The largest document MongoDB stores (its `maxBsonObjectSize`). Both
/// stores refuse larger ones, so that a dataset fits either.
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

/// Refuse a document over [`MAX_DOCUMENT_BYTES`] (its encoded size), naming
/// the collection and the document's `_id`.
pub fn check_document_size(collection: &str, id: Option<&Bson>, bytes: usize) -> Result<()> {
    if bytes <= MAX_DOCUMENT_BYTES {
        return Ok(());
    }
    let id = id.map(|i| format!(" {i}")).unwrap_or_default();
    Err(Error::collection(
        collection,
        format!(
            "document{id} would be {:.1} MiB, over MongoDB's 16 MiB document limit; nothing was written",
            bytes as f64 / (1024.0 * 1024.0)
        ),
    ))
}

/// The `_id` of an encoded document bound for `collection`, which is
/// checked against [`MAX_DOCUMENT_BYTES`] as every store does before it
/// writes one.
pub(crate) fn checked_id(collection: &str, doc: &RawDocumentBuf) -> Result<Bson> {
    let id = doc
        .get("_id")
        .ok()
        .flatten()
        .and_then(|id| Bson::try_from(id.to_raw_bson()).ok())
        .ok_or_else(|| Error::store("write", "a document has no readable _id"))?;
    check_document_size(collection, Some(&id), doc.as_bytes().len())?;
    Ok(id)
}

/// The version of the stored format this build writes and reads: kept
/// in the embedded store as SQLite's `user_version`, in MongoDB in the
/// `_meta` collection (`{_id: "format", version}`). A store of a newer
/// version is refused by name, before anything is read or written; one
/// without (written before the version was kept) is version 1.
///
/// - 1: the first kept.
/// - 2: the compact step form may hold 8-byte integers (decimals past 32
///   bits, see [`packed`]); version 1 is read as it is.
pub const FORMAT_VERSION: i64 = 2;

/// Refuse a store whose format `version` is newer than this build's.
pub fn check_format_version(store: &str, version: i64) -> Result<()> {
    if version <= FORMAT_VERSION {
        return Ok(());
    }
    Err(Error::store(
        store.to_string(),
        format!(
            "was written by a newer manage (store format version {version}; this one reads up to {FORMAT_VERSION}); nothing was read or written: use a newer manage"
        ),
    ))
}

/// A batch of encoded documents, as a model hands them to a store: BSON,
/// or step documents in the compact form.
#[derive(Debug)]
pub enum Docs {
    Bson(Vec<RawDocumentBuf>),
    Steps(Vec<packed::PackedDoc>),
}

impl Docs {
    /// How many documents it holds.
    pub fn len(&self) -> usize {
        match self {
            Docs::Bson(d) => d.len(),
            Docs::Steps(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The documents as BSON (step documents joined back, in parallel).
    pub fn into_bson(self) -> Vec<RawDocumentBuf> {
        use rayon::prelude::*;
        match self {
            Docs::Bson(d) => d,
            Docs::Steps(d) => d.into_par_iter().map(|p| p.to_raw()).collect(),
        }
    }
}

/// The `coord_index` entry: `{_id: NAME, i: [[x, y], …]}`.
pub fn coord_index_document(name: &str, coords: &[[f64; 2]]) -> Document {
    let i: Vec<Bson> = coords
        .iter()
        .map(|[x, y]| Bson::Array(vec![Bson::Double(*x), Bson::Double(*y)]))
        .collect();
    doc! { fields::ID: name, fields::CELLS: i }
}

/// [`coord_index_document`] encoded straight to BSON bytes: a global
/// grid's is 259,200 small arrays, whose `Bson` values would take most of
/// the time of a commit.
pub fn coord_index_raw(name: &str, coords: &[[f64; 2]]) -> RawDocumentBuf {
    // Each cell: type, key, NUL, then [len, 0x01 "0" NUL x, 0x01 "1" NUL y, 0].
    const CELL: usize = 4 + 2 * (1 + 2 + 8) + 1;
    let mut b = Vec::with_capacity(64 + name.len() + coords.len() * (CELL + 9));
    b.extend_from_slice(&[0; 4]);
    b.push(0x02);
    b.extend_from_slice(b"_id\0");
    b.extend_from_slice(&(name.len() as i32 + 1).to_le_bytes());
    b.extend_from_slice(name.as_bytes());
    b.push(0);
    b.push(0x04);
    b.extend_from_slice(b"i\0");
    let array_at = b.len();
    b.extend_from_slice(&[0; 4]);
    let mut keys = encode::ArrayKeys::default();
    for &[x, y] in coords {
        b.push(0x04);
        b.extend_from_slice(keys.with_nul());
        b.extend_from_slice(&(CELL as i32).to_le_bytes());
        b.extend_from_slice(b"\x010\0");
        b.extend_from_slice(&x.to_le_bytes());
        b.extend_from_slice(b"\x011\0");
        b.extend_from_slice(&y.to_le_bytes());
        b.push(0);
        keys.advance();
    }
    b.push(0);
    let array_len = (b.len() - array_at) as i32;
    b[array_at..array_at + 4].copy_from_slice(&array_len.to_le_bytes());
    b.push(0);
    let len = b.len() as i32;
    b[..4].copy_from_slice(&len.to_le_bytes());
    RawDocumentBuf::from_bytes(b).expect("well-formed BSON")
}

/// The coordinates of a `coord_index` entry, to compare with a new file's.
pub fn coordinates_of(entry: &Document) -> Option<Vec<[f64; 2]>> {
    entry
        .get_array(fields::CELLS)
        .ok()?
        .iter()
        .map(|p| match p {
            Bson::Array(a) if a.len() == 2 => Some([a[0].as_f64()?, a[1].as_f64()?]),
            _ => None,
        })
        .collect()
}

/// Encoded size of a BSON array of `n` elements whose values take
/// `value_bytes` each: the length, then per element its type byte, decimal
/// index and NUL, and the value; then the closing NUL.
pub fn bson_array_bytes(n: usize, value_bytes: usize) -> usize {
    let mut digits = 0;
    let (mut width, mut from) = (1, 0usize);
    while from < n {
        let to = (from.max(1) * 10).min(n);
        digits += (to - from) * width;
        (width, from) = (width + 1, to);
    }
    5 + n * (2 + value_bytes) + digits
}

/// The largest cell count up to `n` whose document of `size(cells)` bytes
/// fits MongoDB's document limit (sizes grow with the count).
pub fn most_that_fit(n: usize, size: &dyn Fn(usize) -> usize) -> usize {
    let (mut lo, mut hi) = (0usize, n);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if size(mid) <= MAX_DOCUMENT_BYTES {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// Encoded size of the `coord_index` entry of `n` cells.
pub fn coord_index_bytes(name: &str, n: usize) -> usize {
    // {_id: string, i: [[x, y], ...]}; a pair is a 27-byte array of two doubles.
    4 + (1 + 4 + 4 + name.len() + 1) + (1 + 2 + bson_array_bytes(n, 27)) + 1
}

/// [`coordinates_of`] of an entry as it is stored, without
/// decoding it: `None` unless every cell is an array of two doubles.
pub fn coordinates_of_raw(entry: &bson::RawDocument) -> Option<Vec<[f64; 2]>> {
    let cells = entry.get_array(fields::CELLS).ok()?;
    cells
        .into_iter()
        .map(|p| {
            let mut xy = p.ok()?.as_array()?.into_iter();
            let x = xy.next()?.ok()?.as_f64()?;
            let y = xy.next()?.ok()?.as_f64()?;
            xy.next().is_none().then_some([x, y])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coord_index_raw_is_the_bson_of_the_document() {
        for coords in [
            vec![],
            vec![[0.5, -1.25]],
            (0..1234).map(|i| [i as f64 * 0.5 - 180.0, -0.0]).collect(),
        ] {
            let raw = coord_index_raw("casa_2004", &coords);
            let want = bson::to_vec(&coord_index_document("casa_2004", &coords)).unwrap();
            assert_eq!(raw.as_bytes(), &want[..], "{} cells", coords.len());
        }
    }

    #[test]
    fn document_sizes_are_computed_exactly() {
        for n in [0, 1, 9, 10, 11, 99, 100, 101, 1234, 10_000] {
            let coords = vec![[-166.5, 10.5]; n];
            let ci = coord_index_document("casa_2004", &coords);
            assert_eq!(
                coord_index_bytes("casa_2004", n),
                bson::to_vec(&ci).unwrap().len(),
                "{n}"
            );
            let values = vec![Bson::Double(0.5); n];
            let step = doc! { "_id": bson::DateTime::from_millis(0), "values": values };
            assert_eq!(
                26 + bson_array_bytes(n, 8),
                bson::to_vec(&step).unwrap().len(),
                "{n}"
            );
        }
    }

    #[test]
    fn document_size_limit() {
        check_document_size("x", None, MAX_DOCUMENT_BYTES).unwrap();
        let id = Bson::String("a".into());
        let e = check_document_size("x", Some(&id), MAX_DOCUMENT_BYTES + 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("'x'") && e.contains("16 MiB"), "{e}");
    }

    /// The cells read from a raw `coord_index` entry are those the decoded
    /// entry gives; an entry with a cell that is not two doubles gives none.
    #[test]
    fn coordinates_of_a_raw_entry_are_those_of_the_decoded_one() {
        let coords: Vec<[f64; 2]> = (0..1000)
            .map(|i| {
                [
                    -179.75 + 0.5 * (i % 720) as f64,
                    -89.75 + 0.5 * (i / 720) as f64,
                ]
            })
            .collect();
        let raw = coord_index_raw("casa", &coords);
        let decoded = raw.to_document().unwrap();
        assert_eq!(coordinates_of_raw(&raw), coordinates_of(&decoded));
        assert_eq!(coordinates_of_raw(&raw), Some(coords));
        for cells in [
            bson::bson!([[1.5, 2.5], [1.5]]),
            bson::bson!([[1.5, 2.5], [1.5, 2.5, 3.5]]),
            bson::bson!([[1.5, "x"]]),
        ] {
            let d = doc! { "_id": "casa", fields::CELLS: cells };
            let raw = RawDocumentBuf::from_document(&d).unwrap();
            assert_eq!(coordinates_of_raw(&raw), None);
            assert_eq!(coordinates_of(&d), None);
        }
    }
}
