//! pytorch-fid's FID Inception V3 (`pytorch_fid/inception.py`: torchvision's Inception3
//! with the FID variants of the Mixed blocks, as ported from the TensorFlow graph of
//! `pt_inception-2015-12-05`), with the parameter names of
//! `pt_inception-2015-12-05-6726825d.pth` (`Conv2d_1a_3x3.conv.weight`,
//! `Mixed_5b.branch1x1.bn.running_mean`, ..., `fc.weight`), inference only.
//!
//! Differences from torchvision's Inception3 that matter for FID (FIDInceptionA/C/E_1):
//! average pools exclude the padding (`count_include_pad=False`); Mixed_7c (FIDInceptionE_2)
//! uses a max pool in its pool branch. BatchNorm eps is 0.001.
//!
//! Input: images in [0, 1], B x 3 x H x W; resized bilinearly to 299 x 299
//! (`align_corners=False`, no antialiasing), then scaled to [-1, 1] (pytorch-fid's
//! `normalize_input`).
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// Feature widths pytorch-fid's `--dims` accepts, and the block each one ends at.
pub const DIMS: [i64; 4] = [64, 192, 768, 2048];
pub const NUM_CLASSES: i64 = 1008;
pub const WEIGHTS_FILE: &str = "pt_inception-2015-12-05-6726825d.pth";
pub const WEIGHTS_URL: &str = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth";

/// Conv (no bias) + BatchNorm (eps 0.001, running statistics) + ReLU, as torchvision's
/// BasicConv2d. BatchNorm is folded into the convolution at each call (weights are
/// small next to the activations).
struct BasicConv {
    weight: Tensor,
    gamma: Tensor,
    beta: Tensor,
    mean: Tensor,
    var: Tensor,
    stride: [i64; 2],
    padding: [i64; 2],
}

impl BasicConv {
    fn new(p: nn::Path, cin: i64, cout: i64, k: [i64; 2], stride: i64, padding: [i64; 2]) -> BasicConv {
        let c = &p / "conv";
        let b = &p / "bn";
        let z = nn::Init::Const(0.0);
        BasicConv {
            weight: c.var("weight", &[cout, cin, k[0], k[1]], nn::init::DEFAULT_KAIMING_UNIFORM),
            gamma: b.var("weight", &[cout], nn::Init::Const(1.0)),
            beta: b.var("bias", &[cout], z),
            mean: b.zeros_no_train("running_mean", &[cout]),
            var: b.ones_no_train("running_var", &[cout]),
            stride: [stride, stride],
            padding,
        }
    }

    fn sq(p: nn::Path, cin: i64, cout: i64, k: i64, stride: i64, padding: i64) -> BasicConv {
        BasicConv::new(p, cin, cout, [k, k], stride, [padding, padding])
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let scale = &self.gamma / (&self.var + 1e-3).sqrt();
        let w = &self.weight * scale.view([-1, 1, 1, 1]);
        let b = &self.beta - &self.mean * &scale;
        x.conv2d(&w, Some(&b), self.stride, self.padding, [1, 1], 1).relu()
    }
}

fn avg3(x: &Tensor) -> Tensor {
    // count_include_pad=False: the FID blocks' pool branches.
    x.avg_pool2d([3, 3], [1, 1], [1, 1], false, false, None::<i64>)
}

fn max3s2(x: &Tensor) -> Tensor {
    x.max_pool2d([3, 3], [2, 2], [0, 0], [1, 1], false)
}

/// FIDInceptionA (Mixed_5b/c/d).
struct BlockA {
    b1: BasicConv,
    b5_1: BasicConv,
    b5_2: BasicConv,
    d1: BasicConv,
    d2: BasicConv,
    d3: BasicConv,
    pool: BasicConv,
}

