//! Unit conversion with UDUNITS-2, the units library of the CF conventions
//! (Debian `libudunits2-dev`), through a thin safe wrapper of the five C
//! calls it needs: read the unit database, parse two units, check that
//! they are convertible and convert.
//!
//! A conversion is kept as the affine map UDUNITS-2 gives
//! (`y = scale·x + offset`; `offset` is 0 but for temperatures and the
//! like): the same converter applied to 0 and 1. Logarithmic units, whose
//! conversion is not affine, are refused.

use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::{Mutex, OnceLock};

use bson::{doc, Document};

#[allow(non_camel_case_types)]
type ut_system = c_void;
#[allow(non_camel_case_types)]
type ut_unit = c_void;
#[allow(non_camel_case_types)]
type cv_converter = c_void;
/// `int (*)(const char* fmt, va_list args)`: only passed through.
type Handler = unsafe extern "C" fn(*const c_char, *mut c_void) -> c_int;

/// `UT_UTF8` of `ut_encoding`.
const UT_UTF8: c_int = 2;

#[link(name = "udunits2")]
extern "C" {
    fn ut_read_xml(path: *const c_char) -> *mut ut_system;
    fn ut_parse(system: *const ut_system, string: *const c_char, encoding: c_int) -> *mut ut_unit;
    fn ut_are_convertible(a: *const ut_unit, b: *const ut_unit) -> c_int;
    fn ut_get_converter(from: *mut ut_unit, to: *mut ut_unit) -> *mut cv_converter;
    fn cv_convert_double(c: *const cv_converter, value: f64) -> f64;
    fn cv_free(c: *mut cv_converter);
    fn ut_free(u: *mut ut_unit);
    fn ut_set_error_message_handler(h: Handler) -> Handler;
    fn ut_ignore(fmt: *const c_char, args: *mut c_void) -> c_int;
}

/// The unit database, read once. UDUNITS-2 is not thread-safe: every call
/// goes through this lock.
struct System(*mut ut_system);
// SAFETY: the pointer is only used while the mutex below is held.
unsafe impl Send for System {}

fn system() -> Result<&'static Mutex<System>, String> {
    static SYSTEM: OnceLock<Result<Mutex<System>, String>> = OnceLock::new();
    SYSTEM
        .get_or_init(|| {
            // SAFETY: plain C calls; a null path reads the installed
            // database (or the one $UDUNITS2_XML_PATH names).
            let s = unsafe {
                ut_set_error_message_handler(ut_ignore);
                ut_read_xml(std::ptr::null())
            };
            if s.is_null() {
                Err("the UDUNITS-2 unit database could not be read (install udunits-data, or set UDUNITS2_XML_PATH)".into())
            } else {
                Ok(Mutex::new(System(s)))
            }
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// A parsed unit, freed when dropped.
struct Unit(*mut ut_unit);

impl Drop for Unit {
    fn drop(&mut self) {
        // SAFETY: a unit ut_parse returned, freed once.
        unsafe { ut_free(self.0) }
    }
}

fn parse(system: &System, unit: &str) -> Result<Unit, String> {
    let c = CString::new(unit.trim()).map_err(|_| format!("unit {unit:?} has a NUL character"))?;
    // SAFETY: the system is live (lock held), the string NUL-terminated.
    let u = unsafe { ut_parse(system.0, c.as_ptr(), UT_UTF8) };
    if u.is_null() {
        Err(format!("{unit:?} is not a unit UDUNITS-2 knows"))
    } else {
        Ok(Unit(u))
    }
}

/// Values in `from` converted to `to`: `scale·x + offset`.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversion {
    pub from: String,
    pub to: String,
    pub scale: f64,
    pub offset: f64,
}

impl Conversion {
    /// The conversion from `from` to `to`; refused, naming both, when they
    /// are not convertible (or either is not a unit).
    pub fn new(from: &str, to: &str) -> Result<Self, String> {
        Self::between(from, to).map_err(|e| format!("cannot convert from {from:?} to {to:?}: {e}"))
    }

    fn between(from: &str, to: &str) -> Result<Self, String> {
        let lock = system()?.lock().unwrap_or_else(|e| e.into_inner());
        let a = parse(&lock, from)?;
        let b = parse(&lock, to)?;
        // SAFETY: two live units of the same system; the converter is
        // freed before the units.
        let (scale, offset, linear) = unsafe {
            if ut_are_convertible(a.0, b.0) == 0 {
                return Err("they are not the same kind of quantity (UDUNITS-2)".into());
            }
            let cv = ut_get_converter(a.0, b.0);
            if cv.is_null() {
                return Err("UDUNITS-2 has no converter between them".into());
            }
            let y0 = cv_convert_double(cv, 0.0);
            let y1 = cv_convert_double(cv, 1.0);
            let y10 = cv_convert_double(cv, 10.0);
            cv_free(cv);
            let (scale, offset) = (y1 - y0, y0);
            let linear = (scale * 10.0 + offset - y10).abs() <= 1e-12 * y10.abs().max(1.0);
            (scale, offset, linear)
        };
        if !linear || !scale.is_finite() || !offset.is_finite() || scale == 0.0 {
            return Err("the conversion is not a factor and an offset (logarithmic units are not supported)".into());
        }
        Ok(Conversion {
            from: from.trim().to_string(),
            to: to.trim().to_string(),
            scale,
            offset,
        })
    }

    #[inline]
    pub fn apply(&self, x: f64) -> f64 {
        if self.offset == 0.0 {
            x * self.scale
        } else {
            x * self.scale + self.offset
        }
    }

    /// As the metadata records it (`units_conversion`).
    pub fn document(&self) -> Document {
        doc! {
            "from": &self.from,
            "to": &self.to,
            "scale": self.scale,
            "offset": self.offset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_compound_units_convert() {
        let c = Conversion::new("mol m-2 s-1", "umol m-2 s-1").unwrap();
        assert!((c.scale / 1e6 - 1.0).abs() < 1e-15, "{}", c.scale);
        assert_eq!(c.offset, 0.0);
        let g = Conversion::new("kg m-2 s-1", "g m-2 day-1").unwrap();
        assert!((g.scale / 86_400_000.0 - 1.0).abs() < 1e-15, "{}", g.scale);
        let t = Conversion::new("degC", "K").unwrap();
        assert!((t.apply(0.0) - 273.15).abs() < 1e-12);
    }

    #[test]
    fn units_of_another_kind_or_unknown_are_refused_naming_both() {
        let e = Conversion::new("mol m-2 s-1", "kg").unwrap_err();
        assert!(e.contains("\"mol m-2 s-1\"") && e.contains("\"kg\""), "{e}");
        let e = Conversion::new("furlongs per bogus", "m").unwrap_err();
        assert!(e.contains("furlongs per bogus"), "{e}");
    }
}
