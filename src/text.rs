//! The wording of what `manage` prints, shared by the commands and the
//! audit.

/// `1 document`, `2 documents`: a count and its noun, in the right number.
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
