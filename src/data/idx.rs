//! IDX, the binary format of MNIST, Fashion-MNIST, KMNIST and EMNIST.
//!
//! Layout (LeCun's MNIST page): two zero bytes, a type code (0x08 u8, 0x09 i8, 0x0B i16,
//! 0x0C i32, 0x0D f32, 0x0E f64), the number of dimensions, then one big-endian `u32` per
//! dimension, then the values in row-major order, big-endian. An images file is `n × h × w`
//! (or `n × d`), a labels file is `n`. Either may be gzipped (detected by magic bytes).

use std::path::Path;

use ndarray::Array2;

use super::{
    class_count, label_from_f64, maybe_gunzip_promised, read_path, stem_name, DataError, Dataset,
};

const FORMAT: &str = "IDX";

/// Reads an IDX images file and its labels file (each plain or gzipped). `classes`: declared
/// class count, or `None` for largest label + 1. The set is named after the images file.
pub fn load_idx(
    images: impl AsRef<Path>,
    labels: impl AsRef<Path>,
    classes: Option<usize>,
) -> Result<Dataset, DataError> {
    let (images, labels) = (images.as_ref(), labels.as_ref());
    let ibytes = read_path(images)?;
    let lbytes = read_path(labels)?;
    let mut ds = parse_idx(
        &ibytes,
        &images.display().to_string(),
        &lbytes,
        &labels.display().to_string(),
        classes,
    )?;
    ds.name = stem_name(images);
    Ok(ds)
}

/// The length an IDX file's header promises (magic, dimensions, data), once `head` holds
/// the whole header; `None` before, or for an unknown type (the parser names that).
fn idx_length(head: &[u8]) -> Option<u64> {
    let (&ty, &ndims) = (head.get(2)?, head.get(3)?);
    let size: u64 = match ty {
        0x08 | 0x09 => 1,
        0x0B => 2,
        0x0C | 0x0D => 4,
        0x0E => 8,
        _ => return None,
    };
    let header = 4 + 4 * ndims as usize;
    let dims = head.get(4..header)?;
    let count = dims
        .chunks_exact(4)
        .map(|d| u64::from(u32::from_be_bytes([d[0], d[1], d[2], d[3]])))
        .try_fold(size, |acc, d| acc.checked_mul(d));
    Some(
        count
            .and_then(|c| c.checked_add(header as u64))
            .unwrap_or(u64::MAX),
    )
}

/// Parses an IDX images/labels pair from bytes; the `*_file` names appear in errors.
pub fn parse_idx(
    images: &[u8],
    images_file: &str,
    labels: &[u8],
    labels_file: &str,
    classes: Option<usize>,
) -> Result<Dataset, DataError> {
    let images = maybe_gunzip_promised(images, images_file, idx_length)?;
    let labels = maybe_gunzip_promised(labels, labels_file, idx_length)?;
    let img = IdxArray::parse(&images, images_file)?;
    let lab = IdxArray::parse(&labels, labels_file)?;

    let (n, image_shape) = match img.dims[..] {
        // A flat `n × d` file keeps no image shape: it may be tabular.
        [n, _] => (n, None),
        [n, h, w] => (n, Some((h, w))),
        _ => {
            return Err(format_err(
                images_file,
                format!(
                    "an images file must have 2 or 3 dimensions (n × d or n × height × width), \
                     this one has {} ({:?}); is it the labels file?",
                    img.dims.len(),
                    img.dims
                ),
            ))
        }
    };
    let d = img.values.len().checked_div(n).unwrap_or(0);
    if d == 0 {
        return Err(if n == 0 {
            DataError::Empty {
                file: images_file.to_string(),
            }
        } else {
            format_err(images_file, "images have zero pixels".into())
        });
    }
    let nl = match lab.dims[..] {
        [nl] | [nl, 1] => nl,
        _ => {
            return Err(format_err(
                labels_file,
                format!(
                    "a labels file must have 1 dimension (n), this one has {:?}; is it the \
                     images file?",
                    lab.dims
                ),
            ))
        }
    };
    if nl != n {
        return Err(DataError::CountMismatch {
            features_file: images_file.to_string(),
            features: n,
            labels_file: labels_file.to_string(),
            labels: nl,
        });
    }
    let labels = lab
        .values
        .iter()
        .enumerate()
        .map(|(i, &v)| label_from_f64(v, labels_file, || format!("row {}", i + 1), classes))
        .collect::<Result<Vec<_>, _>>()?;
    let features = Array2::from_shape_vec((n, d), img.values)
        .map_err(|e| format_err(images_file, e.to_string()))?;
    let classes = class_count(&labels, classes);
    Dataset::new(images_file, features, labels, classes, image_shape)
}

