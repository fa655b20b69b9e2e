//! The statistics of a parameter whose distinct values no longer fit the
//! bounded table of [`super::Stats`]: the median from a DDSketch (a
//! mergeable quantile sketch of relative error [`MEDIAN_RELATIVE_ERROR`]),
//! and the count, min, max, mean and standard deviation exactly, from
//! sums that do not depend on the order the values came in.
//!
//! The sums are kept per binary exponent: a finite double is `m·2^e` with
//! `m` an integer below 2^53, so per exponent the sum of the `m` fits 128
//! bits and the sum of the `m²` 256 bits for any count below 2^64. They
//! are added into big integers only when the mean or the standard
//! deviation is asked for, which are then the correctly computed quotient
//! and square root of exact integers, rounded once or twice at the end:
//! the same bits however the values were split, ordered or merged.

use std::fmt;
use std::sync::OnceLock;

use bson::{doc, spec::BinarySubtype, Binary, Document};
use num_bigint::{BigInt, BigUint, Sign};
use sketches_ddsketch::{Config, DDSketch};

/// The relative error of a median read from the sketch: it is within this
/// fraction of the value at the middle rank (the lower of the two middle
/// values when their number is even).
pub const MEDIAN_RELATIVE_ERROR: f64 = 1e-3;

/// The most bins the sketch keeps for each sign: at the error above, 2^15
/// bins cover 28 decades of magnitude (each bin is 0.2% wide), so the
/// sketch of any real dataset never collapses. 256 KiB each at most.
const SKETCH_BINS: u32 = 1 << 15;

/// Every double from the smallest normal one on has its own bins; the
/// subnormal ones count as zero.
fn config() -> Config {
    Config::new(MEDIAN_RELATIVE_ERROR, SKETCH_BINS, f64::MIN_POSITIVE)
}

/// Sub-bins of each binary octave: 2^12, each 1/4096 of the octave wide,
/// so that at most one boundary of the sketch's bins (each 0.2% wide, 347
/// to an octave) falls within one.
const SUB_BITS: u32 = 12;
const SUB_SHIFT: u32 = 52 - SUB_BITS;
const SUB_MASK: u64 = (1 << SUB_BITS) - 1;

/// The sketch's keys of the positive doubles of one exponent field, by
/// sub-bin: the key of the sub-bin's first double, and the first double
/// (its bits) from which the key is one more, where that happens within
/// the sub-bin (`u64::MAX` where it does not). The key does not decrease
/// as the value grows and a sub-bin is narrower than a bin, so that the
/// key of any double of the field is `first[j] + (bits >= cut[j])`.
struct Octave {
    first: Box<[i32]>,
    cut: Box<[u64]>,
}

impl Octave {
    #[inline]
    fn key(&self, bits: u64) -> i32 {
        let j = ((bits >> SUB_SHIFT) & SUB_MASK) as usize;
        self.first[j] + i32::from(bits >= self.cut[j])
    }
}

/// [`Octave`] of exponent field `field`, computed with the sketch's own key
/// function ([`Config::key`]) once per field and process, on first use (a
/// key per sub-bin, and a few more where a bin boundary falls inside one:
/// about a millisecond).
fn sub_bin_keys(field: usize) -> &'static Octave {
    static FIELDS: [OnceLock<Octave>; 2048] = [const { OnceLock::new() }; 2048];
    FIELDS[field].get_or_init(|| {
        let cfg = config();
        let key = |bits: u64| cfg.key(f64::from_bits(bits));
        let n = 1usize << SUB_BITS;
        let mut first = Vec::with_capacity(n);
        let mut cut = Vec::with_capacity(n);
        for j in 0..n as u64 {
            let lo = ((field as u64) << 52) | (j << SUB_SHIFT);
            let hi = lo + (1 << SUB_SHIFT) - 1;
            let k = key(lo);
            first.push(k);
            cut.push(if key(hi) == k {
                u64::MAX
            } else {
                first_above(&key, k, lo, hi, cfg.pow_gamma(k + 1).to_bits())
            });
        }
        Octave {
            first: first.into(),
            cut: cut.into(),
        }
    })
}

