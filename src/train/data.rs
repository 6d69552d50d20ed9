//! A task's data, split and encoded, as the training loop reads it.

use crate::check::model::{DatasetSpec, Encoder, TaskSpec};
use crate::data::{
    self, CsvOptions, DataError, Dataset, FourierOutput, LabelColumn, Pipeline, Scope,
    SplitFractions, Step,
};
use ndarray::{Array2, ArrayView2};

/// Encoded features (a row per sample) and labels of each split.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskData {
    pub name: String,
    pub classes: usize,
    pub train_x: Array2<f64>,
    pub train_y: Vec<usize>,
    pub validation_x: Array2<f64>,
    pub validation_y: Vec<usize>,
    pub test_x: Array2<f64>,
    pub test_y: Vec<usize>,
}

/// Which held-out part of a task's data a score is measured on. A search selects on
/// `Validation`; only its final front is scored on `Test`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeldOut {
    Validation,
    Test,
}

impl HeldOut {
    pub fn as_str(self) -> &'static str {
        match self {
            HeldOut::Validation => "validation",
            HeldOut::Test => "test",
        }
    }
}

impl TaskData {
    /// The split `which`, named. `Validation` on a task without a validation part is the
    /// test split, and named so (`uhc train` on such tasks; searches refuse them).
    pub fn split(&self, which: HeldOut) -> (ArrayView2<'_, f64>, &[usize], &'static str) {
        match which {
            HeldOut::Validation => self.held_out(),
            HeldOut::Test => (self.test_x.view(), &self.test_y, "test"),
        }
    }

    /// The validation split, or the test split when the task has no validation part.
    pub fn held_out(&self) -> (ArrayView2<'_, f64>, &[usize], &'static str) {
        if self.validation_y.is_empty() {
            (self.test_x.view(), &self.test_y, "test")
        } else {
            (self.validation_x.view(), &self.validation_y, "validation")
        }
    }
}

/// The task's encoder list as a data pipeline. Scalers are per feature; min-max clips
/// held-out data to the training range (phase encoding needs values in [0, 1]).
pub fn pipeline(task: &TaskSpec) -> Pipeline {
    Pipeline::new(
        task.encoders
            .iter()
            .map(|e| match *e {
                Encoder::Pool { factor } => Step::Pool { factor },
                Encoder::Fft { k } => Step::FourierCrop {
                    k,
                    output: FourierOutput::RealImag,
                },
                Encoder::Standardize => Step::Standardize {
                    scope: Scope::PerFeature,
                },
                Encoder::MinMax => Step::MinMax {
                    scope: Scope::PerFeature,
                    clip: true,
                },
            })
            .collect(),
    )
}

/// Splits and encodes an already loaded data set as `task` says. Pure.
pub fn prepare_task(task: &TaskSpec, ds: &Dataset) -> Result<TaskData, DataError> {
    let s = &task.split;
    let fractions = SplitFractions::new(s.train, s.validation, s.test)?;
    let p = data::prepare(ds, fractions, s.seed, &pipeline(task))?;
    Ok(TaskData {
        name: task.name.clone(),
        classes: task.classes,
        train_x: p.train.features,
        train_y: p.train.labels,
        validation_x: p.validation.features,
        validation_y: p.validation.labels,
        test_x: p.test.features,
        test_y: p.test.labels,
    })
}

/// Loads the task's data set (built-in, or files relative to the working directory: the
/// one place training reads files) and prepares it with `prepare_task`.
pub fn load_task(task: &TaskSpec) -> Result<TaskData, DataError> {
    let classes = Some(task.classes);
    let ds = match &task.dataset {
        DatasetSpec::Builtin { name } => data::builtin(name)?,
        DatasetSpec::Idx { images, labels } => data::load_idx(images, labels, classes)?,
        DatasetSpec::Npy { features, labels } => data::load_npy(features, labels, classes)?,
        DatasetSpec::Csv {
            path,
            label,
            header,
        } => {
            let label = match label.as_str() {
                "first" => LabelColumn::First,
                "last" => LabelColumn::Last,
                l => match l.parse::<usize>() {
                    Ok(i) => LabelColumn::Index(i),
                    Err(_) => LabelColumn::Name(l.to_string()),
                },
            };
            let opts = CsvOptions {
                label,
                header: *header,
                delimiter: ',',
                classes,
                image_shape: None,
            };
            data::load_csv(path, &opts)?
        }
    };
    prepare_task(task, &ds)
}
