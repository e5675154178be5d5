//! The transformer pieces both towers share (HF `CLIPEncoder` and its parts), and the
//! initialisers that give parameters HuggingFace's starting values.
use super::config::Activation;
use tch::nn::{self, Module};
use tch::Tensor;

/// A Linear layer initialised as HuggingFace initialises CLIP: weights from N(0, std²), bias 0.
pub(super) fn linear(p: nn::Path, inp: i64, out: i64, std: f64, bias: bool) -> nn::Linear {
    nn::linear(
        p,
        inp,
        out,
        nn::LinearConfig { ws_init: nn::Init::Randn { mean: 0.0, stdev: std }, bs_init: Some(nn::Init::Const(0.0)), bias },
    )
}

pub(super) fn layer_norm(p: nn::Path, dim: i64, eps: f64) -> nn::LayerNorm {
    nn::layer_norm(p, vec![dim], nn::LayerNormConfig { eps, ..Default::default() })
}

/// Multi-head self-attention (HF `CLIPAttention`: q/k/v/out projections with biases).
#[derive(Debug)]
struct Attention {
    q_proj: nn::Linear,
    k_proj: nn::Linear,
    v_proj: nn::Linear,
    out_proj: nn::Linear,
    heads: i64,
}

impl Attention {
    /// HF's initialisation: in-projections N(0, d^-½ (2·layers)^-½), out N(0, d^-½).
    fn new(p: nn::Path, dim: i64, heads: i64, layers: i64) -> Attention {
        let in_std = (dim as f64).powf(-0.5) * ((2 * layers) as f64).powf(-0.5);
        let out_std = (dim as f64).powf(-0.5);
        Attention {
            q_proj: linear(&p / "q_proj", dim, dim, in_std, true),
            k_proj: linear(&p / "k_proj", dim, dim, in_std, true),
            v_proj: linear(&p / "v_proj", dim, dim, in_std, true),
            out_proj: linear(&p / "out_proj", dim, dim, out_std, true),
            heads,
        }
    }

    /// x: [B, T, D]; mask: Bool, broadcastable to [B, heads, T, T], true = may attend.
    fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Tensor {
        let (b, t, d) = x.size3().expect("attention input is [B, T, D]");
        let split = |y: Tensor| y.view([b, t, self.heads, d / self.heads]).transpose(1, 2);
        let q = split(self.q_proj.forward(x));
        let k = split(self.k_proj.forward(x));
        let v = split(self.v_proj.forward(x));
        // Default scale = head_dim^-½, as HF's q * scale.
        let o = Tensor::scaled_dot_product_attention(&q, &k, &v, mask, 0.0, false, None, false);
        self.out_proj.forward(&o.transpose(1, 2).reshape([b, t, d]))
    }
}

#[derive(Debug)]
struct Mlp {
    fc1: nn::Linear,
    fc2: nn::Linear,
    act: Activation,
}

impl Mlp {
    fn new(p: nn::Path, dim: i64, hidden: i64, layers: i64, act: Activation) -> Mlp {
        let fc_std = ((2 * dim) as f64).powf(-0.5);
        let in_std = (dim as f64).powf(-0.5) * ((2 * layers) as f64).powf(-0.5);
        Mlp { fc1: linear(&p / "fc1", dim, hidden, fc_std, true), fc2: linear(&p / "fc2", hidden, dim, in_std, true), act }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        self.fc2.forward(&self.act.apply(&self.fc1.forward(x)))
    }
}

/// A pre-LayerNorm transformer block (HF `CLIPEncoderLayer`).
#[derive(Debug)]
struct EncoderLayer {
    self_attn: Attention,
    layer_norm1: nn::LayerNorm,
    mlp: Mlp,
    layer_norm2: nn::LayerNorm,
}

impl EncoderLayer {
    fn new(p: nn::Path, dim: i64, hidden: i64, heads: i64, layers: i64, act: Activation, eps: f64) -> EncoderLayer {
        EncoderLayer {
            self_attn: Attention::new(&p / "self_attn", dim, heads, layers),
            layer_norm1: layer_norm(&p / "layer_norm1", dim, eps),
            mlp: Mlp::new(&p / "mlp", dim, hidden, layers, act),
            layer_norm2: layer_norm(&p / "layer_norm2", dim, eps),
        }
    }

    fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Tensor {
        let x = x + self.self_attn.forward(&self.layer_norm1.forward(x), mask);
        &x + self.mlp.forward(&self.layer_norm2.forward(&x))
    }
}

/// A stack of encoder layers (HF `CLIPEncoder`, `encoder.layers.N.*`).
#[derive(Debug)]
pub(super) struct Encoder {
    layers: Vec<EncoderLayer>,
}

impl Encoder {
    pub(super) fn new(p: nn::Path, dim: i64, hidden: i64, heads: i64, layers: i64, act: Activation, eps: f64) -> Encoder {
        let p = &p / "layers";
        Encoder { layers: (0..layers).map(|i| EncoderLayer::new(&p / i, dim, hidden, heads, layers, act, eps)).collect() }
    }

    pub(super) fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Tensor {
        let mut x = x.shallow_clone();
        for l in &self.layers {
            x = l.forward(&x, mask);
        }
        x
    }
}
