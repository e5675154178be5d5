//! Fréchet distance between two Gaussians, in float64:
//! `|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2)`.
//!
//! `tr sqrt(S1 S2)` is the sum of the square roots of the eigenvalues of `S1 S2`, which
//! are those of the symmetric PSD matrix `B^T S2 B` for any `B` with `S1 = B B^T`
//! (`S1 S2 = B B^T S2` and `B^T S2 B` share non-zero eigenvalues). `B` is the Cholesky
//! factor when S1 is positive definite, else `V diag(sqrt(w))` from `S1 = V diag(w) V^T`
//! (singular covariances: fewer samples than dimensions). Then one eigenvalues-only
//! symmetric solve: no complex arithmetic and no matrix square root, unlike scipy's
//! `sqrtm(S1 S2)` that pytorch-fid uses (the same value; tests/eval/metrics.rs checks it
//! against a direct eigendecomposition of S1 S2).
use anyhow::{bail, Result};
use tch::{Kind, Tensor};

/// Gaussian statistics of features: mean (D) and covariance (D x D), float64.
pub struct Stats {
    pub mu: Tensor,
    pub sigma: Tensor,
}

impl Stats {
    /// Mean and unbiased covariance (numpy's `np.cov(rowvar=False)`) of N x D features.
    pub fn from_features(features: &Tensor) -> Result<Stats> {
        let f = features.to_kind(Kind::Double);
        let (n, _d) = f.size2()?;
        if n < 2 {
            bail!("statistics need at least 2 feature vectors, got {n}");
        }
        let mu = f.mean_dim(0, false, Kind::Double);
        let c = &f - &mu;
        let sigma = c.transpose(0, 1).matmul(&c) / (n - 1) as f64;
        Ok(Stats { mu, sigma })
    }

    pub fn dim(&self) -> i64 {
        self.mu.size()[0]
    }
}

/// Run a LAPACK call on one libtorch thread: MKL's symmetric eigensolvers slow down
/// 5-10x with 2 OpenMP threads on a loaded 2-core machine (2048-d eigvalsh: 13 s vs
/// 1.8 s on one thread, measured). Matrix products keep every thread.
fn one_thread<T>(f: impl FnOnce() -> T) -> T {
    let threads = tch::get_num_threads();
    tch::set_num_threads(1);
    let out = f();
    tch::set_num_threads(threads);
    out
}

/// `tr sqrt(S1 S2)` for symmetric PSD S1, S2 (see the module comment).
pub fn trace_sqrt_product(s1: &Tensor, s2: &Tensor) -> Tensor {
    let s1 = s1.to_kind(Kind::Double);
    let s2 = s2.to_kind(Kind::Double);
    // Symmetrise: float round-off in a covariance makes it slightly asymmetric.
    let s1 = (&s1 + s1.transpose(0, 1)) * 0.5;
    // B with S1 = B B^T: Cholesky when S1 is positive definite (cheapest), else the
    // eigendecomposition (singular S1: fewer samples than dimensions).
    let (l, info) = one_thread(|| s1.linalg_cholesky_ex(false, false));
    let b = if info.int64_value(&[]) == 0 {
        l
    } else {
        let (w, v) = one_thread(|| s1.linalg_eigh("L"));
        v * w.clamp_min(0.0).sqrt().unsqueeze(0)
    };
    let m = b.transpose(0, 1).matmul(&s2).matmul(&b);
    let m = (&m + m.transpose(0, 1)) * 0.5;
    // Tiny negative eigenvalues are round-off of a PSD matrix.
    one_thread(|| m.linalg_eigvalsh("L")).clamp_min(0.0).sqrt().sum(Kind::Double)
}

/// Fréchet distance between N(mu1, s1) and N(mu2, s2).
pub fn frechet_distance(a: &Stats, b: &Stats) -> Result<f64> {
    if a.mu.size() != b.mu.size() || a.sigma.size() != b.sigma.size() {
        bail!("Fréchet distance: statistics of different dimensions ({:?} vs {:?})", a.sigma.size(), b.sigma.size());
    }
    let d = a.dim();
    if a.sigma.size() != [d, d] {
        bail!("Fréchet distance: covariance of shape {:?} for a mean of dimension {d}", a.sigma.size());
    }
    let diff = a.mu.to_kind(Kind::Double) - b.mu.to_kind(Kind::Double);
    let s1 = a.sigma.to_kind(Kind::Double);
    let s2 = b.sigma.to_kind(Kind::Double);
    let value: Tensor = diff.dot(&diff) + s1.trace() + s2.trace() - 2.0 * trace_sqrt_product(&s1, &s2);
    let v = value.double_value(&[]);
    if !v.is_finite() {
        bail!("Fréchet distance is not finite ({v}): the statistics hold NaN or infinite values");
    }
    Ok(v)
}
