//! Summary statistics over every stored value, in memory that does not grow
//! with the number of values, and that can be merged and subtracted exactly.
//!
//! Stored values are rounded to the model's precision, so each is an integer
//! number of `10^-precision` units. The statistics are nothing but a table
//! of how many times each such integer occurs: the exact median, the min and
//! max come straight from it, and the mean and standard deviation are
//! computed from it (the sum exactly, in integers). A value too large for
//! its number of units to be an exact integer key (|x|·10^precision from
//! 2^50, e.g. 1e20 at precision 2, or anything at precision 15 above 30) is
//! counted in a second table by the value itself, so that every value of
//! any magnitude is counted as what it is; the mean and standard deviation
//! are then computed on the values scaled by a power of two, which cannot
//! overflow (and gives the same bits as unscaled arithmetic wherever that
//! does not overflow). The table's size is the
//! number of distinct values (a few thousand for real fluxes), not the number
//! of values (hundreds of millions for a year of a global grid). Because a
//! table is a multiset, adding two is exact and so is taking a document's
//! values out again: an append merges the new file into the stored table and
//! subtracts the documents it replaces, without reading anything else.
//!
//! The table is bounded: past [`TABLE_LIMIT`] distinct values (values of
//! order 1 stored with 10 decimals are nearly all distinct) it gives way to
//! [`Approx`], whose median comes from a quantile sketch within
//! [`MEDIAN_RELATIVE_ERROR`] and whose count, min, max, mean and standard
//! deviation stay exact. The metadata says so (`median_relative_error`);
//! such statistics merge but cannot be subtracted (an append that replaces
//! documents then reads the dataset's documents once).

use std::collections::{BTreeMap, HashMap};

use bson::{doc, spec::BinarySubtype, Binary, Bson, Document};

use super::approx::Approx;
pub use super::approx::MEDIAN_RELATIVE_ERROR;

/// The most distinct values counted exactly: 1 MiB of stored table (16
/// bytes a value), a few MiB of memory. Real fluxes at their precision have
/// a few thousand.
pub const TABLE_LIMIT: usize = 1 << 16;

/// The value counts outside the dense array, hashed with foldhash's fast
/// hasher instead of SipHash, which took a third of the time of converting
/// a step. The keys are not chosen by an adversary.
type Counts = HashMap<i64, u64, foldhash::fast::FixedState>;

/// Keys within this distance of the first one are counted in a dense array
/// by [`Stats::add_keys`]; others go to the hash table.
const DENSE_SPAN: i64 = 1 << 16;

/// Numbers of units from this magnitude on are not keys: `x·10^d` rounds
/// back to the exact integer of units, and `k / 10^d` to the value, only
/// well below 2^52.
const KEY_LIMIT: f64 = (1u64 << 50) as f64;

/// A value as an integer of the same order (`f64::total_cmp`'s): the key of
/// the table of large values, and back.
fn ordered(x: f64) -> i64 {
    let b = x.to_bits() as i64;
    if b < 0 {
        b ^ i64::MAX
    } else {
        b
    }
}

fn from_ordered(k: i64) -> f64 {
    f64::from_bits((if k < 0 { k ^ i64::MAX } else { k }) as u64)
}

/// 2^e, exactly, for e from -1074 to 1023.
fn pow2(e: i32) -> f64 {
    if e >= -1022 {
        f64::from_bits(((e + 1023) as u64) << 52)
    } else {
        f64::from_bits(1u64 << (e + 1074))
    }
}

/// The binary exponent of a finite `m > 0` (of 2^-1022 for subnormals).
fn exponent(m: f64) -> i32 {
    (((m.to_bits() >> 52) & 0x7ff) as i32 - 1023).max(-1022)
}

