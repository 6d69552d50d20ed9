//! Encoder steps composed into a pipeline: fitted on the training split, applied to all.

use std::borrow::Cow;

use super::encode::{
    avg_pool, fourier_features, pool_factors_to, FourierOutput, MinMaxScaler, Scope, Standardizer,
};
use super::split::{stratified_split, SplitFractions};
use super::{DataError, Dataset};

/// One encoding step, as a `task` item would spell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Average-pool images by an integer factor on both sides (8×8 → 4×4 by 2).
    Pool { factor: usize },
    /// Average-pool images to `side × side` (28×28 → 7×7); the side must divide the image.
    PoolTo { side: usize },
    /// Keep the `k × k` lowest 2-D DFT frequencies (see [`super::dft_low_freq`]).
    /// `Magnitude` output stays a `k × k` "image"; `RealImag` output is flat (`2k²`).
    FourierCrop { k: usize, output: FourierOutput },
    /// Zero mean, unit variance (fitted on the training split).
    Standardize { scope: Scope },
    /// Training range to `[0, 1]`, optionally clamped (fitted on the training split).
    MinMax { scope: Scope, clip: bool },
}

impl Step {
    fn needs_images(&self) -> bool {
        matches!(
            self,
            Step::Pool { .. } | Step::PoolTo { .. } | Step::FourierCrop { .. }
        )
    }

    fn describe(&self) -> String {
        match self {
            Step::Pool { factor } => format!("pool by {factor}"),
            Step::PoolTo { side } => format!("pool to {side}×{side}"),
            Step::FourierCrop { k, .. } => format!("Fourier crop k = {k}"),
            Step::Standardize { .. } => "standardise".into(),
            Step::MinMax { .. } => "min-max".into(),
        }
    }
}

/// An ordered list of steps.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pipeline {
    pub steps: Vec<Step>,
}

/// A step with its statistics fixed.
#[derive(Debug, Clone, PartialEq)]
pub enum FittedStep {
    Pool { factor_h: usize, factor_w: usize },
    FourierCrop { k: usize, output: FourierOutput },
    Standardize(Standardizer),
    MinMax(MinMaxScaler),
}

/// A pipeline whose scalers have been fitted; apply it to any split with [`Self::transform`].
#[derive(Debug, Clone, PartialEq)]
pub struct FittedPipeline {
    pub steps: Vec<FittedStep>,
}

impl Pipeline {
    pub fn new(steps: Vec<Step>) -> Self {
        Pipeline { steps }
    }

    /// Fits every step in order on `train`, each on the output of the steps before it, so
    /// a scaler after a pooling step sees pooled training data. Nothing from other splits is
    /// used: no test statistics leak into the encoding.
    pub fn fit(&self, train: &Dataset) -> Result<FittedPipeline, DataError> {
        Ok(self.fit_transform(train)?.0)
    }

    /// [`Self::fit`], also returning `train` encoded (computed along the way, not twice).
    pub fn fit_transform(&self, train: &Dataset) -> Result<(FittedPipeline, Dataset), DataError> {
        let mut current = Cow::Borrowed(train);
        let mut fitted = Vec::with_capacity(self.steps.len());
        for (i, step) in self.steps.iter().enumerate() {
            let f = fit_step(step, &current).map_err(|e| in_step(e, i, step))?;
            current = Cow::Owned(apply(&f, &current).map_err(|e| in_step(e, i, step))?);
            fitted.push(f);
        }
        Ok((FittedPipeline { steps: fitted }, current.into_owned()))
    }
}

fn in_step(e: DataError, i: usize, step: &Step) -> DataError {
    match e {
        DataError::Shape { message } => {
            DataError::shape(format!("step {} ({}): {message}", i + 1, step.describe()))
        }
        DataError::InvalidArgument { message } => {
            DataError::invalid(format!("step {} ({}): {message}", i + 1, step.describe()))
        }
        other => other,
    }
}

