//! The one error type of the data stage.
//!
//! Every variant names the file (or built-in set) it came from and, where it makes sense, the
//! 1-based line/row and column, so a user can open the file at the right place.

use std::path::PathBuf;

/// Why loading or encoding data failed. Each variant is documented by what triggers it.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// `builtin("mnist")`: the name is not one of the sets compiled into the binary.
    #[error(
        "unknown built-in data set `{name}`; known sets: {known} (or load an IDX, CSV or NPY file)"
    )]
    UnknownBuiltin { name: String, known: String },

    /// The file could not be read from disk.
    #[error("cannot read `{}`: {source} (a relative data path is resolved next to the `.uh` file that names it)", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    /// The file starts with the gzip magic bytes but does not decompress.
    #[error("`{file}` looks gzip-compressed but cannot be decompressed: {message} (incomplete download? check with `gzip -t`)")]
    Gzip { file: String, message: String },

    /// A compressed file that inflates past its header's promise or the size limit.
    #[error("`{file}` {problem}")]
    Inflated { file: String, problem: String },

    /// A file with no data rows (zero bytes, only blank lines, or only a header).
    #[error("`{file}` contains no samples")]
    Empty { file: String },

    /// A CSV file that is not valid UTF-8 text.
    #[error("`{file}` line {line}: not valid UTF-8 text (CSV files must be UTF-8 or ASCII)")]
    NotText { file: String, line: usize },

    /// A CSV row with a different number of cells than the first row (or the header).
    #[error("`{file}` line {line}: {found} cells, expected {expected} like the first row (every row needs the same number of cells)")]
    RaggedRow {
        file: String,
        line: usize,
        found: usize,
        expected: usize,
    },

    /// A CSV cell that is empty or does not parse as a number.
    #[error("`{file}` line {line}, column {column}: {cell:?} is not a number (if the first line holds column names, read it as a header)")]
    NonNumeric {
        file: String,
        line: usize,
        column: usize,
        cell: String,
    },

    /// A feature value that is NaN or infinite (a missing value, usually).
    #[error("`{file}` {location}: value {value} is not finite (remove or impute missing values before loading)")]
    NonFinite {
        file: String,
        /// `line L, column C` for text files, `row R, column C` for binary ones (1-based).
        location: String,
        value: f64,
    },

    /// A label that is negative, fractional, too large, or not below the declared class count.
    #[error("`{file}` {location}: label {value} {reason}; labels must be class indices 0, 1, …, classes − 1")]
    BadLabel {
        file: String,
        /// `line L` for text files, `row R` (1-based sample number) otherwise.
        location: String,
        value: String,
        reason: String,
    },

    /// The features and labels disagree on the number of samples.
    #[error("`{features_file}` has {features} samples but `{labels_file}` has {labels} labels; they must come from the same split")]
    CountMismatch {
        features_file: String,
        features: usize,
        labels_file: String,
        labels: usize,
    },

    /// A binary file (IDX or NPY) whose header or length is malformed or unsupported.
    #[error("`{file}` is not a valid {format} file: {message}")]
    Format {
        file: String,
        format: &'static str,
        message: String,
    },

    /// The label column named in the options does not exist.
    #[error("`{file}`: {message}")]
    LabelColumn { file: String, message: String },

    /// An operation on shapes that cannot work (pooling by a factor that does not divide the
    /// image, a Fourier crop larger than the image, a step that needs images on flat features).
    #[error("{message}")]
    Shape { message: String },

    /// A parameter outside its valid range (split fractions, batch size, phase input range).
    #[error("{message}")]
    InvalidArgument { message: String },
}

impl DataError {
    pub(crate) fn shape(message: impl Into<String>) -> Self {
        DataError::Shape {
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        DataError::InvalidArgument {
            message: message.into(),
        }
    }
}