/// The mean of two values, also where their sum overflows.
fn midpoint(a: f64, b: f64) -> f64 {
    let s = a + b;
    if s.is_finite() {
        s / 2.0
    } else {
        a / 2.0 + b / 2.0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    decimals: u32,
    scale: f64,
    n: u64,
    /// Values by their number of `10^-decimals` units.
    counts: Counts,
    /// Values too large for [`Stats::key`], by [`ordered`] value.
    large: BTreeMap<i64, u64>,
    /// Past [`TABLE_LIMIT`] distinct values, every value is here instead of
    /// the two tables (then empty).
    approx: Option<Box<Approx>>,
}

/// Whether `keys` hold more than `limit` distinct keys, where that is
/// quickly shown: each key sets a bit chosen by its hash in a bitmap of
/// 2^20 bits, and more than `limit` bits set is a proof (equal keys set
/// the same bit). `false` means not shown: not more, or given up on once
/// most keys repeat (values of a few thousand distinct amounts, whose
/// table is far below the limit), which costs a few thousand keys' look.
fn more_distinct_than(keys: &[i64], limit: usize) -> bool {
    const BITS: u32 = 20;
    thread_local!(static MAP: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) });
    MAP.with_borrow_mut(|map| {
        map.clear();
        map.resize(1 << (BITS - 6), 0);
        let mut set = 0usize;
        for (seen, &k) in keys.iter().enumerate() {
            let h = (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - BITS);
            let (word, bit) = ((h >> 6) as usize, 1u64 << (h & 63));
            if map[word] & bit == 0 {
                map[word] |= bit;
                set += 1;
                if set > limit {
                    return true;
                }
            } else if seen >= 8192 && set < seen / 2 {
                return false;
            }
        }
        false
    })
}

impl Stats {
    /// Statistics of values rounded to `decimals` places.
    pub fn new(decimals: u32) -> Self {
        Self {
            decimals,
            scale: 10f64.powi(decimals as i32),
            n: 0,
            counts: Counts::default(),
            large: BTreeMap::new(),
            approx: None,
        }
    }

    /// Statistics that count in the sketch from the start: for values that
    /// join others already past the table's limit (a later step of a load
    /// whose earlier steps passed it), whose merged statistics are a
    /// sketch whichever way these are counted.
    pub fn approximate(decimals: u32) -> Self {
        Self {
            approx: Some(Box::new(Approx::new())),
            ..Self::new(decimals)
        }
    }

    /// Whether the median is approximate (the table gave way to a sketch).
    pub fn is_approximate(&self) -> bool {
        self.approx.is_some()
    }

    /// Past [`TABLE_LIMIT`] distinct values, count them in a sketch.
    fn bound(&mut self) {
        if self.approx.is_none() && self.counts.len() + self.large.len() > TABLE_LIMIT {
            self.count_in_sketch();
        }
    }

    /// Count the values in a sketch from now on, those counted so far
    /// with them.
    fn count_in_sketch(&mut self) {
        if self.approx.is_some() {
            return;
        }
        let mut a = Box::new(Approx::new());
        for (v, c) in self.values() {
            a.add(v, c);
        }
        self.counts = Counts::default();
        self.large = BTreeMap::new();
        self.approx = Some(a);
    }

    /// The key of a stored value: its number of `10^-decimals` units;
    /// `None` for a value too large for that to be exact (see
    /// [`Stats::add`], which counts it by itself).
    #[inline]
    pub fn key(&self, x: f64) -> Option<i64> {
        let y = x * self.scale;
        (y.abs() < KEY_LIMIT).then(|| y.round() as i64)
    }

    /// [`Stats::key`] of the value of `k` units, as
    /// [`crate::model::units_of`] gave it at these statistics' decimals,
    /// without computing it again: `k` itself while `|k|` is well below the
    /// key limit (where `v · 10^d` rounds back to `k`, `v` being `k / 10^d`
    /// correctly rounded); past it the value is computed, which is rare.
    #[inline]
    pub fn key_of_units(&self, k: i64) -> Option<i64> {
        if Self::units_are_keys(k, k) {
            Some(k)
        } else {
            self.key(k as f64 / self.scale)
        }
    }