impl BlockA {
    fn new(p: nn::Path, cin: i64, pool_features: i64) -> BlockA {
        BlockA {
            b1: BasicConv::sq(&p / "branch1x1", cin, 64, 1, 1, 0),
            b5_1: BasicConv::sq(&p / "branch5x5_1", cin, 48, 1, 1, 0),
            b5_2: BasicConv::sq(&p / "branch5x5_2", 48, 64, 5, 1, 2),
            d1: BasicConv::sq(&p / "branch3x3dbl_1", cin, 64, 1, 1, 0),
            d2: BasicConv::sq(&p / "branch3x3dbl_2", 64, 96, 3, 1, 1),
            d3: BasicConv::sq(&p / "branch3x3dbl_3", 96, 96, 3, 1, 1),
            pool: BasicConv::sq(&p / "branch_pool", cin, pool_features, 1, 1, 0),
        }
    }
    fn forward(&self, x: &Tensor) -> Tensor {
        Tensor::cat(
            &[
                self.b1.forward(x),
                self.b5_2.forward(&self.b5_1.forward(x)),
                self.d3.forward(&self.d2.forward(&self.d1.forward(x))),
                self.pool.forward(&avg3(x)),
            ],
            1,
        )
    }
}

/// InceptionB (Mixed_6a): unchanged in the FID variant.
struct BlockB {
    b3: BasicConv,
    d1: BasicConv,
    d2: BasicConv,
    d3: BasicConv,
}

impl BlockB {
    fn new(p: nn::Path, cin: i64) -> BlockB {
        BlockB {
            b3: BasicConv::sq(&p / "branch3x3", cin, 384, 3, 2, 0),
            d1: BasicConv::sq(&p / "branch3x3dbl_1", cin, 64, 1, 1, 0),
            d2: BasicConv::sq(&p / "branch3x3dbl_2", 64, 96, 3, 1, 1),
            d3: BasicConv::sq(&p / "branch3x3dbl_3", 96, 96, 3, 2, 0),
        }
    }
    fn forward(&self, x: &Tensor) -> Tensor {
        Tensor::cat(&[self.b3.forward(x), self.d3.forward(&self.d2.forward(&self.d1.forward(x))), max3s2(x)], 1)
    }
}

/// FIDInceptionC (Mixed_6b..e).
struct BlockC {
    b1: BasicConv,
    b7: [BasicConv; 3],
    d7: [BasicConv; 5],
    pool: BasicConv,
}

impl BlockC {
    fn new(p: nn::Path, cin: i64, c7: i64) -> BlockC {
        let row = |name: &str, i, o| BasicConv::new(&p / name, i, o, [1, 7], 1, [0, 3]);
        let col = |name: &str, i, o| BasicConv::new(&p / name, i, o, [7, 1], 1, [3, 0]);
        BlockC {
            b1: BasicConv::sq(&p / "branch1x1", cin, 192, 1, 1, 0),
            b7: [BasicConv::sq(&p / "branch7x7_1", cin, c7, 1, 1, 0), row("branch7x7_2", c7, c7), col("branch7x7_3", c7, 192)],
            d7: [
                BasicConv::sq(&p / "branch7x7dbl_1", cin, c7, 1, 1, 0),
                col("branch7x7dbl_2", c7, c7),
                row("branch7x7dbl_3", c7, c7),
                col("branch7x7dbl_4", c7, c7),
                row("branch7x7dbl_5", c7, 192),
            ],
            pool: BasicConv::sq(&p / "branch_pool", cin, 192, 1, 1, 0),
        }
    }
    fn forward(&self, x: &Tensor) -> Tensor {
        let chain = |convs: &[BasicConv]| convs.iter().fold(x.shallow_clone(), |h, c| c.forward(&h));
        Tensor::cat(&[self.b1.forward(x), chain(&self.b7), chain(&self.d7), self.pool.forward(&avg3(x))], 1)
    }
}

/// InceptionD (Mixed_7a): unchanged in the FID variant.
struct BlockD {
    b3: [BasicConv; 2],
    b7: [BasicConv; 4],
}

