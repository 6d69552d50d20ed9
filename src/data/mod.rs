//! Data for training: built-in sets, file loaders, encoders, splits and mini-batches.
//!
//! Flow: load a [`Dataset`] ([`builtin`], [`load_idx`], [`load_csv`], [`load_npy`]) →
//! [`stratified_split`] with a seed → fit a [`Pipeline`] of encoder [`Step`]s on the training
//! part only and apply it to every part ([`prepare`] does all three) → optionally turn real
//! features into a complex optical field ([`encode_optical`]) → iterate seeded mini-batches
//! ([`BatchSampler`]).
//!
//! Invariants: nothing here downloads anything (the built-in sets are compiled into the
//! binary); only the `load_*` functions touch the file system, and each of them is a thin
//! wrapper over a pure `parse_*` function on bytes; every encoder is a deterministic pure
//! function; randomness comes only from explicit `u64` seeds.

mod batch;
mod builtin;
mod csv;
mod encode;
mod error;
mod idx;
mod npy;
mod pipeline;
mod split;

use std::borrow::Cow;
use std::io::Read;
use std::path::Path;

use ndarray::{Array2, Axis};

pub use batch::{BatchSampler, Epoch};
pub use builtin::{builtin, builtin_names};
pub use csv::{load_csv, parse_csv, CsvOptions, LabelColumn};
pub use encode::{
    amplitude_encode, avg_pool, dft_low_freq, encode_optical, fourier_features, phase_encode,
    pool_factors_to, FourierOutput, MinMaxScaler, OpticalEncoding, Scope, Standardizer,
};
pub use error::DataError;
pub use idx::{load_idx, parse_idx};
pub use npy::{load_npy, parse_npy};
pub use pipeline::{prepare, FittedPipeline, FittedStep, Pipeline, Prepared, Step};
pub use split::{stratified_split, Split, SplitFractions};

/// Largest class count accepted from a file: guards against a stray huge label making
/// `classes = max + 1` allocate gigabytes. Far above any classification benchmark here.
pub const MAX_CLASSES: usize = 1 << 16;

/// A labelled classification data set held in memory.
///
/// Row `i` of `features` is sample `i`, its class is `labels[i]` in `0..classes`.
/// `image_shape = Some((h, w))` means each row is an `h × w` image in row-major order
/// (`h · w = features.ncols()`); the image encoders need it. Build with [`Dataset::new`] to
/// have these invariants checked; the fields are public so a caller can read them freely.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Short name for reports (`digits`, or the file stem).
    pub name: String,
    /// `n × d` feature matrix, all values finite.
    pub features: Array2<f64>,
    /// One class index per row.
    pub labels: Vec<usize>,
    /// Number of classes; every label is below it.
    pub classes: usize,
    /// `(height, width)` when the rows are images.
    pub image_shape: Option<(usize, usize)>,
}

impl Dataset {
    /// Checks the invariants: one label per row, labels below `classes`, finite features and
    /// an image shape that matches the feature count.
    pub fn new(
        name: impl Into<String>,
        features: Array2<f64>,
        labels: Vec<usize>,
        classes: usize,
        image_shape: Option<(usize, usize)>,
    ) -> Result<Self, DataError> {
        let name = name.into();
        if features.nrows() != labels.len() {
            return Err(DataError::CountMismatch {
                features_file: format!("{name} (features)"),
                features: features.nrows(),
                labels_file: format!("{name} (labels)"),
                labels: labels.len(),
            });
        }
        if let Some(row) = labels.iter().position(|&l| l >= classes) {
            return Err(DataError::BadLabel {
                file: name,
                location: format!("row {}", row + 1),
                value: labels[row].to_string(),
                reason: format!("is not below the class count {classes}"),
            });
        }
        check_finite(&features, &name)?;
        check_image_shape(image_shape, features.ncols())?;
        Ok(Dataset {
            name,
            features,
            labels,
            classes,
            image_shape,
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no samples (an empty split part, for example).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of features per sample.
    pub fn n_features(&self) -> usize {
        self.features.ncols()
    }

    /// How many samples each class has (`classes` entries).
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &l in &self.labels {
            counts[l] += 1;
        }
        counts
    }

    /// The samples at `indices`, in that order (repeats allowed). Copies only those rows.
    pub fn subset(&self, indices: &[usize]) -> Result<Dataset, DataError> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(DataError::invalid(format!(
                "sample index {bad} is out of range for `{}` with {} samples",
                self.name,
                self.len()
            )));
        }
        Ok(Dataset {
            name: self.name.clone(),
            features: self.features.select(Axis(0), indices),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            classes: self.classes,
            image_shape: self.image_shape,
        })
    }

    /// Declares the rows to be `height × width` images (row-major), e.g. for a CSV of pixels.
    pub fn with_image_shape(mut self, height: usize, width: usize) -> Result<Self, DataError> {
        check_image_shape(Some((height, width)), self.n_features())?;
        self.image_shape = Some((height, width));
        Ok(self)
    }
}

