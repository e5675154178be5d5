//! `clipgan bench clip-forward` and `clipgan bench pretrain-step`: CLIP forward time and
//! finetuning steps per second on made-up inputs (random weights; no data loading, which
//! `clipgan bench loader` measures). Reports every iteration and the median, as wall time
//! and as process CPU time (all threads), since a shared machine skews wall time.
use super::inputs::random_tokens;
use super::timing::{cpu_seconds, median, time_calls};
use crate::config;
use crate::models::clip::{Clip, ClipConfig};
use crate::seed;
use crate::train::finetune_step;
use crate::train::optim::{clip_grad_norm, Adam, ParamGroup};
use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use tch::{nn, Device, Kind, Tensor};

#[derive(Args, Debug)]
pub struct ForwardArgs {
    /// CLIP preset (random weights).
    #[arg(long, default_value = "vit-b-32")]
    pub preset: String,
    #[arg(long, default_value_t = 8)]
    pub batch: i64,
    /// Timed iterations (after one untimed warm-up).
    #[arg(long, default_value_t = 7)]
    pub iters: usize,
    /// auto, cpu, cuda, cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// libtorch threads (0: libtorch's default).
    #[arg(long, default_value_t = 0)]
    pub threads: i32,
}

#[derive(Args, Debug)]
pub struct StepArgs {
    /// A finetuning config: its CLIP preset, batch size, WORDS_NUM, gammas, AMP, device.
    #[arg(long, default_value = "cfg/demo/pretrain.yml")]
    pub cfg: PathBuf,
    /// Timed steps (after two untimed warm-up steps).
    #[arg(long, default_value_t = 10)]
    pub iters: usize,
    /// Override the config's batch size.
    #[arg(long)]
    pub batch: Option<u32>,
    /// Override the config's CLIP preset.
    #[arg(long)]
    pub preset: Option<String>,
}

pub fn clip_forward(a: ForwardArgs) -> Result<ExitCode> {
    let device = crate::device::from_flag(&a.device)?;
    if a.threads > 0 {
        tch::set_num_threads(a.threads);
    }
    let cfg = ClipConfig::preset(&a.preset)?;
    seed::seed_torch(7, &[seed::stream::BENCH]);
    let vs = nn::VarStore::new(device);
    let model = Clip::new(vs.root(), &cfg);
    let s = cfg.vision.image_size;
    let pixels = Tensor::randn([a.batch, 3, s, s], (Kind::Float, device));
    let tokens = random_tokens(a.batch, cfg.text.max_position_embeddings, 10, 20, cfg.text.vocab_size, 1);
    let (ids, mask) = (tokens.ids.to_device(device), tokens.mask.to_device(device));
    println!(
        "CLIP {} ({} parameters + linear_subr), batch {}, {s} px, on {device:?} with {} threads",
        a.preset,
        cfg.num_parameters(),
        a.batch,
        tch::get_num_threads()
    );
    let (w, c) = time_calls(a.iters, device, || {
        let _ = tch::no_grad(|| model.encode_image(&pixels));
    });
    println!(
        "image tower (encode_image: regions + code): wall {:?} s",
        w.iter().map(|x| (x * 1000.0).round() / 1000.0).collect::<Vec<_>>()
    );
    println!("  median wall {:.3} s, median CPU {:.3} s", median(&w), median(&c));
    let (w, c) = time_calls(a.iters, device, || {
        let _ = tch::no_grad(|| model.encode_text(&ids, &mask));
    });
    println!(
        "text tower (encode_text, {} tokens): wall {:?} s",
        cfg.text.max_position_embeddings,
        w.iter().map(|x| (x * 1000.0).round() / 1000.0).collect::<Vec<_>>()
    );
    println!("  median wall {:.3} s, median CPU {:.3} s", median(&w), median(&c));
    Ok(ExitCode::SUCCESS)
}

pub fn pretrain_step(a: StepArgs) -> Result<ExitCode> {
    let loaded = config::load(&a.cfg)?;
    let mut c = loaded.config.clone();
    if let Some(b) = a.batch {
        c.train.batch_size = b;
    }
    if let Some(p) = &a.preset {
        c.clipgan.clip_preset = p.clone();
    }
    if c.train.batch_size < 2 {
        bail!("the batch size must be at least 2");
    }
    crate::device::init_torch();
    let device = crate::device::select(&c)?;
    crate::device::apply_threads(&c);
    let amp = c.clipgan.amp && device.is_cuda();
    let cfg = ClipConfig::preset(&c.clipgan.clip_preset)?;
    seed::seed_torch(7, &[seed::stream::BENCH]);
    let vs = nn::VarStore::new(device);
    let model = Clip::new(vs.root(), &cfg);
    let (backbone, subr) = crate::models::clip::parameter_groups(&vs);
    let mut opt = Adam::new(
        vec![ParamGroup::new("backbone", backbone, c.train.backbone_lr), ParamGroup::new("linear_subr", subr, c.train.linear_lr)],
        finetune_step::BETAS,
        finetune_step::ADAM_EPS,
        finetune_step::WEIGHT_DECAY,
        true,
    );
    let b = c.train.batch_size as i64;
    let l = (c.text.words_num as i64).min(cfg.text.max_position_embeddings);
    let s = cfg.vision.image_size;
    let images = Tensor::randn([b, 3, s, s], (Kind::Float, Device::Cpu));
    let tokens = [random_tokens(b, l, 9, 21.min(l), cfg.text.vocab_size, 1), random_tokens(b, l, 9, 21.min(l), cfg.text.vocab_size, 2)];
    let class_ids = Tensor::arange(b, (Kind::Int64, Device::Cpu)).remainder(b / 2 + 1);
    println!(
        "finetuning step: CLIP {} at {s} px, batch {b}, two captions of {l} tokens, {} on {device:?} with {} threads{}",
        c.clipgan.clip_preset,
        cfg.num_parameters() + cfg.subr_parameters(),
        tch::get_num_threads(),
        if amp { ", bf16 autocast" } else { "" }
    );
    // Per phase: forward + losses, backward, clipping + AdamW (CPU seconds).
    let mut phases: [Vec<f64>; 3] = Default::default();
    let mut step = || {
        let c0 = cpu_seconds();
        let loss = finetune_step::batch_losses(&model, &c.train.smooth, device, amp, &images, &tokens, &class_ids);
        let _ = loss.total.double_value(&[]);
        let c1 = cpu_seconds();
        opt.zero_grad();
        loss.total.backward();
        let c2 = cpu_seconds();
        let _ = clip_grad_norm(&opt.params(), c.train.rnn_grad_clip);
        opt.step();
        let c3 = cpu_seconds();
        for (v, x) in phases.iter_mut().zip([c1 - c0, c2 - c1, c3 - c2]) {
            v.push(x);
        }
    };
    step();
    let (w, cpu) = time_calls(a.iters, device, &mut step);
    println!("step wall times: {:?} s", w.iter().map(|x| (x * 1000.0).round() / 1000.0).collect::<Vec<_>>());
    let (mw, mc) = (median(&w), median(&cpu));
    println!("median: {mw:.3} s wall ({:.2} steps/s, {:.1} images/s), {mc:.3} s CPU per step", 1.0 / mw, b as f64 / mw);
    println!(
        "median CPU by phase: forward + losses {:.3} s, backward {:.3} s, clipping + AdamW {:.3} s",
        median(&phases[0]),
        median(&phases[1]),
        median(&phases[2])
    );
    Ok(ExitCode::SUCCESS)
}
