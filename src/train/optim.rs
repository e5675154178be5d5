//! Adam / AdamW with parameter groups, whose state can be saved and restored.
//!
//! Our own rather than `tch::nn::Optimizer`: tch's optimizers cannot export or import
//! their moments, and exact resume (method.md §6, §9.7) needs them. The update is
//! PyTorch's `torch.optim.Adam` / `AdamW` (single-tensor path), checked against PyTorch
//! in tests/models/clip_infra.rs.
use crate::checkpoint;
use anyhow::{bail, Result};
use std::collections::{HashMap, HashSet};
use tch::{Kind, Tensor};

/// Parameters that share a learning rate (e.g. CLIP's backbone, or `linear_subr`).
pub struct ParamGroup {
    /// For messages and logs (`backbone`, `linear_subr`).
    pub name: String,
    /// Parameters with stable, unique names (their VarStore names): the optimizer
    /// state is saved under them.
    pub params: Vec<(String, Tensor)>,
    pub lr: f64,
}

impl ParamGroup {
    pub fn new(name: &str, params: Vec<(String, Tensor)>, lr: f64) -> ParamGroup {
        ParamGroup { name: name.to_string(), params, lr }
    }
}

struct ParamState {
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    /// Updates applied to this parameter (PyTorch counts per parameter: a parameter
    /// without a gradient in a step is skipped and its count does not advance).
    step: i64,
}

pub struct Adam {
    groups: Vec<ParamGroup>,
    state: Vec<Vec<ParamState>>,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
    /// true: AdamW (decay the weights directly); false: Adam (L2 added to the gradient).
    decoupled: bool,
}

impl Adam {
    pub fn new(groups: Vec<ParamGroup>, betas: (f64, f64), eps: f64, weight_decay: f64, decoupled: bool) -> Adam {
        let state = groups
            .iter()
            .map(|g| {
                g.params
                    .iter()
                    .map(|(_, p)| ParamState { exp_avg: p.zeros_like().detach(), exp_avg_sq: p.zeros_like().detach(), step: 0 })
                    .collect()
            })
            .collect();
        Adam { groups, state, betas, eps, weight_decay, decoupled }
    }

    pub fn groups(&self) -> &[ParamGroup] {
        &self.groups
    }

    pub fn lr(&self, group: usize) -> f64 {
        self.groups[group].lr
    }

    pub fn set_lr(&mut self, group: usize, lr: f64) {
        self.groups[group].lr = lr;
    }

    /// Every parameter of every group (for gradient clipping).
    pub fn params(&self) -> Vec<Tensor> {
        self.groups.iter().flat_map(|g| g.params.iter().map(|(_, p)| p.shallow_clone())).collect()
    }

    /// Zero the gradients of every parameter (those that have one).
    pub fn zero_grad(&mut self) {
        for g in &mut self.groups {
            for (_, p) in &mut g.params {
                p.zero_grad();
            }
        }
    }

    /// One update of every parameter that has a gradient.
    pub fn step(&mut self) {
        let (b1, b2) = self.betas;
        tch::no_grad(|| {
            for (g, states) in self.groups.iter().zip(self.state.iter_mut()) {
                let lr = g.lr;
                for ((_, p), st) in g.params.iter().zip(states.iter_mut()) {
                    let grad = p.grad();
                    if !grad.defined() {
                        continue;
                    }
                    let mut p = p.shallow_clone();
                    st.step += 1;
                    let grad = if self.weight_decay != 0.0 {
                        if self.decoupled {
                            let _ = p.g_mul_scalar_(1.0 - lr * self.weight_decay);
                            grad
                        } else {
                            &grad + &p * self.weight_decay
                        }
                    } else {
                        grad
                    };
                    // PyTorch's arithmetic, in place where it is: three temporaries per
                    // parameter (the old version made seven). tch's addcmul_/addcdiv_
                    // have no `value`, so it goes into the first factor, which keeps
                    // PyTorch's rounding order (value * t1) * t2.
                    let _ = st.exp_avg.lerp_(&grad, 1.0 - b1);
                    let _ = st.exp_avg_sq.g_mul_scalar_(b2);
                    let _ = st.exp_avg_sq.addcmul_(&(&grad * (1.0 - b2)), &grad);
                    let bias1 = 1.0 - b1.powi(st.step as i32);
                    let bias2 = 1.0 - b2.powi(st.step as i32);
                    let step_size = lr / bias1;
                    let mut denom = st.exp_avg_sq.sqrt();
                    let _ = denom.g_div_scalar_(bias2.sqrt());
                    let _ = denom.g_add_scalar_(self.eps);
                    // param.addcdiv_(exp_avg, denom, value=-step_size) = param + (-step_size) * (exp_avg / denom)
                    let mut update = &st.exp_avg / &denom;
                    let _ = update.g_mul_scalar_(-step_size);
                    let _ = p.g_add_(&update);
                }
            }
        });
    }

