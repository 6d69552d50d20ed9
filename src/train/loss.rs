//! Softmax cross-entropy and accuracy.

use ndarray::{Array2, ArrayView2};

/// Temperature `T` on normalised intensities. With `p_j = I_j / Σ I` the logits `T p_j`
/// span at most `[0, T]`, so `T` caps the confidence: at `T = 10` a sample with all its
/// light on the right port of 10 reaches `p = e^10 / (e^10 + 9) ≈ 0.9996`, enough to drive
/// the loss near 0, while the gradient never saturates the way raw intensities can.
/// Normalising by the total makes the loss blind to a global power scale: insertion loss,
/// laser power and σ ≤ 1 attenuators change nothing, which is why it trains robustly on
/// lossy hardware. Raw intensities as logits (the other common choice) tie the learning
/// signal to the optical power, which the physical ≤ 1 transmission keeps small.
pub const DEFAULT_TEMPERATURE: f64 = 10.0;

/// Mean softmax cross-entropy of `scores` (`samples × classes`) against `labels`, and its
/// gradient with respect to `scores`. With `intensities` the logits are
/// `temperature · I_j / (Σ_k I_k + 1e-12)` (see [`DEFAULT_TEMPERATURE`]); otherwise the
/// scores are the logits.
pub fn cross_entropy(
    scores: ArrayView2<f64>,
    labels: &[usize],
    intensities: bool,
    temperature: f64,
) -> (f64, Array2<f64>) {
    let (n, c) = scores.dim();
    let mut grad = Array2::<f64>::zeros((n, c));
    let mut total = 0.0;
    let inv_n = 1.0 / n.max(1) as f64;
    let mut logits = vec![0.0; c];
    let mut p = vec![0.0; c];
    for (r, row) in scores.outer_iter().enumerate() {
        let sum = row.sum() + 1e-12;
        for (j, &s) in row.iter().enumerate() {
            logits[j] = if intensities {
                temperature * s / sum
            } else {
                s
            };
        }
        let m = logits.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        let z: f64 = logits.iter().map(|&v| (v - m).exp()).sum();
        let y = labels[r];
        total += z.ln() + m - logits[y];
        // dL/dlogit_j = (softmax_j − [j = y]) / n.
        for j in 0..c {
            p[j] = ((logits[j] - m).exp() / z - f64::from(u8::from(j == y))) * inv_n;
        }
        if intensities {
            // logit_j = T I_j / S: dL/dI_j = (T/S)(g_j − Σ_k g_k I_k / S).
            let dot: f64 = p.iter().zip(row.iter()).map(|(g, &s)| g * s / sum).sum();
            for j in 0..c {
                grad[[r, j]] = temperature / sum * (p[j] - dot);
            }
        } else {
            grad.row_mut(r)
                .iter_mut()
                .zip(&p)
                .for_each(|(o, &v)| *o = v);
        }
    }
    (total * inv_n, grad)
}

/// Fraction of rows whose largest score is at the label (ties: the first maximum).
pub fn accuracy(scores: ArrayView2<f64>, labels: &[usize]) -> f64 {
    if labels.is_empty() {
        return f64::NAN;
    }
    let hits = scores
        .outer_iter()
        .zip(labels)
        .filter(|(row, &y)| {
            let mut best = 0;
            for (j, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = j;
                }
            }
            best == y
        })
        .count();
    hits as f64 / labels.len() as f64
}
