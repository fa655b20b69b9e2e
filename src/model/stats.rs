//! Summary statistics over every stored value, in memory that does not grow
//! with the number of values, and that can be merged and subtracted exactly.
//!
//! Stored values are rounded to the model's precision, so each is an integer
//! number of `10^-precision` units. The statistics are nothing but a table
//! of how many times each such integer occurs: the exact median, the min and
//! max come straight from it, and the mean and standard deviation are
//! computed from it (the sum exactly, in integers). The table's size is the
//! number of distinct values (a few thousand for real fluxes), not the number
//! of values (hundreds of millions for a year of a global grid). Because a
//! table is a multiset, adding two is exact and so is taking a document's
//! values out again: an append merges the new file into the stored table and
//! subtracts the documents it replaces, without reading anything else.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use bson::{doc, spec::BinarySubtype, Binary, Bson, Document};

/// A hasher for the integer keys of the value counts: splitmix64's finaliser
/// instead of SipHash, which took a third of the time of converting a step.
/// The keys are not chosen by an adversary.
#[derive(Default)]
struct IntHasher(u64);

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_i64(&mut self, n: i64) {
        let mut x = n as u64;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        self.0 = x ^ (x >> 31);
    }
}

type Counts = HashMap<i64, u64, BuildHasherDefault<IntHasher>>;

/// Keys within this distance of the first one are counted in a dense array
/// by [`Stats::add_keys`]; others go to the hash table.
const DENSE_SPAN: i64 = 1 << 16;

#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    decimals: u32,
    scale: f64,
    n: u64,
    counts: Counts,
}

impl Stats {
    /// Statistics of values rounded to `decimals` places.
    pub fn new(decimals: u32) -> Self {
        Self {
            decimals,
            scale: 10f64.powi(decimals as i32),
            n: 0,
            counts: Counts::default(),
        }
    }

    /// The key of a stored value: its number of `10^-decimals` units.
    #[inline]
    pub fn key(&self, x: f64) -> i64 {
        (x * self.scale).round() as i64
    }

    /// Add a stored value; null (non-finite) values are left out.
    pub fn add(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        self.n += 1;
        *self.counts.entry(self.key(x)).or_default() += 1;
    }

    /// Add the values whose keys ([`Stats::key`]) are `keys`: counted in an
    /// array while they stay near the first, which costs a fraction of a
    /// hash-table update per value.
    pub fn add_keys(&mut self, keys: &[i64]) {
        let Some(&first) = keys.first() else {
            return;
        };
        let base = first - DENSE_SPAN / 2;
        let mut dense = vec![0u64; DENSE_SPAN as usize];
        for &k in keys {
            let i = k.wrapping_sub(base);
            if (0..DENSE_SPAN).contains(&i) {
                dense[i as usize] += 1;
            } else {
                *self.counts.entry(k).or_default() += 1;
            }
        }
        for (i, c) in dense.into_iter().enumerate() {
            if c > 0 {
                *self.counts.entry(base + i as i64).or_default() += c;
            }
        }
        self.n += keys.len() as u64;
    }

    /// Add every number of a BSON array (nulls skipped).
    pub fn add_bson(&mut self, values: &[Bson]) {
        for v in values {
            if let Some(x) = v.as_f64() {
                self.add(x);
            }
        }
    }

    pub fn merge(&mut self, o: Stats) {
        if o.n == 0 {
            return;
        }
        if self.n == 0 && self.decimals == o.decimals {
            *self = o;
            return;
        }
        self.n += o.n;
        for (k, c) in o.counts {
            *self.counts.entry(k).or_default() += c;
        }
    }

    /// Take the values of `o` out again (those of a document being
    /// replaced). `false`, leaving `self` unusable, when `o` holds a value
    /// `self` does not: then `self` was not the statistics `o` is part of.
    #[must_use]
    pub fn subtract(&mut self, o: &Stats) -> bool {
        if o.n == 0 {
            return true;
        }
        if o.decimals != self.decimals || o.n > self.n {
            return false;
        }
        self.n -= o.n;
        for (k, c) in &o.counts {
            match self.counts.get_mut(k) {
                Some(mine) if *mine > *c => *mine -= c,
                Some(mine) if *mine == *c => {
                    self.counts.remove(k);
                }
                _ => return false,
            }
        }
        true
    }