impl BlockD {
    fn new(p: nn::Path, cin: i64) -> BlockD {
        BlockD {
            b3: [BasicConv::sq(&p / "branch3x3_1", cin, 192, 1, 1, 0), BasicConv::sq(&p / "branch3x3_2", 192, 320, 3, 2, 0)],
            b7: [
                BasicConv::sq(&p / "branch7x7x3_1", cin, 192, 1, 1, 0),
                BasicConv::new(&p / "branch7x7x3_2", 192, 192, [1, 7], 1, [0, 3]),
                BasicConv::new(&p / "branch7x7x3_3", 192, 192, [7, 1], 1, [3, 0]),
                BasicConv::sq(&p / "branch7x7x3_4", 192, 192, 3, 2, 0),
            ],
        }
    }
    fn forward(&self, x: &Tensor) -> Tensor {
        let chain = |convs: &[BasicConv]| convs.iter().fold(x.shallow_clone(), |h, c| c.forward(&h));
        Tensor::cat(&[chain(&self.b3), chain(&self.b7), max3s2(x)], 1)
    }
}

/// FIDInceptionE_1 (Mixed_7b, average pool without padding) and FIDInceptionE_2
/// (Mixed_7c, max pool).
struct BlockE {
    b1: BasicConv,
    b3_1: BasicConv,
    b3_2a: BasicConv,
    b3_2b: BasicConv,
    d1: BasicConv,
    d2: BasicConv,
    d3a: BasicConv,
    d3b: BasicConv,
    pool: BasicConv,
    max_pool: bool,
}

impl BlockE {
    fn new(p: nn::Path, cin: i64, max_pool: bool) -> BlockE {
        let row = |name: &str, i, o| BasicConv::new(&p / name, i, o, [1, 3], 1, [0, 1]);
        let col = |name: &str, i, o| BasicConv::new(&p / name, i, o, [3, 1], 1, [1, 0]);
        BlockE {
            b1: BasicConv::sq(&p / "branch1x1", cin, 320, 1, 1, 0),
            b3_1: BasicConv::sq(&p / "branch3x3_1", cin, 384, 1, 1, 0),
            b3_2a: row("branch3x3_2a", 384, 384),
            b3_2b: col("branch3x3_2b", 384, 384),
            d1: BasicConv::sq(&p / "branch3x3dbl_1", cin, 448, 1, 1, 0),
            d2: BasicConv::sq(&p / "branch3x3dbl_2", 448, 384, 3, 1, 1),
            d3a: row("branch3x3dbl_3a", 384, 384),
            d3b: col("branch3x3dbl_3b", 384, 384),
            pool: BasicConv::sq(&p / "branch_pool", cin, 192, 1, 1, 0),
            max_pool,
        }
    }
    fn forward(&self, x: &Tensor) -> Tensor {
        let b3 = self.b3_1.forward(x);
        let b3 = Tensor::cat(&[self.b3_2a.forward(&b3), self.b3_2b.forward(&b3)], 1);
        let d = self.d2.forward(&self.d1.forward(x));
        let d = Tensor::cat(&[self.d3a.forward(&d), self.d3b.forward(&d)], 1);
        let pooled = if self.max_pool { x.max_pool2d([3, 3], [1, 1], [1, 1], [1, 1], false) } else { avg3(x) };
        Tensor::cat(&[self.b1.forward(x), b3, d, self.pool.forward(&pooled)], 1)
    }
}

/// The network; build it on a VarStore, then [`load_weights`] into that VarStore.
pub struct FidInception {
    stem0: [BasicConv; 3],
    stem1: [BasicConv; 2],
    a: [BlockA; 3],
    b: BlockB,
    c: [BlockC; 4],
    d: BlockD,
    e: [BlockE; 2],
    fc: nn::Linear,
}

/// What one forward returns: features of the requested width (B x dims, spatially
/// averaged as pytorch-fid does for the early blocks) and, when asked, the classifier
/// logits (B x 1008) for the Inception Score: pool3 times the softmax weights with no
/// bias, as the original Inception Score code (its TF graph's `pool_3 x W`) and
/// torch-fidelity's `logits_unbiased` compute them.
pub struct InceptionOutput {
    pub features: Tensor,
    pub logits: Option<Tensor>,
}

