//! A compact form of a document with a large array of numbers, as the
//! embedded store keeps it: the array's element keys ("0", "1", … — a third
//! of its bytes) are left out, and its element types and doubles are kept
//! as two runs, which compress faster and smaller than the BSON. [`join`]
//! gives back the very bytes [`split`] was given.
//!
//! Layout: `head_len: u32`, the document's bytes up to the array's length
//! (`head_len` of them), `n: u32`, the `n` element types (double or null),
//! the doubles' 8 bytes each, then the document's bytes after the array.
//! All integers little-endian.

use crate::model::encode::ArrayKeys;

const DOUBLE: u8 = 0x01;
const NULL: u8 = 0x0A;

fn i32_at(b: &[u8], at: usize) -> Option<usize> {
    let v = i32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?);
    usize::try_from(v).ok()
}

/// The byte size of a value of BSON type `kind` at `at`, for the types a
/// stored document has; `None` for others.
fn value_size(b: &[u8], kind: u8, at: usize) -> Option<usize> {
    Some(match kind {
        0x01 | 0x09 | 0x11 | 0x12 => 8,
        0x02 => 4 + i32_at(b, at)?,
        0x03 | 0x04 => i32_at(b, at)?,
        0x05 => 5 + i32_at(b, at)?,
        0x07 => 12,
        0x08 => 1,
        0x0A => 0,
        0x10 => 4,
        0x13 => 16,
        _ => return None,
    })
}

/// The (start, end) of the value of each top-level array, in order.
fn arrays(b: &[u8]) -> Option<Vec<(usize, usize)>> {
    if i32_at(b, 0)? != b.len() || b.last() != Some(&0) {
        return None;
    }
    let mut out = Vec::new();
    let mut at = 4;
    while b[at] != 0 {
        let kind = b[at];
        let key_end = at + 1 + b.get(at + 1..)?.iter().position(|&c| c == 0)?;
        let start = key_end + 1;
        let end = start + value_size(b, kind, start)?;
        if end >= b.len() {
            return None;
        }
        if kind == 0x04 {
            out.push((start, end));
        }
        at = end;
    }
    (at == b.len() - 1).then_some(out)
}

/// Append the element types of the array `b` (its whole value) to `types`
/// and its doubles to `doubles`, when it holds only doubles and nulls under
/// the keys "0", "1", …; the number of elements.
fn numbers(b: &[u8], types: &mut Vec<u8>, doubles: &mut Vec<u8>) -> Option<usize> {
    // An element takes at least 3 bytes (type, key, NUL), a double 11 with
    // its value: sized once, never grown.
    types.reserve(b.len() / 3);
    doubles.reserve(b.len() / 11 * 8 + 8);
    let mut n = 0;
    let mut at = 4;
    let mut keys = ArrayKeys::default();
    while *b.get(at)? != 0 {
        let kind = b[at];
        let k = keys.with_nul();
        if !key_at(b, at + 1, k) {
            return None;
        }
        at += 1 + k.len();
        match kind {
            DOUBLE => {
                doubles.extend_from_slice(b.get(at..at + 8)?);
                at += 8;
            }
            NULL => {}
            _ => return None,
        }
        types.push(kind);
        n += 1;
        keys.advance();
    }
    (at + 1 == b.len()).then_some(n)
}

/// Whether `b` holds `key` (with its NUL) at `at`: one 8-byte comparison
/// for keys of up to 7 digits, the byte slices otherwise.
#[inline]
fn key_at(b: &[u8], at: usize, key: &[u8]) -> bool {
    if let (Some(word), true) = (b.get(at..at + 8), key.len() <= 8) {
        let mut want = [0u8; 8];
        want[..key.len()].copy_from_slice(key);
        let mask = u64::MAX >> (64 - 8 * key.len());
        let got = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        return got & mask == u64::from_le_bytes(want);
    }
    b.get(at..at + key.len()) == Some(key)
}

/// The compact form of `bson`, when it has a top-level array of numbers
/// (the largest one is packed); `None` leaves the document as it is.
#[cfg(test)]
pub fn split(bson: &[u8]) -> Option<Vec<u8>> {
    let (mut out, mut doubles) = (Vec::new(), Vec::new());
    split_into(bson, &mut out, &mut doubles).then_some(out)
}

