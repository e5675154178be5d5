//! Kernel Inception Distance (Bińkowski et al. 2018): the unbiased MMD² with the cubic
//! polynomial kernel `k(x, y) = (x·y / d + 1)^3`, averaged over random subsets, as
//! torch-fidelity and clean-fid compute it (defaults: 100 subsets of 1,000).
use super::inception_score::MeanStd;
use crate::seed::Rng;
use anyhow::{bail, Result};
use tch::{Kind, Tensor};

/// Unbiased MMD² between feature sets x (m x d) and y (n x d), cubic kernel.
pub fn mmd2_unbiased(x: &Tensor, y: &Tensor) -> Result<f64> {
    let x = x.to_kind(Kind::Double);
    let y = y.to_kind(Kind::Double);
    let (m, d) = x.size2()?;
    let (n, d2) = y.size2()?;
    if d != d2 || m < 2 || n < 2 {
        bail!("KID: feature sets of shapes {:?} and {:?} (need the same width and 2+ rows each)", x.size(), y.size());
    }
    let k = |a: &Tensor, b: &Tensor| (a.matmul(&b.transpose(0, 1)) / d as f64 + 1.0).pow_tensor_scalar(3);
    let kxx = k(&x, &x);
    let kyy = k(&y, &y);
    let kxy = k(&x, &y);
    let off = |t: &Tensor| t.sum(Kind::Double).double_value(&[]) - t.trace().double_value(&[]);
    let (m, n) = (m as f64, n as f64);
    Ok(off(&kxx) / (m * (m - 1.0)) + off(&kyy) / (n * (n - 1.0)) - 2.0 * kxy.sum(Kind::Double).double_value(&[]) / (m * n))
}

/// KID: mean ± std of the unbiased MMD² over `subsets` random subsets of `subset_size`
/// rows of each set (fewer rows when a set is smaller), drawn from `seed`.
pub fn kid(x: &Tensor, y: &Tensor, subsets: usize, subset_size: usize, seed: u64) -> Result<MeanStd> {
    let (m, _) = x.size2()?;
    let (n, _) = y.size2()?;
    let size = subset_size.min(m as usize).min(n as usize);
    if subsets == 0 || size < 2 {
        bail!("KID: needs at least 2 feature vectors per set and 1 subset");
    }
    let mut rng = Rng::new(seed, &[crate::seed::stream::VAL, 0x4B1D]);
    let mut values = Vec::with_capacity(subsets);
    for _ in 0..subsets {
        let ix = choose(&mut rng, m as usize, size);
        let iy = choose(&mut rng, n as usize, size);
        values.push(mmd2_unbiased(&x.index_select(0, &ix), &y.index_select(0, &iy))?);
    }
    Ok(MeanStd::of(&values))
}

/// `k` distinct indices of `0..n` (partial Fisher-Yates).
fn choose(rng: &mut Rng, n: usize, k: usize) -> Tensor {
    let mut all: Vec<i64> = (0..n as i64).collect();
    for i in 0..k {
        let j = i + rng.below((n - i) as u64) as usize;
        all.swap(i, j);
    }
    Tensor::from_slice(&all[..k])
}