    /// Whether every integer of units from `lo` to `hi` is its own key
    /// ([`Stats::key_of_units`] gives it back as it is).
    #[inline]
    pub fn units_are_keys(lo: i64, hi: i64) -> bool {
        lo.unsigned_abs().max(hi.unsigned_abs()) < (1u64 << 50) - 1
    }

    /// Add a stored value; null (non-finite) values are left out.
    pub fn add(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        self.n += 1;
        if let Some(a) = &mut self.approx {
            return a.add(x, 1);
        }
        match self.key(x) {
            Some(k) => *self.counts.entry(k).or_default() += 1,
            None => *self.large.entry(ordered(x)).or_default() += 1,
        }
        if self.counts.len() + self.large.len() > TABLE_LIMIT {
            self.bound();
        }
    }

    /// Add the values whose keys ([`Stats::key`]) are `keys`: counted in an
    /// array while they stay near the first, which costs a fraction of a
    /// hash-table update per value.
    pub fn add_keys(&mut self, keys: &[i64]) {
        if keys.is_empty() || self.approx.is_some() {
            return self.add_keys_within(keys, 0, 0);
        }
        let (lo, hi) = keys
            .iter()
            .fold((i64::MAX, i64::MIN), |(lo, hi), &k| (lo.min(k), hi.max(k)));
        self.add_keys_within(keys, lo, hi)
    }

