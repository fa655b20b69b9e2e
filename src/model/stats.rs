//! Summary statistics over every stored value, in memory that does not grow
//! with the number of values.
//!
//! Stored values are rounded to the model's precision, so each is an integer
//! number of `10^-precision` units. Counting those integers gives the exact
//! median from a table whose size is the number of distinct values (a few
//! thousand for real fluxes), not the number of values (hundreds of millions
//! for a year of a global grid). Mean and variance use Welford's update and
//! Chan's merge, so partial statistics from parallel workers combine exactly.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use bson::{doc, Bson, Document};

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

#[derive(Debug, Clone)]
pub struct Stats {
    scale: f64,
    n: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
    counts: Counts,
}

impl Stats {
    /// Statistics of values rounded to `decimals` places.
    pub fn new(decimals: u32) -> Self {
        Self {
            scale: 10f64.powi(decimals as i32),
            n: 0,
            mean: 0.0,
            m2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            counts: Counts::default(),
        }
    }

    /// Add a stored value; null (non-finite) values are left out.
    pub fn add(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        *self
            .counts
            .entry((x * self.scale).round() as i64)
            .or_default() += 1;
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
        if self.n == 0 {
            *self = o;
            return;
        }
        let n = self.n + o.n;
        let d = o.mean - self.mean;
        self.mean += d * o.n as f64 / n as f64;
        self.m2 += o.m2 + d * d * (self.n as f64 * o.n as f64) / n as f64;
        self.n = n;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        for (k, c) in o.counts {
            *self.counts.entry(k).or_default() += c;
        }
    }

    pub fn count(&self) -> u64 {
        self.n
    }

    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then_some(self.mean)
    }

    /// Sample standard deviation (n − 1 in the denominator, as pandas).
    pub fn std(&self) -> Option<f64> {
        (self.n > 1).then(|| (self.m2 / (self.n - 1) as f64).sqrt())
    }

    /// The middle value, or the mean of the two middle values (as numpy).
    pub fn median(&self) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        let mut keys: Vec<(i64, u64)> = self.counts.iter().map(|(k, c)| (*k, *c)).collect();
        keys.sort_unstable();
        let nth = |i: u64| {
            let mut seen = 0;
            for (k, c) in &keys {
                seen += c;
                if i < seen {
                    return *k as f64 / self.scale;
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
        let has = self.n > 0;
        doc! {
            "mean": b(self.mean()),
            "min": b(has.then_some(self.min)),
            "max": b(has.then_some(self.max)),
            "std": b(self.std()),
            "median": b(self.median()),
        }
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
    fn empty_statistics_are_null() {
        let d = Stats::new(2).document();
        assert_eq!(d.get("mean"), Some(&Bson::Null));
        assert_eq!(d.get("median"), Some(&Bson::Null));
    }
}
