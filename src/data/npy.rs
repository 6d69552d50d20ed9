//! NumPy `.npy` files: a features array and a labels array.
//!
//! A small reader rather than the `ndarray-npy` crate: its current release needs ndarray 0.17
//! and the 0.16-compatible one pulls in a Python-literal parser with big-integer support,
//! while the header here is one short dict. Format (NumPy's `format.py`, NEP 1): magic
//! `\x93NUMPY`, version byte pair, header length (`u16` LE for 1.0, `u32` LE for 2.0/3.0),
//! an ASCII dict literal `{'descr': '<f8', 'fortran_order': False, 'shape': (n, d), }`, then the
//! raw values. Supported dtypes: bool, `i1`–`i8`, `u1`–`u8`, `f4`, `f8`, either byte order,
//! C or Fortran order. Features are `n × d` or `n × h × w` (images); labels are `n` or `n × 1`.

use std::path::Path;

use ndarray::{Array2, ArrayD, IxDyn, ShapeBuilder};

use super::{class_count, label_from_f64, maybe_gunzip, read_path, stem_name, DataError, Dataset};

const FORMAT: &str = "NPY";

/// Reads a features `.npy` and a labels `.npy` (either may be gzipped). `classes`: declared
/// class count, or `None` for largest label + 1. The set is named after the features file.
pub fn load_npy(
    features: impl AsRef<Path>,
    labels: impl AsRef<Path>,
    classes: Option<usize>,
) -> Result<Dataset, DataError> {
    let (features, labels) = (features.as_ref(), labels.as_ref());
    let fbytes = read_path(features)?;
    let lbytes = read_path(labels)?;
    let mut ds = parse_npy(
        &fbytes,
        &features.display().to_string(),
        &lbytes,
        &labels.display().to_string(),
        classes,
    )?;
    ds.name = stem_name(features);
    Ok(ds)
}

/// Parses a features/labels pair of `.npy` byte buffers; the `*_file` names appear in errors.
pub fn parse_npy(
    features: &[u8],
    features_file: &str,
    labels: &[u8],
    labels_file: &str,
    classes: Option<usize>,
) -> Result<Dataset, DataError> {
    let features = maybe_gunzip(features, features_file)?;
    let labels = maybe_gunzip(labels, labels_file)?;
    let x = NpyArray::parse(&features, features_file)?;
    let y = NpyArray::parse(&labels, labels_file)?;

    let (n, d, image_shape) = match x.shape[..] {
        [n, d] => (n, d, None),
        [n, h, w] => (n, h * w, Some((h, w))),
        _ => {
            return Err(format_err(
                features_file,
                format!(
                    "features must be 2-D (n × d) or 3-D (n × height × width), this array has \
                     shape {:?}",
                    x.shape
                ),
            ))
        }
    };
    if n == 0 {
        return Err(DataError::Empty {
            file: features_file.to_string(),
        });
    }
    if d == 0 {
        return Err(format_err(
            features_file,
            "samples have zero features".into(),
        ));
    }
    let nl = match y.shape[..] {
        [nl] | [nl, 1] => nl,
        _ => {
            return Err(format_err(
                labels_file,
                format!(
                    "labels must be 1-D (n) or n × 1, this array has shape {:?}",
                    y.shape
                ),
            ))
        }
    };
    if nl != n {
        return Err(DataError::CountMismatch {
            features_file: features_file.to_string(),
            features: n,
            labels_file: labels_file.to_string(),
            labels: nl,
        });
    }
    let labels = y
        .values
        .iter()
        .enumerate()
        .map(|(i, &v)| label_from_f64(v, labels_file, || format!("row {}", i + 1), classes))
        .collect::<Result<Vec<_>, _>>()?;
    let features = Array2::from_shape_vec((n, d), x.values)
        .map_err(|e| format_err(features_file, e.to_string()))?;
    let classes = class_count(&labels, classes);
    Dataset::new(features_file, features, labels, classes, image_shape)
}

fn format_err(file: &str, message: String) -> DataError {
    DataError::Format {
        file: file.to_string(),
        format: FORMAT,
        message,
    }
}