fn image_shape(ds: &Dataset) -> Result<(usize, usize), DataError> {
    ds.image_shape.ok_or_else(|| {
        DataError::shape(format!(
            "this step needs images, but `{}` has {} flat features (no image shape); declare \
             one for CSV data, and put image steps before a RealImag Fourier crop",
            ds.name,
            ds.n_features()
        ))
    })
}

fn fit_step(step: &Step, ds: &Dataset) -> Result<FittedStep, DataError> {
    if step.needs_images() {
        image_shape(ds)?;
    }
    Ok(match *step {
        Step::Pool { factor } => FittedStep::Pool {
            factor_h: factor,
            factor_w: factor,
        },
        Step::PoolTo { side } => {
            let (factor_h, factor_w) = pool_factors_to(image_shape(ds)?, side)?;
            FittedStep::Pool { factor_h, factor_w }
        }
        Step::FourierCrop { k, output } => FittedStep::FourierCrop { k, output },
        Step::Standardize { scope } => {
            FittedStep::Standardize(Standardizer::fit(&ds.features, scope)?)
        }
        Step::MinMax { scope, clip } => {
            FittedStep::MinMax(MinMaxScaler::fit(&ds.features, scope, clip)?)
        }
    })
}

fn apply(step: &FittedStep, ds: &Dataset) -> Result<Dataset, DataError> {
    let (features, image_shape) = match step {
        FittedStep::Pool { factor_h, factor_w } => {
            let (x, s) = avg_pool(&ds.features, image_shape(ds)?, *factor_h, *factor_w)?;
            (x, Some(s))
        }
        FittedStep::FourierCrop { k, output } => {
            let x = fourier_features(&ds.features, image_shape(ds)?, *k, *output)?;
            let shape = (*output == FourierOutput::Magnitude).then_some((*k, *k));
            (x, shape)
        }
        FittedStep::Standardize(s) => (s.transform(&ds.features)?, ds.image_shape),
        FittedStep::MinMax(s) => (s.transform(&ds.features)?, ds.image_shape),
    };
    Ok(Dataset {
        name: ds.name.clone(),
        features,
        labels: ds.labels.clone(),
        classes: ds.classes,
        image_shape,
    })
}

impl FittedPipeline {
    /// Applies every fitted step to `ds` (any split, any size, empty included).
    pub fn transform(&self, ds: &Dataset) -> Result<Dataset, DataError> {
        let mut current = Cow::Borrowed(ds);
        for step in &self.steps {
            current = Cow::Owned(apply(step, &current)?);
        }
        Ok(current.into_owned())
    }
}

/// A split data set, encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub train: Dataset,
    pub validation: Dataset,
    pub test: Dataset,
    /// The fitted encoder, to apply to new data the same way.
    pub pipeline: FittedPipeline,
}

/// Stratified split of `ds` with `seed`, then `pipeline` fitted on the training part and
/// applied to all three parts.
pub fn prepare(
    ds: &Dataset,
    fractions: SplitFractions,
    seed: u64,
    pipeline: &Pipeline,
) -> Result<Prepared, DataError> {
    let split = stratified_split(&ds.labels, ds.classes, fractions, seed)?;
    let train = ds.subset(&split.train)?;
    if train.is_empty() {
        return Err(DataError::invalid(
            "the training split is empty; give it a positive fraction",
        ));
    }
    let (fitted, train) = pipeline.fit_transform(&train)?;
    Ok(Prepared {
        train,
        validation: fitted.transform(&ds.subset(&split.validation)?)?,
        test: fitted.transform(&ds.subset(&split.test)?)?,
        pipeline: fitted,
    })
}

#[cfg(test)]
mod tests {
    use super::super::builtin;
    use super::*;
    use ndarray::{Array2, Axis};