    /// The optimizer state as named tensors: `{prefix}{param}.exp_avg`,
    /// `{prefix}{param}.exp_avg_sq`, `{prefix}{param}.step` (an i64 scalar).
    pub fn state_tensors(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (g, states) in self.groups.iter().zip(&self.state) {
            for ((name, _), st) in g.params.iter().zip(states) {
                out.push((format!("{prefix}{name}.exp_avg"), st.exp_avg.shallow_clone()));
                out.push((format!("{prefix}{name}.exp_avg_sq"), st.exp_avg_sq.shallow_clone()));
                out.push((format!("{prefix}{name}.step"), Tensor::from(st.step)));
            }
        }
        out
    }

    /// Restore the state written by [`Self::state_tensors`]. Every parameter's entries
    /// must be there with the right shapes, and no other names under `prefix`; the error
    /// lists what is missing, unexpected or mis-shaped.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, prefix: &str) -> Result<()> {
        let mut missing = Vec::new();
        let mut misshaped = Vec::new();
        let mut used = HashSet::new();
        for (g, states) in self.groups.iter().zip(&self.state) {
            for ((name, p), _) in g.params.iter().zip(states) {
                for (suffix, want) in [("exp_avg", p.size()), ("exp_avg_sq", p.size()), ("step", vec![])] {
                    let key = format!("{prefix}{name}.{suffix}");
                    match tensors.get(&key) {
                        None => missing.push(key),
                        Some(t) if t.size() != want => misshaped.push(format!("{key}: {:?}, expected {want:?}", t.size())),
                        Some(_) => {
                            used.insert(key);
                        }
                    }
                }
            }
        }
        let mut unexpected: Vec<&String> = tensors.keys().filter(|k| k.starts_with(prefix) && !used.contains(*k)).collect();
        unexpected.sort();
        if !missing.is_empty() || !misshaped.is_empty() || !unexpected.is_empty() {
            bail!(
                "the optimizer state does not match the parameters:{}{}{}",
                checkpoint::name_list("missing", &missing),
                checkpoint::name_list("unexpected", &unexpected),
                checkpoint::name_list("wrong shape", &misshaped)
            );
        }
        tch::no_grad(|| {
            for (g, states) in self.groups.iter().zip(self.state.iter_mut()) {
                for ((name, _), st) in g.params.iter().zip(states.iter_mut()) {
                    st.exp_avg.copy_(&tensors[&format!("{prefix}{name}.exp_avg")]);
                    st.exp_avg_sq.copy_(&tensors[&format!("{prefix}{name}.exp_avg_sq")]);
                    st.step = tensors[&format!("{prefix}{name}.step")].to_kind(Kind::Int64).int64_value(&[]);
                }
            }
        });
        Ok(())
    }
}

/// Scale the gradients so that their global L2 norm is at most `max_norm` (PyTorch's
/// `clip_grad_norm_`); returns the norm before clipping (NaN/Inf when a gradient is,
/// which the caller treats as divergence).
pub fn clip_grad_norm(params: &[Tensor], max_norm: f64) -> f64 {
    tch::no_grad(|| {
        let grads: Vec<Tensor> = params.iter().map(|p| p.grad()).filter(|g| g.defined()).collect();
        if grads.is_empty() {
            return 0.0;
        }
        let norms: Vec<Tensor> = grads.iter().map(|g| g.to_kind(Kind::Float).norm()).collect();
        let total = Tensor::stack(&norms, 0).norm().double_value(&[]);
        if max_norm > 0.0 && total.is_finite() {
            let coef = (max_norm / (total + 1e-6)).min(1.0);
            if coef < 1.0 {
                for g in &grads {
                    let _ = g.shallow_clone().g_mul_scalar_(coef);
                }
            }
        }
        total
    })
}
