//! The crossbar kernel: one `linear` layer on AIMC tiles, `y = W x + b`.
//!
//! Per layer, `β = 1 / max|W|` maps weights to normalised targets (a differential pair
//! per weight: `g⁺ = max(βW, 0)`, `g⁻ = max(−βW, 0)`). Per sample, the input is scaled by
//! its largest magnitude (aihwkit's `noise_management = ABS_MAX`) and rounded to the DAC's
//! `2^(b−1) − 1` levels a side. Each row of tiles reads its block of inputs; its outputs
//! (in full-scale products) get output noise and per-MVM read noise, are clipped to
//! `± out_bound` and rounded by the ADC (`2^(b−1) − 1` levels a side), then added
//! digitally. Scales and bias are digital.
//!
//! A noise draw programs every device once from the draw's seed and the node: programming
//! noise, a drift exponent ν per device, drift to `t_inference + t0`, and the read-noise σ
//! at that time, drawn afresh per sample (per MVM). The sum of independent device read
//! noises on one output is Gaussian with variance `Σ_j σ_ij² x_j²`, which is what is drawn.
//! Global drift compensation scales the outputs by the ratio of an all-ones read of the
//! programmed array to one of the drifted array (aihwkit's `GlobalDriftCompensation`, read
//! without noise here). Without a draw the devices are ideal and only the converters act;
//! exact arithmetic turns them off too.
//!
//! Backward is straight-through (as aihwkit's hardware-aware training): gradients flow
//! through the matrix the forward used, `W_eff = α β⁻¹ (g⁺ − g⁻)(t)`, to the nominal `W`.

use super::model;
use super::AimcSpec;
use crate::backend::digital::prims::{
    dense_backward_aux, dense_fields, dense_init, dense_params, DenseAux,
};
use crate::backend::kernel::{
    aux, complex, real, Aux, Block, Kernel, KernelError, NoiseDraw, Spare, Step,
};
use crate::ir::{IrNode, Target};
use ndarray::{s, Array2, Axis};
use rand::rngs::StdRng;
use rand::Rng;
use rand_distr::StandardNormal;

/// The kernel of a `crossbar` node on its profile.
#[derive(Clone, Debug)]
pub struct Crossbar {
    spec: AimcSpec,
    dac_bits: u32,
    adc_bits: u32,
}

/// One programmed instance of a layer, relative to `g_max`.
#[derive(Clone, Debug, PartialEq)]
pub struct Programmed {
    /// `g⁺ − g⁻` at `t_inference` (drift included, read noise not).
    pub g: Array2<f64>,
    /// Read-noise variance per weight (both devices) at `t_inference`.
    pub read_var: Array2<f64>,
    /// Global drift compensation factor (1 when off).
    pub alpha: f64,
}

/// The matrix and input the forward used (for the straight-through backward).
impl Crossbar {
    pub fn new(target: &Target) -> Crossbar {
        Crossbar {
            spec: super::aimc(&target.backend),
            dac_bits: target.precision.dac,
            adc_bits: target.precision.adc,
        }
    }

    /// Programs the normalised weights `wn` (in [−1, 1]) onto device pairs and lets them
    /// drift to `t_inference`, drawing from `rng`.
    pub fn program(&self, wn: &Array2<f64>, rng: &mut StdRng) -> Programmed {
        let s = &self.spec;
        let t = s.t_inference + s.t0;
        let mut g = Array2::zeros(wn.dim());
        let mut g0 = Array2::zeros(wn.dim());
        let mut read_var = Array2::zeros(wn.dim());
        for (ix, &w) in wn.indexed_iter() {
            let (mut gd, mut gp, mut var) = ([0.0; 2], [0.0; 2], 0.0);
            for (k, target) in [w.max(0.0), (-w).max(0.0)].into_iter().enumerate() {
                let z: f64 = rng.sample(StandardNormal);
                let prog = if s.prog_noise {
                    (target + s.prog_noise_scale * model::prog_sigma(target) * z).max(0.0)
                } else {
                    target
                };
                let z: f64 = rng.sample(StandardNormal);
                let drifted = if s.drift {
                    let nu = (model::drift_mu(target) + model::drift_sigma(target) * z).abs();
                    prog * model::drift_factor(t, s.t0, nu)
                } else {
                    prog
                };
                if s.read_noise {
                    var += model::read_sigma(drifted, prog, t, s.t_read).powi(2);
                }
                gp[k] = prog;
                gd[k] = drifted;
            }
            g[ix] = gd[0] - gd[1];
            g0[ix] = gp[0] - gp[1];
            read_var[ix] = var;
        }
        let alpha = if s.drift_compensation {
            // All-ones reads: the mean |Σ_j g_ij| before and after drift.
            let read = |m: &Array2<f64>| m.sum_axis(Axis(1)).mapv(f64::abs).sum();
            let (before, after) = (read(&g0), read(&g));
            if after > 0.0 {
                before / after
            } else {
                1.0
            }
        } else {
            1.0
        };
        Programmed { g, read_var, alpha }
    }

