//! Read nothing but the file given: HDF5 can make a dataset's values come
//! from elsewhere, through an external link (a link naming an object in
//! another HDF5 file), external raw storage (the values are bytes of any
//! other file, `/etc/passwd` as well as any) or a virtual dataset whose
//! sources are datasets of other files. Each is refused by name here,
//! before the object it leads to is opened or read.
//!
//! Links are followed by this module alone: a dataset path is resolved one
//! component at a time, hard links taken as they are, soft links by reading
//! their target, and the library is then handed a path of hard links only.
//! As a second wall, the external link class is removed from the library
//! for the whole process, so no traversal (ours or the library's own) can
//! ever open another file through a link.

use ::hdf5::{Dataset, File, Group, LinkType};
use std::ffi::CString;

/// Soft links followed in one path before it is called a loop.
const MAX_SOFT_LINKS: usize = 32;

/// Why a path cannot be followed.
pub enum Refusal {
    /// A component that is not there (the caller lists what is).
    Missing,
    /// A message about the variable, in the user's words.
    Refused(String),
}

/// Remove the external link class from the library, once for the process:
/// a traversal of an external link then fails instead of opening the file it
/// names. `manage` never needs one.
pub fn forbid_external_links() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use hdf5_sys::h5l::{H5L_type_t, H5Lunregister};
        // SAFETY: a plain library call on a built-in class id.
        ::hdf5::sync::sync(|| unsafe { H5Lunregister(H5L_type_t::H5L_TYPE_EXTERNAL) });
    });
}

/// The kind of the link `name` in `g`, without following it.
pub fn link_type(g: &Group, name: &str) -> Option<LinkType> {
    let mut found = None;
    // The iteration reads each link's own record only; it opens nothing.
    g.iter_visit_default(|n, info| {
        if n == name {
            found = Some(info.link_type);
        }
        Ok(())
    })
    .ok()?;
    found
}

/// Resolve `var` (a path inside `file`) to a path made of hard links only,
/// following soft links by their target and refusing external links.
pub fn resolve(file: &File, var: &str) -> Result<String, Refusal> {
    let mut todo: Vec<String> = components(var).into_iter().rev().collect();
    let mut done: Vec<String> = vec![];
    let mut soft = 0;
    while let Some(name) = todo.pop() {
        let here = format!("/{}", done.join("/"));
        let group = file.group(&here).map_err(|_| Refusal::Missing)?;
        match link_type(&group, &name) {
            None => return Err(Refusal::Missing),
            Some(LinkType::Hard) => done.push(name),
            Some(LinkType::Soft) => {
                soft += 1;
                if soft > MAX_SOFT_LINKS {
                    return Err(Refusal::Refused(format!(
                        "is reached through more than {MAX_SOFT_LINKS} soft links (a loop?)"
                    )));
                }
                let target = link_value(&group, &name).ok_or_else(|| {
                    Refusal::Refused(format!(
                        "is reached through a soft link ('{}') that cannot be read",
                        shown(&name)
                    ))
                })?;
                if target.starts_with('/') {
                    done.clear();
                }
                todo.extend(components(&target).into_iter().rev());
            }
            Some(LinkType::External) => {
                let at = if done.is_empty() {
                    name.clone()
                } else {
                    format!("{}/{name}", done.join("/"))
                };
                let what = if todo.is_empty() && soft == 0 {
                    "is an external link to another file".to_string()
                } else {
                    format!(
                        "is reached through '{}', an external link to another file",
                        shown(&at)
                    )
                };
                return Err(Refusal::Refused(format!(
                    "{what}; manage reads only the file it is given"
                )));
            }
        }
    }
    if done.is_empty() {
        return Err(Refusal::Missing);
    }
    Ok(format!("/{}", done.join("/")))
}

