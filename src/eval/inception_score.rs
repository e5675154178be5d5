//! Inception Score: `exp(E_x KL(p(y|x) || p(y)))` over `splits` contiguous parts of the
//! images, mean ± std (numpy's population std) over the parts, as the original
//! implementation (Salimans et al.) and StackGAN/AttnGAN's evaluation compute it.
use anyhow::{bail, Result};
use tch::{Kind, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct MeanStd {
    pub mean: f64,
    pub std: f64,
}

impl MeanStd {
    /// Mean and population standard deviation (numpy's default `ddof=0`).
    pub fn of(values: &[f64]) -> MeanStd {
        let n = values.len().max(1) as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        MeanStd { mean, std: var.sqrt() }
    }
}

/// Inception Score from classifier logits (N x classes).
pub fn inception_score(logits: &Tensor, splits: usize) -> Result<MeanStd> {
    let (n, _c) = logits.size2()?;
    if splits == 0 || (n as usize) < splits {
        bail!("Inception Score: {n} images cannot be split into {splits} parts");
    }
    let p = logits.to_kind(Kind::Double).softmax(1, Kind::Double);
    let n = n as usize;
    let mut scores = Vec::with_capacity(splits);
    for k in 0..splits {
        // Same part boundaries as `np.array_split`-free originals: k*n/splits .. (k+1)*n/splits.
        let start = k * n / splits;
        let end = (k + 1) * n / splits;
        let part = p.narrow(0, start as i64, (end - start) as i64);
        let py = part.mean_dim(0, true, Kind::Double);
        // 0 * log 0 = 0: clamp only inside the log.
        let kl = (&part * (part.clamp_min(1e-300).log() - py.clamp_min(1e-300).log())).sum_dim_intlist(1, false, Kind::Double);
        scores.push(kl.mean(Kind::Double).double_value(&[]).exp());
    }
    Ok(MeanStd::of(&scores))
}