/// [`split`] into `out` (cleared first), with `doubles` as scratch space:
/// buffers a caller keeps from one document to the next. `false` (and
/// `out` of no use) when `bson` has no array this form holds.
pub fn split_into(bson: &[u8], out: &mut Vec<u8>, doubles: &mut Vec<u8>) -> bool {
    out.clear();
    doubles.clear();
    let Some((start, end)) = arrays(bson).and_then(|a| a.into_iter().max_by_key(|(s, e)| e - s))
    else {
        return false;
    };
    let Ok(head_len) = u32::try_from(start) else {
        return false;
    };
    out.extend_from_slice(&head_len.to_le_bytes());
    out.extend_from_slice(&bson[..start]);
    let n_at = out.len();
    out.extend_from_slice(&[0; 4]);
    let Some(n) = numbers(&bson[start..end], out, doubles) else {
        return false;
    };
    let Ok(n) = u32::try_from(n) else {
        return false;
    };
    out[n_at..n_at + 4].copy_from_slice(&n.to_le_bytes());
    out.extend_from_slice(doubles);
    out.extend_from_slice(&bson[end..]);
    true
}

/// The BSON document whose compact form is `packed`; `None` when it is not
/// one.
pub fn join(packed: &[u8]) -> Option<Vec<u8>> {
    let u32_at = |at: usize| -> Option<usize> {
        Some(u32::from_le_bytes(packed.get(at..at + 4)?.try_into().ok()?) as usize)
    };
    let head_len = u32_at(0)?;
    let head = packed.get(4..4 + head_len)?;
    let n = u32_at(4 + head_len)?;
    let types_at = 8 + head_len;
    let types = packed.get(types_at..types_at.checked_add(n)?)?;
    let doubles = types.iter().filter(|&&t| t == DOUBLE).count();
    let values_at = types_at + n;
    let values = packed.get(values_at..values_at.checked_add(doubles.checked_mul(8)?)?)?;
    let tail = packed.get(values_at + values.len()..)?;
    let mut out = Vec::with_capacity(head.len() + tail.len() + 5 + n * 16);
    out.extend_from_slice(head);
    let array_at = out.len();
    out.extend_from_slice(&[0; 4]);
    let mut v = values.chunks_exact(8);
    let mut keys = ArrayKeys::default();
    for &t in types {
        out.push(t);
        out.extend_from_slice(keys.with_nul());
        match t {
            DOUBLE => out.extend_from_slice(v.next()?),
            NULL => {}
            _ => return None,
        }
        keys.advance();
    }
    out.push(0);
    let len = i32::try_from(out.len() - array_at).ok()?;
    out[array_at..array_at + 4].copy_from_slice(&len.to_le_bytes());
    out.extend_from_slice(tail);
    (i32_at(&out, 0)? == out.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, Bson};

    fn bytes(d: &bson::Document) -> Vec<u8> {
        bson::to_vec(d).unwrap()
    }

    #[test]
    fn documents_come_back_byte_for_byte() {
        let values: Vec<Bson> = (0..1234)
            .map(|i| {
                if i % 7 == 0 {
                    Bson::Null
                } else {
                    Bson::Double(i as f64 / 100.0 - 3.0)
                }
            })
            .collect();
        let errors: Vec<Bson> = (0..1234).map(|i| Bson::Double(i as f64)).collect();
        for d in [
            doc! { "_id": bson::DateTime::from_millis(86_400_000), "values": values.clone() },
            doc! { "_id": bson::DateTime::from_millis(0), "_span": 518400, "values": values.clone(), "errors": errors, "t": "x" },
            doc! { "_id": "a", "values": [] },
        ] {
            let b = bytes(&d);
            let packed = split(&b).expect("packable");
            assert_eq!(join(&packed).unwrap(), b);
        }
    }

    #[test]
    fn documents_without_an_array_of_numbers_are_left_alone() {
        assert!(split(&bytes(&doc! { "_id": "a", "n": 1 })).is_none());
        assert!(
            split(&bytes(&doc! { "_id": "a", "v": [1, 2] })).is_none(),
            "int32 elements"
        );
        assert!(split(&bytes(&doc! { "_id": "a", "v": [[1.0]] })).is_none());
        // Keys out of order are not an array this form can rebuild.
        let odd = doc! { "_id": "a", "v": Bson::Array(vec![]) };
        let mut b = bytes(&odd);
        assert!(split(&b).is_some());
        b.truncate(3);
        assert!(split(&b).is_none());
        assert!(join(b"\xff\xff").is_none());
    }
}
