//! Micro-measure of the rounding of stored values: `round_to` against the
//! former multiply-and-round rule and against formatting and parsing every
//! value, on 10 million flux-like values at 2 decimals; then the same
//! values scaled to order 1e-6 at 22 places, the precision CFGrid settles
//! for float64 files, where formatting was the only rule before.
//!
//!     cargo run --release --example round_bench

use std::hint::black_box;
use std::time::Instant;

use fluxpy::model::round_to;

fn main() {
    let n = 10_000_000usize;
    let mut s = 0x2004u64;
    let values: Vec<f64> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 20.0
        })
        .collect();
    let time = |label: &str, count: usize, f: &dyn Fn(f64) -> f64| {
        let t = Instant::now();
        let mut acc = 0.0;
        for &x in &values[..count] {
            acc += f(black_box(x));
        }
        black_box(acc);
        let secs = t.elapsed().as_secs_f64();
        println!("{label:<28} {:>14.0} values/s", count as f64 / secs);
    };
    time("round_to (exact)", n, &|x| round_to(x, 2));
    time("multiply and round (former)", n, &|x| {
        let r = (x * 100.0).round() / 100.0;
        if r == 0.0 {
            0.0
        } else {
            r
        }
    });
    time("format and parse", n / 10, &|x| {
        format!("{x:.2}").parse::<f64>().unwrap()
    });
    time("round_to, 1e-6 at 22 places", n, &|x| {
        round_to(x * 1e-7, 22)
    });
    time("format and parse, 22 places", n / 10, &|x| {
        format!("{:.22}", x * 1e-7).parse::<f64>().unwrap()
    });
}
