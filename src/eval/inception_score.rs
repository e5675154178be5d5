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

/// Which Inception gives the Inception Score's class probabilities (method.md §7: the
/// CUB-finetuned one of StackGAN for birds, the ImageNet one for COCO).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsModel {
    /// pytorch-fid's FID Inception (1008 ImageNet classes, logits without the bias).
    Imagenet,
    /// StackGAN's CUB-finetuned TF-slim Inception V3 (50 bird classes).
    CubStackgan,
}

impl IsModel {
    pub const NAMES: [&'static str; 2] = ["imagenet", "cub-stackgan"];

    /// The name in configs, on the command line and in results.json.
    pub fn as_str(self) -> &'static str {
        match self {
            IsModel::Imagenet => "imagenet",
            IsModel::CubStackgan => "cub-stackgan",
        }
    }
}

impl std::fmt::Display for IsModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for IsModel {
    type Err = String;

    fn from_str(s: &str) -> Result<IsModel, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "imagenet" => Ok(IsModel::Imagenet),
            "cub-stackgan" | "cub" | "stackgan" => Ok(IsModel::CubStackgan),
            _ => Err(format!("unknown Inception Score model {s:?}; expected one of: {}", IsModel::NAMES.join(", "))),
        }
    }
}

/// A loaded Inception Score network.
pub enum IsNetwork {
    /// Both boxed: the networks' structs differ much in size.
    Imagenet(Box<super::inception::FidInception>),
    CubStackgan(Box<super::stackgan_inception::StackganInception>),
}

impl IsNetwork {
    /// Build `model` on `device` with the weights at `path` (pytorch-fid's `.pth` /
    /// `.safetensors` for `imagenet`; the converted `.safetensors` for `cub-stackgan`).
    pub fn load(model: IsModel, path: &std::path::Path, device: tch::Device) -> Result<(tch::nn::VarStore, IsNetwork)> {
        Ok(match model {
            IsModel::Imagenet => {
                let (vs, net) = super::inception::load(path, device)?;
                (vs, IsNetwork::Imagenet(Box::new(net)))
            }
            IsModel::CubStackgan => {
                let (vs, net) = super::stackgan_inception::load(path, device)?;
                (vs, IsNetwork::CubStackgan(Box::new(net)))
            }
        })
    }

    pub fn model(&self) -> IsModel {
        match self {
            IsNetwork::Imagenet(_) => IsModel::Imagenet,
            IsNetwork::CubStackgan(_) => IsModel::CubStackgan,
        }
    }

    /// The logits the score's softmax takes, of images in [0, 1] (B x 3 x H x W).
    pub fn logits(&self, images: &Tensor) -> Result<Tensor> {
        match self {
            IsNetwork::Imagenet(net) => Ok(net.forward(images, 2048, true)?.logits.expect("logits requested")),
            IsNetwork::CubStackgan(net) => net.logits(images),
        }
    }
}