    fn toy() -> Dataset {
        // 6 samples of 4×4 images; label = sample % 2.
        let x = Array2::from_shape_fn((6, 16), |(i, p)| (i * 16 + p) as f64);
        Dataset::new("toy", x, (0..6).map(|i| i % 2).collect(), 2, Some((4, 4))).unwrap()
    }

    #[test]
    fn scalers_after_pooling_are_fitted_on_pooled_training_data() {
        let ds = toy();
        let p = Pipeline::new(vec![
            Step::PoolTo { side: 2 },
            Step::Standardize {
                scope: Scope::PerFeature,
            },
        ]);
        let f = p.fit(&ds).unwrap();
        match &f.steps[..] {
            [FittedStep::Pool {
                factor_h: 2,
                factor_w: 2,
            }, FittedStep::Standardize(s)] => assert_eq!(s.mean.len(), 4),
            other => panic!("{other:?}"),
        }
        let t = f.transform(&ds).unwrap();
        assert_eq!(t.image_shape, Some((2, 2)));
        for col in t.features.axis_iter(Axis(1)) {
            assert!(col.mean().unwrap().abs() < 1e-12);
        }
        // Same result as doing the steps by hand.
        let (pooled, _) = super::super::avg_pool(&ds.features, (4, 4), 2, 2).unwrap();
        let s = Standardizer::fit(&pooled, Scope::PerFeature).unwrap();
        assert_eq!(t.features, s.transform(&pooled).unwrap());
    }

