//! Byte keys that sort like MongoDB sorts `_id` values.
//!
//! The embedded store keeps each document under a key derived from its `_id`
//! so that `ORDER BY key` is MongoDB's `_id` order: numbers before strings
//! before object ids before dates, and within a type by value.

use bson::Bson;

const NUMBER: u8 = 0x10;
const STRING: u8 = 0x20;
const OBJECT_ID: u8 = 0x70;
const DATE: u8 = 0x90;
const OTHER: u8 = 0xf0;

/// The sort key of an `_id`.
pub fn sort_key(id: &Bson) -> Vec<u8> {
    let mut k = Vec::with_capacity(16);
    match id {
        Bson::Double(x) => number(&mut k, *x),
        Bson::Int32(x) => number(&mut k, f64::from(*x)),
        Bson::Int64(x) => number(&mut k, *x as f64),
        Bson::String(s) => {
            k.push(STRING);
            k.extend_from_slice(s.as_bytes());
        }
        Bson::ObjectId(o) => {
            k.push(OBJECT_ID);
            k.extend_from_slice(&o.bytes());
        }
        Bson::DateTime(d) => {
            k.push(DATE);
            // Flipping the sign bit makes two's complement sort as unsigned.
            k.extend_from_slice(&((d.timestamp_millis() as u64) ^ (1 << 63)).to_be_bytes());
        }
        other => {
            k.push(OTHER);
            k.extend_from_slice(other.to_string().as_bytes());
        }
    }
    k
}

fn number(k: &mut Vec<u8>, x: f64) {
    k.push(NUMBER);
    let bits = x.to_bits();
    // IEEE 754 order as unsigned bytes: flip all bits of negatives, the sign of positives.
    let ordered = if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    };
    k.extend_from_slice(&ordered.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::DateTime;

    #[test]
    fn keys_sort_like_mongodb() {
        let ids = [
            Bson::Double(-2.5),
            Bson::Int32(-1),
            Bson::Int64(3),
            Bson::Double(10.0),
            Bson::String("a".into()),
            Bson::String("b".into()),
            Bson::DateTime(DateTime::from_millis(-86_400_000)),
            Bson::DateTime(DateTime::from_millis(0)),
            Bson::DateTime(DateTime::from_millis(1_088_553_600_000)),
        ];
        let keys: Vec<_> = ids.iter().map(sort_key).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }
}
