//! Data sets compiled into the binary, so `uhc` needs no download and works from any folder.
//! Origin, licence and checksums of each file: `data/README.md`.

use super::csv::{parse_csv, CsvOptions, LabelColumn};
use super::{DataError, Dataset};

/// Names accepted by [`builtin`] (the table is [`crate::stdlib::DATASETS`]).
pub fn builtin_names() -> Vec<&'static str> {
    crate::stdlib::dataset_names()
}

/// Loads a built-in set by name. Pixel values are kept raw (0–16 for `digits`, 0–255 for
/// `mnist5k`); scale them with an encoder step. Rows are in the files' order (`mnist5k` is
/// sorted by class), so split with [`super::stratified_split`] before training.
pub fn builtin(name: &str) -> Result<Dataset, DataError> {
    let Some(set) = crate::stdlib::dataset(name) else {
        return Err(DataError::UnknownBuiltin {
            name: name.to_string(),
            known: builtin_names().join(", "),
        });
    };
    let (bytes, side) = (set.csv_gz, set.side);
    let options = CsvOptions {
        label: LabelColumn::Last,
        header: false,
        delimiter: ',',
        classes: Some(set.classes),
        image_shape: Some((side, side)),
    };
    let mut ds = parse_csv(bytes, &format!("builtin:{name}"), &options)?;
    ds.name = name.to_string();
    Ok(ds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_has_the_documented_counts_and_range() {
        let ds = builtin("digits").unwrap();
        assert_eq!(ds.name, "digits");
        assert_eq!(ds.features.shape(), &[1797, 64]);
        assert_eq!(ds.image_shape, Some((8, 8)));
        assert_eq!(ds.classes, 10);
        // Class counts as listed in scikit-learn's DESCR / UCI.
        assert_eq!(
            ds.class_counts(),
            vec![178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
        );
        let (lo, hi) = ds
            .features
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        assert_eq!((lo, hi), (0.0, 16.0));
        assert!(ds.features.iter().all(|v| v.fract() == 0.0));
        // First sample is a 0: its centre column is blank and its sides are lit.
        assert_eq!(ds.labels[0], 0);
        assert_eq!(ds.features[[0, 2]], 5.0);
    }

    #[test]
    fn mnist5k_has_500_per_class_and_byte_pixels() {
        let ds = builtin("mnist5k").unwrap();
        assert_eq!(ds.features.shape(), &[5000, 784]);
        assert_eq!(ds.image_shape, Some((28, 28)));
        assert_eq!(ds.class_counts(), vec![500; 10]);
        let (lo, hi) = ds
            .features
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        assert_eq!((lo, hi), (0.0, 255.0));
        // MNIST digits are centred in a 20×20 box by centre of mass (LeCun's MNIST page), so
        // the outer 2-pixel frame is nearly dark and the centre carries the ink.
        let mean_at = |r: usize, c: usize| ds.features.column(r * 28 + c).mean().unwrap_or(0.0);
        let border: f64 = (0..28).map(|i| mean_at(0, i) + mean_at(27, i)).sum::<f64>() / 56.0;
        let centre: f64 = (10..18)
            .flat_map(|r| (10..18).map(move |c| (r, c)))
            .map(|(r, c)| mean_at(r, c))
            .sum::<f64>()
            / 64.0;
        assert!(
            border < 1.0 && centre > 60.0,
            "border {border}, centre {centre}"
        );
    }

    #[test]
    fn unknown_name_lists_the_known_ones() {
        let e = builtin("mnist").unwrap_err().to_string();
        assert!(
            e.contains("`mnist`") && e.contains("digits, mnist5k"),
            "{e}"
        );
    }
}