    #[test]
    fn step_errors_say_which_step() {
        let ds = toy();
        let e = Pipeline::new(vec![Step::Pool { factor: 2 }, Step::PoolTo { side: 3 }])
            .fit(&ds)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("step 2 (pool to 3×3)"), "{e}");
        let flat = Dataset {
            image_shape: None,
            ..toy()
        };
        let e = Pipeline::new(vec![Step::Pool { factor: 2 }])
            .fit(&flat)
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs images"), "{e}");
        let e = Pipeline::new(vec![
            Step::FourierCrop {
                k: 2,
                output: FourierOutput::RealImag,
            },
            Step::Pool { factor: 2 },
        ])
        .fit(&ds)
        .unwrap_err()
        .to_string();
        assert!(e.contains("step 2") && e.contains("needs images"), "{e}");
    }

    /// Test accuracy of the nearest-class-centroid classifier (Euclidean) fitted on `train`:
    /// a parameter-free probe of how much class information an encoding keeps.
    fn nearest_centroid_accuracy(train: &Dataset, test: &Dataset) -> f64 {
        let d = train.n_features();
        let mut centroids = Array2::<f64>::zeros((train.classes, d));
        let counts = train.class_counts();
        for (row, &l) in train.features.outer_iter().zip(&train.labels) {
            let mut c = centroids.row_mut(l);
            c += &row;
        }
        for (mut c, &n) in centroids.outer_iter_mut().zip(&counts) {
            c /= n.max(1) as f64;
        }
        let correct = test
            .features
            .outer_iter()
            .zip(&test.labels)
            .filter(|(x, &l)| {
                let dist = |c: usize| {
                    let diff = &centroids.row(c) - x;
                    diff.dot(&diff)
                };
                (0..train.classes)
                    .filter(|&c| counts[c] > 0)
                    .min_by(|&a, &b| dist(a).total_cmp(&dist(b)))
                    == Some(l)
            })
            .count();
        correct as f64 / test.len() as f64
    }

    #[test]
    fn pooled_digits_keep_enough_information_to_classify() {
        // scikit-learn's nearest-centroid on the same kind of split: 0.88 on raw 8×8 pixels,
        // 0.79 after 2×2 pooling (NumPy check, different shuffle); chance is 0.10.
        let ds = builtin("digits").unwrap();
        let fr = SplitFractions::new(0.8, 0.0, 0.2).unwrap();
        let raw = prepare(&ds, fr, 0, &Pipeline::default()).unwrap();
        let pooled = prepare(&ds, fr, 0, &Pipeline::new(vec![Step::PoolTo { side: 4 }])).unwrap();
        assert_eq!(pooled.test.len(), 359); // round(0.2 · 1797)
        let (a_raw, a_pool) = (
            nearest_centroid_accuracy(&raw.train, &raw.test),
            nearest_centroid_accuracy(&pooled.train, &pooled.test),
        );
        assert!(a_raw > 0.85, "raw 8×8: {a_raw}");
        assert!(a_pool > 0.70, "pooled 4×4: {a_pool}");
        // Pooling by the whole image leaves one number (mean ink) per digit: far less.
        let one = prepare(&ds, fr, 0, &Pipeline::new(vec![Step::Pool { factor: 8 }])).unwrap();
        let a_one = nearest_centroid_accuracy(&one.train, &one.test);
        assert!(a_one < a_pool - 0.3, "1×1: {a_one}");
    }

    #[test]
    fn mnist5k_pooled_and_fourier_encodings_classify() {
        // NumPy reference (nearest centroid, 80/20 stratified): 7×7 pooling 0.76; centred
        // 6×6 Fourier crop 0.79 with real/imag parts but 0.59 with magnitudes only, since
        // the phase carries where the strokes are.
        let ds = builtin("mnist5k").unwrap();
        let fr = SplitFractions::new(0.8, 0.0, 0.2).unwrap();
        let split = stratified_split(&ds.labels, ds.classes, fr, 1).unwrap();
        let acc = |ds: &Dataset| {
            let (train, test) = (ds.subset(&split.train), ds.subset(&split.test));
            nearest_centroid_accuracy(&train.unwrap(), &test.unwrap())
        };
        let pooled = Pipeline::new(vec![Step::PoolTo { side: 7 }])
            .fit(&ds)
            .and_then(|p| p.transform(&ds))
            .unwrap();
        assert_eq!(pooled.n_features(), 49);
        let pooled = acc(&pooled);
        // The crop holds no fitted statistics, so encoding before splitting changes nothing;
        // one DFT serves both outputs.
        let z = super::super::dft_low_freq(&ds.features, (28, 28), 6).unwrap();
        let with = |features: Array2<f64>| Dataset {
            features,
            image_shape: None,
            ..ds.clone()
        };
        let magnitude = acc(&with(z.mapv(|c| c.norm())));
        let re_im = acc(&with(ndarray::concatenate![
            Axis(1),
            z.mapv(|c| c.re),
            z.mapv(|c| c.im)
        ]));
        assert!(pooled > 0.70, "7×7 pooled: {pooled}");
        assert!(re_im > 0.70, "Fourier re/im: {re_im}");
        assert!(
            magnitude > 0.40 && magnitude < re_im,
            "Fourier |X|: {magnitude}"
        );
    }

    #[test]
    fn prepare_digits_end_to_end() {
        let ds = builtin("digits").unwrap();
        let fr = SplitFractions::new(0.7, 0.1, 0.2).unwrap();
        let p = Pipeline::new(vec![
            Step::Pool { factor: 2 },
            Step::MinMax {
                scope: Scope::Global,
                clip: true,
            },
        ]);
        let prep = prepare(&ds, fr, 0, &p).unwrap();
        assert_eq!(
            prep.train.len() + prep.validation.len() + prep.test.len(),
            1797
        );
        for part in [&prep.train, &prep.validation, &prep.test] {
            assert_eq!(part.n_features(), 16);
            assert_eq!(part.image_shape, Some((4, 4)));
            assert!(part.features.iter().all(|v| (0.0..=1.0).contains(v)));
        }
        // Global min-max fitted on training pixels (0..16 pooled) hits both ends.
        let max = prep.train.features.iter().cloned().fold(0.0, f64::max);
        assert_eq!(max, 1.0);
        let again = prepare(&ds, fr, 0, &p).unwrap();
        assert_eq!(again, prep);
    }
}
