//! StackGAN's CUB-finetuned Inception V3, the standard network of the CUB Inception Score
//! (method.md §7; StackGAN-inception-model, used by AttnGAN and DM-GAN's
//! `inception_score_bird.py`), inference only.
//!
//! The network is the TF-slim Inception V3 of TensorFlow's `inception/slim` (2016):
//! the plain blocks, not pytorch-fid's FID patches. Every convolution is conv (no bias) +
//! BatchNorm (beta only: slim's `batch_norm` has `scale=False`, eps 0.001, moving
//! statistics) + ReLU; every average pool of a block is 3x3 stride 1 'SAME', which in
//! TensorFlow averages over the valid inputs only (`count_include_pad=False`), Mixed
//! 8x8x2048b included (pytorch-fid's Mixed_7c has a max pool there); the head is a
//! global average pool and `logits/logits` (2048 -> 51 with bias; class 0 is the unused
//! background class). The Inception Score takes the softmax over classes 1..50 of those
//! logits, as StackGAN's evaluation code (`tf.slice(logits, [0, 1], ...)`) does; the
//! auxiliary head is not needed and not built.
//!
//! Parameter names are the TensorFlow checkpoint's with `/` replaced by `.`
//! (`conv0.weights`, `conv0.BatchNorm.beta`, `conv0.BatchNorm.moving_mean`,
//! `mixed_35x35x256a.branch5x5.Conv_1.weights`, ..., `logits.logits.weights`,
//! `logits.logits.biases`), tensors in PyTorch layout (convolutions O x I x H x W, the fully
//! connected weight out x in). `scripts/convert_stackgan_inception.py` writes such a
//! `.safetensors` from the released checkpoint (its exponential-moving-average values, as
//! StackGAN's evaluation restores them).
//!
//! Input: images in [0, 1]; bilinear resize to 299 (`align_corners=False`), rounded to 8
//! bits as StackGAN's `scipy.misc.imresize` returns them, then `x / 127.5 - 1`.
use anyhow::{bail, Context, Result};
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// The network's shape: classes of the final layer, background included (StackGAN's
/// birds model: 50 + 1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StackganInceptionConfig {
    pub num_classes: i64,
}

impl Default for StackganInceptionConfig {
    fn default() -> Self {
        StackganInceptionConfig { num_classes: 51 }
    }
}

/// conv (no bias) + BatchNorm (beta, moving mean and variance; no gamma) + ReLU, with
/// TF's padding given explicitly ('SAME' at stride 1 is symmetric).
struct Unit {
    weight: Tensor,
    beta: Tensor,
    mean: Tensor,
    var: Tensor,
    stride: i64,
    padding: [i64; 2],
}

impl Unit {
    fn new(p: nn::Path, cin: i64, cout: i64, k: [i64; 2], stride: i64, same: bool) -> Unit {
        let bn = &p / "BatchNorm";
        let padding = if same { [(k[0] - 1) / 2, (k[1] - 1) / 2] } else { [0, 0] };
        Unit {
            weight: p.var("weights", &[cout, cin, k[0], k[1]], nn::init::DEFAULT_KAIMING_UNIFORM),
            beta: bn.var("beta", &[cout], nn::Init::Const(0.0)),
            mean: bn.zeros_no_train("moving_mean", &[cout]),
            var: bn.ones_no_train("moving_variance", &[cout]),
            stride,
            padding,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        // BatchNorm folded into the convolution: (conv(x) - mean) / sqrt(var + eps) + beta.
        let inv = (&self.var + 1e-3).rsqrt();
        let w = &self.weight * inv.view([-1, 1, 1, 1]);
        let b = &self.beta - &self.mean * &inv;
        x.conv2d(&w, Some(&b), [self.stride, self.stride], self.padding, [1, 1], 1).relu()
    }
}

/// The units of one branch, named `Conv`, `Conv_1`, ... as TF's default scopes name them.
struct Branch {
    units: Vec<Unit>,
}

impl Branch {
    /// `specs`: (out channels, kernel, stride, 'SAME') per unit, in order.
    fn new(p: nn::Path, cin: i64, specs: &[(i64, [i64; 2], i64, bool)]) -> Branch {
        let mut c = cin;
        let mut units = Vec::new();
        for (i, &(cout, k, s, same)) in specs.iter().enumerate() {
            let name = if i == 0 { "Conv".to_string() } else { format!("Conv_{i}") };
            units.push(Unit::new(&p / name, c, cout, k, s, same));
            c = cout;
        }
        Branch { units }
    }

