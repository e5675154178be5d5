//! R-precision with the AttnGAN/DM-GAN protocol (method.md section 7): for a generated
//! image, 100 candidate captions (its ground truth + 99 captions of images of other
//! classes; with no classes, give every image its own class); a hit when the ground
//! truth ranks first. A tie counts as DM-GAN's `torch.argmax` does: the first index wins,
//! and the ground truth is index 0, so a tie is a hit (a degenerate constant encoder
//! scores 100 %, as in DM-GAN; compare with `RPrecision::chance`). Trial t uses generated
//! image t (distinct images, as DM-GAN's loop: more trials than images is an error); the
//! trials are cut into `folds` contiguous folds; reported as mean ± std (population) over
//! the folds' hit rates.
//!
//! The evaluation job uses the published protocol (`Protocol::default`: 100 candidates,
//! 30,000 trials, 10 folds); CLIP finetuning's validation the same ranking over its test
//! split with every image once ([`Protocol::one_pass`]).
//!
//! A pure function over codes and class ids, so it is tested without any model.
use super::inception_score::MeanStd;
use crate::seed::{stream, Rng};
use anyhow::{bail, Result};
use std::collections::HashMap;
use tch::{Kind, Tensor};

#[derive(Clone, Debug, serde::Serialize)]
pub struct Protocol {
    /// Candidates per trial, the ground truth included (100).
    pub candidates: usize,
    /// Trials in all, one generated image each (30,000: CUB 2,933 images x ~10.2 passes).
    pub trials: usize,
    /// Folds the trials are cut into (10).
    pub folds: usize,
    /// Seed of the candidate draws (trial t draws from `derive(seed, [VAL, R, t])`).
    pub seed: u64,
}

impl Default for Protocol {
    fn default() -> Protocol {
        Protocol { candidates: 100, trials: 30_000, folds: 10, seed: 100 }
    }
}

impl Protocol {
    /// Every image once as its own trial, in one fold: the validation of CLIP finetuning on
    /// its test split. `candidates` is capped by what the split allows (its own caption plus
    /// the fewest captions of other classes any image has), as a validation split may be
    /// small. `None` when that leaves fewer than 2 candidates (a split of one class).
    pub fn one_pass(classes: &[i64], candidates: usize, seed: u64) -> Option<Protocol> {
        let candidates = candidates.min(fewest_other_class(classes) + 1);
        (candidates >= 2).then_some(Protocol { candidates, trials: classes.len(), folds: 1, seed })
    }
}

/// The fewest images of other classes that any image has (0 for no images).
fn fewest_other_class(classes: &[i64]) -> usize {
    let mut per_class: HashMap<i64, usize> = HashMap::new();
    for c in classes {
        *per_class.entry(*c).or_default() += 1;
    }
    per_class.values().map(|k| classes.len() - k).min().unwrap_or(0)
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct RPrecision {
    /// Hit rate, mean ± std over folds, as a fraction (0..1).
    pub mean: f64,
    pub std: f64,
    pub folds: Vec<f64>,
    pub trials: usize,
    pub candidates: usize,
}

impl RPrecision {
    /// The expected hit rate of a random ranking: 1 / candidates.
    pub fn chance(&self) -> f64 {
        1.0 / self.candidates as f64
    }
}

/// Unit-norm rows as a flat f32 vector.
fn normalized_rows(t: &Tensor) -> Result<(Vec<f32>, usize, usize)> {
    let (n, d) = t.size2()?;
    let t = t.to_kind(Kind::Float).to_device(tch::Device::Cpu);
    let t = &t / t.norm_scalaropt_dim(2.0, [1].as_slice(), true).clamp_min(1e-12);
    let v: Vec<f32> = Vec::<f32>::try_from(t.contiguous().view(-1))?;
    Ok((v, n as usize, d as usize))
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// R-precision of image codes (N x D) against the text codes of their own captions
/// (N x D, row i = the caption image i was generated from), images labelled by `classes`.
pub fn r_precision(image_codes: &Tensor, text_codes: &Tensor, classes: &[i64], p: &Protocol) -> Result<RPrecision> {
    let (img, n, d) = normalized_rows(image_codes)?;
    let (txt, n2, d2) = normalized_rows(text_codes)?;
    if n != n2 || d != d2 || classes.len() != n {
        bail!("R-precision: {n} image codes of width {d}, {n2} text codes of width {d2} and {} class ids (must agree)", classes.len());
    }
    if p.candidates < 2 || p.folds == 0 || p.trials < p.folds || n == 0 {
        bail!("R-precision: needs 2+ candidates, 1+ folds, at least as many trials as folds and 1+ image (got {p:?}, {n} images)");
    }
    if p.trials > n {
        bail!("R-precision: {} trials but {n} generated images (each trial uses its own image)", p.trials);
    }
    let mut per_class: HashMap<i64, usize> = HashMap::new();
    for c in classes {
        *per_class.entry(*c).or_default() += 1;
    }
    for (c, k) in &per_class {
        if n - k < p.candidates - 1 {
            bail!("R-precision: images of class {c} have only {} captions of other classes, {} are needed", n - k, p.candidates - 1);
        }
    }
    let mut hits = vec![false; p.trials];
    let mut chosen = Vec::with_capacity(p.candidates);
    // Trial i: generated image i.
    for (i, hit) in hits.iter_mut().enumerate() {
        let code = &img[i * d..(i + 1) * d];
        let gt = dot(code, &txt[i * d..(i + 1) * d]);
        let mut rng = Rng::new(p.seed, &[stream::VAL, 0x5250, i as u64]);
        chosen.clear();
        // Rejection sampling: the pool holds most images (other classes), so this ends fast.
        while chosen.len() < p.candidates - 1 {
            let j = rng.below(n as u64) as usize;
            if classes[j] != classes[i] && !chosen.contains(&j) {
                chosen.push(j);
            }
        }
        // argmax over [gt, candidates...]: the first maximum wins, so ties go to the ground truth.
        *hit = chosen.iter().all(|&j| dot(code, &txt[j * d..(j + 1) * d]) <= gt);
    }
    let folds: Vec<f64> = (0..p.folds)
        .map(|k| {
            let (s, e) = (k * p.trials / p.folds, (k + 1) * p.trials / p.folds);
            hits[s..e].iter().filter(|h| **h).count() as f64 / (e - s) as f64
        })
        .collect();
    let ms = MeanStd::of(&folds);
    Ok(RPrecision { mean: ms.mean, std: ms.std, folds, trials: p.trials, candidates: p.candidates })
}
