//! A compact form of a document with a large array of numbers, as the
//! embedded store keeps it: the array's element keys ("0", "1", … — a third
//! of its bytes) are left out, and its element types and numbers are kept
//! as two runs, which compress faster and smaller than the BSON. When every
//! number is a decimal that fits 16 or 32 bits (as the values a model
//! rounds to its `precision` are), or 50 bits for a model's step document,
//! the numbers are kept as those integers, from which the very doubles are
//! computed back. [`join`] gives back the very bytes [`split`] was given.
//!
//! Layout: `head_len: u32`, the document's bytes up to the array's length
//! (`head_len` of them), `n: u32`, the `n` element types (double, null, or
//! one of three marks that stand for the doubles NaN, +Infinity and
//! -Infinity, which carry no number in the run),
//! `places: u8` and `width: u8` (2 or 4: each double is an integer of that
//! many bytes divided by 10^places; [`WIDE`]: an integer of 8 bytes, of at
//! most 50 bits, divided so, its bytes kept in eight planes (every first
//! byte, then every second, …: the high planes, nearly constant, compress
//! to little, three times faster and half as large as the integers one
//! after the other); 8: the doubles' own 8 bytes), the
//! numbers, then the document's bytes after the array. All integers
//! little-endian.

use crate::doc::encode::ArrayKeys;

const DOUBLE: u8 = 0x01;
const NULL: u8 = 0x0A;
/// Marks of the element types' run for the doubles that are not numbers:
/// NaN (its one quiet form, `f64::NAN`'s bits), +Infinity and -Infinity.
/// No BSON type has these codes; [`join`] writes each back as a double.
const NAN: u8 = 0x81;
const POS_INF: u8 = 0x82;
const NEG_INF: u8 = 0x83;

/// The width byte of 8-byte integers, below 2^50 in magnitude (see
/// [`WIDE_MAX`]): well inside 2^53, so that each is exactly a double and
/// `k / 10^places` is correctly rounded. Written since store format
/// version 2.
const WIDE: u8 = 0x88;

/// The largest magnitude of an integer kept in the [`WIDE`] form.
///
/// The same bound as the statistics' keys (`Stats::key` gives none from
/// 2^50 on), so that a value kept by its key and one kept by its integer
/// take the same form.
const WIDE_MAX: u64 = (1 << 50) - 2;

/// The mark of a double kept without its bytes, when it is one.
#[inline]
fn mark_of(bits: u64) -> Option<u8> {
    if bits == f64::NAN.to_bits() {
        Some(NAN)
    } else if bits == f64::INFINITY.to_bits() {
        Some(POS_INF)
    } else if bits == f64::NEG_INFINITY.to_bits() {
        Some(NEG_INF)
    } else {
        None
    }
}