    fn chain(&self, x: &Tensor, from: usize, to: usize) -> Tensor {
        self.units[from..to].iter().fold(x.shallow_clone(), |h, u| u.forward(&h))
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        self.chain(x, 0, self.units.len())
    }
}

const K1: [i64; 2] = [1, 1];
const K3: [i64; 2] = [3, 3];
const K5: [i64; 2] = [5, 5];
const K17: [i64; 2] = [1, 7];
const K71: [i64; 2] = [7, 1];
const K13: [i64; 2] = [1, 3];
const K31: [i64; 2] = [3, 1];

/// 3x3 stride-1 'SAME' average pool: TF divides by the number of valid inputs.
fn avg3(x: &Tensor) -> Tensor {
    x.avg_pool2d([3, 3], [1, 1], [1, 1], false, false, None::<i64>)
}

fn max3s2(x: &Tensor) -> Tensor {
    x.max_pool2d([3, 3], [2, 2], [0, 0], [1, 1], false)
}

/// The kinds of mixed block.
enum Mixed {
    /// 35 x 35: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avg-1x1.
    A([Branch; 4]),
    /// 35 -> 17: 3x3/2 | 1x1-3x3-3x3/2 | max.
    B([Branch; 2]),
    /// 17 x 17: 1x1 | 1x1-1x7-7x1 | 1x1-7x1-1x7-7x1-1x7 | avg-1x1.
    C([Branch; 4]),
    /// 17 -> 8: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | max.
    D([Branch; 2]),
    /// 8 x 8: 1x1 | 1x1-(1x3, 3x1) | 1x1-3x3-(1x3, 3x1) | avg-1x1.
    E([Branch; 4]),
}

fn cat(v: &[Tensor]) -> Tensor {
    Tensor::cat(v, 1)
}

impl Mixed {
    fn a(p: nn::Path, cin: i64, pool: i64) -> Mixed {
        Mixed::A([
            Branch::new(&p / "branch1x1", cin, &[(64, K1, 1, true)]),
            Branch::new(&p / "branch5x5", cin, &[(48, K1, 1, true), (64, K5, 1, true)]),
            Branch::new(&p / "branch3x3dbl", cin, &[(64, K1, 1, true), (96, K3, 1, true), (96, K3, 1, true)]),
            Branch::new(&p / "branch_pool", cin, &[(pool, K1, 1, true)]),
        ])
    }

    fn b(p: nn::Path, cin: i64) -> Mixed {
        Mixed::B([
            Branch::new(&p / "branch3x3", cin, &[(384, K3, 2, false)]),
            Branch::new(&p / "branch3x3dbl", cin, &[(64, K1, 1, true), (96, K3, 1, true), (96, K3, 2, false)]),
        ])
    }

    fn c(p: nn::Path, c7: i64) -> Mixed {
        let cin = 768;
        Mixed::C([
            Branch::new(&p / "branch1x1", cin, &[(192, K1, 1, true)]),
            Branch::new(&p / "branch7x7", cin, &[(c7, K1, 1, true), (c7, K17, 1, true), (192, K71, 1, true)]),
            Branch::new(
                &p / "branch7x7dbl",
                cin,
                &[(c7, K1, 1, true), (c7, K71, 1, true), (c7, K17, 1, true), (c7, K71, 1, true), (192, K17, 1, true)],
            ),
            Branch::new(&p / "branch_pool", cin, &[(192, K1, 1, true)]),
        ])
    }

    fn d(p: nn::Path) -> Mixed {
        let cin = 768;
        Mixed::D([
            Branch::new(&p / "branch3x3", cin, &[(192, K1, 1, true), (320, K3, 2, false)]),
            Branch::new(&p / "branch7x7x3", cin, &[(192, K1, 1, true), (192, K17, 1, true), (192, K71, 1, true), (192, K3, 2, false)]),
        ])
    }