/// The least `b` in `(lo, hi]` with `key(b) > k`, where `key(lo) == k <
/// key(hi)` and `key` does not decrease: searched outwards from `guess`
/// (the boundary as the sketch computes it, within a few units of the
/// last place of the answer), then by halving.
fn first_above(key: &impl Fn(u64) -> i32, k: i32, lo: u64, hi: u64, guess: u64) -> u64 {
    let (mut lo, mut hi) = (lo, hi);
    let g = guess.clamp(lo + 1, hi);
    if key(g) > k {
        hi = g;
        let mut step = 1;
        while hi - lo > step {
            let t = hi - step;
            if key(t) > k {
                hi = t;
                step *= 2;
            } else {
                lo = t;
                break;
            }
        }
    } else {
        lo = g;
        let mut step = 1;
        while hi - lo > step {
            let t = lo + step;
            if key(t) > k {
                hi = t;
                break;
            }
            lo = t;
            step *= 2;
        }
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if key(mid) > k {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// The number of exponent fields of a double (all but NaN/Inf's).
const FIELDS: usize = 2047;

/// The exact sums of one binary exponent: Σ±m and Σm² (as two halves).
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
struct Sums {
    sum: i128,
    sq_hi: u128,
    sq_lo: u128,
}

impl Sums {
    fn is_zero(&self) -> bool {
        self.sum == 0 && self.sq_hi == 0 && self.sq_lo == 0
    }

    fn add_sq(&mut self, hi: u128, lo: u128) {
        let (lo, carry) = self.sq_lo.overflowing_add(lo);
        self.sq_lo = lo;
        self.sq_hi = self.sq_hi.wrapping_add(hi).wrapping_add(carry as u128);
    }

    fn merge(&mut self, o: &Sums) {
        self.sum += o.sum;
        self.add_sq(o.sq_hi, o.sq_lo);
    }
}

/// An exponent's field and integer significand: `x = ±m·2^(max(field, 1) − 1075)`.
#[inline]
fn decompose(x: f64) -> (usize, u64) {
    let bits = x.to_bits();
    let field = ((bits >> 52) & 0x7ff) as usize;
    let frac = bits & ((1u64 << 52) - 1);
    (
        field,
        if field == 0 {
            frac
        } else {
            frac | (1u64 << 52)
        },
    )
}

/// The statistics beyond the table: a sketch for the median, exact sums
/// for the rest.
#[derive(Clone)]
pub(crate) struct Approx {
    sketch: DDSketch,
    sums: Vec<Sums>,
    n: u64,
}

impl fmt::Debug for Approx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Approx")
            .field("n", &self.n)
            .field("min", &self.sketch.min())
            .field("max", &self.sketch.max())
            .field("median", &self.median())
            .finish()
    }
}

impl PartialEq for Approx {
    /// The same values: the same sums and the same sketch bins.
    fn eq(&self, o: &Self) -> bool {
        self.n == o.n && self.sums == o.sums && self.sketch_document() == o.sketch_document()
    }
}

impl Approx {
    pub fn new() -> Self {
        Self {
            sketch: DDSketch::new(config()),
            sums: vec![Sums::default(); FIELDS],
            n: 0,
        }
    }

    /// Count the finite value `x` `c` times.
    #[inline]
    pub fn add(&mut self, x: f64, c: u64) {
        if c == 0 {
            return;
        }
        self.sketch.add_with_count(x, c);
        self.n += c;
        self.add_sums(x, c);
    }

    /// Count each value `k / scale` of `keys` once: the same statistics as
    /// [`Approx::add`] of each value in turn (the same sums, bins, minimum
    /// and maximum), for a fraction of the time. The sketch's key of a
    /// value is a logarithm, a division and a floor; here it comes from
    /// [`sub_bin_keys`] for nearly every value, and the sketch is then
    /// given each bin's count at once.
    pub fn add_units(&mut self, keys: &[i64], scale: f64) {
        if keys.len() < 2 {
            keys.iter().for_each(|&k| self.add(k as f64 / scale, 1));
            return;
        }
        // The extremes, and the least magnitude past zero: division by a
        // positive scale keeps the order.
        let (mut lo, mut hi, mut least) = (i64::MAX, i64::MIN, u64::MAX);
        for &k in keys {
            lo = lo.min(k);
            hi = hi.max(k);
            let m = k.unsigned_abs();
            least = least.min(if m == 0 { u64::MAX } else { m });
        }
        let (vmin, vmax) = (lo as f64 / scale, hi as f64 / scale);
        let largest = vmin.abs().max(vmax.abs());
        let cfg = config();
        // Values of the two lowest exponent fields (the subnormal ones,
        // and those next to the sketch's least value) are added one by one.
        let smallest_binned = f64::from_bits(2 << 52);
        if least == u64::MAX || largest < smallest_binned {
            keys.iter().for_each(|&k| self.add(k as f64 / scale, 1));
            return;
        }
        let floor_value = (least as f64 / scale).max(smallest_binned);
        let (key_lo, key_hi) = (cfg.key(floor_value), cfg.key(largest));
        let span = (key_hi - key_lo + 1) as usize;
        let field = |v: f64| (v.to_bits() >> 52) as usize;
        let (f_lo, f_hi) = (field(floor_value), field(largest));
        if span > 1 << 20 || key_hi < key_lo {
            keys.iter().for_each(|&k| self.add(k as f64 / scale, 1));
            return;
        }
        let octaves: Vec<&Octave> = (f_lo..=f_hi).map(sub_bin_keys).collect();
        // Positive bins, then negative ones.
        let mut counts = vec![0u64; 2 * span];
        let mut zeros = 0u64;
        let mut one_by_one = Vec::new();
        let place = |v: f64| -> Option<usize> {
            let a = v.abs();
            let bits = a.to_bits();
            let f = (bits >> 52) as usize;
            if f < 2 {
                return None;
            }
            let key = octaves[f - f_lo].key(bits);
            Some((key - key_lo) as usize + if v < 0.0 { span } else { 0 })
        };
        // The sums of each field's significands and of their squares, in
        // 128 bits: exact for fewer than 2^22 values at a time (m < 2^53).
        let fields = f_hi - f_lo + 1;
        let mut sum = vec![0i128; fields];
        let mut squares = vec![0u128; fields];
        for part in keys.chunks(1 << 21) {
            for &k in part {
                let v = k as f64 / scale;
                let bits = v.to_bits();
                let f = ((bits >> 52) & 0x7ff) as usize;
                if f < 2 {
                    self.add_sums(v, 1);
                    if k == 0 {
                        zeros += 1;
                    } else {
                        one_by_one.push(v);
                    }
                    continue;
                }
                let m = (bits & ((1u64 << 52) - 1)) | (1u64 << 52);
                let i = f - f_lo;
                sum[i] += if v < 0.0 {
                    -i128::from(m)
                } else {
                    i128::from(m)
                };
                squares[i] += u128::from(m) * u128::from(m);
                let key = octaves[i].key(bits & !(1 << 63));
                counts[(key - key_lo) as usize + if v < 0.0 { span } else { 0 }] += 1;
            }
            for (i, (s, q)) in sum.iter_mut().zip(&mut squares).enumerate() {
                let total = &mut self.sums[f_lo + i];
                total.sum += std::mem::take(s);
                total.add_sq(0, std::mem::take(q));
            }
        }
        self.n += keys.len() as u64;
        // The extremes go in as themselves (the sketch keeps its minimum
        // and maximum from the values it is given), the rest of each bin
        // as one value of that bin, within the extremes.
        for v in [vmin, vmax] {
            match place(v) {
                Some(at) => counts[at] -= 1,
                None if v == 0.0 => zeros -= 1,
                None => continue, // already among those added one by one
            }
            self.sketch.add(v);
        }
        one_by_one.into_iter().for_each(|v| self.sketch.add(v));
        self.sketch.add_with_count(0.0, zeros);
        for (at, &c) in counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            let key = (at % span) as i32 + key_lo;
            let middle = cfg.value(key);
            let v = if at < span { middle } else { -middle };
            self.sketch.add_with_count(v.clamp(vmin, vmax), c);
        }
    }

    /// The exact sums of `c` times the finite value `x`.
    #[inline]
    fn add_sums(&mut self, x: f64, c: u64) {
        let (field, m) = decompose(x);
        if m == 0 {
            return;
        }
        let s = &mut self.sums[field];
        // |m·c| < 2^117, and the sum of all of them below 2^117 too while
        // the count stays below 2^64.
        let mc = i128::from(m) * i128::from(c);
        s.sum += if x < 0.0 { -mc } else { mc };
        // m² < 2^106, times c below 2^170: the two halves of m² times c.
        let sq = u128::from(m) * u128::from(m);
        let (a, b) = (sq >> 64, sq & u128::from(u64::MAX));
        let high = a * u128::from(c); // < 2^106: the part times 2^64
        let low = b * u128::from(c); // < 2^128
        s.add_sq(high >> 64, high << 64);
        s.add_sq(0, low);
    }

    pub fn merge(&mut self, o: &Approx) {
        self.sketch
            .merge(&o.sketch)
            .expect("every sketch has the same configuration");
        self.n += o.n;
        for (mine, theirs) in self.sums.iter_mut().zip(&o.sums) {
            mine.merge(theirs);
        }
    }

    pub fn min(&self) -> Option<f64> {
        self.sketch.min()
    }

    pub fn max(&self) -> Option<f64> {
        self.sketch.max()
    }

    /// The value at the middle rank, within [`MEDIAN_RELATIVE_ERROR`],
    /// never outside the values' range.
    pub fn median(&self) -> Option<f64> {
        let m = self.sketch.quantile(0.5).ok()??;
        Some(m.clamp(self.min()?, self.max()?))
    }

    /// Σx as an integer of 2^-1074 units, and Σx² of 2^-2148 units.
    fn totals(&self) -> (BigInt, BigUint) {
        let mut s1 = BigInt::ZERO;
        let mut s2 = BigUint::ZERO;
        for (field, s) in self.sums.iter().enumerate() {
            if s.is_zero() {
                continue;
            }
            let shift = field.max(1) - 1;
            s1 += BigInt::from(s.sum) << shift;
            s2 += ((BigUint::from(s.sq_hi) << 128u32) + BigUint::from(s.sq_lo)) << (2 * shift);
        }
        (s1, s2)
    }

    pub fn mean(&self) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        let (s1, _) = self.totals();
        let q = quotient(s1.magnitude(), &BigUint::from(self.n), 0);
        let m = q.map_or(0.0, |(q, sticky, e)| nearest(&q, sticky, e - 1074));
        Some(if s1.sign() == Sign::Minus { -m } else { m })
    }

    /// The sample standard deviation (n − 1 in the denominator):
    /// √((n·Σx² − (Σx)²) / (n(n − 1))), from exact integers.
    pub fn std(&self) -> Option<f64> {
        if self.n < 2 {
            return None;
        }
        let (s1, s2) = self.totals();
        let n = BigUint::from(self.n);
        let num = BigInt::from(&n * s2) - &s1 * &s1;
        let num = num.to_biguint().unwrap_or_default();
        let den = &n * BigUint::from(self.n - 1);
        // An integer square root of at least 66 bits: its radicand of 132.
        let Some((q, sticky, e)) = quotient_bits(&num, &den, 0, 132) else {
            return Some(0.0);
        };
        // Make the power of two even, then take the root of each part.
        let (q, e) = if e % 2 != 0 {
            (q << 1u32, e - 1)
        } else {
            (q, e)
        };
        let r = q.sqrt();
        let sticky = sticky || &r * &r != q;
        Some(nearest(&r, sticky, e / 2 - 1074))
    }

    fn sketch_document(&self) -> Document {
        bson::to_document(&self.sketch).expect("a sketch is plain numbers")
    }

    /// `{sketch: {...}, sums: <binary>}`: the sketch as its fields, and the
    /// exact sums as (field u16, sum i128, Σm² u128 high, u128 low) records,
    /// little-endian, for the fields that have values.
    pub fn to_stored(&self) -> Document {
        let mut bytes = Vec::new();
        for (field, s) in self.sums.iter().enumerate() {
            if s.is_zero() {
                continue;
            }
            bytes.extend_from_slice(&(field as u16).to_le_bytes());
            bytes.extend_from_slice(&s.sum.to_le_bytes());
            bytes.extend_from_slice(&s.sq_hi.to_le_bytes());
            bytes.extend_from_slice(&s.sq_lo.to_le_bytes());
        }
        doc! {
            "sketch": self.sketch_document(),
            "sums": Binary { subtype: BinarySubtype::Generic, bytes },
        }
    }

    /// What [`Approx::to_stored`] wrote, for `n` values; `None` when it is
    /// not that (another configuration, another count).
    pub fn from_stored(d: &Document, n: u64) -> Option<Approx> {
        let stored: DDSketch = bson::from_document(d.get_document("sketch").ok()?.clone()).ok()?;
        let mut a = Approx::new();
        // Refused unless it has this version's configuration.
        a.sketch.merge(&stored).ok()?;
        if a.sketch.count() as u64 != n {
            return None;
        }
        a.n = n;
        let bytes = d.get_binary_generic("sums").ok()?;
        const RECORD: usize = 2 + 16 * 3;
        if bytes.len() % RECORD != 0 {
            return None;
        }
        for r in bytes.chunks_exact(RECORD) {
            let field = usize::from(u16::from_le_bytes(r[..2].try_into().ok()?));
            let s = Sums {
                sum: i128::from_le_bytes(r[2..18].try_into().ok()?),
                sq_hi: u128::from_le_bytes(r[18..34].try_into().ok()?),
                sq_lo: u128::from_le_bytes(r[34..50].try_into().ok()?),
            };
            *a.sums.get_mut(field)? = s;
        }
        Some(a)
    }
}