/// The double a mark stands for.
#[inline]
fn marked(t: u8) -> Option<f64> {
    match t {
        NAN => Some(f64::NAN),
        POS_INF => Some(f64::INFINITY),
        NEG_INF => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

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
                let d = b.get(at..at + 8)?;
                at += 8;
                if let Some(mark) = mark_of(u64::from_le_bytes(d.try_into().ok()?)) {
                    types.push(mark);
                    n += 1;
                    keys.advance();
                    continue;
                }
                doubles.extend_from_slice(d);
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
    match decimals(doubles) {
        Some((p, width)) => {
            out.extend_from_slice(&[p, width]);
            let scale = POW10[usize::from(p)];
            for d in doubles.chunks_exact(8) {
                let k = (f64::from_le_bytes(d.try_into().expect("8 bytes")) * scale).round() as i32;
                out.extend_from_slice(&k.to_le_bytes()[..usize::from(width)]);
            }
        }
        None => {
            out.extend_from_slice(&[0, 8]);
            out.extend_from_slice(doubles);
        }
    }
    out.extend_from_slice(&bson[end..]);
    true
}

/// A document in the compact form, as a model hands it on: its `_id`, the
/// length of the BSON it stands for, and the form itself ([`join`] gives
/// the BSON back).
#[derive(Debug, Clone)]
pub struct PackedDoc {
    pub id: bson::Bson,
    pub bson_len: usize,
    pub packed: Vec<u8>,
}

impl PackedDoc {
    /// The BSON document.
    pub fn to_raw(&self) -> bson::RawDocumentBuf {
        let bytes = join(&self.packed).expect("a compact form this crate wrote");
        bson::RawDocumentBuf::from_bytes(bytes).expect("well-formed BSON")
    }
}

/// Each thread's buffers for [`StepWriter`], reused from one document to
/// the next.
#[derive(Default)]
struct StepScratch {
    types: Vec<u8>,
    ints: Vec<i32>,
    /// The integers once one of them does not fit 32 bits.
    wide: Vec<i64>,
    doubles: Vec<f64>,
}

thread_local! {
    static STEP_SCRATCH: std::cell::RefCell<StepScratch> =
        std::cell::RefCell::new(StepScratch::default());
}

/// Writes `{_id: <datetime>, KEY: [numbers or nulls]}` straight in the
/// compact form, without its BSON: the numbers as decimal integers of
/// `places` places while each one is exactly such an integer (checked bit
/// for bit, as [`join`] computes it back), else as doubles.
pub struct StepWriter {
    scratch: StepScratch,
    /// 10^places, while the numbers so far are decimal integers.
    scale: Option<(u8, f64)>,
    /// 10^places (NaN past the places an integer form has), kept when the
    /// integers give way to doubles: [`StepWriter::push_units`] divides by
    /// it then.
    divisor: f64,
    /// Whether every integer so far fits 16 bits; 32 bits.
    narrow: bool,
    fits_32: bool,
    /// How many elements are NaN or infinite (doubles without bytes in the run).
    specials: usize,
}

impl StepWriter {
    pub fn new(values: usize, places: u32) -> Self {
        let mut scratch = STEP_SCRATCH.with(|s| s.take());
        scratch.types.clear();
        scratch.ints.clear();
        scratch.wide.clear();
        scratch.doubles.clear();
        scratch.types.reserve(values);
        let scale = POW10.get(places as usize).map(|&s| (places as u8, s));
        if scale.is_some() {
            scratch.ints.reserve(values);
        } else {
            scratch.doubles.reserve(values);
        }
        Self {
            scratch,
            scale,
            divisor: scale.map_or(f64::NAN, |(_, s)| s),
            narrow: true,
            fits_32: true,
            specials: 0,
        }
    }

    /// The next element: a number (with its decimal integer at `places`
    /// places, if the caller has it) or null. NaN (any NaN: it is written
    /// as `f64::NAN`), +Infinity and -Infinity are kept as their marks.
    #[inline]
    pub fn push(&mut self, value: Option<f64>, decimal: Option<i64>) {
        let Some(x) = value else {
            self.scratch.types.push(NULL);
            return;
        };
        if !x.is_finite() {
            let bits = if x.is_nan() {
                f64::NAN.to_bits()
            } else {
                x.to_bits()
            };
            self.scratch
                .types
                .push(mark_of(bits).expect("NaN or an infinity"));
            self.specials += 1;
            return;
        }
        self.scratch.types.push(DOUBLE);
        if let Some((_, scale)) = self.scale {
            let k = decimal.filter(|&k| {
                k.unsigned_abs() <= WIDE_MAX && (k as f64 / scale).to_bits() == x.to_bits()
            });
            match k {
                Some(k) => {
                    self.keep(k);
                    return;
                }
                None => self.switch_to_doubles(scale),
            }
        }
        self.scratch.doubles.push(x);
    }

    /// The next element, the number `k / 10^places` computed as that one
    /// division (as [`crate::model::round_units`] computes the value of the
    /// integer it rounds to at these places): kept as `k` without checking
    /// it again, and divided only if the integers give way to doubles.
    #[inline]
    pub fn push_units(&mut self, k: i64) {
        self.scratch.types.push(DOUBLE);
        if let Some((_, scale)) = self.scale {
            if k.unsigned_abs() <= WIDE_MAX {
                self.keep(k);
                return;
            }
            self.switch_to_doubles(scale);
        }
        self.scratch.doubles.push(k as f64 / self.divisor);
    }

    /// [`StepWriter::push_units`] of each of `ks`, whose least and
    /// greatest are `lo` and `hi`: the same document, the integers moved
    /// in one go.
    pub fn push_all_units(&mut self, ks: &[i64], lo: i64, hi: i64) {
        let within = |a: i64, b: i64| lo >= a && hi <= b;
        let keeps = self.scale.is_some() && lo.unsigned_abs().max(hi.unsigned_abs()) <= WIDE_MAX;
        if !keeps || ks.is_empty() {
            ks.iter().for_each(|&k| self.push_units(k));
            return;
        }
        let s = &mut self.scratch;
        s.types.resize(s.types.len() + ks.len(), DOUBLE);
        if self.fits_32 && within(i32::MIN.into(), i32::MAX.into()) {
            self.narrow &= within(i16::MIN.into(), i16::MAX.into());
            self.scratch.ints.extend(ks.iter().map(|&k| k as i32));
            return;
        }
        if self.fits_32 {
            self.go_wide();
        }
        self.scratch.wide.extend_from_slice(ks);
    }

    #[inline]
    fn keep(&mut self, k: i64) {
        if self.fits_32 {
            if let Ok(k) = i32::try_from(k) {
                self.narrow &= i16::try_from(k).is_ok();
                self.scratch.ints.push(k);
                return;
            }
            self.go_wide();
        }
        self.scratch.wide.push(k);
    }

    /// Go on with 8-byte integers: those so far move over.
    #[cold]
    fn go_wide(&mut self) {
        let s = &mut self.scratch;
        s.wide.reserve(s.types.capacity());
        s.wide.extend(s.ints.iter().map(|&k| i64::from(k)));
        s.ints.clear();
        self.fits_32 = false;
        self.narrow = false;
    }

    /// Go on with doubles: the integers so far become the very doubles
    /// they stand for.
    #[cold]
    fn switch_to_doubles(&mut self, scale: f64) {
        let s = &mut self.scratch;
        s.doubles.reserve(s.types.capacity());
        s.doubles
            .extend(s.ints.iter().map(|&k| f64::from(k) / scale));
        s.doubles.extend(s.wide.iter().map(|&k| k as f64 / scale));
        s.ints.clear();
        s.wide.clear();
        self.scale = None;
    }

    /// The document, `_id` the datetime `ms`, the array under `key`.
    pub fn finish(self, ms: i64, key: &str) -> PackedDoc {
        let Self {
            scratch,
            scale,
            narrow,
            fits_32,
            specials,
            ..
        } = self;
        let n = scratch.types.len();
        let numbers = scratch.ints.len() + scratch.wide.len() + scratch.doubles.len();
        // In the BSON, NaN and the infinities are doubles of 8 bytes too.
        let doubles = numbers + specials;
        let (places, form) = match scale {
            Some((p, _)) if narrow => (p, 2),
            Some((p, _)) if fits_32 => (p, 4),
            Some((p, _)) => (p, WIDE),
            None => (0, 8),
        };
        let width = if form == WIDE { 8 } else { usize::from(form) };
        // The BSON it stands for: the array's elements are a type, the
        // decimal key and its NUL each, and 8 bytes per number.
        let elements = 2 * n + key_digits(n) + 8 * doubles;
        let array = 4 + elements + 1;
        let head_len = 4 + (1 + 4 + 8) + (1 + key.len() + 1);
        let bson_len = head_len + array + 1;
        let mut out = crate::doc::encode::buffer(8 + head_len + n + 2 + numbers * width + 1);
        out.extend_from_slice(&(head_len as u32).to_le_bytes());
        out.extend_from_slice(&(bson_len as i32).to_le_bytes());
        out.push(0x09);
        out.extend_from_slice(b"_id\0");
        out.extend_from_slice(&ms.to_le_bytes());
        out.push(0x04);
        out.extend_from_slice(key.as_bytes());
        out.push(0);
        out.extend_from_slice(&(n as u32).to_le_bytes());
        out.extend_from_slice(&scratch.types);
        out.extend_from_slice(&[places, form]);
        // Sized once, then written in place: a loop the compiler vectorizes,
        // not a capacity check per number.
        let at = out.len();
        out.resize(at + numbers * width, 0);
        let run = &mut out[at..];
        match form {
            2 => run
                .chunks_exact_mut(2)
                .zip(&scratch.ints)
                .for_each(|(d, &k)| d.copy_from_slice(&(k as i16).to_le_bytes())),
            4 => run
                .chunks_exact_mut(4)
                .zip(&scratch.ints)
                .for_each(|(d, &k)| d.copy_from_slice(&k.to_le_bytes())),
            WIDE => {
                let planes: Vec<&mut [u8]> = run.chunks_exact_mut(numbers.max(1)).collect();
                if let Ok(mut planes) = <[&mut [u8]; 8]>::try_from(planes) {
                    for (i, &k) in scratch.wide.iter().enumerate() {
                        for (plane, byte) in planes.iter_mut().zip(k.to_le_bytes()) {
                            plane[i] = byte;
                        }
                    }
                }
            }
            _ => run
                .chunks_exact_mut(8)
                .zip(&scratch.doubles)
                .for_each(|(d, &x)| d.copy_from_slice(&x.to_le_bytes())),
        }
        out.push(0);
        STEP_SCRATCH.with(|s| *s.borrow_mut() = scratch);
        PackedDoc {
            id: bson::Bson::DateTime(bson::DateTime::from_millis(ms)),
            bson_len,
            packed: out,
        }
    }
}

/// The digits of the decimal keys "0", "1", …, of an array of `n` elements.
fn key_digits(n: usize) -> usize {
    let (mut total, mut low, mut digits) = (0, 0, 1);
    while low < n {
        let high = if digits == 1 { 10 } else { low * 10 };
        total += (n.min(high) - low) * digits;
        low = high;
        digits += 1;
    }
    total
}

/// Exact powers of ten, as the decimal form scales by them (10^22 is the
/// last a double holds exactly).
const POW10: [f64; 23] = [
    1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// The places [`split`] tries, with integers of 16 or 32 bits.
const SPLIT_PLACES: usize = 10;

/// The fewest decimals `p` (0 to 9) and the integer width (2 or 4 bytes)
/// such that every double `x` is `k / 10^p` for an integer `k` of that
/// width, computed back bit for bit (`k as f64 / 10^p` is correctly
/// rounded, and so is the decimal a rounded value was parsed from); `None`
/// when there is none (then the doubles are kept as they are).
fn decimals(doubles: &[u8]) -> Option<(u8, u8)> {
    let values = || {
        doubles
            .chunks_exact(8)
            .map(|d| f64::from_le_bytes(d.try_into().expect("8 bytes")))
    };
    'p: for (p, &scale) in POW10[..SPLIT_PLACES].iter().enumerate() {
        let mut narrow = true;
        for x in values() {
            let k = (x * scale).round();
            if k.is_nan() || k.abs() > f64::from(i32::MAX) {
                continue 'p;
            }
            // Through the integer, as `join` computes it: -0.0 is not 0.
            let k = k as i32;
            if (f64::from(k) / scale).to_bits() != x.to_bits() {
                continue 'p;
            }
            narrow &= i16::try_from(k).is_ok();
        }
        return Some((p as u8, if narrow { 2 } else { 4 }));
    }
    None
}

/// The BSON document whose compact form (as [`split`] writes it) is
/// `packed`; `None` when it is not one.
pub fn join(packed: &[u8]) -> Option<Vec<u8>> {
    view(packed)?.join()
}

/// A compact document read in place: its parts, the numbers still in
/// their stored form. What [`join`] rebuilds the BSON from, and what
/// `export` writes its numbers from without building the BSON.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// The document's bytes up to the array's length.
    head: &'a [u8],
    /// The element types (double, null, or a mark).
    types: &'a [u8],
    /// Each double is an integer of `width` bytes over 10^`places` (width
    /// 2 or 4, or 8 when `wide`), or its own 8 bytes.
    places: u8,
    width: usize,
    wide: bool,
    values: &'a [u8],
    /// The document's bytes after the array.
    tail: &'a [u8],
}