    fn e(p: nn::Path, cin: i64) -> Mixed {
        // The split units read the same input: Conv_1 (1x3) and Conv_2 (3x1) after the
        // first 1x1 of branch3x3; Conv_2 (1x3) and Conv_3 (3x1) after the 3x3 of branch3x3dbl.
        let split = |q: nn::Path, first: usize| {
            [
                Unit::new(&q / format!("Conv_{first}"), 384, 384, K13, 1, true),
                Unit::new(&q / format!("Conv_{}", first + 1), 384, 384, K31, 1, true),
            ]
        };
        let mut b3_units = Branch::new(&p / "branch3x3", cin, &[(384, K1, 1, true)]).units;
        b3_units.extend(split(&p / "branch3x3", 1));
        let mut d3_units = Branch::new(&p / "branch3x3dbl", cin, &[(448, K1, 1, true), (384, K3, 1, true)]).units;
        d3_units.extend(split(&p / "branch3x3dbl", 2));
        Mixed::E([
            Branch::new(&p / "branch1x1", cin, &[(320, K1, 1, true)]),
            Branch { units: b3_units },
            Branch { units: d3_units },
            Branch::new(&p / "branch_pool", cin, &[(192, K1, 1, true)]),
        ])
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            Mixed::A([b1, b5, d3, pool]) | Mixed::C([b1, b5, d3, pool]) => {
                cat(&[b1.forward(x), b5.forward(x), d3.forward(x), pool.forward(&avg3(x))])
            }
            Mixed::B([b3, d3]) | Mixed::D([b3, d3]) => cat(&[b3.forward(x), d3.forward(x), max3s2(x)]),
            Mixed::E([b1, b3, d3, pool]) => {
                let h = b3.chain(x, 0, 1);
                let g = d3.chain(x, 0, 2);
                cat(&[
                    b1.forward(x),
                    b3.units[1].forward(&h),
                    b3.units[2].forward(&h),
                    d3.units[2].forward(&g),
                    d3.units[3].forward(&g),
                    pool.forward(&avg3(x)),
                ])
            }
        }
    }
}

/// The network; build it on a VarStore, then load weights into that VarStore ([`load`]).
pub struct StackganInception {
    stem: [Unit; 5],
    mixed: Vec<Mixed>,
    fc: nn::Linear,
    pub cfg: StackganInceptionConfig,
}

impl StackganInception {
    pub fn new(p: &nn::Path, cfg: StackganInceptionConfig) -> StackganInception {
        let u = |name: &str, cin, cout, k, s, same| Unit::new(p / name, cin, cout, k, s, same);
        let stem = [
            u("conv0", 3, 32, K3, 2, false),
            u("conv1", 32, 32, K3, 1, false),
            u("conv2", 32, 64, K3, 1, true),
            u("conv3", 64, 80, K1, 1, false),
            u("conv4", 80, 192, K3, 1, false),
        ];
        let mixed = vec![
            Mixed::a(p / "mixed_35x35x256a", 192, 32),
            Mixed::a(p / "mixed_35x35x288a", 256, 64),
            Mixed::a(p / "mixed_35x35x288b", 288, 64),
            Mixed::b(p / "mixed_17x17x768a", 288),
            Mixed::c(p / "mixed_17x17x768b", 128),
            Mixed::c(p / "mixed_17x17x768c", 160),
            Mixed::c(p / "mixed_17x17x768d", 160),
            Mixed::c(p / "mixed_17x17x768e", 192),
            Mixed::d(p / "mixed_17x17x1280a"),
            Mixed::e(p / "mixed_8x8x2048a", 1280),
            Mixed::e(p / "mixed_8x8x2048b", 2048),
        ];
        let fc_path = p / "logits" / "logits";
        let fc = nn::Linear {
            ws: fc_path.var("weights", &[cfg.num_classes, 2048], nn::init::DEFAULT_KAIMING_UNIFORM),
            bs: Some(fc_path.var("biases", &[cfg.num_classes], nn::Init::Const(0.0))),
        };
        StackganInception { stem, mixed, fc, cfg }
    }

