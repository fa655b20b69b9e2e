//! The writing half of a load: documents checked, sorted and split into
//! batches under the server's limits, each batch inserted on a thread of
//! its own, one insert in flight at a time.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use bson::{doc, Bson, RawDocumentBuf};
use mongodb::error::{ErrorKind, InsertManyError};
use mongodb::sync::Collection;

use super::deadline::{Deadline, Within};
use super::errors::DUPLICATE_KEY;
use super::MongoLoad;
use crate::error::{Error, Result};
use crate::store::{checked_id, sort_key};

/// MongoDB's `maxMessageSizeBytes`: no insert may exceed it.
pub const MAX_MESSAGE_BYTES: usize = 48_000_000;
/// MongoDB's `maxWriteBatchSize`: documents per insert.
pub const MAX_BATCH_DOCUMENTS: usize = 100_000;
/// Bytes of documents per insert: well under the message limit, small
/// enough that several batches are in flight on a typical load.
const BATCH_BYTES: usize = 8 << 20;

/// Split documents of these encoded sizes into consecutive batches of at
/// most `max_bytes` and `max_count` documents (a document larger than
/// `max_bytes` goes alone).
pub fn split_batches(sizes: &[usize], max_bytes: usize, max_count: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, &n) in sizes.iter().enumerate() {
        if i > start && (bytes + n > max_bytes || i - start >= max_count) {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += n;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

/// A document ready to send: its `_id`, its sort key and its bytes.
pub(super) struct Encoded {
    pub(super) id: Bson,
    pub(super) key: Vec<u8>,
    raw: RawDocumentBuf,
}

pub(super) fn encode(collection: &str, raw: RawDocumentBuf) -> Result<Encoded> {
    let id = checked_id(collection, &raw)?;
    Ok(Encoded {
        key: sort_key(&id),
        id,
        raw,
    })
}

/// Keep the last of documents with the same `_id`, as a replacing write would.
fn dedup_last(docs: Vec<Encoded>) -> Vec<Encoded> {
    let mut last: HashMap<Vec<u8>, usize> = HashMap::with_capacity(docs.len());
    for (i, d) in docs.iter().enumerate() {
        last.insert(d.key.clone(), i);
    }
    if last.len() == docs.len() {
        return docs;
    }
    docs.into_iter()
        .enumerate()
        .filter(|(i, d)| last[&d.key] == *i)
        .map(|(_, d)| d)
        .collect()
}

/// What an insert did: the sort keys of the first and last documents it
/// added (documents whose `_id` was stored already are replaced in place).
#[derive(Default)]
pub(super) struct Inserted {
    first: Option<Vec<u8>>,
    last: Option<Vec<u8>>,
}

/// Why an insert failed: the driver's error.
pub(super) enum BatchError {
    Driver(mongodb::error::Error),
}

impl From<mongodb::error::Error> for BatchError {
    fn from(e: mongodb::error::Error) -> Self {
        BatchError::Driver(e)
    }
}

/// Insert a batch (sorted by `_id`); documents whose `_id` is already in the
/// staging collection (an append over stored times, a reload) replace the
/// stored ones in place, keeping the collection's order.
fn insert_batch(
    coll: &Collection<RawDocumentBuf>,
    docs: &[Encoded],
    deadline: &Deadline,
) -> std::result::Result<Inserted, BatchError> {
    // The driver retries an insert once when the server labels its error
    // retryable (mongod does, for a primary stepping down); one answered
    // with such a code but no label (SecantusDB) is sent again here too:
    // an insert sent twice finds its documents stored, and replaces them
    // below with the same ones.
    let e = match super::retrying(|| {
        coll.insert_many(docs.iter().map(|d| &d.raw))
            .ordered(false)
            .within(deadline)
    }) {
        Ok(_) => {
            return Ok(Inserted {
                first: docs.first().map(|d| d.key.clone()),
                last: docs.last().map(|d| d.key.clone()),
            })
        }
        Err(e) => e,
    };
    let dups: HashSet<usize> = match e.kind.as_ref() {
        ErrorKind::InsertMany(InsertManyError {
            write_errors: Some(w),
            write_concern_error: None,
            ..
        }) if w.iter().all(|w| w.code == DUPLICATE_KEY) => w.iter().map(|w| w.index).collect(),
        _ => return Err(e.into()),
    };
    let added: Vec<usize> = (0..docs.len()).filter(|i| !dups.contains(i)).collect();
    let inserted = Inserted {
        first: added.first().map(|&i| docs[i].key.clone()),
        last: added.last().map(|&i| docs[i].key.clone()),
    };
    // Each replaced by `_id` with `replaceOne` (upsert), in `_id` order:
    // one of the driver's retryable writes, which it sends once more to
    // the new primary when a fail-over cuts it. It finds its document
    // through the `_id` index and keeps its place (a `delete_many` with
    // `$in` and a reinsert was slow, and moved the documents to the end).
    let mut replaced: Vec<usize> = dups.into_iter().collect();
    replaced.sort_unstable();
    for d in replaced.into_iter().map(|i| &docs[i]) {
        super::retrying(|| {
            coll.replace_one(doc! { "_id": d.id.clone() }, &d.raw)
                .upsert(true)
                .within(deadline)
        })?;
    }
    Ok(inserted)
}

impl MongoLoad<'_> {
    pub(super) fn err(&self, e: mongodb::error::Error) -> Error {
        self.store.err(&self.staging, e)
    }

    /// Wait for the insert in flight, and note whether it kept `_id` order.
    pub(super) fn join(&mut self) -> Result<()> {
        let Some(handle) = self.in_flight.take() else {
            return Ok(());
        };
        let inserted = match handle.join() {
            Ok(Ok(i)) => i,
            Ok(Err(BatchError::Driver(e))) => return Err(self.err(e)),
            Err(_) => {
                return Err(Error::store(
                    self.store.target.where_(),
                    format!("a writer thread of the load into '{}' panicked", self.name),
                ))
            }
        };
        if let (Some(first), Some(last)) = (&inserted.first, &self.last_key) {
            if first < last {
                self.in_order = false;
            }
        }
        if let Some(l) = inserted.last {
            if self.last_key.as_ref().is_none_or(|k| &l > k) {
                self.last_key = Some(l);
            }
        }
        Ok(())
    }

    /// Send one batch on its own thread once the previous insert is done,
    /// so that documents reach the server in the order they are sent while
    /// the caller builds the next ones.
    fn send(&mut self, batch: Vec<Encoded>) -> Result<()> {
        self.join()?;
        let coll = self.raw.clone();
        let deadline = self.store.deadline.clone();
        self.in_flight = Some(std::thread::spawn(move || {
            let inserted = insert_batch(&coll, &batch, &deadline);
            for d in batch {
                crate::doc::recycle(d.raw.into_bytes());
            }
            inserted
        }));
        Ok(())
    }

    /// Send every full batch, in `_id` order; with `all`, the partial last
    /// one too.
    pub(super) fn flush(&mut self, all: bool) -> Result<()> {
        let mut pending = dedup_last(std::mem::take(&mut self.pending));
        pending.sort_by(|a, b| a.key.cmp(&b.key));
        let sizes: Vec<usize> = pending.iter().map(|d| d.raw.as_bytes().len()).collect();
        let mut batches = split_batches(&sizes, BATCH_BYTES, MAX_BATCH_DOCUMENTS);
        let keep = if all { None } else { batches.pop() };
        let mut docs = pending.into_iter();
        for r in batches {
            let batch: Vec<Encoded> = docs.by_ref().take(r.len()).collect();
            self.send(batch)?;
        }
        if keep.is_some() {
            self.pending = docs.collect();
        }
        Ok(())
    }

    pub(super) fn settle(&mut self) -> Result<()> {
        self.flush(true)?;
        self.join()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::Document;

    #[test]
    fn batches_stay_under_the_limits() {
        assert!(split_batches(&[], 10, 10).is_empty());
        assert_eq!(split_batches(&[4, 4, 4], 8, 10), vec![0..2, 2..3]);
        assert_eq!(split_batches(&[4, 4, 4], 100, 2), vec![0..2, 2..3]);
        // A document above the batch size goes alone.
        assert_eq!(split_batches(&[3, 20, 3], 8, 10), vec![0..1, 1..2, 2..3]);
        // Sixteen 16 MiB documents: two per message, never over 48 MB.
        let big = vec![crate::doc::MAX_DOCUMENT_BYTES; 16];
        let b = split_batches(&big, MAX_MESSAGE_BYTES - (1 << 16), MAX_BATCH_DOCUMENTS);
        assert_eq!(b.len(), 8);
        // Many small documents: the count limit splits them.
        let small = vec![10; 250_001];
        let b = split_batches(&small, BATCH_BYTES, MAX_BATCH_DOCUMENTS);
        assert_eq!(
            b.iter().map(|r| r.len()).collect::<Vec<_>>(),
            [100_000, 100_000, 50_001]
        );
        // Every document once, in order.
        let sizes: Vec<usize> = (0..1000).map(|i| (i * 7919) % 3000 + 1).collect();
        let b = split_batches(&sizes, 20_000, 64);
        assert_eq!(b.first().unwrap().start, 0);
        assert_eq!(b.last().unwrap().end, 1000);
        for w in b.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        for r in &b {
            assert!(sizes[r.clone()].iter().sum::<usize>() <= 20_000 && r.len() <= 64);
        }
    }

    #[test]
    fn documents_over_16_mib_are_refused_before_sending() {
        let raw = |d: Document| RawDocumentBuf::from_document(&d).unwrap();
        let ok: Vec<Bson> = vec![Bson::Double(1.5); 1000];
        encode("x", raw(doc! { "_id": 1, "values": ok })).unwrap();
        // About a million cells in one step: over the limit.
        let big: Vec<Bson> = vec![Bson::Double(1.5); 1_100_000];
        let e = encode(
            "casa",
            raw(doc! { "_id": bson::DateTime::from_millis(0), "values": big }),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("'casa'") && e.contains("16 MiB"), "{e}");
    }

    #[test]
    fn duplicates_in_one_batch_keep_the_last() {
        let raw = |d: Document| RawDocumentBuf::from_document(&d).unwrap();
        let docs = vec![
            encode("x", raw(doc! { "_id": 1, "v": 1 })).unwrap(),
            encode("x", raw(doc! { "_id": 2, "v": 2 })).unwrap(),
            encode("x", raw(doc! { "_id": 1, "v": 3 })).unwrap(),
        ];
        let kept = dedup_last(docs);
        let vs: Vec<_> = kept
            .iter()
            .map(|d| d.raw.to_document().unwrap().get_i32("v").unwrap())
            .collect();
        assert_eq!(vs, [2, 3]);
    }
}