/// An array read from `.npy`, values converted to `f64` in C (row-major) order.
struct NpyArray {
    shape: Vec<usize>,
    values: Vec<f64>,
}

#[derive(Clone, Copy)]
enum Order {
    Little,
    Big,
}

impl NpyArray {
    fn parse(bytes: &[u8], file: &str) -> Result<NpyArray, DataError> {
        let err = |m: String| format_err(file, m);
        if bytes.is_empty() {
            return Err(DataError::Empty {
                file: file.to_string(),
            });
        }
        if !bytes.starts_with(b"\x93NUMPY") || bytes.len() < 10 {
            return Err(err(
                "missing the `\\x93NUMPY` magic (is this a .npz archive or a text file?)".into(),
            ));
        }
        let (len_bytes, start): (usize, usize) = match bytes[6] {
            1 => (2, 8),
            2 | 3 => (4, 8),
            v => {
                return Err(err(format!(
                    "unsupported format version {v}.{} (known: 1.0, 2.0, 3.0)",
                    bytes[7]
                )))
            }
        };
        let header_len = if len_bytes == 2 {
            u16::from_le_bytes([bytes[8], bytes[9]]) as usize
        } else {
            let b = bytes
                .get(8..12)
                .ok_or_else(|| err("truncated header".into()))?;
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
        };
        let header_start = start + len_bytes;
        let data_start = header_start
            .checked_add(header_len)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| err("header length runs past the end of the file".into()))?;
        let header = std::str::from_utf8(&bytes[header_start..data_start])
            .map_err(|_| err("header is not text".into()))?;
        let dict = parse_header(header)
            .map_err(|m| err(format!("bad header `{}`: {m}", header.trim())))?;

        let (order, kind, size) = parse_descr(&dict.descr).map_err(err)?;
        let count = dict
            .shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .filter(|c| c.checked_mul(size).is_some())
            .ok_or_else(|| err(format!("shape {:?} overflows", dict.shape)))?;
        let data = &bytes[data_start..];
        if data.len() != count * size {
            return Err(err(format!(
                "shape {:?} of {} needs {} bytes of data, the file has {} (truncated?)",
                dict.shape,
                dict.descr,
                count * size,
                data.len()
            )));
        }
        let values: Vec<f64> = data
            .chunks_exact(size)
            .map(|c| decode(c, order, kind))
            .collect();
        let values = if dict.fortran_order && dict.shape.len() > 1 {
            ArrayD::from_shape_vec(IxDyn(&dict.shape).f(), values)
                .map_err(|e| err(e.to_string()))?
                .iter()
                .copied()
                .collect()
        } else {
            values
        };
        Ok(NpyArray {
            shape: dict.shape,
            values,
        })
    }
}

fn decode(c: &[u8], order: Order, kind: u8) -> f64 {
    macro_rules! num {
        ($t:ty, $n:literal) => {{
            let mut a = [0u8; $n];
            a.copy_from_slice(c);
            match order {
                Order::Little => <$t>::from_le_bytes(a),
                Order::Big => <$t>::from_be_bytes(a),
            }
        }};
    }
    match (kind, c.len()) {
        (b'b', _) => f64::from(u8::from(c[0] != 0)),
        (b'u', 1) => f64::from(c[0]),
        (b'i', 1) => f64::from(c[0] as i8),
        (b'u', 2) => f64::from(num!(u16, 2)),
        (b'i', 2) => f64::from(num!(i16, 2)),
        (b'u', 4) => f64::from(num!(u32, 4)),
        (b'i', 4) => f64::from(num!(i32, 4)),
        // 64-bit integers above 2^53 round to the nearest f64; labels are then caught as
        // out of range, pixel values never get there.
        (b'u', 8) => num!(u64, 8) as f64,
        (b'i', 8) => num!(i64, 8) as f64,
        (b'f', 4) => f64::from(num!(f32, 4)),
        _ => num!(f64, 8),
    }
}

