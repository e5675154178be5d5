//! `clipgan bench train-step`: one full DM-GAN training iteration (every D step, the G
//! step with its CLIP terms, the EMA update) on random inputs and random weights, no
//! data. `--gan-only` replaces CLIP by random text features and drops the CLIP and
//! contrastive terms (plain DM-GAN). Prints every iteration and the median wall and
//! process CPU time (all threads; the steadier figure on a shared machine).
use super::inputs::random_tokens;
use super::timing::{cpu_seconds, median};
use crate::config;
use crate::data::TokenBatch;
use crate::models::clip::{Clip, ClipConfig};
use crate::models::dmgan::{self, GanConfig};
use crate::seed;
use crate::train::gan_step::{self, ClipTerms, Nets, TextIn};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};

#[derive(Args, Debug)]
pub struct TrainStepArgs {
    /// A training config: its DM-GAN sizes, CLIP preset, batch size, WORDS_NUM, λ, threads, device.
    #[arg(long)]
    pub cfg: PathBuf,
    /// Override the config's batch size.
    #[arg(long)]
    pub batch: Option<u32>,
    /// Timed iterations (after one untimed warm-up).
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
    /// Random text features instead of CLIP, no CLIP loss terms (plain DM-GAN).
    #[arg(long)]
    pub gan_only: bool,
    /// Override CLIPGAN.THREADS (libtorch intra-op threads).
    #[arg(long)]
    pub threads: Option<u32>,
    /// Override the config's device (auto, cpu, cuda, cuda:N).
    #[arg(long)]
    pub device: Option<String>,
    /// Print the result as one JSON object on stdout (the progress goes to stderr).
    #[arg(long)]
    pub json: bool,
}

pub fn train_step(a: TrainStepArgs) -> Result<ExitCode> {
    let loaded = config::load(&a.cfg)?;
    let mut c = loaded.config.clone();
    if let Some(b) = a.batch {
        c.train.batch_size = b;
    }
    if let Some(t) = a.threads {
        c.clipgan.threads = t;
    }
    if let Some(d) = &a.device {
        if config::parse_device_string(d).is_none() {
            bail!("--device {d:?}: expected auto, cpu, cuda or cuda:N");
        }
        c.clipgan.device = d.clone();
    }
    // With --json, stdout holds only the result.
    let say = |line: String| if a.json { eprintln!("{line}") } else { println!("{line}") };
    if c.train.batch_size < 2 {
        bail!("the batch size must be at least 2");
    }
    crate::device::init_torch();
    let device = crate::device::select(&c)?;
    crate::device::apply_threads(&c);
    let g = GanConfig::from_config(&c).with_context(|| format!("{}", a.cfg.display()))?;
    let b = c.train.batch_size as i64;
    seed::seed_torch(7, &[seed::stream::BENCH]);
    let mut nets = Nets::new(&g, device, c.train.generator_lr, c.train.discriminator_lr);
    let ccfg = ClipConfig::preset(&c.clipgan.clip_preset)?;
    let clip_vs = nn::VarStore::new(device);
    let clip = (!a.gan_only).then(|| Clip::new(clip_vs.root(), &ccfg));
    let mut clip_vs = clip_vs;
    clip_vs.freeze();
    if let Some(cl) = &clip {
        if ccfg.joint_dim() != g.nef || ccfg.projection_dim != g.nef {
            bail!("CLIP preset {} has width {} but TEXT.EMBEDDING_DIM is {}", c.clipgan.clip_preset, cl.cfg.joint_dim(), g.nef);
        }
    }
    let l = (c.text.words_num as i64).min(ccfg.text.max_position_embeddings);
    let tokens = [random_tokens(b, l, 9, 21.min(l), ccfg.text.vocab_size, 1), random_tokens(b, l, 9, 21.min(l), ccfg.text.vocab_size, 2)];
    let reals: Vec<Tensor> = g.sizes().iter().map(|&s| Tensor::rand([b, 3, s, s], (Kind::Float, device)) * 2.0 - 1.0).collect();
    let class_ids = Tensor::arange(b, (Kind::Int64, device));
    let z = Tensor::randn([b, g.z_dim], (Kind::Float, device));
    let random_text = |tok: &TokenBatch| {
        TextIn::new(
            Tensor::randn([b, g.nef, l], (Kind::Float, device)),
            Tensor::randn([b, g.nef], (Kind::Float, device)),
            tok.mask.to_device(device),
        )
    };
    let fixed_texts = a.gan_only.then(|| [random_text(&tokens[0]), random_text(&tokens[1])]);
    let terms = clip.as_ref().map(|cl| ClipTerms { clip: cl, image_size: ccfg.vision.image_size, smooth: &c.train.smooth });
    let counts = dmgan::parameter_counts(&g);
    say(format!(
        "DM-GAN train step: {} branches ({}), G {} / D {} parameters, batch {b}, {}, on {device:?} with {} threads",
        g.branch_num,
        g.sizes().iter().map(|s| format!("{s}px")).collect::<Vec<_>>().join(", "),
        dmgan::group_digits(counts[0].1),
        dmgan::group_digits(counts[1..].iter().map(|x| x.1).sum()),
        if a.gan_only {
            "random text features, no CLIP terms (--gan-only)".to_string()
        } else {
            format!(
                "CLIP {} (random weights, frozen) encoding two captions of {l} tokens, λ {}",
                c.clipgan.clip_preset, c.train.smooth.lambda
            )
        },
        tch::get_num_threads()
    ));
    let mut step = || -> Result<()> {
        let texts = match (&fixed_texts, &clip) {
            (Some(_), _) => None,
            (None, Some(cl)) => Some(tokens.each_ref().map(|t| {
                tch::no_grad(|| {
                    let f = cl.encode_text(&t.ids.to_device(device), &t.mask.to_device(device));
                    TextIn::new(f.words, f.sentence, t.mask.to_device(device))
                })
            })),
            (None, None) => unreachable!(),
        };
        let texts = texts.as_ref().or(fixed_texts.as_ref()).expect("texts");
        gan_step::train_step(&mut nets, &reals, texts, &class_ids, &z, terms.as_ref(), c.train.smooth.lambda, c.clipgan.ema_decay)
            .map_err(|e| anyhow::anyhow!("non-finite loss: {}", e.what))?;
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
        Ok(())
    };
    step()?;
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for i in 0..a.iters {
        let (t0, c0) = (Instant::now(), cpu_seconds());
        step()?;
        wall.push(t0.elapsed().as_secs_f64());
        cpu.push(cpu_seconds() - c0);
        say(format!("iteration {}: {:.3} s wall, {:.3} s CPU", i + 1, wall[i], cpu[i]));
    }
    let mw = median(&wall);
    if a.json {
        let out = serde_json::json!({
            "bench": "train-step", "device": format!("{device:?}"), "batch": b, "iters": a.iters, "gan_only": a.gan_only,
            "threads": tch::get_num_threads(),
            "median_wall_s": mw, "median_cpu_s": median(&cpu), "images_per_s": b as f64 / mw,
        });
        println!("{out}");
    } else {
        println!("median: {mw:.3} s wall ({:.2} images/s), {:.3} s CPU per iteration", b as f64 / mw, median(&cpu));
    }
    Ok(ExitCode::SUCCESS)
}
