//! How values become colours, and the labels of the axes and the colour bar.

use plotters::style::RGBColor;

/// How values become colours.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    /// Viridis from `lo` (dark blue) to `hi` (yellow).
    Viridis { lo: f64, hi: f64 },
    /// Blue below zero, white at zero, red above, symmetric about zero.
    Diverging { max: f64 },
}

impl Scale {
    /// The scale for a time step's values: diverging when they change sign.
    /// Its ends are the 1st and 99th percentiles (symmetric about zero when
    /// diverging), so that a few extreme cells do not wash out the rest;
    /// values beyond take the end colours and the bar shows arrow ends.
    pub fn for_values(values: &[f64]) -> Scale {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Scale::Viridis { lo: 0.0, hi: 1.0 };
        }
        v.sort_by(f64::total_cmp);
        let (min, max) = (v[0], v[v.len() - 1]);
        let last = (v.len() - 1) as f64;
        let (p_lo, p_hi) = (
            v[(last * 0.01).floor() as usize],
            v[(last * 0.99).ceil() as usize],
        );
        if min < 0.0 && max > 0.0 {
            let m = p_lo.abs().max(p_hi.abs());
            Scale::Diverging {
                max: if m > 0.0 { m } else { min.abs().max(max) },
            }
        } else if p_lo < p_hi {
            Scale::Viridis { lo: p_lo, hi: p_hi }
        } else if min < max {
            Scale::Viridis { lo: min, hi: max }
        } else {
            // One value only: a band around it, so it gets a colour and a label.
            let d = if min == 0.0 { 1.0 } else { min.abs() * 0.1 };
            Scale::Viridis {
                lo: min - d,
                hi: min + d,
            }
        }
    }

    pub fn bounds(self) -> (f64, f64) {
        match self {
            Scale::Viridis { lo, hi } => (lo, hi),
            Scale::Diverging { max } => (-max, max),
        }
    }

    pub fn colour(self, v: f64) -> RGBColor {
        let (lo, hi) = self.bounds();
        let t = ((v - lo) / (hi - lo)).clamp(0.0, 1.0);
        let c = match self {
            Scale::Viridis { .. } => colorous::VIRIDIS.eval_continuous(t),
            // colorous' RdBu runs red to blue; negative fluxes (uptake) are blue.
            Scale::Diverging { .. } => colorous::RED_BLUE.eval_continuous(1.0 - t),
        };
        RGBColor(c.r, c.g, c.b)
    }
}

/// A tick label for `v` on an axis spanning `span`: the digits that tell
/// ticks apart and no trailing zeros (`-2.5`, `388`, `0.04`), exponent form
/// for very large or very small numbers (`2.5e-8`).
pub fn tick_label(v: f64, span: f64) -> String {
    let span = if span > 0.0 { span } else { v.abs().max(1.0) };
    let mag = v.abs().max(span);
    if v != 0.0 && !(1e-3..1e6).contains(&mag) {
        let digits = ((mag / span).log10().ceil().max(0.0) as usize + 2).min(6);
        let s = format!("{v:.digits$e}");
        let (m, e) = s.split_once('e').expect("exponent form");
        return format!("{}e{e}", trim_zeros(m));
    }
    let decimals = (-(span / 1000.0).log10().floor()).clamp(0.0, 12.0) as usize;
    let s = trim_zeros(&format!("{v:.decimals$}")).to_string();
    // No "-0" for a tick at zero.
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

/// `2.500` → `2.5`, `388.0` → `388`.
fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// A longitude (`120°W`) or latitude (`35°N`) label.
pub fn degrees(v: f64, pos: char, neg: char) -> String {
    let a = v.abs();
    let n = if (a - a.round()).abs() < 1e-9 {
        format!("{}", a.round())
    } else {
        format!("{a:.1}")
    };
    match v {
        v if v.abs() < 1e-9 => "0°".into(),
        v if v > 0.0 => format!("{n}°{pos}"),
        _ => format!("{n}°{neg}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_changes_pick_a_diverging_scale_centred_on_zero() {
        let s = Scale::for_values(&[-2.0, 5.0, 1.0]);
        assert_eq!(s, Scale::Diverging { max: 5.0 });
        assert_eq!(s.bounds(), (-5.0, 5.0));
        // Zero is the light middle of RdBu; negatives blue, positives red.
        let RGBColor(r, g, b) = s.colour(0.0);
        assert!(r > 230 && g > 230 && b > 230, "{r} {g} {b}");
        let RGBColor(r, _, b) = s.colour(-4.0);
        assert!(b > r);
        let RGBColor(r, _, b) = s.colour(4.0);
        assert!(r > b);

        let v = Scale::for_values(&[3.0, 1.0, 2.0]);
        assert_eq!(v, Scale::Viridis { lo: 1.0, hi: 3.0 });
        // Viridis ends: dark purple and yellow.
        assert_eq!(v.colour(1.0), RGBColor(0x44, 0x01, 0x54));
        let RGBColor(r, g, b) = v.colour(3.0);
        assert!(r > 240 && g > 220 && b < 60, "{r} {g} {b}");
        // A single value still gets a non-empty scale.
        let (lo, hi) = Scale::for_values(&[2.0, 2.0]).bounds();
        assert!(lo < 2.0 && hi > 2.0);
    }

    #[test]
    fn a_few_extreme_values_do_not_set_the_scale() {
        let mut v: Vec<f64> = (0..1000).map(|i| f64::from(i % 10) - 4.0).collect();
        v[17] = -400.0;
        v[18] = 50.0;
        assert_eq!(Scale::for_values(&v), Scale::Diverging { max: 5.0 });
        let v: Vec<f64> = (1..=1000).map(f64::from).chain([1e6]).collect();
        let Scale::Viridis { lo, hi } = Scale::for_values(&v) else {
            panic!("positive values take viridis")
        };
        assert!(
            (1.0..=20.0).contains(&lo) && (980.0..=1000.0).contains(&hi),
            "{lo} {hi}"
        );
    }

    #[test]
    fn labels() {
        assert_eq!(degrees(-120.0, 'E', 'W'), "120°W");
        assert_eq!(degrees(35.5, 'N', 'S'), "35.5°N");
        assert_eq!(degrees(0.0, 'E', 'W'), "0°");
        assert_eq!(tick_label(-2.5, 10.0), "-2.5");
        assert_eq!(tick_label(4.0, 10.0), "4");
        assert_eq!(tick_label(0.0, 100.0), "0");
        assert_eq!(tick_label(-0.00001, 0.2), "0");
        assert_eq!(tick_label(0.1 + 0.2, 1.0), "0.3");
        assert_eq!(tick_label(2.5e-8, 1e-7), "2.5e-8");
        assert_eq!(tick_label(3e-8, 1e-7), "3e-8");
        assert_eq!(tick_label(1.25e7, 2e7), "1.25e7");
        assert_eq!(tick_label(402.5, 10.0), "402.5");
    }
}