    /// `y = W x + b` on the tiles: `g` the normalised matrix in use, `scale` its weight
    /// scale, `x` real inputs (`nin × batch`); noise from `draw` if any.
    #[allow(clippy::too_many_arguments)]
    fn mvm(
        &self,
        g: &Array2<f64>,
        read_var: Option<&Array2<f64>>,
        scale: f64,
        bias: &[f64],
        x: &Array2<f64>,
        noise: Option<(&NoiseDraw, usize)>,
    ) -> Array2<f64> {
        let s = &self.spec;
        let (nout, nin) = g.dim();
        let batch = x.ncols();
        // Per-sample input scale (ABS_MAX) and DAC rounding.
        let xmax: Vec<f64> = (0..batch)
            .map(|c| x.column(c).iter().fold(0.0f64, |m, v| m.max(v.abs())))
            .collect();
        let dac = levels(self.dac_bits);
        let mut xn = x.clone();
        for (c, mut col) in xn.columns_mut().into_iter().enumerate() {
            let m = xmax[c];
            col.mapv_inplace(|v| if m > 0.0 { round_to(v / m, dac) } else { 0.0 });
        }
        let adc = levels(self.adc_bits);
        let mut rng = noise.map(|(d, i)| d.rng(i, 1));
        let mut acc = Array2::<f64>::zeros((nout, batch));
        let mut start = 0;
        while start < nin {
            let end = (start + s.tile_rows).min(nin);
            let gb = g.slice(s![.., start..end]);
            let xb = xn.slice(s![start..end, ..]);
            let mut y = gb.dot(&xb);
            if let Some(rng) = rng.as_mut() {
                let var = read_var.map(|v| v.slice(s![.., start..end]).dot(&xb.mapv(|v| v * v)));
                for ((r, c), v) in y.indexed_iter_mut() {
                    let mut sd2 = s.out_noise * s.out_noise;
                    if let Some(var) = &var {
                        sd2 += var[[r, c]];
                    }
                    if sd2 > 0.0 {
                        *v += sd2.sqrt() * rng.sample::<f64, _>(StandardNormal);
                    }
                }
            }
            y.mapv_inplace(|v| {
                s.out_bound * round_to(v.clamp(-s.out_bound, s.out_bound) / s.out_bound, adc)
            });
            acc += &y;
            start = end;
        }
        for ((r, c), v) in acc.indexed_iter_mut() {
            *v = *v * scale * xmax[c] + bias[r];
        }
        acc
    }
}

/// Levels a side of a signed `bits`-bit converter (`None`: no rounding).
fn levels(bits: u32) -> Option<f64> {
    (1..=31)
        .contains(&bits)
        .then(|| ((1u64 << (bits - 1)) as f64 - 1.0).max(1.0))
}

/// `v` (in [−1, 1]) rounded to `l` levels a side.
fn round_to(v: f64, l: Option<f64>) -> f64 {
    match l {
        Some(l) => (v * l).round() / l,
        None => v,
    }
}

impl Kernel for Crossbar {
    fn fields(&self, node: &IrNode) -> Vec<(&'static str, usize)> {
        dense_fields(node)
    }

    fn init(&self, node: &IrNode, rng: &mut StdRng) -> Result<Vec<f64>, KernelError> {
        Ok(dense_init(node, rng))
    }

    fn forward(
        &self,
        s: &Step<'_>,
        x: &Block,
        p: &[f64],
        _spare: Spare,
    ) -> Result<(Block, Aux), KernelError> {
        let (wm, bias) = dense_params(s.node, p)?;
        let xr = real(x);
        let wmax = wm.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        if (s.exact && s.draw.is_none()) || wmax == 0.0 {
            let mut y = wm.dot(&xr);
            for (mut row, b) in y.outer_iter_mut().zip(bias) {
                row.mapv_inplace(|v| v + b);
            }
            return Ok((complex(&y), aux(DenseAux { w: wm, x: xr })));
        }
        let wn = wm.mapv(|v| v / wmax);
        let (g, read_var, alpha) = match s.draw {
            Some(d) => {
                let p = self.program(&wn, &mut d.rng(s.index, 0));
                (p.g, Some(p.read_var), p.alpha)
            }
            None => (wn, None, 1.0),
        };
        let scale = alpha * wmax;
        let y = if s.exact {
            // Devices as drawn, converters and read noise off.
            let mut y = g.dot(&xr) * scale;
            for (mut row, b) in y.outer_iter_mut().zip(bias) {
                row.mapv_inplace(|v| v + b);
            }
            y
        } else {
            self.mvm(
                &g,
                read_var.as_ref(),
                scale,
                bias,
                &xr,
                s.draw.map(|d| (d, s.index)),
            )
        };
        let w_eff = g * scale;
        Ok((complex(&y), aux(DenseAux { w: w_eff, x: xr })))
    }

    fn backward(
        &self,
        node: &IrNode,
        x: &Block,
        _y: &Block,
        g: Block,
        aux: &Aux,
        _p: &[f64],
        gp: &mut [f64],
    ) -> Result<Block, KernelError> {
        Ok(dense_backward_aux(node, x, g, aux, gp))
    }
}
