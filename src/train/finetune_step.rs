//! One CLIP finetuning step's objective (method.md §4, §6): for images I with two
//! different captions c¹, c²,
//! L = L_w(I, c¹) + L_w(I, c²) + L_s(I, c¹) + L_s(I, c²) + NTXent_{τ=0.5}(ē¹, ē²),
//! and the AdamW settings it is optimised with. Used by the `clipgan pretrain` job
//! (`jobs::pretrain`) and `clipgan bench pretrain-step`.
use crate::config;
use crate::data::TokenBatch;
use crate::models::clip::Clip;
use crate::train::amp;
use crate::train::losses::{nt_xent, sentence_loss, words_loss};
use tch::{Device, Kind, Tensor};

/// NT-Xent temperature (method.md §4).
pub const NT_XENT_TAU: f64 = 0.5;
/// AdamW settings of the finetuning (method.md §6).
pub const BETAS: (f64, f64) = (0.5, 0.999);
pub const WEIGHT_DECAY: f64 = 0.01;
pub const ADAM_EPS: f64 = 1e-8;

/// The loss terms of one batch.
pub struct StepLosses {
    pub total: Tensor,
    /// L_w summed over both captions and both directions.
    pub words: Tensor,
    /// L_s likewise.
    pub sentence: Tensor,
    pub nt_xent: Tensor,
}

/// The finetuning objective of one batch: images (CLIP-normalised, [B, 3, S, S]) with one
/// or two captions each (NT-Xent needs two) and their class ids. The forward runs under
/// bf16 autocast when `amp`; the losses in f32.
pub fn batch_losses(
    clip: &Clip,
    s: &config::Smooth,
    dev: Device,
    amp: bool,
    images: &Tensor,
    tokens: &[TokenBatch],
    class_ids: &Tensor,
) -> StepLosses {
    let (img, texts) = amp::autocast_bf16(dev, amp, || {
        let img = clip.encode_image(&images.to_device(dev));
        let texts: Vec<_> = tokens.iter().map(|t| clip.encode_text(&t.ids.to_device(dev), &t.mask.to_device(dev))).collect();
        (img, texts)
    });
    // Losses in f32 (outside autocast).
    let f = |t: &Tensor| t.to_kind(Kind::Float);
    let (regions, code) = (f(&img.regions), f(&img.code));
    let classes = class_ids.to_device(dev);
    let mut words = Tensor::zeros([], (Kind::Float, dev));
    let mut sentence = Tensor::zeros([], (Kind::Float, dev));
    for (t, tok) in texts.iter().zip(tokens) {
        let w = words_loss(&regions, &f(&t.words), &tok.mask.to_device(dev), Some(&classes), s.gamma1, s.gamma2, s.gamma3);
        words = words + w.loss0 + w.loss1;
        let (s0, s1) = sentence_loss(&code, &f(&t.sentence), Some(&classes), s.gamma3);
        sentence = sentence + s0 + s1;
    }
    let nt = if texts.len() == 2 {
        nt_xent(&f(&texts[0].sentence), &f(&texts[1].sentence), NT_XENT_TAU)
    } else {
        Tensor::zeros([], (Kind::Float, dev))
    };
    StepLosses { total: &words + &sentence + &nt, words, sentence, nt_xent: nt }
}