    /// [`Stats::add_keys`] of keys whose least and greatest are `lo` and
    /// `hi`, known already (read only while the exact table counts).
    pub fn add_keys_within(&mut self, keys: &[i64], lo: i64, hi: i64) {
        let Some(&first) = keys.first() else {
            return;
        };
        if let Some(a) = &mut self.approx {
            a.add_units(keys, self.scale);
            self.n += keys.len() as u64;
            return;
        }
        debug_assert_eq!(
            (lo, hi),
            keys.iter()
                .fold((i64::MAX, i64::MIN), |(l, h), &k| (l.min(k), h.max(k)))
        );
        // The array spans the keys when they fit it (keys are below 2^50 in
        // magnitude: the difference cannot overflow), else the keys near
        // the first one.
        if hi - lo >= DENSE_SPAN
            && self.counts.len() + self.large.len() + keys.len() > TABLE_LIMIT
            && more_distinct_than(keys, TABLE_LIMIT)
        {
            // These keys alone pass the limit (values stored with many
            // decimals): the table would give way to the sketch on the
            // way, so they go straight to it, and the table of those
            // counted so far with them. The same values are counted.
            self.count_in_sketch();
            let scale = self.scale;
            let a = self.approx.as_mut().expect("a sketch past the limit");
            a.add_units(keys, scale);
            self.n += keys.len() as u64;
            return;
        }
        let (base, span) = if hi - lo < DENSE_SPAN {
            (lo, hi - lo + 1)
        } else {
            (first.saturating_sub(DENSE_SPAN / 2), DENSE_SPAN)
        };
        let mut dense = vec![0u64; span as usize];
        for (at, &k) in keys.iter().enumerate() {
            let i = k.wrapping_sub(base);
            if (0..span).contains(&i) {
                dense[i as usize] += 1;
                continue;
            }
            *self.counts.entry(k).or_default() += 1;
            if self.counts.len() + self.large.len() > TABLE_LIMIT {
                // Past the limit (values stored with many decimals, nearly
                // all distinct): the table gives way to the sketch now, and
                // the rest goes straight to it, instead of first growing a
                // table of every value only to turn it into a sketch. The
                // same values are counted, so the statistics are the same.
                self.bound();
                let scale = self.scale;
                let a = self.approx.as_mut().expect("a sketch past the limit");
                for (i, c) in dense.into_iter().enumerate() {
                    a.add((base + i as i64) as f64 / scale, c);
                }
                a.add_units(&keys[at + 1..], scale);
                self.n += keys.len() as u64;
                return;
            }
        }
        for (i, c) in dense.into_iter().enumerate() {
            if c > 0 {
                *self.counts.entry(base + i as i64).or_default() += c;
            }
        }
        self.n += keys.len() as u64;
        self.bound();
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
        if o.approx.is_some() && self.approx.is_none() {
            // Counted into the sketch, whose merge is cheaper the other way.
            let mut o = o;
            let mine = std::mem::replace(self, Stats::new(self.decimals));
            o.merge(mine);
            *self = o;
            return;
        }
        self.n += o.n;
        if let Some(a) = &mut self.approx {
            match o.approx {
                Some(theirs) => a.merge(&theirs),
                None => o.values().for_each(|(v, c)| a.add(v, c)),
            }
            return;
        }
        for (k, c) in o.counts {
            *self.counts.entry(k).or_default() += c;
        }
        for (k, c) in o.large {
            *self.large.entry(k).or_default() += c;
        }
        self.bound();
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
        // A sketch's minimum, maximum and bins cannot be taken out again.
        if self.approx.is_some() || o.approx.is_some() {
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
        for (k, c) in &o.large {
            match self.large.get_mut(k) {
                Some(mine) if *mine > *c => *mine -= c,
                Some(mine) if *mine == *c => {
                    self.large.remove(k);
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
        if let Some(a) = &self.approx {
            return a.mean();
        }
        if self.n == 0 {
            return None;
        }
        if self.large.is_empty() {
            if let Some(s) = self.key_sum() {
                return Some((s as f64 / self.n as f64) / self.scale);
            }
        }
        let (e, f) = self.scaling()?;
        Some(self.scaled_mean(f) * pow2(e))
    }

    /// Every counted value and its count, in no order.
    fn values(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let small = self.counts.iter().map(|(&k, &c)| (self.value(k), c));
        let large = self.large.iter().map(|(&k, &c)| (from_ordered(k), c));
        small.chain(large)
    }

    /// `(e, 2^-e)` for `e` the binary exponent of the largest magnitude:
    /// values times `2^-e` are below 2 in magnitude, so neither their sum
    /// nor their squares can overflow.
    fn scaling(&self) -> Option<(i32, f64)> {
        let m = self.values().map(|(v, _)| v.abs()).fold(0.0, f64::max);
        let e = if m > 0.0 { exponent(m) } else { 0 };
        Some((e, pow2(-e)))
    }

    /// The mean of the values times `f`, summed with compensation, in
    /// ascending order (so that the same values give the same sum, however
    /// the table came to hold them).
    fn scaled_mean(&self, f: f64) -> f64 {
        let (mut sum, mut carry) = (0.0f64, 0.0f64);
        for (v, c) in self.sorted() {
            let x = v * f * c as f64;
            let t = sum + x;
            carry += if sum.abs() >= x.abs() {
                (sum - t) + x
            } else {
                (x - t) + sum
            };
            sum = t;
        }
        (sum + carry) / self.n as f64
    }

    /// Sample standard deviation (n − 1 in the denominator, as pandas),
    /// in two passes over the table: the mean, then the squared distances,
    /// summed in ascending order of the values (a table's order depends on
    /// how it was filled: a dataset appended to and one loaded at once must
    /// give the same); both on the values scaled by a power of two (see
    /// [`Stats::scaling`]).
    pub fn std(&self) -> Option<f64> {
        if let Some(a) = &self.approx {
            return a.std();
        }
        if self.n < 2 {
            return None;
        }
        let (e, f) = self.scaling()?;
        let mean = self.mean()? * f;
        let m2: f64 = self
            .sorted()
            .into_iter()
            .map(|(v, c)| {
                let d = v * f - mean;
                d * d * c as f64
            })
            .sum();
        Some((m2 / (self.n - 1) as f64).sqrt() * pow2(e))
    }

    /// Every value and its count, ascending.
    fn sorted(&self) -> Vec<(f64, u64)> {
        let mut values: Vec<(f64, u64)> = self.values().collect();
        values.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        values
    }

    pub fn min(&self) -> Option<f64> {
        if let Some(a) = &self.approx {
            return a.min();
        }
        let small = self.counts.keys().min().map(|&k| self.value(k));
        let large = self.large.keys().next().map(|&k| from_ordered(k));
        small.into_iter().chain(large).reduce(f64::min)
    }

    pub fn max(&self) -> Option<f64> {
        if let Some(a) = &self.approx {
            return a.max();
        }
        let small = self.counts.keys().max().map(|&k| self.value(k));
        let large = self.large.keys().next_back().map(|&k| from_ordered(k));
        small.into_iter().chain(large).reduce(f64::max)
    }

    /// The middle value, or the mean of the two middle values (as numpy,
    /// without its overflow where their sum is over the largest double).
    ///
    /// Past [`TABLE_LIMIT`] distinct values: the value at the middle rank
    /// (the lower of the two middle ones), within [`MEDIAN_RELATIVE_ERROR`].
    pub fn median(&self) -> Option<f64> {
        if let Some(a) = &self.approx {
            return a.median();
        }
        if self.n == 0 {
            return None;
        }
        let values = self.sorted();
        let nth = |i: u64| {
            let mut seen = 0;
            for (v, c) in &values {
                seen += c;
                if i < seen {
                    return *v;
                }
            }
            unreachable!("index below the count")
        };
        let half = self.n / 2;
        Some(if self.n % 2 == 1 {
            nth(half)
        } else {
            midpoint(nth(half - 1), nth(half))
        })
    }

    /// `{mean, min, max, std, median}`; null where there is no value. An
    /// approximate median adds `median_relative_error`, its bound.
    pub fn document(&self) -> Document {
        let b = |v: Option<f64>| v.map(Bson::Double).unwrap_or(Bson::Null);
        let mut d = doc! {
            "mean": b(self.mean()),
            "min": b(self.min()),
            "max": b(self.max()),
            "std": b(self.std()),
            "median": b(self.median()),
        };
        if self.is_approximate() {
            d.insert("median_relative_error", MEDIAN_RELATIVE_ERROR);
        }
        d
    }

    /// The table as stored: `{decimals, n, counts, large}`, `counts` the
    /// sorted (key, count) pairs as little-endian i64/u64, 16 bytes each,
    /// `large` (only when there are large values) the same of the values'
    /// bits. Past the table's limit: `{decimals, n, approx}` (see
    /// [`Approx::to_stored`]), about 1 MiB at most.
    pub fn to_stored(&self) -> Document {
        if let Some(a) = &self.approx {
            return doc! {
                "decimals": self.decimals as i32,
                "n": self.n as i64,
                "approx": a.to_stored(),
            };
        }
        let pairs = |it: &mut dyn Iterator<Item = (i64, u64)>| {
            let mut bytes = Vec::new();
            for (k, c) in it {
                bytes.extend_from_slice(&k.to_le_bytes());
                bytes.extend_from_slice(&c.to_le_bytes());
            }
            Binary {
                subtype: BinarySubtype::Generic,
                bytes,
            }
        };
        let mut keys: Vec<(i64, u64)> = self.counts.iter().map(|(k, c)| (*k, *c)).collect();
        keys.sort_unstable();
        let mut d = doc! {
            "decimals": self.decimals as i32,
            "n": self.n as i64,
            "counts": pairs(&mut keys.into_iter()),
        };
        if !self.large.is_empty() {
            let mut bits = self
                .large
                .iter()
                .map(|(k, c)| (from_ordered(*k).to_bits() as i64, *c));
            d.insert("large", pairs(&mut bits));
        }
        d
    }

    /// The table [`Stats::to_stored`] wrote; `None` when it is not one.
    pub fn from_stored(d: &Document) -> Option<Stats> {
        let decimals = u32::try_from(d.get_i32("decimals").ok()?).ok()?;
        let n = u64::try_from(d.get_i64("n").ok()?).ok()?;
        if let Ok(a) = d.get_document("approx") {
            let mut s = Stats::new(decimals);
            s.approx = Some(Box::new(Approx::from_stored(a, n)?));
            s.n = n;
            return Some(s);
        }
        let bytes = d.get_binary_generic("counts").ok()?;
        if bytes.len() % 16 != 0 {
            return None;
        }
        let mut s = Stats::new(decimals);
        for pair in bytes.chunks_exact(16) {
            let k = i64::from_le_bytes(pair[..8].try_into().ok()?);
            let c = u64::from_le_bytes(pair[8..].try_into().ok()?);
            // A key from KEY_LIMIT on is never written (such a value is
            // counted in `large`): a damaged table, not read.
            if c == 0 || (k as f64).abs() >= KEY_LIMIT || s.counts.insert(k, c).is_some() {
                return None;
            }
            s.n = s.n.checked_add(c)?;
        }
        if let Ok(large) = d.get_binary_generic("large") {
            if large.len() % 16 != 0 {
                return None;
            }
            for pair in large.chunks_exact(16) {
                let x = f64::from_bits(u64::from_le_bytes(pair[..8].try_into().ok()?));
                let c = u64::from_le_bytes(pair[8..].try_into().ok()?);
                if c == 0
                    || !x.is_finite()
                    || s.key(x).is_some()
                    || s.large.insert(ordered(x), c).is_some()
                {
                    return None;
                }
                s.n = s.n.checked_add(c)?;
            }
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

    /// The same values give the same statistics to the last bit, however the
    /// table came to hold them: filled at once, in another order, in parts
    /// merged, or with values added and taken out again (as an append that
    /// replaces documents does).
    #[test]
    fn the_same_values_give_the_same_bits_whatever_the_history() {
        let values: Vec<f64> = (0..5000)
            .map(|i| ((i * 7919 % 10007) as f64 * 0.37).sin() * 100.0)
            .map(|x| (x * 100.0).round() / 100.0)
            .collect();
        let bits = |s: &Stats| {
            (
                s.mean().map(f64::to_bits),
                s.std().map(f64::to_bits),
                s.median().map(f64::to_bits),
            )
        };
        let whole = of(&values);
        let reversed: Vec<f64> = values.iter().rev().copied().collect();
        assert_eq!(bits(&of(&reversed)), bits(&whole));
        let mut parts = of(&values[2500..]);
        parts.merge(of(&values[..2500]));
        assert_eq!(bits(&parts), bits(&whole));
        let extra: Vec<f64> = (0..3000).map(|i| i as f64 * 0.25 - 300.0).collect();
        let mut replaced = of(&extra);
        replaced.merge(of(&values));
        assert!(replaced.subtract(&of(&extra)));
        assert_eq!(bits(&replaced), bits(&whole));
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
        let keys: Vec<i64> = v.iter().map(|&x| s.key(x).unwrap()).collect();
        s.add_keys(&keys);
        assert_eq!(s, of(&v));
    }

    /// Keys past the table's limit go to the sketch as soon as the limit
    /// is passed: the same statistics as counting the values one by one,
    /// for keys in the dense array and outside it alike.
    #[test]
    fn counting_keys_past_the_limit_equals_counting_values() {
        let v: Vec<f64> = (0..3 * TABLE_LIMIT as i64)
            .map(|i| {
                if i % 3 == 0 {
                    (i % 500) as f64 * 1e-6
                } else {
                    ((i * 7919 % 1_000_003) as f64 - 5e5) * 1e-3
                }
            })
            .map(|x| (x * 1e6).round() / 1e6)
            .collect();
        let mut by_keys = Stats::new(6);
        let keys: Vec<i64> = v.iter().map(|&x| by_keys.key(x).unwrap()).collect();
        // So many distinct keys that they go straight to the sketch.
        assert!(more_distinct_than(&keys, TABLE_LIMIT));
        by_keys.add_keys(&keys);
        assert!(by_keys.is_approximate());
        let mut one_by_one = Stats::new(6);
        v.iter().for_each(|&x| one_by_one.add(x));
        assert!(one_by_one.is_approximate());
        // The same statistics, bit for bit (the sketch's own running sum,
        // which none of them reads, depends on the order values came in).
        assert_eq!(by_keys.count(), one_by_one.count());
        assert_eq!(by_keys.document(), one_by_one.document());
        // A part counted in a sketch from the start, merged into a part
        // past the limit, gives the same statistics too.
        let cut = 2 * TABLE_LIMIT;
        let mut first = Stats::new(6);
        first.add_keys(&keys[..cut]);
        let mut rest = Stats::approximate(6);
        rest.add_keys(&keys[cut..]);
        assert!(first.is_approximate() && rest.is_approximate());
        first.merge(rest);
        assert_eq!(first.count(), one_by_one.count());
        assert_eq!(first.document(), one_by_one.document());
    }

    /// Keys spread wider than the dense array, at the limit and one past
    /// it: exactly `TABLE_LIMIT` distinct keys (each twice) stay in the
    /// exact table, one more gives way to the sketch; both equal counting
    /// the values one by one.
    #[test]
    fn keys_spread_wide_at_the_limit_and_past_it() {
        for distinct in [TABLE_LIMIT, TABLE_LIMIT + 1] {
            let v: Vec<f64> = (0..2 * distinct as i64)
                .map(|i| ((i % distinct as i64) * 1009 - 30_000_000) as f64 / 1e3)
                .collect();
            let mut by_keys = Stats::new(3);
            let keys: Vec<i64> = v.iter().map(|&x| by_keys.key(x).unwrap()).collect();
            by_keys.add_keys(&keys);
            let mut one_by_one = Stats::new(3);
            v.iter().for_each(|&x| one_by_one.add(x));
            assert_eq!(by_keys.is_approximate(), distinct > TABLE_LIMIT);
            assert_eq!(one_by_one.is_approximate(), distinct > TABLE_LIMIT);
            assert_eq!(by_keys.count(), one_by_one.count());
            assert_eq!(by_keys.document(), one_by_one.document());
        }
        // The proof of more distinct keys than a limit is a lower bound:
        // never shown for as many or fewer.
        let keys: Vec<i64> = (0..TABLE_LIMIT as i64).map(|k| k * 7_919).collect();
        assert!(!more_distinct_than(&keys, TABLE_LIMIT));
        assert!(more_distinct_than(&keys, TABLE_LIMIT / 2));
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

    /// Past the table's limit: a sketch, whatever the way the values came
    /// in, with the same bits; not subtracted; stored within ~1 MiB.
    #[test]
    fn past_the_limit_the_table_gives_way_to_a_sketch() {
        let v: Vec<f64> = (0..3 * TABLE_LIMIT as i64)
            .map(|i| ((i * 7919 % 1_000_003) as f64 * 1e-6 - 0.3) * 2.0)
            .map(|x| (x * 1e6).round() / 1e6)
            .collect();
        let mut whole = Stats::new(6);
        v.iter().for_each(|&x| whole.add(x));
        assert!(whole.is_approximate());
        assert!(whole.counts.is_empty() && whole.large.is_empty());
        let small = of(&[1.0, 2.0]);
        assert!(!small.is_approximate());
        // In parts, exact and approximate, merged either way round.
        let mut a = Stats::new(6);
        v[..100].iter().for_each(|&x| a.add(x));
        let mut b = Stats::new(6);
        v[100..].iter().for_each(|&x| b.add(x));
        let mut ab = a.clone();
        ab.merge(b.clone());
        let mut ba = b.clone();
        ba.merge(a.clone());
        let bits = |s: &Stats| {
            [s.mean(), s.std(), s.median(), s.min(), s.max()].map(|x| x.unwrap().to_bits())
        };
        assert_eq!(bits(&ab), bits(&whole));
        assert_eq!(bits(&ba), bits(&whole));
        // Mean and extremes exact; the median within its bound.
        let mut sorted = v.clone();
        sorted.sort_by(f64::total_cmp);
        assert_eq!(whole.min(), Some(sorted[0]));
        assert_eq!(whole.max(), Some(*sorted.last().unwrap()));
        let lower_middle = sorted[(sorted.len() - 1) / 2];
        let m = whole.median().unwrap();
        assert!((m - lower_middle).abs() <= MEDIAN_RELATIVE_ERROR * lower_middle.abs());
        assert_eq!(
            whole.document().get_f64("median_relative_error"),
            Ok(MEDIAN_RELATIVE_ERROR)
        );
        assert!(small.document().get("median_relative_error").is_none());
        // A sketch cannot give values back: the caller reads them again.
        assert!(!ab.subtract(&b));
        let stored = whole.to_stored();
        let size = bson::to_vec(&stored).unwrap().len();
        assert!(size < 1 << 20, "{size} bytes");
        assert_eq!(bits(&Stats::from_stored(&stored).unwrap()), bits(&whole));
    }

    #[test]
    fn empty_statistics_are_null() {
        let d = Stats::new(2).document();
        assert_eq!(d.get("mean"), Some(&Bson::Null));
        assert_eq!(d.get("median"), Some(&Bson::Null));
    }

    #[test]
    fn values_of_any_magnitude_are_counted_as_themselves() {
        // 1e20 at 2 decimals, or 100 at 15, has more units than a key holds.
        let mut s = Stats::new(2);
        for x in [1e20, 3e20, 2e20, 1e20] {
            s.add(x);
        }
        assert_eq!(s.median(), Some(1.5e20));
        assert_eq!((s.min(), s.max()), (Some(1e20), Some(3e20)));
        assert_eq!(s.mean(), Some(1.75e20));
        let mut p = Stats::new(15);
        for x in [100.25, 100.5, 99.0] {
            p.add(x);
        }
        assert_eq!(p.median(), Some(100.25));
        // Near the largest double: no overflow in the sum, squares or median.
        let mut big = Stats::new(2);
        for x in [1e308, 1.5e308, 1.2e308, 1.7e308] {
            big.add(x);
        }
        // 1.2e308 + 1.5e308 is over the largest double; their mean is not.
        assert!((big.median().unwrap() / 1.35e308 - 1.0).abs() < 1e-15);
        assert!((big.mean().unwrap() / 1.35e308 - 1.0).abs() < 1e-15);
        assert!(big.std().unwrap().is_finite() && big.mean().unwrap().is_finite());
        // A mix of small and large values keeps both in order.
        let mut mix = Stats::new(2);
        for x in [-1e300, 0.5, 1e300] {
            mix.add(x);
        }
        assert_eq!(mix.median(), Some(0.5));
        assert_eq!((mix.min(), mix.max()), (Some(-1e300), Some(1e300)));
        // Stored, merged and subtracted like any other.
        let back = Stats::from_stored(&mix.to_stored()).unwrap();
        assert_eq!(back, mix);
        let mut m = mix.clone();
        m.merge(big.clone());
        assert!(m.subtract(&big));
        assert_eq!(m, mix);
    }

    #[test]
    fn a_stored_table_with_a_key_no_table_holds_is_not_read() {
        let mut d = of(&[1.0]).to_stored();
        let mut bytes = i64::MAX.to_le_bytes().to_vec();
        bytes.extend_from_slice(&1u64.to_le_bytes());
        d.insert(
            "counts",
            Binary {
                subtype: BinarySubtype::Generic,
                bytes,
            },
        );
        assert!(Stats::from_stored(&d).is_none());
    }

    #[test]
    fn scaling_by_a_power_of_two_changes_no_bit_of_ordinary_statistics() {
        let v = [1.25, -3.5, 2.0, 0.08, 7.75, 2.0, 1e-2, 350.5];
        let s = of(&v);
        let mean = s.mean().unwrap();
        let m2: f64 = v.iter().map(|x| (x - mean) * (x - mean)).sum();
        assert_eq!(s.std().unwrap(), (m2 / 7.0).sqrt());
    }
}