/// Byte order, kind (`b`, `i`, `u`, `f`) and item size of a simple dtype string.
fn parse_descr(descr: &str) -> Result<(Order, u8, usize), String> {
    let unsupported = || {
        format!(
            "unsupported dtype `{descr}`; supported: bool, int8–int64, uint8–uint64, float32, \
             float64 (convert with `arr.astype('float64')`)"
        )
    };
    let b = descr.as_bytes();
    if b.len() < 3 {
        return Err(unsupported());
    }
    let order = match b[0] {
        b'<' | b'|' => Order::Little,
        b'>' => Order::Big,
        b'=' if cfg!(target_endian = "little") => Order::Little,
        b'=' => Order::Big,
        _ => return Err(unsupported()),
    };
    let size: usize = descr[2..].parse().map_err(|_| unsupported())?;
    let ok = match b[1] {
        b'b' => size == 1,
        b'i' | b'u' => matches!(size, 1 | 2 | 4 | 8),
        b'f' => matches!(size, 4 | 8),
        _ => false,
    };
    if ok {
        Ok((order, b[1], size))
    } else {
        Err(unsupported())
    }
}

struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// Parses the header dict: string keys; values are strings, `True`/`False` or int tuples.
fn parse_header(text: &str) -> Result<Header, String> {
    let mut p = Cursor {
        s: text.as_bytes(),
        i: 0,
    };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    p.expect(b'{')?;
    loop {
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.expect(b':')?;
        match key.as_str() {
            "descr" => {
                if p.peek() == Some(b'[') {
                    return Err("structured (record) dtypes are not supported".into());
                }
                descr = Some(p.string()?);
            }
            "fortran_order" => fortran = Some(p.boolean()?),
            "shape" => shape = Some(p.tuple()?),
            other => return Err(format!("unexpected key `{other}`")),
        }
        if !p.eat(b',') {
            p.expect(b'}')?;
            break;
        }
    }
    Ok(Header {
        descr: descr.ok_or("missing `descr`")?,
        fortran_order: fortran.ok_or("missing `fortran_order`")?,
        shape: shape.ok_or("missing `shape`")?,
    })
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected `{}` at byte {}", c as char, self.i))
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let q = self.peek().filter(|&q| q == b'\'' || q == b'"');
        let q = q.ok_or_else(|| format!("expected a quoted string at byte {}", self.i))?;
        let start = self.i + 1;
        let len = self.s[start..]
            .iter()
            .position(|&c| c == q)
            .ok_or("unterminated string")?;
        self.i = start + len + 1;
        Ok(String::from_utf8_lossy(&self.s[start..start + len]).into_owned())
    }

    fn boolean(&mut self) -> Result<bool, String> {
        self.skip_ws();
        for (word, v) in [(&b"True"[..], true), (b"False", false)] {
            if self.s[self.i..].starts_with(word) {
                self.i += word.len();
                return Ok(v);
            }
        }
        Err(format!("expected True or False at byte {}", self.i))
    }

    fn tuple(&mut self) -> Result<Vec<usize>, String> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            if self.eat(b')') {
                return Ok(dims);
            }
            self.skip_ws();
            let start = self.i;
            while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                self.i += 1;
            }
            // Python 2 era files may write `3L`.
            let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
            let dim = digits
                .parse()
                .map_err(|_| format!("expected a dimension at byte {start}"))?;
            dims.push(dim);
            let _ = self.eat(b'L');
            if !self.eat(b',') {
                self.expect(b')')?;
                return Ok(dims);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{gzip, TempDir};
    use super::*;

    // Written by NumPy 2 (`np.save` into a BytesIO), so the reader is checked against the
    // reference writer rather than against our own idea of the format.
    // np.array([[1.5, -2.0, 3.0], [0.25, 1e-3, 7.0]], dtype='<f4')
    const NP_F4: &[u8] = b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }                                                          \n\x00\x00\xc0?\x00\x00\x00\xc0\x00\x00@@\x00\x00\x80>o\x12\x83:\x00\x00\xe0@";
    // np.asfortranarray(np.arange(6, dtype='>i8').reshape(2, 3))
    const NP_I8_F: &[u8] = b"\x93NUMPY\x01\x00v\x00{'descr': '>i8', 'fortran_order': True, 'shape': (2, 3), }                                                           \n\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x05";
    // np.array([0, 2], dtype=np.uint8)
    const NP_U1: &[u8] = b"\x93NUMPY\x01\x00v\x00{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }                                                            \n\x00\x02";

    /// A version-2.0 file with the given header dict and data.
    fn npy_v2(dict: &str, data: &[u8]) -> Vec<u8> {
        let mut out = b"\x93NUMPY\x02\x00".to_vec();
        let header = format!("{dict}\n");
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn reads_numpy_written_files() {
        let dir = TempDir::new("npy");
        let f = dir.write("x.npy", NP_F4);
        let l = dir.write("y.npy", NP_U1);
        let ds = load_npy(&f, &l, None).unwrap();
        assert_eq!(ds.name, "x");
        assert_eq!(ds.features.shape(), &[2, 3]);
        let expect = [1.5, -2.0, 3.0, 0.25, f64::from(1e-3f32), 7.0];
        assert_eq!(ds.features.iter().copied().collect::<Vec<_>>(), expect);
        assert_eq!(ds.labels, vec![0, 2]);
        assert_eq!(ds.classes, 3);

        // Fortran order and big-endian: logical row-major order must come back as 0..6.
        let f = dir.write("xf.npy.gz", &gzip(NP_I8_F));
        let ds = load_npy(&f, &l, Some(5)).unwrap();
        assert_eq!(
            ds.features.iter().copied().collect::<Vec<_>>(),
            vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
        );
        assert_eq!(ds.classes, 5);
    }

    #[test]
    fn reads_v2_header_images_and_column_labels() {
        let data: Vec<u8> = (0..8).flat_map(|v| f64::from(v).to_le_bytes()).collect();
        let x = npy_v2(
            "{\"descr\": \"<f8\", \"fortran_order\": False, \"shape\": (2, 2, 2)}",
            &data,
        );
        let y = npy_v2(
            "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 1), }",
            &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        );
        let ds = parse_npy(&x, "x", &y, "y", None).unwrap();
        assert_eq!(ds.image_shape, Some((2, 2)));
        assert_eq!(ds.features.row(1).to_vec(), vec![4.0, 5.0, 6.0, 7.0]);
        assert_eq!(ds.labels, vec![1, 0]);
    }

    fn fails(x: &[u8], y: &[u8]) -> String {
        parse_npy(x, "x.npy", y, "y.npy", None)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn malformed_files_give_clear_errors() {
        assert!(fails(b"PK\x03\x04zip", NP_U1).contains("magic"));
        assert!(fails(&[], NP_U1).contains("no samples"));
        let mut truncated = NP_F4.to_vec();
        truncated.pop();
        assert!(fails(&truncated, NP_U1).contains("truncated"));
        let c8 = npy_v2(
            "{'descr': '<c8', 'fortran_order': False, 'shape': (2, 1), }",
            &[0; 16],
        );
        assert!(fails(&c8, NP_U1).contains("unsupported dtype `<c8`"));
        let rec = npy_v2(
            "{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (2,), }",
            &[0; 16],
        );
        assert!(fails(&rec, NP_U1).contains("structured"));
        assert!(fails(NP_U1, NP_U1).contains("must be 2-D"));
        assert!(fails(NP_F4, NP_F4).contains("labels must be 1-D"));
        let three = npy_v2(
            "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }",
            &[0, 1, 2],
        );
        assert!(fails(NP_F4, &three).contains("3 labels"));
        let frac = npy_v2(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
            &[0.0f64.to_le_bytes(), 0.5f64.to_le_bytes()].concat(),
        );
        assert!(fails(NP_F4, &frac).contains("row 2: label 0.5 is not an integer"));
        let nan = npy_v2(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2), }",
            &[1.0f64.to_le_bytes(), f64::NAN.to_le_bytes()].concat(),
        );
        let one = npy_v2(
            "{'descr': '|u1', 'fortran_order': False, 'shape': (1,), }",
            &[0],
        );
        assert!(fails(&nan, &one).contains("row 1, column 2: value NaN is not finite"));
        let bad_hdr = npy_v2("{'descr': '<f8', 'shape': (1, 2), }", &[0; 16]);
        assert!(fails(&bad_hdr, &one).contains("missing `fortran_order`"));
    }
}
