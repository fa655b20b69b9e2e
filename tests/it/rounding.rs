//! Stored values are rounded as the old tool's `float('%.Nf' % x)` rounded
//! them: correctly from the exact binary value, halves to even. The
//! reference here is `format!("{:.N}", x)` parsed back (Rust's formatting is
//! exact and rounds halves to even), checked in turn against Python's own
//! `'%.Nf' % x` on the adversarial values.

use std::process::{Command, Stdio};

use fluxpy::model::round_to;

/// Every precision a model uses (values 1, 2 and 4 decimals, coordinates 5):
/// each value is checked at all of them.
const MODEL_PRECISIONS: &[u32] = &[1, 2, 4, 5];
/// Others a config may ask for: each value is checked at one of them in turn.
const OTHER_PRECISIONS: &[u32] = &[0, 3, 6, 8, 10, 12, 15, 17, 20, 22, 25];

fn reference(x: f64, n: u32) -> f64 {
    let v: f64 = format!("{:.*}", n as usize, x).parse().unwrap();
    if v == 0.0 {
        0.0
    } else {
        v
    }
}

/// A small deterministic generator (SplitMix64), so a failure can be
/// reproduced.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn next_up(x: f64) -> f64 {
    if x.is_nan() || x == f64::INFINITY {
        return x;
    }
    if x == 0.0 {
        return f64::from_bits(1);
    }
    let b = x.to_bits();
    f64::from_bits(if x > 0.0 { b + 1 } else { b - 1 })
}

fn next_down(x: f64) -> f64 {
    -next_up(-x)
}

/// Values where rounding is hard: decimal ties written in text (2.675,
/// 4.35), exact binary ties (0.125), their neighbours one ulp away, large
/// magnitudes, subnormals and zeros, each with both signs.
fn adversarial(rng: &mut Rng) -> Vec<f64> {
    let mut v = vec![
        0.0,
        -0.0,
        2.675,
        4.35,
        0.125,
        0.375,
        1.005,
        0.5,
        1.5,
        2.5,
        f64::MIN_POSITIVE,
        f64::from_bits(1),
        f64::from_bits(0x000f_ffff_ffff_ffff),
        f64::MAX,
        1e15 + 0.125,
        4503599627370495.5,
        9007199254740993.0,
        1e22,
        1e300,
        123456789.125,
        0.0049999999999999,
        0.005,
        -0.001,
        -0.004,
    ];
    // Halves at 1 to 6 decimals: k + 0.5 at the last place, in text.
    for n in 1..=6u32 {
        for _ in 0..2000 {
            let int = rng.next() % 100_000;
            let digits = rng.next() % 10u64.pow(n - 1);
            let text = format!("{int}.{digits:0w$}5", w = (n - 1) as usize);
            v.push(text.parse().unwrap());
        }
    }
    // Exact binary ties: odd multiples of 2^-k.
    for k in 1..=20 {
        for m in (1..200u64).step_by(2) {
            v.push(m as f64 / (1u64 << k) as f64);
        }
    }
    let mut out = Vec::with_capacity(v.len() * 6);
    for x in v {
        for y in [x, next_up(x), next_down(x)] {
            if !y.is_finite() {
                continue;
            }
            out.push(y);
            out.push(-y);
        }
    }
    out
}

#[test]
fn round_to_is_format_and_parse_on_a_million_values() {
    let mut rng = Rng(0x5EED_2004);
    let mut values = adversarial(&mut rng);
    while values.len() < 1_000_000 {
        let r = rng.next();
        let x = match r % 4 {
            // Plain data: fluxes, coordinates, XCO2 in ppm.
            0 => (rng.unit() - 0.5) * 800.0,
            // Any magnitude.
            1 => (rng.unit() - 0.5) * 10f64.powi((rng.next() % 40) as i32 - 20),
            // Any bit pattern, which covers huge values and subnormals.
            2 => f64::from_bits(rng.next()),
            // Close to a tie at 1–5 decimals.
            _ => {
                let n = 1 + (rng.next() % 5) as i32;
                let tie = ((rng.next() % 2_000_000) as f64 - 1e6 + 0.5) / 10f64.powi(n);
                let mut y = tie;
                for _ in 0..rng.next() % 4 {
                    y = if r & 16 == 0 {
                        next_up(y)
                    } else {
                        next_down(y)
                    };
                }
                y
            }
        };
        if x.is_finite() {
            values.push(x);
        }
    }
    let mut checked = 0u64;
    for (i, &x) in values.iter().enumerate() {
        let other = OTHER_PRECISIONS[i % OTHER_PRECISIONS.len()];
        for &n in MODEL_PRECISIONS.iter().chain([&other]) {
            let want = reference(x, n);
            let got = round_to(x, n);
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "round_to({x:e} = {x:.30}, {n}) = {got:e}, want {want:e}"
            );
            checked += 1;
        }
    }
    assert!(values.len() >= 1_000_000);
    eprintln!("{checked} roundings checked");
}