/// One element of a compact array, as stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Element {
    Null,
    /// The double `k / 10^places`, correctly rounded (the view's places),
    /// where `k` has at most 15 significant digits: its digits are then the
    /// double's shortest decimal form. (A longer `k` is given as a double.)
    Units(i64),
    /// A double kept as it is (NaN and the infinities included).
    Double(f64),
}

/// The compact document `packed` in place ([`join`]'s form); `None` when
/// it is not one.
pub fn view(packed: &[u8]) -> Option<View<'_>> {
    let u32_at = |at: usize| -> Option<usize> {
        Some(u32::from_le_bytes(packed.get(at..at + 4)?.try_into().ok()?) as usize)
    };
    let head_len = u32_at(0)?;
    let head = packed.get(4..4 + head_len)?;
    let n = u32_at(4 + head_len)?;
    let types_at = 8 + head_len;
    let types = packed.get(types_at..types_at.checked_add(n)?)?;
    let doubles = types.iter().filter(|&&t| t == DOUBLE).count();
    let form = packed.get(types_at + n..types_at + n + 2)?;
    let (places, wide, values_at) = (form[0], form[1] == WIDE, types_at + n + 2);
    let width = if wide { 8 } else { usize::from(form[1]) };
    if !matches!(width, 2 | 4 | 8) || usize::from(places) >= POW10.len() {
        return None;
    }
    let values = packed.get(values_at..values_at.checked_add(doubles.checked_mul(width)?)?)?;
    let tail = packed.get(values_at + values.len()..)?;
    Some(View {
        head,
        types,
        places,
        width,
        wide,
        values,
        tail,
    })
}