impl FidInception {
    pub fn new(p: &nn::Path) -> FidInception {
        let s = |name: &str, i, o, k, st, pad| BasicConv::sq(p / name, i, o, k, st, pad);
        FidInception {
            stem0: [s("Conv2d_1a_3x3", 3, 32, 3, 2, 0), s("Conv2d_2a_3x3", 32, 32, 3, 1, 0), s("Conv2d_2b_3x3", 32, 64, 3, 1, 1)],
            stem1: [s("Conv2d_3b_1x1", 64, 80, 1, 1, 0), s("Conv2d_4a_3x3", 80, 192, 3, 1, 0)],
            a: [BlockA::new(p / "Mixed_5b", 192, 32), BlockA::new(p / "Mixed_5c", 256, 64), BlockA::new(p / "Mixed_5d", 288, 64)],
            b: BlockB::new(p / "Mixed_6a", 288),
            c: [
                BlockC::new(p / "Mixed_6b", 768, 128),
                BlockC::new(p / "Mixed_6c", 768, 160),
                BlockC::new(p / "Mixed_6d", 768, 160),
                BlockC::new(p / "Mixed_6e", 768, 192),
            ],
            d: BlockD::new(p / "Mixed_7a", 768),
            e: [BlockE::new(p / "Mixed_7b", 1280, false), BlockE::new(p / "Mixed_7c", 2048, true)],
            fc: nn::linear(p / "fc", 2048, NUM_CLASSES, Default::default()),
        }
    }

    /// pytorch-fid's input handling: bilinear resize to 299 (align_corners=False, no
    /// antialias), then [0, 1] -> [-1, 1].
    pub fn preprocess(images: &Tensor) -> Tensor {
        let x = images.to_kind(Kind::Float);
        let x = x.upsample_bilinear2d([299, 299], false, None, None);
        x * 2.0 - 1.0
    }

    /// Forward images in [0, 1] (B x 3 x H x W) up to the block of `dims` (64, 192, 768
    /// or 2048); `logits` (only with 2048) also runs the classifier.
    pub fn forward(&self, images: &Tensor, dims: i64, logits: bool) -> Result<InceptionOutput> {
        if !DIMS.contains(&dims) {
            bail!("--dims {dims}: pytorch-fid's Inception gives 64, 192, 768 or 2048 features");
        }
        if logits && dims != 2048 {
            bail!("the classifier logits need the 2048-d block");
        }
        let s = images.size();
        if s.len() != 4 || s[1] != 3 {
            bail!("Inception input must be B x 3 x H x W, got {s:?}");
        }
        let _guard = tch::no_grad_guard();
        let pool = |x: &Tensor| x.adaptive_avg_pool2d([1, 1]).flatten(1, -1);
        let mut x = Self::preprocess(images);
        for c in &self.stem0 {
            x = c.forward(&x);
        }
        x = max3s2(&x);
        if dims == 64 {
            return Ok(InceptionOutput { features: pool(&x), logits: None });
        }
        for c in &self.stem1 {
            x = c.forward(&x);
        }
        x = max3s2(&x);
        if dims == 192 {
            return Ok(InceptionOutput { features: pool(&x), logits: None });
        }
        for a in &self.a {
            x = a.forward(&x);
        }
        x = self.b.forward(&x);
        for c in &self.c {
            x = c.forward(&x);
        }
        if dims == 768 {
            return Ok(InceptionOutput { features: pool(&x), logits: None });
        }
        x = self.d.forward(&x);
        for e in &self.e {
            x = e.forward(&x);
        }
        let features = pool(&x);
        // No fc bias: the original Inception Score code leaves it out (torch-fidelity's
        // `logits_unbiased`); with it, every score would move.
        let logits = logits.then(|| features.matmul(&self.fc.ws.tr()));
        Ok(InceptionOutput { features, logits })
    }
}

