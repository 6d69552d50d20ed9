//! The standard library of `.uh` files, compiled into the binary so `uhc` works from any
//! folder.

/// `(path, text)` of every stdlib file.
pub const FILES: &[(&str, &str)] = &[
    ("hw/mzi.uh", include_str!("../stdlib/hw/mzi.uh")),
    ("hw/digital.uh", include_str!("../stdlib/hw/digital.uh")),
];

pub fn get(path: &str) -> Option<&'static str> {
    let path = path.trim_start_matches("./").trim_start_matches("std/");
    FILES.iter().find(|f| f.0 == path).map(|f| f.1)
}

/// `` `hw/mzi.uh`, `hw/digital.uh` `` for messages.
pub fn list() -> String {
    FILES
        .iter()
        .map(|f| format!("`{}`", f.0))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The stdlib file that defines an item of this name, if any.
pub fn defining(name: &str) -> Option<&'static str> {
    FILES.iter().find_map(|(path, text)| {
        text.lines()
            .any(|l| {
                let mut words = l.split_whitespace();
                matches!(words.next(), Some("hardware" | "arch" | "task"))
                    && words.next() == Some(name)
            })
            .then_some(*path)
    })
}