    /// StackGAN's input handling: images in [0, 1] (B x 3 x H x W), bilinear resize to 299,
    /// 8-bit rounding (scipy's imresize returns uint8), then `x / 127.5 - 1`.
    pub fn preprocess(images: &Tensor) -> Tensor {
        let x = images.to_kind(Kind::Float);
        let s = x.size();
        let x = if s[2] == 299 && s[3] == 299 { x } else { x.upsample_bilinear2d([299, 299], false, None, None) };
        let u8 = (x * 255.0).round().clamp(0.0, 255.0);
        u8 / 127.5 - 1.0
    }

    /// The full logits (B x num_classes, background class 0 included) of inputs already in
    /// [-1, 1] at 299 x 299.
    pub fn forward_scaled(&self, x: &Tensor) -> Tensor {
        let _guard = tch::no_grad_guard();
        let mut h = x.shallow_clone();
        for (i, u) in self.stem.iter().enumerate() {
            h = u.forward(&h);
            if i == 2 || i == 4 {
                h = max3s2(&h);
            }
        }
        for m in &self.mixed {
            h = m.forward(&h);
        }
        let pooled = h.mean_dim(&[2i64, 3][..], false, Kind::Float);
        pooled.apply(&self.fc)
    }

    /// The Inception Score's logits of images in [0, 1]: classes 1..num_classes (the
    /// background class dropped, as StackGAN's evaluation slices it off before the softmax).
    pub fn logits(&self, images: &Tensor) -> Result<Tensor> {
        let s = images.size();
        if s.len() != 4 || s[1] != 3 {
            bail!("Inception input must be B x 3 x H x W, got {s:?}");
        }
        let full = self.forward_scaled(&Self::preprocess(images));
        Ok(full.narrow(1, 1, self.cfg.num_classes - 1))
    }
}

/// The help text for missing weights.
pub fn weights_help() -> String {
    "StackGAN's CUB-finetuned Inception is needed as a .safetensors: convert the released TensorFlow checkpoint \
     (StackGAN-inception-model's inception_finetuned_models/birds_valid299/model.ckpt) with \
     `python scripts/convert_stackgan_inception.py model.ckpt stackgan_cub_inception.safetensors` where TensorFlow is \
     installed (docs/evaluation.md)"
        .to_string()
}

/// Build the network on `device` and load its weights from a `.safetensors` with the
/// documented names; every parameter required with its exact shape.
pub fn load(path: &Path, device: Device) -> Result<(nn::VarStore, StackganInception)> {
    if !path.is_file() {
        bail!("CUB Inception weights {} do not exist. {}", path.display(), weights_help());
    }
    let (named, _) = crate::checkpoint::read_safetensors(path, Device::Cpu)
        .with_context(|| format!("{}: not a safetensors file. {}", path.display(), weights_help()))?;
    let named: std::collections::HashMap<String, Tensor> = named.into_iter().collect();
    let classes = named.get("logits.logits.biases").map(|b| b.size()[0]).unwrap_or(51);
    let mut vs = nn::VarStore::new(device);
    let net = StackganInception::new(&vs.root(), StackganInceptionConfig { num_classes: classes });
    let _guard = tch::no_grad_guard();
    let mut missing = Vec::new();
    for (name, mut var) in vs.variables() {
        match named.get(&name) {
            None => missing.push(name),
            Some(t) if t.size() != var.size() => {
                bail!("{}: {name} has shape {:?}, StackGAN's Inception needs {:?}", path.display(), t.size(), var.size())
            }
            Some(t) => {
                var.copy_(&t.to_kind(var.kind()).to_device(var.device()));
            }
        }
    }
    if !missing.is_empty() {
        missing.sort();
        bail!(
            "{}: not StackGAN's CUB Inception ({} parameters missing, e.g. {}). {}",
            path.display(),
            missing.len(),
            missing.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
            weights_help()
        );
    }
    vs.freeze();
    Ok((vs, net))
}