/// `(q, sticky, e)` with `q·2^e` the quotient `a/d` truncated to at least
/// 66 bits (`sticky`: the truncation dropped something); `None` for 0.
fn quotient(a: &BigUint, d: &BigUint, e: i64) -> Option<(BigUint, bool, i64)> {
    quotient_bits(a, d, e, 66)
}

fn quotient_bits(a: &BigUint, d: &BigUint, e: i64, bits: i64) -> Option<(BigUint, bool, i64)> {
    if a.bits() == 0 {
        return None;
    }
    let k = (bits + d.bits() as i64 - a.bits() as i64).max(0);
    let shifted = a << (k as u64);
    let q = &shifted / d;
    let sticky = &q * d != shifted;
    Some((q, sticky, e - k))
}

/// The double nearest to `q·2^e` (`q > 0`; `sticky`: the exact value is a
/// little more than that, which breaks ties).
fn nearest(q: &BigUint, sticky: bool, e: i64) -> f64 {
    let bits = q.bits() as i64;
    let shift = bits - 64;
    let (top, sticky) = if shift > 0 {
        let dropped = q.trailing_zeros().unwrap_or(0) < shift as u64;
        (q >> (shift as u64), sticky || dropped)
    } else {
        (q << ((-shift) as u64), sticky)
    };
    let t = top.iter_u64_digits().next().unwrap_or(0) | u64::from(sticky);
    // A u64's conversion rounds to nearest; the sticky bit is far below
    // its rounding position, so it rounds as the exact value would.
    ldexp(t as f64, e + shift)
}