    /// The decimals of the values counted.
    pub fn decimals(&self) -> u32 {
        self.decimals
    }

    pub fn count(&self) -> u64 {
        self.n
    }

    fn value(&self, k: i64) -> f64 {
        k as f64 / self.scale
    }

    /// The sum of the keys, exactly when it fits 128 bits.
    fn key_sum(&self) -> Option<i128> {
        self.counts.iter().try_fold(0i128, |s, (&k, &c)| {
            i128::from(k)
                .checked_mul(i128::from(c))
                .and_then(|p| s.checked_add(p))
        })
    }

    pub fn mean(&self) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        Some(match self.key_sum() {
            Some(s) => (s as f64 / self.n as f64) / self.scale,
            None => {
                self.counts
                    .iter()
                    .map(|(&k, &c)| self.value(k) * c as f64)
                    .sum::<f64>()
                    / self.n as f64
            }
        })
    }

    /// Sample standard deviation (n − 1 in the denominator, as pandas),
    /// in two passes over the table: the mean, then the squared distances.
    pub fn std(&self) -> Option<f64> {
        if self.n < 2 {
            return None;
        }
        let mean = self.mean()?;
        let m2: f64 = self
            .counts
            .iter()
            .map(|(&k, &c)| {
                let d = self.value(k) - mean;
                d * d * c as f64
            })
            .sum();
        Some((m2 / (self.n - 1) as f64).sqrt())
    }

    fn sorted(&self) -> Vec<(i64, u64)> {
        let mut keys: Vec<(i64, u64)> = self.counts.iter().map(|(k, c)| (*k, *c)).collect();
        keys.sort_unstable();
        keys
    }

    pub fn min(&self) -> Option<f64> {
        self.counts.keys().min().map(|&k| self.value(k))
    }

    pub fn max(&self) -> Option<f64> {
        self.counts.keys().max().map(|&k| self.value(k))
    }

    /// The middle value, or the mean of the two middle values (as numpy).
    pub fn median(&self) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        let keys = self.sorted();
        let nth = |i: u64| {
            let mut seen = 0;
            for (k, c) in &keys {
                seen += c;
                if i < seen {
                    return self.value(*k);
                }
            }
            unreachable!("index below the count")
        };
        let half = self.n / 2;
        Some(if self.n % 2 == 1 {
            nth(half)
        } else {
            (nth(half - 1) + nth(half)) / 2.0
        })
    }

    /// `{mean, min, max, std, median}`; null where there is no value.
    pub fn document(&self) -> Document {
        let b = |v: Option<f64>| v.map(Bson::Double).unwrap_or(Bson::Null);
        doc! {
            "mean": b(self.mean()),
            "min": b(self.min()),
            "max": b(self.max()),
            "std": b(self.std()),
            "median": b(self.median()),
        }
    }

    /// The table as stored: `{decimals, n, counts}`, `counts` the sorted
    /// (key, count) pairs as little-endian i64/u64, 16 bytes each.
    pub fn to_stored(&self) -> Document {
        let mut bytes = Vec::with_capacity(self.counts.len() * 16);
        for (k, c) in self.sorted() {
            bytes.extend_from_slice(&k.to_le_bytes());
            bytes.extend_from_slice(&c.to_le_bytes());
        }
        doc! {
            "decimals": self.decimals as i32,
            "n": self.n as i64,
            "counts": Binary { subtype: BinarySubtype::Generic, bytes },
        }
    }

    /// The table [`Stats::to_stored`] wrote; `None` when it is not one.
    pub fn from_stored(d: &Document) -> Option<Stats> {
        let decimals = u32::try_from(d.get_i32("decimals").ok()?).ok()?;
        let n = u64::try_from(d.get_i64("n").ok()?).ok()?;
        let bytes = d.get_binary_generic("counts").ok()?;
        if bytes.len() % 16 != 0 {
            return None;
        }
        let mut s = Stats::new(decimals);
        for pair in bytes.chunks_exact(16) {
            let k = i64::from_le_bytes(pair[..8].try_into().ok()?);
            let c = u64::from_le_bytes(pair[8..].try_into().ok()?);
            if c == 0 || s.counts.insert(k, c).is_some() {
                return None;
            }
            s.n = s.n.checked_add(c)?;
        }
        (s.n == n).then_some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(values: &[f64]) -> Stats {
        let mut s = Stats::new(2);
        values.iter().for_each(|&v| s.add(v));
        s
    }

    #[test]
    fn matches_direct_computation() {
        let v = [1.25, -3.5, 2.0, 0.08, 7.75, 2.0];
        let s = of(&v);
        let mean = v.iter().sum::<f64>() / 6.0;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 5.0;
        assert!((s.mean().unwrap() - mean).abs() < 1e-12);
        assert!((s.std().unwrap() - var.sqrt()).abs() < 1e-12);
        assert_eq!(s.median(), Some(1.625)); // (1.25 + 2.0) / 2
        assert_eq!(of(&[1.0, 2.0, 3.0, 4.0]).median(), Some(2.5));
        assert_eq!(of(&[5.0, -1.0, 3.0]).median(), Some(3.0));
    }

    #[test]
    fn merging_parts_equals_the_whole_and_non_finite_values_are_left_out() {
        let all = of(&[1.0, 2.5, -4.0, 8.25, 0.5, f64::NAN, f64::INFINITY]);
        let mut a = of(&[1.0, 2.5, f64::NAN]);
        a.merge(of(&[-4.0, 8.25, 0.5, f64::NEG_INFINITY]));
        assert_eq!(a.count(), 5);
        assert_eq!(all.count(), 5);
        assert!((a.mean().unwrap() - all.mean().unwrap()).abs() < 1e-12);
        assert!((a.std().unwrap() - all.std().unwrap()).abs() < 1e-12);
        assert_eq!(a.median(), all.median());
        assert_eq!(a.document().get_f64("min").unwrap(), -4.0);
        assert_eq!(a.document().get_f64("max").unwrap(), 8.25);
    }

    #[test]
    fn subtracting_a_part_leaves_the_statistics_of_the_rest() {
        let mut all = of(&[1.0, 2.5, -4.0, 8.25, 0.5, 2.5]);
        assert!(all.subtract(&of(&[8.25, 2.5])));
        let rest = of(&[1.0, 2.5, -4.0, 0.5]);
        assert_eq!(all, rest);
        assert_eq!(
            all.max(),
            Some(2.5),
            "the maximum that was taken out is gone"
        );
        // A value that is not there cannot be taken out.
        assert!(!all.subtract(&of(&[3.0])));
        assert!(!of(&[1.0]).subtract(&of(&[1.0, 1.0])));
    }

    #[test]
    fn counting_keys_in_an_array_equals_counting_values() {
        let v: Vec<f64> = (0..5000)
            .map(|i| ((i * 7919) % 1000) as f64 / 100.0 - 3.0)
            .chain([1e9, -1e9, 0.0])
            .collect();
        let mut s = Stats::new(2);
        let keys: Vec<i64> = v.iter().map(|&x| s.key(x)).collect();
        s.add_keys(&keys);
        assert_eq!(s, of(&v));
    }

    #[test]
    fn the_stored_table_reads_back_as_it_was() {
        let s = of(&[1.25, -3.5, 2.0, 0.08, 7.75, 2.0]);
        let back = Stats::from_stored(&s.to_stored()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.document(), s.document());
        let mut bad = s.to_stored();
        bad.insert("n", 99i64);
        assert!(Stats::from_stored(&bad).is_none());
    }

    #[test]
    fn empty_statistics_are_null() {
        let d = Stats::new(2).document();
        assert_eq!(d.get("mean"), Some(&Bson::Null));
        assert_eq!(d.get("median"), Some(&Bson::Null));
    }
}