impl View<'_> {
    /// The number of elements of the array.
    pub fn len(&self) -> usize {
        self.types.len()
    }

    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// The array's key: the last element of the head.
    pub fn key(&self) -> Option<&str> {
        let b = self.head;
        let mut at = 4;
        loop {
            let kind = *b.get(at)?;
            let key_end = at + 1 + b.get(at + 1..)?.iter().position(|&c| c == 0)?;
            if key_end + 1 == b.len() {
                return (kind == 0x04)
                    .then(|| std::str::from_utf8(&b[at + 1..key_end]).ok())
                    .flatten();
            }
            at = key_end + 1 + value_size(b, kind, key_end + 1)?;
        }
    }

    /// The `j`-th integer of the [`WIDE`] form, from its eight planes.
    #[inline]
    fn wide_at(&self, j: usize) -> Option<i64> {
        let n = self.values.len() / 8;
        let mut b = [0u8; 8];
        for (p, byte) in b.iter_mut().enumerate() {
            *byte = *self.values.get(p * n + j)?;
        }
        Some(i64::from_le_bytes(b))
    }

    /// The places of [`Element::Units`].
    pub fn places(&self) -> u32 {
        u32::from(self.places)
    }

    /// The elements, in order, into `out` (cleared first); `None` when the
    /// numbers run out before the types do.
    pub fn elements_into(&self, out: &mut Vec<Element>) -> Option<()> {
        out.clear();
        out.reserve(self.types.len());
        let mut v = self.values.chunks_exact(self.width);
        let scale = POW10[usize::from(self.places)];
        let mut j = 0;
        for &t in self.types {
            out.push(match t {
                DOUBLE if self.wide => {
                    let k = self.wide_at(j)?;
                    j += 1;
                    if k.unsigned_abs() < 1_000_000_000_000_000 {
                        Element::Units(k)
                    } else {
                        Element::Double(k as f64 / scale)
                    }
                }
                DOUBLE => {
                    let b = v.next()?;
                    match self.width {
                        2 => Element::Units(i64::from(i16::from_le_bytes([b[0], b[1]]))),
                        4 => {
                            Element::Units(i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                        }
                        _ => Element::Double(f64::from_le_bytes(b.try_into().ok()?)),
                    }
                }
                NULL => Element::Null,
                _ => Element::Double(marked(t)?),
            });
        }
        Some(())
    }

    /// The BSON of the document with its array left empty: its other
    /// fields (the `_id`, ...), cheap to decode.
    pub fn outline(&self) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(self.head.len() + self.tail.len() + 5);
        out.extend_from_slice(self.head);
        out.extend_from_slice(&[5, 0, 0, 0, 0]);
        out.extend_from_slice(self.tail);
        let len = i32::try_from(out.len()).ok()?;
        out.get_mut(0..4)?.copy_from_slice(&len.to_le_bytes());
        Some(out)
    }

    /// The BSON document the compact form stands for.
    pub fn join(&self) -> Option<Vec<u8>> {
        let (head, types, values, tail, width, wide) = (
            self.head,
            self.types,
            self.values,
            self.tail,
            self.width,
            self.wide,
        );
        let n = types.len();
        let scale = POW10[usize::from(self.places)];
        let double = |v: &[u8]| -> [u8; 8] {
            match width {
                2 => (f64::from(i16::from_le_bytes([v[0], v[1]])) / scale).to_le_bytes(),
                4 => {
                    (f64::from(i32::from_le_bytes([v[0], v[1], v[2], v[3]])) / scale).to_le_bytes()
                }
                _ => v.try_into().expect("8 bytes"),
            }
        };
        let mut out = Vec::with_capacity(head.len() + tail.len() + 5 + n * 16);
        out.extend_from_slice(head);
        let array_at = out.len();
        out.extend_from_slice(&[0; 4]);
        let mut v = values.chunks_exact(width);
        let mut keys = ArrayKeys::default();
        let mut j = 0;
        for &t in types {
            match t {
                DOUBLE => {
                    out.push(DOUBLE);
                    out.extend_from_slice(keys.with_nul());
                    if wide {
                        let x = self.wide_at(j)? as f64 / scale;
                        j += 1;
                        out.extend_from_slice(&x.to_le_bytes());
                    } else {
                        out.extend_from_slice(&double(v.next()?));
                    }
                }
                NULL => {
                    out.push(NULL);
                    out.extend_from_slice(keys.with_nul());
                }
                _ => {
                    out.push(DOUBLE);
                    out.extend_from_slice(keys.with_nul());
                    out.extend_from_slice(&marked(t)?.to_le_bytes());
                }
            }
            keys.advance();
        }
        out.push(0);
        let len = i32::try_from(out.len() - array_at).ok()?;
        out[array_at..array_at + 4].copy_from_slice(&len.to_le_bytes());
        out.extend_from_slice(tail);
        (i32_at(&out, 0)? == out.len()).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, Bson};

    fn bytes(d: &bson::Document) -> Vec<u8> {
        bson::to_vec(d).unwrap()
    }

    /// A compact document read in place: its array's key, its other
    /// fields, and its elements as the BSON holds them.
    #[test]
    fn a_view_gives_the_key_the_other_fields_and_the_elements() {
        let cases = [
            (
                vec![Some(0.25), None, Some(f64::NAN), Some(-3.07), Some(1e6)],
                false,
            ),
            (
                vec![Some(1.0 / 3.0), None, Some(f64::INFINITY), Some(0.5)],
                true,
            ),
        ];
        for (values, doubles) in cases {
            let bson: Vec<Bson> = values
                .iter()
                .map(|v| v.map_or(Bson::Null, Bson::Double))
                .collect();
            let d = doc! { "_id": bson::DateTime::from_millis(0), "_span": 7, "values": bson.clone(), "t": "x" };
            let b = bytes(&d);
            let packed = split(&b).expect("packable");
            let v = view(&packed).expect("a view");
            assert_eq!(v.key(), Some("values"));
            assert_eq!(v.len(), values.len());
            let outline = bson::Document::from_reader(&v.outline().unwrap()[..]).unwrap();
            assert_eq!(
                outline,
                doc! { "_id": bson::DateTime::from_millis(0), "_span": 7, "values": [], "t": "x" }
            );
            let mut elements = Vec::new();
            v.elements_into(&mut elements).unwrap();
            let back: Vec<Bson> = elements
                .iter()
                .map(|e| match *e {
                    Element::Null => Bson::Null,
                    Element::Units(k) => Bson::Double(k as f64 / POW10[v.places() as usize]),
                    Element::Double(x) => Bson::Double(x),
                })
                .collect();
            // NaN is not equal to itself: compare the bits.
            let bits = |a: &[Bson]| {
                a.iter()
                    .map(|b| b.as_f64().map(f64::to_bits))
                    .collect::<Vec<_>>()
            };
            assert_eq!(bits(&back), bits(&bson));
            assert_eq!(
                elements.iter().any(|e| matches!(e, Element::Units(_))),
                !doubles,
                "{values:?}"
            );
        }
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
    fn numbers_that_are_not_short_decimals_come_back_too() {
        let cases: [(&str, Vec<f64>, u8, u8); 6] = [
            ("two places", vec![0.25, -3.07, 12.5, 0.0], 2, 2),
            ("past 16 bits", vec![1234.56, -99999.99, 0.01], 2, 4),
            ("whole numbers", vec![3.0, -7.0, 40000.0], 0, 4),
            ("thirds", vec![1.0 / 3.0, 0.5], 0, 8),
            ("negative zero", vec![1.5, -0.0], 0, 8),
            ("past 32 bits", vec![1e10, 0.5], 0, 8),
        ];
        for (what, xs, places, width) in cases {
            let values: Vec<Bson> = xs
                .iter()
                .map(|&x| Bson::Double(x))
                .chain([Bson::Null])
                .collect();
            let b = bytes(&doc! { "_id": 1, "values": values });
            let packed = split(&b).expect("packable");
            let back = join(&packed).unwrap();
            assert_eq!(back, b, "{what}");
            // The form chosen: places and width after the types.
            let head_len = u32::from_le_bytes(packed[..4].try_into().unwrap()) as usize;
            let n = xs.len() + 1;
            let at = 8 + head_len + n;
            assert_eq!((packed[at], packed[at + 1]), (places, width), "{what}");
        }
    }

    #[test]
    fn nan_and_the_infinities_come_back_apart() {
        let values = vec![
            Bson::Double(f64::NAN),
            Bson::Double(0.25),
            Bson::Double(f64::INFINITY),
            Bson::Null,
            Bson::Double(f64::NEG_INFINITY),
            Bson::Double(-1.5),
        ];
        let b = bytes(&doc! { "_id": 1, "values": values });
        let packed = split(&b).expect("packable");
        assert_eq!(join(&packed).unwrap(), b);
        // The numbers stay two-byte decimals: the marks carry no number.
        let head_len = u32::from_le_bytes(packed[..4].try_into().unwrap()) as usize;
        let at = 8 + head_len;
        assert_eq!(
            &packed[at..at + 8],
            &[NAN, DOUBLE, POS_INF, NULL, NEG_INF, DOUBLE, 2, 2]
        );
        // A NaN of other bits is kept as it is, among the doubles.
        let odd = f64::from_bits(0xfff8_0000_0000_0001);
        let b = bytes(&doc! { "_id": 1, "values": [odd, 0.5] });
        let packed = split(&b).expect("packable");
        assert_eq!(join(&packed).unwrap(), b);
    }

    #[test]
    fn key_digits_add_up() {
        for n in [0usize, 1, 9, 10, 11, 99, 100, 101, 259_200, 1_000_001] {
            let want: usize = (0..n).map(|i| i.to_string().len()).sum();
            assert_eq!(key_digits(n), want, "{n}");
        }
    }

    #[test]
    fn step_documents_written_compact_are_the_bson_of_the_same_document() {
        let scale = 100.0;
        let (nan, inf) = (f64::NAN, f64::INFINITY);
        let cases: [(&str, Vec<Option<f64>>, u32); 8] = [
            (
                "two places",
                vec![Some(0.25), None, Some(-3.07), Some(12.5)],
                2,
            ),
            (
                "NaN and infinities",
                vec![
                    Some(nan),
                    Some(0.25),
                    Some(inf),
                    None,
                    Some(-inf),
                    Some(-1.5),
                ],
                2,
            ),
            ("only NaN", vec![Some(nan), Some(nan)], 2),
            (
                "past 16 bits",
                vec![Some(1234.56), Some(-99999.99), None],
                2,
            ),
            (
                "not rounded",
                vec![Some(0.25), Some(1.0 / 3.0), None, Some(2.0)],
                2,
            ),
            ("negative zero", vec![Some(1.5), Some(-0.0)], 2),
            ("fifteen places", vec![Some(0.123456789012345), None], 15),
            ("empty", vec![], 2),
        ];
        for (what, values, places) in cases {
            let mut w = StepWriter::new(values.len(), places);
            for v in &values {
                // The caller's decimal integer, as Stats::key gives it.
                w.push(*v, v.map(|x| (x * scale).round() as i64));
            }
            let d = w.finish(1_088_553_600_000, "values");
            let array: Vec<Bson> = values
                .iter()
                .map(|v| v.map_or(Bson::Null, Bson::Double))
                .collect();
            let want = bytes(&doc! {
                "_id": bson::DateTime::from_millis(1_088_553_600_000),
                "values": array,
            });
            assert_eq!(d.bson_len, want.len(), "{what}");
            assert_eq!(join(&d.packed).unwrap(), want, "{what}");
            assert_eq!(d.to_raw().as_bytes(), &want[..], "{what}");
        }
    }

    /// Integers moved in one go give the document that pushing them one
    /// by one gives: 16-bit, 32-bit and wide ones, those past the wide
    /// form's bound, after other elements or none, at every width.
    #[test]
    fn pushing_all_units_at_once_equals_pushing_each() {
        let sets: [&[i64]; 7] = [
            &[3, -7, 0, 12_000],
            &[3, -40_000, 7],
            &[12_345_678_901_234, -1, 5],
            &[1, WIDE_MAX as i64, -(WIDE_MAX as i64)],
            &[2, (WIDE_MAX + 1) as i64, -3],
            &[],
            &[i64::from(i32::MAX), i64::from(i32::MIN)],
        ];
        for places in [0u32, 2, 10, 19, 22] {
            for before in [&[][..], &[1i64, -2][..], &[70_000][..], &[1 << 40][..]] {
                for set in sets {
                    let n = before.len() + set.len() + 1;
                    let mut one = StepWriter::new(n, places);
                    let mut all = StepWriter::new(n, places);
                    for w in [&mut one, &mut all] {
                        before.iter().for_each(|&k| w.push_units(k));
                    }
                    set.iter().for_each(|&k| one.push_units(k));
                    let (lo, hi) = set
                        .iter()
                        .fold((i64::MAX, i64::MIN), |(l, h), &k| (l.min(k), h.max(k)));
                    all.push_all_units(set, lo, hi);
                    for w in [&mut one, &mut all] {
                        w.push(None, None);
                    }
                    let (a, b) = (one.finish(7, "values"), all.finish(7, "values"));
                    assert_eq!(a.packed, b.packed, "{set:?} after {before:?} at {places}");
                }
            }
        }
    }

    /// Decimals past 32 bits (a float32 flux of order 1e-6 kept to 19
    /// places) are kept as 8-byte integers below 2^50, and come
    /// back as the very doubles `k / 10^19`; a view gives those of up to
    /// 15 significant digits as integers, longer ones as their doubles.
    #[test]
    fn decimals_past_32_bits_are_kept_as_wide_integers() {
        let places = 19u32;
        let scale = 1e19;
        let ks: [i64; 6] = [
            12_345_678_901_234,
            -7,
            999_999_999_999_999,
            1_000_000_000_000_001,
            -((1i64 << 50) - 2),
            0,
        ];
        let mut w = StepWriter::new(ks.len() + 1, places);
        for &k in &ks {
            w.push_units(k);
        }
        w.push(None, None);
        let d = w.finish(0, "values");
        let mut array: Vec<Bson> = ks.iter().map(|&k| Bson::Double(k as f64 / scale)).collect();
        array.push(Bson::Null);
        let want = bytes(&doc! { "_id": bson::DateTime::from_millis(0), "values": array });
        assert_eq!(join(&d.packed).unwrap(), want);
        let v = view(&d.packed).unwrap();
        assert_eq!((v.places(), v.wide, v.width), (19, true, 8));
        let mut elements = Vec::new();
        v.elements_into(&mut elements).unwrap();
        let units = |k: i64| Element::Units(k);
        assert_eq!(
            elements,
            vec![
                units(ks[0]),
                units(ks[1]),
                units(ks[2]),
                Element::Double(ks[3] as f64 / scale),
                Element::Double(ks[4] as f64 / scale),
                units(0),
                Element::Null,
            ]
        );
        // Integers of 16 and 32 bits first, then a wide one: all move over.
        let mixed: [i64; 5] = [3, -40_000, 7, 12_345_678_901_234, -1];
        let mut w = StepWriter::new(mixed.len(), places);
        for &k in &mixed {
            w.push_units(k);
        }
        let d = w.finish(0, "values");
        let array: Vec<Bson> = mixed
            .iter()
            .map(|&k| Bson::Double(k as f64 / scale))
            .collect();
        let want = bytes(&doc! { "_id": bson::DateTime::from_millis(0), "values": array });
        assert_eq!(join(&d.packed).unwrap(), want);
        assert!(view(&d.packed).unwrap().wide);
        // From 2^50 on (past the statistics' keys): kept as doubles.
        let mut w = StepWriter::new(2, places);
        w.push_units(1);
        let big = 1i64 << 50;
        w.push_units(big);
        let v2 = w.finish(0, "values");
        let v2 = view(&v2.packed).unwrap();
        assert_eq!((v2.wide, v2.width), (false, 8));
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