/// The help text for a missing weights file.
pub fn weights_help() -> String {
    format!(
        "pytorch-fid's FID Inception weights are needed: download {WEIGHTS_FILE} from {WEIGHTS_URL} \
         (on a machine with internet access) and pass it with --weights, $CLIPGAN_INCEPTION_WEIGHTS, \
         or CLIPGAN.EVAL.FID_WEIGHTS / IS_WEIGHTS in an eval config; clipgan reads the .pth directly, \
         or a .safetensors with the same names (`python benches/reference/fid_inception.py convert IN.pth OUT.safetensors`)"
    )
}

/// Named tensors from a `.safetensors` or a torch `.pth` (zip) file.
pub fn read_named_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    if !path.exists() {
        bail!("Inception weights {} do not exist. {}", path.display(), weights_help());
    }
    if path.is_dir() {
        bail!("Inception weights {} is a folder; give the weights file itself. {}", path.display(), weights_help());
    }
    let is_safetensors = path.extension().is_some_and(|e| e == "safetensors");
    if is_safetensors {
        let (named, _) = crate::checkpoint::read_safetensors(path, Device::Cpu)?;
        Ok(named.into_iter().collect())
    } else {
        super::pth::read_state_dict(path)
    }
}

/// Copy named tensors into the VarStore, every variable required with its exact shape
/// (extra entries such as BatchNorm's `num_batches_tracked` are ignored).
pub fn load_weights(vs: &mut nn::VarStore, path: &Path) -> Result<()> {
    let named = read_named_tensors(path)?;
    let _guard = tch::no_grad_guard();
    let mut missing = Vec::new();
    for (name, mut var) in vs.variables() {
        match named.get(&name) {
            None => missing.push(name),
            Some(t) => {
                if t.size() != var.size() {
                    bail!("{}: {name} has shape {:?}, the FID Inception needs {:?}", path.display(), t.size(), var.size());
                }
                var.copy_(&t.to_kind(var.kind()).to_device(var.device()));
            }
        }
    }
    if !missing.is_empty() {
        missing.sort();
        bail!(
            "{}: not pytorch-fid's FID Inception weights: {} parameters missing (e.g. {})",
            path.display(),
            missing.len(),
            missing.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
}

/// Build the network on `device` and load its weights from `path`.
pub fn load(path: &Path, device: Device) -> Result<(nn::VarStore, FidInception)> {
    let mut vs = nn::VarStore::new(device);
    let net = FidInception::new(&vs.root());
    load_weights(&mut vs, path).with_context(|| format!("loading the FID Inception from {}", path.display()))?;
    vs.freeze();
    Ok((vs, net))
}

/// Deterministic synthetic weights (no RNG, reproducible in PyTorch by
/// benches/reference/fid_inception.py): parameter i in sorted-name order gets
/// `sin(0.37 k + i)` scaled per kind. For tests and benchmarks only.
pub fn fill_synthetic(vs: &mut nn::VarStore) {
    let _guard = tch::no_grad_guard();
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (i, (name, mut var)) in vars.into_iter().enumerate() {
        let shape = var.size();
        let n: i64 = shape.iter().product();
        let s = (Tensor::arange(n, (Kind::Double, Device::Cpu)) * 0.37 + i as f64).sin();
        let v = if name.ends_with("running_var") {
            s.square() * 0.5 + 0.5
        } else if name.ends_with("bn.weight") {
            s * 0.2 + 1.0
        } else if name.ends_with("running_mean") || name.ends_with("bias") {
            s * 0.1
        } else {
            // conv / fc weight: roughly He-scaled (sin has variance 1/2).
            let fan_in: i64 = shape[1..].iter().product();
            s * (2.0 / (fan_in as f64).sqrt())
        };
        var.copy_(&v.view(shape.as_slice()).to_kind(var.kind()).to_device(var.device()));
    }
}