/// `x·2^e` in steps that neither overflow nor underflow on the way.
fn ldexp(mut x: f64, mut e: i64) -> f64 {
    let p = |e: i64| f64::from_bits(((e + 1023) as u64) << 52);
    while e > 1000 {
        x *= p(1000);
        e -= 1000;
    }
    while e < -1000 {
        x *= p(-1000);
        e += 1000;
    }
    x * p(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(values: &[f64]) -> Approx {
        let mut a = Approx::new();
        values.iter().for_each(|&v| a.add(v, 1));
        a
    }

    #[test]
    fn mean_and_std_are_the_exact_ones_rounded() {
        let v = [1.25, -3.5, 2.0, 0.08, 7.75, 2.0];
        let a = of(&v);
        let mean = v.iter().sum::<f64>() / 6.0;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 5.0;
        assert!((a.mean().unwrap() - mean).abs() <= f64::EPSILON * 4.0);
        assert!((a.std().unwrap() - var.sqrt()).abs() <= 1e-15 * var.sqrt());
        assert_eq!(of(&[1.0, 2.0, 3.0, 4.0]).mean(), Some(2.5));
        // Exactly representable: exact.
        assert_eq!(of(&[1.0, 3.0]).std(), Some(2f64.sqrt()));
        assert_eq!(of(&[5.0, 5.0, 5.0]).std(), Some(0.0));
        // Extremes: no overflow in the squares, no loss in the tiny ones.
        let big = of(&[1e308, 1.5e308, 1.2e308, 1.7e308]);
        assert!((big.mean().unwrap() / 1.35e308 - 1.0).abs() < 1e-15);
        assert!(big.std().unwrap().is_finite());
        assert_eq!(of(&[5e-324, 5e-324]).mean(), Some(5e-324));
        assert_eq!(of(&[-1e-300, -3e-300]).mean(), Some(-2e-300));
    }

    #[test]
    fn counts_merges_and_orders_give_the_same_bits() {
        let v: Vec<f64> = (0..20_000)
            .map(|i| ((i * 7919 % 10007) as f64 * 0.37).sin() * 100.0 + 1e-9 * i as f64)
            .collect();
        let whole = of(&v);
        let rev: Vec<f64> = v.iter().rev().copied().collect();
        let mut parts = of(&v[7000..]);
        parts.merge(&of(&v[..7000]));
        let mut counted = of(&v);
        counted.merge(&{
            let mut c = Approx::new();
            c.add(v[3], 3);
            c
        });
        let mut thrice = of(&v);
        thrice.add(v[3], 1);
        thrice.add(v[3], 1);
        thrice.add(v[3], 1);
        let bits = |a: &Approx| {
            [a.mean(), a.std(), a.median(), a.min(), a.max()].map(|x| x.unwrap().to_bits())
        };
        assert_eq!(bits(&of(&rev)), bits(&whole));
        assert_eq!(bits(&parts), bits(&whole));
        assert_eq!(bits(&counted), bits(&thrice));
        let back = Approx::from_stored(&whole.to_stored(), whole.n).unwrap();
        assert_eq!(bits(&back), bits(&whole));
        assert!(Approx::from_stored(&whole.to_stored(), whole.n + 1).is_none());
    }

    /// Counting values by [`Approx::add_units`] gives the sketch the bins,
    /// count, minimum and maximum that adding them one by one gives (only
    /// the sketch's own running sum, which nothing reads, may differ), and
    /// the same exact sums: for values of both signs, zeros, values across
    /// many octaves, values on a bin's boundary, and tiny ones.
    #[test]
    fn counting_units_at_once_equals_adding_each_value() {
        let cfg = config();
        // Keys at 18 places whose values sit on or next to bin boundaries.
        let mut keys: Vec<i64> = (-400..400)
            .map(|j| {
                let b = cfg.pow_gamma(j * 3 - 9_000) * 1e18;
                b.round() as i64
            })
            .flat_map(|k| [k - 1, k, k + 1])
            .collect();
        keys.extend((0..50_000i64).map(|i| (i * 7_919 % 100_003 - 50_000) * 1_000_003));
        keys.extend([0, 0, 1, -1, 2, (1 << 50) - 2, -((1 << 50) - 2)]);
        for scale in [1e18, 1e2, 1e22, 1.0] {
            for part in [
                &keys[..],
                &keys[..3],
                &keys[2400..2410],
                &[5, 5, 5][..],
                &[0, 0][..],
            ] {
                let mut one = Approx::new();
                part.iter().for_each(|&k| one.add(k as f64 / scale, 1));
                let mut all = Approx::new();
                all.add_units(part, scale);
                let mut a = one.sketch_document();
                let mut b = all.sketch_document();
                a.remove("sum");
                b.remove("sum");
                assert_eq!(a, b, "{} keys at scale {scale}", part.len());
                assert_eq!(one.n, all.n);
                assert_eq!(one.sums, all.sums);
                assert_eq!(
                    [one.min(), one.max(), one.median(), one.mean(), one.std()],
                    [all.min(), all.max(), all.median(), all.mean(), all.std()]
                );
            }
        }
        // Every sub-bin gives the sketch's own key of its doubles: its
        // first, its last, others, and those on either side of its cut.
        for field in [1023 - 20, 1023 + 3, 2] {
            let octave = sub_bin_keys(field);
            let mut cuts = 0;
            for j in 0..1u64 << SUB_BITS {
                let first = ((field as u64) << 52) | (j << SUB_SHIFT);
                let last = first + (1 << SUB_SHIFT) - 1;
                let mut probes = vec![first, first + 12_345, first + (1 << 39), last];
                let cut = octave.cut[j as usize];
                if cut != u64::MAX {
                    cuts += 1;
                    probes.extend([cut - 1, cut, cut + 1]);
                }
                for bits in probes.into_iter().filter(|b| (first..=last).contains(b)) {
                    let want = cfg.key(f64::from_bits(bits));
                    assert_eq!(octave.key(bits), want, "field {field} sub-bin {j}");
                }
            }
            assert!((300..400).contains(&cuts), "{cuts} cuts in field {field}");
        }
    }

    #[test]
    fn the_median_is_within_the_stated_error() {
        let mut v: Vec<f64> = (0..100_001)
            .map(|i| ((i as f64) * 0.618_033_988_749).fract() * 3.0 - 0.5)
            .collect();
        let a = of(&v);
        v.sort_by(f64::total_cmp);
        let exact = v[50_000];
        let m = a.median().unwrap();
        assert!(
            (m - exact).abs() <= MEDIAN_RELATIVE_ERROR * exact.abs(),
            "{m} {exact}"
        );
    }
}