/// Refuse a dataset whose values are not stored in this file: external raw
/// storage, or a virtual dataset with a source in another file. A virtual
/// dataset whose sources are all in this file is allowed when each source
/// is an ordinary stored dataset; their resolved paths are returned so that
/// the caller can check their storage. Nothing here reads the values.
pub fn check_values_are_here(file: &File, d: &Dataset) -> Result<Vec<Dataset>, String> {
    let dcpl = d
        .dcpl()
        .map_err(|e| format!("has creation properties that cannot be read: {e}"))?;
    if let Some(ext) = dcpl
        .get_external()
        .map_err(|e| format!("has external storage that cannot be read: {e}"))?
        .first()
    {
        return Err(format!(
            "keeps its values outside the file, in '{}' (HDF5 external storage); manage reads only the file it is given",
            shown(&ext.name)
        ));
    }
    if !matches!(
        dcpl.layout(),
        ::hdf5::plist::dataset_create::Layout::Virtual
    ) {
        return Ok(vec![]);
    }
    let map = virtual_sources(&dcpl).ok_or(
        "is a virtual dataset whose sources the HDF5 library cannot list (a mapping it does not read, or a damaged file)",
    )?;
    if map.is_empty() {
        return Err("is a virtual dataset with no source".into());
    }
    let mut sources = vec![];
    for (src_file, src_dataset) in &map {
        if src_file != "." {
            return Err(format!(
                "is a virtual dataset with values from another file ('{}'); manage reads only the file it is given",
                shown(src_file.trim_start_matches(NOT_UTF8))
            ));
        }
        if let Some(name) = src_dataset.strip_prefix(NOT_UTF8) {
            return Err(format!(
                "is a virtual dataset whose source dataset's name is not UTF-8 ('{name}'); manage cannot name it to read it"
            ));
        }
        let what = |msg: &str| {
            format!(
                "is a virtual dataset whose source '{}' {msg}",
                shown(src_dataset)
            )
        };
        let at = match resolve(file, src_dataset) {
            Ok(at) => at,
            Err(Refusal::Missing) => return Err(what("is not in the file")),
            Err(Refusal::Refused(msg)) => return Err(what(&msg)),
        };
        let src = file
            .dataset(&at)
            .map_err(|e| what(&format!("cannot be opened: {e}")))?;
        let src_dcpl = src
            .dcpl()
            .map_err(|e| what(&format!("cannot be read: {e}")))?;
        if matches!(
            src_dcpl.layout(),
            ::hdf5::plist::dataset_create::Layout::Virtual
        ) {
            return Err(what(
                "is itself virtual; manage reads one level of virtual dataset",
            ));
        }
        if !src_dcpl.get_external().unwrap_or_default().is_empty() {
            return Err(what(
                "keeps its values outside the file (HDF5 external storage); manage reads only the file it is given",
            ));
        }
        sources.push(src);
    }
    Ok(sources)
}

/// Objects a walk over a file's groups has reached, by address: a hard
/// link can lead back to a group above it (HDF5 allows it), and a walk that
/// entered it again would never end.
pub struct Visited(std::collections::HashSet<String>);

impl Visited {
    /// A walk from the root group of `file`, which counts as reached.
    pub fn from_root(file: &File) -> Self {
        let mut seen = std::collections::HashSet::new();
        if let Ok(info) = file.loc_info() {
            seen.insert(format!("{:?}", info.token));
        }
        Self(seen)
    }