#[test]
fn no_negative_zero_is_stored() {
    for x in [-0.0, -0.001, -0.004, -1e-300, -f64::from_bits(1)] {
        for n in [0, 1, 2] {
            assert_eq!(round_to(x, n).to_bits(), 0.0f64.to_bits(), "{x:e} at {n}");
        }
    }
}

/// The reference against Python's `'%.Nf' % x`, the old tool's own rule,
/// on the adversarial values (about 100,000 of them at 1, 2, 4 and 5
/// decimals).
#[test]
#[cfg_attr(
    not(feature = "python-tests"),
    ignore = "needs Python (feature python-tests)"
)]
fn reference_agrees_with_python_percent_format() {
    let mut rng = Rng(7);
    let values = adversarial(&mut rng);
    let mut child = Command::new(crate::common::python_with(&[]))
        .args([
            "-c",
            "import sys\nfor l in sys.stdin:\n  b, n = l.split()\n  x = float.fromhex(b)\n  print(repr(float('%.*f' % (int(n), x))))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    let mut input = String::new();
    let mut cases = vec![];
    for &x in &values {
        for n in [1u32, 2, 4, 5] {
            input.push_str(&format!("{} {n}\n", hex(x)));
            cases.push((x, n));
        }
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        // A Python that fails stops reading; its error is reported below.
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), cases.len());
    for ((x, n), line) in cases.iter().zip(lines) {
        let py: f64 = line.parse().unwrap();
        let py = if py == 0.0 { 0.0 } else { py };
        assert_eq!(
            reference(*x, *n).to_bits(),
            py.to_bits(),
            "'%.{n}f' % {x:e}: Python gives {line}"
        );
        assert_eq!(
            round_to(*x, *n).to_bits(),
            py.to_bits(),
            "round_to({x:e}, {n}): Python gives {line}"
        );
    }
}

/// `float.hex` form, so Python reads back exactly the same double.
fn hex(x: f64) -> String {
    if x == 0.0 {
        return if x.is_sign_negative() {
            "-0x0p+0"
        } else {
            "0x0p+0"
        }
        .into();
    }
    let b = x.to_bits();
    let sign = if b >> 63 == 1 { "-" } else { "" };
    let exp = ((b >> 52) & 0x7ff) as i64;
    let man = b & 0x000f_ffff_ffff_ffff;
    if exp == 0 {
        format!("{sign}0x0.{man:013x}p-1022")
    } else {
        format!("{sign}0x1.{man:013x}p{}", exp - 1023)
    }
}

/// The high precisions CFGrid settles from float64 files (17 to 30
/// places): values whose scaled product lies between 2^52 and 2^54, exact
/// binary ties there (odd multiples of 2^-(N+1)), and the magnitudes around
/// 10^(16-N), where N places start to keep 17 significant digits.
#[test]
fn round_to_is_format_and_parse_at_high_precisions() {
    let mut rng = Rng(0x0022_2004);
    let mut checked = 0u64;
    for n in 14..=30u32 {
        let scale = 10f64.powi(n as i32);
        let mut values = vec![];
        for _ in 0..20_000 {
            // m · 10^-N for m in [2^45, 2^55), spread evenly in magnitude.
            let m = 2f64.powf(45.0 + 10.0 * rng.unit());
            values.push(m / scale);
            // Odd multiples of 2^-(N+1) whose product is near 2^52–2^53.
            let odd = ((rng.next() % 400) | 1) as f64;
            values.push(odd * 2f64.powi(-(n as i32) - 1) * 2f64.powi((rng.next() % 8) as i32));
        }
        let edge = 10f64.powi(16 - n as i32);
        let mut x = edge;
        for _ in 0..200 {
            values.push(x);
            x = next_down(x);
        }
        x = edge;
        for _ in 0..200 {
            values.push(x);
            x = next_up(x);
        }
        for &v in &values {
            for x in [v, -v] {
                let want = reference(x, n);
                let got = round_to(x, n);
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "round_to({x:e} = {x:.40}, {n}) = {got:e}, want {want:e}"
                );
                checked += 1;
            }
        }
    }
    eprintln!("{checked} roundings checked");
}
