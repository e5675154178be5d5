//! `clipgan fid`, `clipgan is` (pytorch-fid-like tools over image folders) and
//! `clipgan eval` (the evaluation job, src/jobs/eval.rs).
use crate::eval::frechet::frechet_distance;
use crate::eval::inception::{self, weights_help};
use crate::eval::inception_score::{inception_score, IsModel, IsNetwork};
use crate::eval::stackgan_inception;
use crate::eval::stats::{Extractor, Source};
use crate::eval::{folders, stats};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Environment variable naming the FID Inception weights when --weights is not given.
pub const WEIGHTS_ENV: &str = "CLIPGAN_INCEPTION_WEIGHTS";

#[derive(Args, Debug)]
pub struct FidArgs {
    /// Two folders of images (searched recursively) or .npz statistics (mu, sigma).
    #[arg(num_args = 2, required = true)]
    pub paths: Vec<PathBuf>,
    /// Feature block: 64, 192, 768 or 2048 (pool3), as pytorch-fid's --dims.
    #[arg(long, default_value_t = 2048)]
    pub dims: i64,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// pt_inception-2015-12-05-6726825d.pth (or a .safetensors with its names);
    /// default: $CLIPGAN_INCEPTION_WEIGHTS.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Recompute folder statistics even when cached, and do not cache them.
    #[arg(long)]
    pub no_cache: bool,
    /// Save the first path's statistics to this .npz (pytorch-fid's --save-stats).
    #[arg(long)]
    pub save_stats: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct IsArgs {
    /// A folder of images (searched recursively).
    pub path: PathBuf,
    /// The classifier: imagenet (pytorch-fid's Inception, the standard for COCO) or
    /// cub-stackgan (StackGAN's CUB-finetuned Inception, the standard for CUB).
    #[arg(long, default_value = "imagenet")]
    pub model: IsModel,
    /// The model's weights; default: $CLIPGAN_INCEPTION_WEIGHTS (imagenet) or
    /// $CLIPGAN_CUB_INCEPTION_WEIGHTS (cub-stackgan).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    #[arg(long, default_value_t = 10)]
    pub splits: usize,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    #[arg(long, default_value = "auto")]
    pub device: String,
}

/// Environment variable naming StackGAN's CUB Inception (converted) for `is --model cub-stackgan`.
pub const CUB_WEIGHTS_ENV: &str = "CLIPGAN_CUB_INCEPTION_WEIGHTS";

/// --weights, else $CLIPGAN_INCEPTION_WEIGHTS; an error that says what to get otherwise.
pub fn weights_path(explicit: Option<&Path>) -> Result<PathBuf> {
    weights_path_for(explicit, WEIGHTS_ENV, &weights_help())
}

fn weights_path_for(explicit: Option<&Path>, env: &str, help: &str) -> Result<PathBuf> {
    let p = explicit.map(Path::to_path_buf).or_else(|| std::env::var_os(env).filter(|v| !v.is_empty()).map(PathBuf::from));
    match p {
        Some(p) if p.is_file() => Ok(p),
        Some(p) if p.is_dir() => bail!("Inception weights {} is a folder; give the weights file itself. {help}", p.display()),
        Some(p) => bail!("Inception weights {} do not exist. {help}", p.display()),
        None => bail!("no Inception weights given (--weights FILE or ${env}). {help}"),
    }
}

pub fn fid(a: FidArgs) -> Result<ExitCode> {
    if !inception::DIMS.contains(&a.dims) {
        bail!("--dims {}: pytorch-fid's Inception gives 64, 192, 768 or 2048 features", a.dims);
    }
    let device = crate::device::from_flag(&a.device)?;
    let all_files = a.paths.iter().all(|p| p.is_file());
    let mut loaded = None;
    let weights = if all_files { PathBuf::new() } else { weights_path(a.weights.as_deref())? };
    if !all_files {
        loaded = Some(inception::load(&weights, device)?);
    }
    let mut out = Vec::new();
    for p in &a.paths {
        let s = if p.is_file() {
            stats::read_npz(p)?
        } else {
            let (_, net) = loaded.as_ref().expect("weights loaded for folders");
            let ex = Extractor { net, weights: &weights, dims: a.dims, batch_size: a.batch_size, device, cache: !a.no_cache };
            let (s, src) = ex.stats(p)?;
            match src {
                Source::Cache => eprintln!("{}: cached statistics", p.display()),
                Source::Computed { images } => eprintln!("{}: {images} images", p.display()),
                Source::File => {}
            }
            s
        };
        out.push(s);
    }
    if let Some(save) = &a.save_stats {
        stats::write_npz(save, &out[0], None)?;
        eprintln!("saved statistics of {} to {}", a.paths[0].display(), save.display());
    }
    if out[0].dim() != out[1].dim() {
        bail!("the statistics have different widths ({} and {}); pass the --dims they were computed with", out[0].dim(), out[1].dim());
    }
    let fid = frechet_distance(&out[0], &out[1])?;
    println!("FID: {fid}");
    Ok(ExitCode::SUCCESS)
}

pub fn is(a: IsArgs) -> Result<ExitCode> {
    let device = crate::device::from_flag(&a.device)?;
    let weights = match a.model {
        IsModel::Imagenet => weights_path(a.weights.as_deref())?,
        IsModel::CubStackgan => weights_path_for(a.weights.as_deref(), CUB_WEIGHTS_ENV, &stackgan_inception::weights_help())?,
    };
    let images = folders::list_images(&a.path)?;
    if images.len() < a.splits {
        bail!("{} holds {} image(s); {} splits need at least as many", a.path.display(), images.len(), a.splits);
    }
    let (_vs, net) = IsNetwork::load(a.model, &weights, device)?;
    let logits = folders::is_logits(&net, &images, a.batch_size, device, |_, _| {})
        .with_context(|| format!("running the Inception ({}) over {}", a.model, a.path.display()))?;
    let s = inception_score(&logits, a.splits)?;
    println!("IS: {} ± {}", s.mean, s.std);
    eprintln!("model: {} ({}), {} images, {} splits", a.model, weights.display(), images.len(), a.splits);
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Evaluation config (cfg/eval_clip_bird.yml, cfg/demo/eval.yml).
    #[arg(long)]
    pub cfg: PathBuf,
    /// The generator: a train run folder, its checkpoints/latest.safetensors or a netG
    /// snapshot (overrides TRAIN.NET_G).
    #[arg(long)]
    pub net_g: Option<PathBuf>,
    /// The finetuned CLIP checkpoint (overrides TRAIN.CLIP_MODEL_CHECKPOINT).
    #[arg(long)]
    pub clip: Option<PathBuf>,
    /// Run folder to write (default: $CLIPGAN_RUN_DIR, else a new folder under runs/).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Evaluate every checkpoints/netG_epoch_*.safetensors of this train run (metrics
    /// logged at each snapshot's training step); replaces --net-g.
    #[arg(long, conflicts_with = "net_g")]
    pub snapshots: Option<PathBuf>,
    /// Override a setting of the config: a dotted key and a YAML value
    /// (`--set TRAIN.SMOOTH.LAMBDA=0.5`); repeatable, checked like the file.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    #[command(flatten)]
    pub progress: super::progress::ProgressArgs,
}

pub fn eval(a: EvalArgs) -> Result<ExitCode> {
    a.progress.apply();
    let opts = crate::jobs::eval::Options {
        cfg: Some(a.cfg),
        net_g: a.net_g,
        clip: a.clip,
        run_dir: a.run_dir,
        snapshots: a.snapshots,
        overrides: a.set,
    };
    Ok(ExitCode::from(crate::jobs::eval::main(&opts)?))
}