fn check_image_shape(shape: Option<(usize, usize)>, d: usize) -> Result<(), DataError> {
    match shape {
        Some((h, w)) if h.checked_mul(w) != Some(d) || d == 0 => Err(DataError::shape(format!(
            "image shape {h}×{w} does not match the {d} features per sample"
        ))),
        _ => Ok(()),
    }
}

fn check_finite(features: &Array2<f64>, file: &str) -> Result<(), DataError> {
    for ((r, c), &v) in features.indexed_iter() {
        if !v.is_finite() {
            return Err(DataError::NonFinite {
                file: file.to_string(),
                location: format!("row {}, column {}", r + 1, c + 1),
                value: v,
            });
        }
    }
    Ok(())
}

/// Turns a numeric label into a class index, or says why it is not one. `location` is
/// `line L` or `row R` (1-based), as the error should print it.
pub(crate) fn label_from_f64(
    value: f64,
    file: &str,
    location: impl FnOnce() -> String,
    classes: Option<usize>,
) -> Result<usize, DataError> {
    let bad = |reason: String| DataError::BadLabel {
        file: file.to_string(),
        location: location(),
        value: value.to_string(),
        reason,
    };
    if !value.is_finite() || value.fract() != 0.0 {
        return Err(bad("is not an integer".into()));
    }
    if value < 0.0 {
        return Err(bad("is negative".into()));
    }
    let limit = classes.unwrap_or(MAX_CLASSES);
    if value >= limit as f64 {
        return Err(bad(match classes {
            Some(c) => format!("is out of range for {c} classes"),
            None => format!("exceeds the supported maximum of {MAX_CLASSES} classes"),
        }));
    }
    Ok(value as usize)
}

/// The class count: the declared one (labels were already checked against it) or max + 1.
pub(crate) fn class_count(labels: &[usize], classes: Option<usize>) -> usize {
    classes.unwrap_or_else(|| labels.iter().max().map_or(0, |&m| m + 1))
}

/// Decompresses `bytes` when they start with the gzip magic `1f 8b`; passes them through
/// otherwise. Concatenated gzip members (as `cat a.gz b.gz` makes) are read in full, up to
/// [`MAX_DECOMPRESSED_BYTES`].
pub(crate) fn maybe_gunzip<'a>(bytes: &'a [u8], file: &str) -> Result<Cow<'a, [u8]>, DataError> {
    maybe_gunzip_promised(bytes, file, |_| None)
}

/// The most bytes a compressed data file may inflate to.
pub const MAX_DECOMPRESSED_BYTES: u64 = 1 << 30;

/// [`maybe_gunzip`] for formats whose header says how long the file is: `promise` sees the
/// bytes inflated so far and returns the total length once it can tell. Inflating stops as
/// soon as the stream passes that length (a decompression bomb, or a damaged file), so the
/// memory spent is what the header promised, not what the stream would produce.
pub(crate) fn maybe_gunzip_promised<'a>(
    bytes: &'a [u8],
    file: &str,
    promise: impl Fn(&[u8]) -> Option<u64>,
) -> Result<Cow<'a, [u8]>, DataError> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(Cow::Borrowed(bytes));
    }
    let mut decoder = flate2::read::MultiGzDecoder::new(bytes);
    let mut out = Vec::new();
    let mut promised: Option<u64> = None;
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let n = match decoder.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(DataError::Gzip {
                    file: file.to_string(),
                    message: e.to_string(),
                })
            }
        };
        out.extend_from_slice(&chunk[..n]);
        if promised.is_none() {
            promised = promise(&out);
            if let Some(p) = promised.filter(|&p| p > MAX_DECOMPRESSED_BYTES) {
                return Err(DataError::Inflated {
                    file: file.to_string(),
                    problem: format!(
                        "its header promises {p} bytes, more than the {} uhc loads from one file",
                        crate::driver::human_bytes(MAX_DECOMPRESSED_BYTES)
                    ),
                });
            }
        }
        let cap = promised.unwrap_or(MAX_DECOMPRESSED_BYTES);
        if out.len() as u64 > cap {
            return Err(DataError::Inflated {
                file: file.to_string(),
                problem: match promised {
                    Some(p) => format!(
                        "inflates past the {p} bytes its header promises (a decompression bomb, or a damaged file); inflating stopped there"
                    ),
                    None => format!(
                        "inflates to more than {}, the most uhc loads from one file (a decompression bomb?); inflating stopped there",
                        crate::driver::human_bytes(MAX_DECOMPRESSED_BYTES)
                    ),
                },
            });
        }
    }
    Ok(Cow::Owned(out))
}

/// The most bytes read from one data file (before decompression).
pub const MAX_DATA_FILE_BYTES: u64 = 1 << 30;