fn format_err(file: &str, message: String) -> DataError {
    DataError::Format {
        file: file.to_string(),
        format: FORMAT,
        message,
    }
}

struct IdxArray {
    dims: Vec<usize>,
    values: Vec<f64>,
}

impl IdxArray {
    fn parse(bytes: &[u8], file: &str) -> Result<IdxArray, DataError> {
        let err = |m: String| format_err(file, m);
        if bytes.is_empty() {
            return Err(DataError::Empty {
                file: file.to_string(),
            });
        }
        if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
            return Err(err(format!(
                "bad magic number {:02x?} (IDX files start with 00 00, type, dimensions)",
                &bytes[..bytes.len().min(4)]
            )));
        }
        let (type_code, ndims) = (bytes[2], bytes[3] as usize);
        let (size, name): (usize, &str) = match type_code {
            0x08 => (1, "u8"),
            0x09 => (1, "i8"),
            0x0B => (2, "i16"),
            0x0C => (4, "i32"),
            0x0D => (4, "f32"),
            0x0E => (8, "f64"),
            t => {
                return Err(err(format!(
                    "unknown type code 0x{t:02X} (known: 08 u8, 09 i8, 0B i16, 0C i32, 0D f32, \
                     0E f64)"
                )))
            }
        };
        if ndims == 0 {
            return Err(err("zero dimensions".into()));
        }
        let header = 4 + 4 * ndims;
        if bytes.len() < header {
            return Err(err(format!(
                "header declares {ndims} dimensions but the file ends after {} bytes",
                bytes.len()
            )));
        }
        let dims: Vec<usize> = bytes[4..header]
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
            .collect();
        let count = dims
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .filter(|c| c.checked_mul(size).is_some())
            .ok_or_else(|| err(format!("dimensions {dims:?} overflow")))?;
        let data = &bytes[header..];
        if data.len() != count * size {
            return Err(err(format!(
                "header says {dims:?} {name} values = {} bytes of data, but the file has {} \
                 (truncated or wrong file?)",
                count * size,
                data.len()
            )));
        }
        let values: Vec<f64> = match type_code {
            0x08 => data.iter().map(|&b| f64::from(b)).collect(),
            0x09 => data.iter().map(|&b| f64::from(b as i8)).collect(),
            0x0B => data
                .chunks_exact(2)
                .map(|c| f64::from(i16::from_be_bytes([c[0], c[1]])))
                .collect(),
            0x0C => data
                .chunks_exact(4)
                .map(|c| f64::from(i32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            0x0D => data
                .chunks_exact(4)
                .map(|c| f64::from(f32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            _ => data
                .chunks_exact(8)
                .map(|c| f64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        };
        Ok(IdxArray { dims, values })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::testutil::{gzip, TempDir};
    use super::*;

    /// An IDX file: header for `dims` with `type_code`, then `data` as given.
    pub(crate) fn idx_bytes(type_code: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut out = vec![0, 0, type_code, dims.len() as u8];
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(data);
        out
    }

    /// A gzipped IDX file that inflates far past what its header promises is stopped at
    /// the promise, and the error says so (not "truncated or wrong file?").
    #[test]
    fn a_decompression_bomb_is_stopped_at_the_header_promise() {
        let dir = TempDir::new("idx-bomb");
        let imgs = idx_bytes(0x08, &[3, 2, 2], &[1; 12]);
        let mut labs = idx_bytes(0x08, &[3], &[2, 0, 1]);
        labs.extend(std::iter::repeat_n(0u8, 16 << 20));
        let ip = dir.write("images-idx3-ubyte", &imgs);
        let lp = dir.write("labels-idx1-ubyte.gz", &gzip(&labs));
        let err = load_idx(&ip, &lp, None).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DataError::Inflated { .. }), "{msg}");
        assert!(
            msg.contains("labels-idx1-ubyte.gz")
                && msg.contains("inflates past the 11 bytes its header promises"),
            "{msg}"
        );
        // A header promising more than the limit is refused before inflating.
        let huge = idx_bytes(0x0E, &[u32::MAX, u32::MAX], &[0; 16]);
        let hp = dir.write("huge-idx2-double.gz", &gzip(&huge));
        let msg = load_idx(&hp, &lp, None).unwrap_err().to_string();
        assert!(msg.contains("its header promises"), "{msg}");
        assert_eq!(idx_length(&imgs), Some(imgs.len() as u64));
        assert_eq!(idx_length(&imgs[..5]), None);
    }

    #[test]
    fn reads_u8_images_and_labels_plain_and_gzipped() {
        let dir = TempDir::new("idx");
        // 3 images of 2×2: pixel value = 10·sample + position.
        let pixels: Vec<u8> = (0..3u8)
            .flat_map(|s| (0..4u8).map(move |p| 10 * s + p))
            .collect();
        let imgs = idx_bytes(0x08, &[3, 2, 2], &pixels);
        let labs = idx_bytes(0x08, &[3], &[2, 0, 1]);
        let ip = dir.write("train-images-idx3-ubyte", &imgs);
        let lp = dir.write("train-labels-idx1-ubyte.gz", &gzip(&labs));
        let ds = load_idx(&ip, &lp, None).unwrap();
        assert_eq!(ds.name, "train-images-idx3-ubyte");
        assert_eq!(ds.features.shape(), &[3, 4]);
        assert_eq!(ds.image_shape, Some((2, 2)));
        assert_eq!(ds.features[[2, 3]], 23.0);
        assert_eq!(ds.features[[1, 0]], 10.0);
        assert_eq!(ds.labels, vec![2, 0, 1]);
        assert_eq!(ds.classes, 3);
        let gz = dir.write("imgs.gz", &gzip(&imgs));
        assert_eq!(load_idx(&gz, &lp, Some(10)).unwrap().classes, 10);
    }

    #[test]
    fn reads_big_endian_wider_types() {
        let vals = [-1.5f32, 2.25];
        let data: Vec<u8> = vals.iter().flat_map(|v| v.to_be_bytes()).collect();
        let ds = parse_idx(
            &idx_bytes(0x0D, &[1, 2], &data),
            "i",
            &idx_bytes(0x0C, &[1], &7i32.to_be_bytes()),
            "l",
            None,
        )
        .unwrap();
        assert_eq!(ds.features.row(0).to_vec(), vec![-1.5, 2.25]);
        assert_eq!(ds.image_shape, None);
        assert_eq!(ds.labels, vec![7]);
        let data: Vec<u8> = [-300i16, 5].iter().flat_map(|v| v.to_be_bytes()).collect();
        let f64s: Vec<u8> = [0.125f64].iter().flat_map(|v| v.to_be_bytes()).collect();
        let ds = parse_idx(
            &idx_bytes(0x0B, &[2, 1, 1], &data),
            "i",
            &idx_bytes(0x09, &[2], &[1, 0]),
            "l",
            None,
        )
        .unwrap();
        assert_eq!(ds.features.column(0).to_vec(), vec![-300.0, 5.0]);
        let ds = parse_idx(
            &idx_bytes(0x0E, &[1, 1], &f64s),
            "i",
            &idx_bytes(0x08, &[1], &[0]),
            "l",
            None,
        )
        .unwrap();
        assert_eq!(ds.features[[0, 0]], 0.125);
    }

    fn fails(images: &[u8], labels: &[u8]) -> String {
        parse_idx(images, "imgs", labels, "labs", None)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn malformed_files_give_clear_errors() {
        let good_img = idx_bytes(0x08, &[2, 2, 2], &[0; 8]);
        let good_lab = idx_bytes(0x08, &[2], &[0, 1]);
        assert!(fails(&[1, 2, 3, 4], &good_lab).contains("bad magic"));
        assert!(fails(&idx_bytes(0x07, &[2, 4], &[0; 8]), &good_lab).contains("type code 0x07"));
        assert!(fails(&[0, 0, 8, 3, 0, 0], &good_lab).contains("ends after 6 bytes"));
        assert!(fails(&idx_bytes(0x08, &[2, 2, 2], &[0; 7]), &good_lab).contains("truncated"));
        assert!(fails(&idx_bytes(0x08, &[2, 2, 2], &[0; 9]), &good_lab).contains("9"));
        let over = fails(
            &idx_bytes(0x0E, &[u32::MAX, u32::MAX, u32::MAX], &[]),
            &good_lab,
        );
        assert!(over.contains("overflow"), "{over}");
        assert!(fails(&good_lab, &good_img).contains("is it the labels file"));
        assert!(fails(&good_img, &good_img).contains("is it the images file"));
        assert!(fails(&good_img, &idx_bytes(0x08, &[3], &[0, 1, 2])).contains("3 labels"));
        assert!(fails(
            &good_img,
            &idx_bytes(0x0D, &[2], &[0x3f, 0xc0, 0, 0, 0, 0, 0, 0])
        )
        .contains("not an integer"));
        assert!(fails(&[], &good_lab).contains("no samples"));
        assert!(fails(&good_img, &[0x1f, 0x8b, 0]).contains("gzip"));
        let e = parse_idx(&good_img, "i", &good_lab, "l", Some(1)).unwrap_err();
        assert!(matches!(e, DataError::BadLabel { ref location, .. } if location == "row 2"));
    }
}
