//! The HDF5 object walk: any tree of groups, datasets, hard, soft and
//! external links, external raw storage and virtual datasets, built with
//! the HDF5 library from the input bytes, then read as `manage load` reads
//! it, by a named path and by the default choice. Whatever the tree, a read
//! must end in a matrix or an error, never a panic, a hang or a value from
//! another file: every file the tree can point to holds only the value
//! `OUTSIDE`, which no dataset of the input file holds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    manage_fuzz::contain_parser_panics();
    manage_fuzz::walk_object_tree(data);
});