/// Reads a whole file, at most [`MAX_DATA_FILE_BYTES`]; the only file-system access of the
/// data stage.
pub(crate) fn read_path(path: &Path) -> Result<Vec<u8>, DataError> {
    crate::driver::read_bounded(path, MAX_DATA_FILE_BYTES).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The name a loaded file gets: its stem without `.gz` and the format extension.
pub(crate) fn stem_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    match name.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem.to_string(),
        _ => name.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Real files in a private temporary directory, removed on drop.

    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new(tag: &str) -> TempDir {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("uhc-data-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("create temp dir");
            TempDir(dir)
        }

        pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, bytes).expect("write temp file");
            path
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    pub fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes).expect("gzip in memory");
        enc.finish().expect("gzip in memory")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn new_checks_invariants() {
        let x = array![[0.0, 1.0], [2.0, 3.0]];
        assert!(Dataset::new("t", x.clone(), vec![0, 1], 2, None).is_ok());
        assert!(matches!(
            Dataset::new("t", x.clone(), vec![0], 2, None),
            Err(DataError::CountMismatch { .. })
        ));
        assert!(matches!(
            Dataset::new("t", x.clone(), vec![0, 2], 2, None),
            Err(DataError::BadLabel { location, .. }) if location == "row 2"
        ));
        assert!(matches!(
            Dataset::new("t", x.clone(), vec![0, 1], 2, Some((1, 3))),
            Err(DataError::Shape { .. })
        ));
        let nan = array![[0.0, f64::NAN], [2.0, 3.0]];
        assert!(matches!(
            Dataset::new("t", nan, vec![0, 1], 2, None),
            Err(DataError::NonFinite { location, .. }) if location == "row 1, column 2"
        ));
    }

    #[test]
    fn subset_copies_rows_in_order_and_rejects_bad_indices() {
        let x = array![[0.0], [1.0], [2.0]];
        let ds = Dataset::new("t", x, vec![0, 1, 2], 3, None).unwrap();
        let s = ds.subset(&[2, 0, 2]).unwrap();
        assert_eq!(s.features.column(0).to_vec(), vec![2.0, 0.0, 2.0]);
        assert_eq!(s.labels, vec![2, 0, 2]);
        assert_eq!(s.class_counts(), vec![1, 0, 2]);
        assert!(ds.subset(&[3]).is_err());
        assert!(ds.subset(&[]).unwrap().is_empty());
    }

    #[test]
    fn labels_must_be_class_indices() {
        let at = || "row 7".to_string();
        assert_eq!(label_from_f64(3.0, "f", at, Some(10)).unwrap(), 3);
        for (v, c) in [
            (2.5, None),
            (-1.0, None),
            (10.0, Some(10)),
            (f64::NAN, None),
        ] {
            assert!(matches!(
                label_from_f64(v, "f", at, c),
                Err(DataError::BadLabel { location, .. }) if location == "row 7"
            ));
        }
        assert!(label_from_f64(1e12, "f", at, None).is_err());
    }

    #[test]
    fn gzip_is_detected_by_magic_bytes() {
        let plain = b"1,2,3\n".to_vec();
        assert_eq!(&*maybe_gunzip(&plain, "p").unwrap(), &plain[..]);
        let gz = testutil::gzip(&plain);
        assert_eq!(&*maybe_gunzip(&gz, "g").unwrap(), &plain[..]);
        let mut truncated = gz.clone();
        truncated.truncate(gz.len() / 2);
        assert!(matches!(
            maybe_gunzip(&truncated, "g"),
            Err(DataError::Gzip { .. })
        ));
    }

    #[test]
    fn inflating_stops_at_the_promised_length() {
        // A header promising 8 bytes, then 4 MiB of zeros: a small bomb.
        let mut plain = vec![0u8; 8];
        plain.extend(std::iter::repeat_n(0u8, 4 << 20));
        let gz = testutil::gzip(&plain);
        assert!(gz.len() < 64 << 10);
        let err = maybe_gunzip_promised(&gz, "bomb.gz", |_| Some(8)).unwrap_err();
        assert!(matches!(err, DataError::Inflated { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("past the 8 bytes its header promises"),
            "{err}"
        );
        // An honest file inflates in full.
        let ok = maybe_gunzip_promised(&gz, "ok.gz", |_| Some(plain.len() as u64)).unwrap();
        assert_eq!(ok.len(), plain.len());
        // A promise beyond the limit is refused before inflating it.
        let err = maybe_gunzip_promised(&gz, "big.gz", |_| Some(u64::MAX)).unwrap_err();
        assert!(err.to_string().contains("header promises"), "{err}");
    }

    #[test]
    fn stem_drops_gz_and_extension() {
        assert_eq!(
            stem_name(Path::new("/a/train-images-idx3-ubyte.gz")),
            "train-images-idx3-ubyte"
        );
        assert_eq!(stem_name(Path::new("x/mnist.csv.gz")), "mnist");
        assert_eq!(stem_name(Path::new("feat.npy")), "feat");
    }
}