    /// Whether the object linked as `name` in `g` is reached for the first
    /// time (`false` also when its address cannot be read).
    pub fn first(&mut self, g: &Group, name: &str) -> bool {
        g.loc_info_by_name(name)
            .is_ok_and(|info| self.0.insert(format!("{:?}", info.token)))
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Objects visited by [`check_every_dataset`] before the file is called
/// too large to check (a NetCDF-4 file holds tens of variables).
const MAX_OBJECTS: usize = 100_000;

/// Check every dataset of `file` as [`check_values_are_here`] does, walking
/// its groups through hard links (each object once, however many links
/// lead to it), and refuse an external link anywhere. For readers that open
/// variables by themselves (libnetcdf reads a NetCDF-4 file's coordinates
/// as well as its data, by its own walk): nothing any of them can reach
/// comes from another file. `Err` holds the object's path and why.
pub fn check_every_dataset(file: &File) -> Result<(), (String, String)> {
    let mut seen = Visited::from_root(file);
    let mut groups = vec![String::new()];
    while let Some(at) = groups.pop() {
        let group = file
            .group(if at.is_empty() { "/" } else { &at })
            .map_err(|e| (at.clone(), format!("cannot be opened: {e}")))?;
        let mut links = vec![];
        group
            .iter_visit_default(|n, info| {
                links.push((n.to_string(), info.link_type));
                Ok(())
            })
            .map_err(|e| (at.clone(), format!("cannot be listed: {e}")))?;
        for (name, kind) in links {
            let here = format!("{at}/{name}");
            match kind {
                // Its target, if any, is reached through its hard links.
                LinkType::Soft => continue,
                LinkType::External => return Err((
                    here,
                    "is an external link to another file; manage reads only the file it is given"
                        .into(),
                )),
                LinkType::Hard => {}
            }
            let kind = group
                .loc_type_by_name(&name)
                .map_err(|e| (here.clone(), format!("cannot be read: {e}")))?;
            if !seen.first(&group, &name) {
                if kind == ::hdf5::LocationType::Group {
                    // libnetcdf walks groups without looking for loops.
                    return Err((
                        here,
                        "is a second link to a group already in the file (a loop of groups); a NetCDF-4 file's groups form a tree".into(),
                    ));
                }
                continue;
            }
            if seen.len() > MAX_OBJECTS {
                return Err((
                    here,
                    format!("is one object too many: the file holds more than {MAX_OBJECTS}, too many to check"),
                ));
            }
            match kind {
                ::hdf5::LocationType::Group => groups.push(here),
                ::hdf5::LocationType::Dataset => {
                    let d = file
                        .dataset(&here)
                        .map_err(|e| (here.clone(), format!("cannot be opened: {e}")))?;
                    check_values_are_here(file, &d).map_err(|msg| (here.clone(), msg))?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Leads a name from [`virtual_sources`] that is not UTF-8 (a NUL, which
/// no HDF5 name holds).
const NOT_UTF8: &str = "\0";

/// The (file, dataset) of each source of a virtual dataset, read with the
/// library's own calls (the crate's mapping reader also parses selections,
/// and refuses some that are valid).
fn virtual_sources(dcpl: &::hdf5::plist::DatasetCreate) -> Option<Vec<(String, String)>> {
    use hdf5_sys::h5p::{H5Pget_virtual_count, H5Pget_virtual_dsetname, H5Pget_virtual_filename};
    let id = dcpl.id();
    let text = |get: &dyn Fn(*mut std::ffi::c_char, usize) -> isize| -> Option<String> {
        let n = usize::try_from(get(std::ptr::null_mut(), 0)).ok()?;
        if n > 1 << 16 {
            return None;
        }
        let mut buf = vec![0u8; n + 1];
        if get(buf.as_mut_ptr().cast(), buf.len()) < 0 {
            return None;
        }
        buf.truncate(n);
        // A name that is not UTF-8 is valid HDF5: kept, its other bytes escaped.
        Some(String::from_utf8(buf).unwrap_or_else(|e| {
            let b = e.into_bytes();
            format!("{NOT_UTF8}{}", b.escape_ascii())
        }))
    };
    ::hdf5::sync::sync(|| {
        let mut count = 0usize;
        // SAFETY: the property list is open; `count` is written once.
        if unsafe { H5Pget_virtual_count(id, &mut count) } < 0 || count > 1 << 16 {
            return None;
        }
        (0..count)
            .map(|i| {
                // SAFETY: each buffer is as long as the size passed with it.
                let file = text(&|p, n| unsafe { H5Pget_virtual_filename(id, i, p, n) })?;
                let set = text(&|p, n| unsafe { H5Pget_virtual_dsetname(id, i, p, n) })?;
                Some((file, set))
            })
            .collect()
    })
}

/// The path components of `var`, without empty ones and `.`.
fn components(var: &str) -> Vec<String> {
    var.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_string)
        .collect()
}

/// The target of the soft link `name` in `g`.
fn link_value(g: &Group, name: &str) -> Option<String> {
    use hdf5_sys::h5l::H5Lget_val;
    use hdf5_sys::h5p::H5P_DEFAULT;
    let c = CString::new(name).ok()?;
    let mut buf = vec![0u8; 1 << 16];
    // SAFETY: `buf` is as long as the size passed; the library writes at
    // most that many bytes. The link is not followed, only read.
    let rc = ::hdf5::sync::sync(|| unsafe {
        H5Lget_val(
            g.id(),
            c.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            H5P_DEFAULT,
        )
    });
    if rc < 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0)?;
    String::from_utf8(buf[..end].to_vec()).ok()
}

/// A name from the file, with control characters escaped so that it stays
/// on the error's one line.
pub fn shown(s: &str) -> String {
    crate::error::shown_text(s)
}

/// Whether the object `id` (a file, group or dataset) has an attribute
/// `name`. The crate's `attr_names` converts each attribute's info as it
/// lists them, and aborts the process on a damaged character-set field
/// (found by fuzzing); the library's own existence check reads no more than
/// the name.
pub fn has_attr(id: hdf5_sys::h5i::hid_t, name: &str) -> bool {
    let Ok(c) = CString::new(name) else {
        return false;
    };
    // SAFETY: `id` is an open object of the caller's; `c` is NUL-terminated.
    ::hdf5::sync::sync(|| unsafe { hdf5_sys::h5a::H5Aexists(id, c.as_ptr()) }) > 0
}
