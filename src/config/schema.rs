//! The configuration schema: the seed's YAML keys (AttnGAN/DM-GAN `miscc/config.py` plus
//! the seed's CLIP additions) with their defaults, and clipgan's own keys under `CLIPGAN`.
//!
//! Every struct denies unknown fields, so a misspelt key is an error with its location
//! instead of a silently ignored setting. Keys the seed defines but never reads are
//! accepted (and listed by [`Config::unused_keys_set`]).
use serde::{Deserialize, Deserializer, Serialize};

/// `KEY:` with no value (YAML null) means "unset", like `KEY: ''`.
fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// A whole configuration file. Field names are the seed's upper-case keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "SCREAMING_SNAKE_CASE")]
pub struct Config {
    #[serde(deserialize_with = "null_as_empty")]
    pub config_name: String,
    #[serde(deserialize_with = "null_as_empty")]
    pub dataset_name: String,
    /// Root of the AttnGAN-layout dataset (`data/birds`, `data/coco`, or synthetic).
    #[serde(deserialize_with = "null_as_empty")]
    pub data_dir: String,
    /// GPU index; a negative value means CPU (as AttnGAN's `--gpu -1`).
    pub gpu_id: i64,
    /// Background data-loading threads.
    pub workers: u32,
    pub cuda: bool,
    /// Evaluate on the test split (the seed's evaluation configs set it).
    pub b_validation: bool,
    /// AttnGAN's text-encoder type; read by nothing here (CLIP replaces the RNN).
    #[serde(deserialize_with = "null_as_empty")]
    pub rnn_type: String,
    pub tree: Tree,
    pub train: Train,
    pub gan: Gan,
    pub text: Text,
    /// clipgan's own settings; the seed's files have none and get the defaults.
    pub clipgan: Clipgan,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "SCREAMING_SNAKE_CASE")]
pub struct Tree {
    /// Number of generator stages / image sizes (64, 128, 256): 1 to 3.
    pub branch_num: u32,
    /// Smallest image side; CLIP pretraining uses 224.
    pub base_size: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "SCREAMING_SNAKE_CASE")]
pub struct Train {
    /// true: train; false: evaluate (sample + R-precision).
    pub flag: bool,
    /// Device string of the seed (e.g. `cuda`, `cuda:0`, `cpu`); empty = use GPU_ID/CUDA.
    #[serde(deserialize_with = "null_as_empty")]
    pub device: String,
    /// Finetuned CLIP checkpoint to resume pretraining from (empty = start anew).
    #[serde(deserialize_with = "null_as_empty")]
    pub net_e: String,
    /// Generator snapshot: the one to evaluate, or to continue training from.
    #[serde(deserialize_with = "null_as_empty")]
    pub net_g: String,
    /// Load discriminators next to NET_G when continuing training.
    pub b_net_d: bool,
    pub batch_size: u32,
    pub max_epoch: u32,
    pub snapshot_interval: u32,
    pub discriminator_lr: f64,
    pub generator_lr: f64,
    /// AttnGAN's text-encoder learning rate; the seed uses BACKBONE_LR/LINEAR_LR instead.
    pub encoder_lr: f64,
    /// Learning rate of CLIP's own weights during pretraining.
    pub backbone_lr: f64,
    /// Learning rate of the added `linear_subr` layer during pretraining.
    pub linear_lr: f64,
    /// Defined by the seed for a scheduler it never uses.
    pub base_lr: f64,
    /// Defined by the seed for a scheduler it never uses.
    pub gamma: f64,
    /// Defined by the seed for a scheduler it never uses.
    pub step_size_up: u32,
    /// Gradient-norm clip (named after AttnGAN's RNN; applies to CLIP here).
    pub rnn_grad_clip: f64,
    /// The finetuned CLIP that GAN training and evaluation use (frozen).
    #[serde(deserialize_with = "null_as_empty")]
    pub clip_model_checkpoint: String,
    /// The pretrained CLIP the finetuning starts from (HF name or local folder).
    #[serde(deserialize_with = "null_as_empty")]
    pub clip_model_base: String,
    pub smooth: Smooth,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "SCREAMING_SNAKE_CASE")]
pub struct Smooth {
    /// γ1: attention sharpness over regions.
    pub gamma1: f64,
    /// γ2: word-relevance sharpness in R(Q, D).
    pub gamma2: f64,
    /// γ3: scale of the image-caption matching score.
    pub gamma3: f64,
    /// λ: weight of the DAMSM terms in the generator loss.
    pub lambda: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "SCREAMING_SNAKE_CASE")]
pub struct Gan {
    pub df_dim: u32,
    pub gf_dim: u32,
    pub z_dim: u32,
    pub condition_dim: u32,
    pub r_num: u32,
    /// DM-GAN config keys read by nothing here (kept for compatibility).
    pub b_attention: bool,
    pub b_dcgan: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "SCREAMING_SNAKE_CASE")]
pub struct Text {
    pub embedding_dim: u32,
    pub captions_per_image: u32,
    /// Token context length L (CLIP: 77).
    pub words_num: u32,
}

/// clipgan's own keys. Everything here has a default that reproduces the seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "SCREAMING_SNAKE_CASE")]
pub struct Clipgan {
    /// Master random seed; every random draw derives from it and the position in the
    /// run, so a resumed run continues exactly.
    pub seed: u64,
    /// `auto` (CUDA when available and allowed by CUDA/GPU_ID, else CPU), `cpu`,
    /// `cuda` or `cuda:N`. Overrides TRAIN.DEVICE and GPU_ID.
    #[serde(deserialize_with = "null_as_empty")]
    pub device: String,
    /// bf16 autocast on CUDA.
    pub amp: bool,
    /// libtorch intra-op threads (0 = libtorch's default).
    pub threads: u32,
    /// CLIP architecture for checkpoints without a `config.json`: `vit-b-32`, or one of
    /// the small presets (`tiny`, `small`) for CPU work.
    #[serde(deserialize_with = "null_as_empty")]
    pub clip_preset: String,
    /// Pretrained CLIP weights to start finetuning from: a HuggingFace folder
    /// (`config.json` + `model.safetensors`) or a `.safetensors` file. Empty: use
    /// TRAIN.CLIP_MODEL_BASE when it is a local path.
    #[serde(deserialize_with = "null_as_empty")]
    pub clip_weights: String,
    /// Allow CLIP finetuning to start from random weights (the small demo presets).
    pub clip_from_scratch: bool,
    /// `builtin` (CLIP's BPE vocabulary shipped with clipgan) or a `tokenizer.json`.
    #[serde(deserialize_with = "null_as_empty")]
    pub tokenizer: String,
    /// Write scalar metrics every this many steps.
    pub log_every: u32,
    /// Also write the scalars to a TensorBoard event file in the run folder
    /// (docs/run-format.md); the environment variable `CLIPGAN_TENSORBOARD=0` turns it
    /// off for every job, fake-run included.
    pub tensorboard: bool,
    /// Write a sample image grid every this many steps (0 = once per epoch).
    pub sample_every: u32,
    /// Also write a resumable checkpoint at least this often (minutes; 0 = only at
    /// snapshots and on stop).
    pub checkpoint_minutes: f64,
    /// Stop after this many optimisation steps (0 = run MAX_EPOCH epochs).
    pub max_steps: u64,
    /// Pretraining schedule: linear warm-up epochs at the start of each cycle.
    pub warmup_epochs: u32,
    /// Pretraining schedule: cosine cycle length in epochs (T_0).
    pub cycle_epochs: u32,
    /// Pretraining schedule: peak learning rate factor applied per finished cycle.
    pub cycle_decay: f64,
    /// Decay of the generator's exponential moving average.
    pub ema_decay: f64,
    /// Skip unreadable images (counted and reported) instead of failing.
    pub skip_bad_images: bool,
    /// What CLIP's tokenizer gets for a caption line: `seed` (the seed's form per stage:
    /// the raw line for finetuning, AttnGAN's `\w+` words for DM-GAN and evaluation),
    /// `raw` or `words` everywhere (`data::captions`).
    pub caption_form: String,
    /// `clipgan fake-run` only: added to its loss curves (and taken from its
    /// R-precision, times 0.1), so that a sweep over it gives members that differ (the
    /// pruning tests). Real jobs ignore it.
    pub fake_offset: f64,
    pub eval: Eval,
}

/// Evaluation settings (`clipgan eval`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "SCREAMING_SNAKE_CASE")]
pub struct Eval {
    /// Generated images, one R-precision trial each (the protocol's 30,000).
    pub images: u32,
    /// How they are chosen: `auto` (the dataset's protocol: `captions` for COCO, `passes`
    /// otherwise), `passes` (every test image per pass until IMAGES) or `captions` (IMAGES /
    /// CAPTIONS_PER_IMAGE test images with all their captions): `eval::sampling`.
    pub sampling: String,
    /// N > 0: exactly N full passes over the test split (overrides IMAGES; `passes` only).
    pub passes: u32,
    /// R-precision trials (0: one per generated image; else at most IMAGES) and folds.
    pub r_trials: u32,
    pub r_folds: u32,
    /// Candidate captions per trial (ground truth + 99).
    pub r_candidates: u32,
    /// An independent CLIP for a second, labelled R-precision (empty = none).
    #[serde(deserialize_with = "null_as_empty")]
    pub independent_clip: String,
    /// pytorch-fid's FID Inception V3 weights (safetensors, pytorch-fid names).
    #[serde(deserialize_with = "null_as_empty")]
    pub fid_weights: String,
    /// Inception classifier weights for the Inception Score (of IS_MODEL).
    #[serde(deserialize_with = "null_as_empty")]
    pub is_weights: String,
    /// The Inception Score's classifier: `imagenet` (pytorch-fid's Inception) or
    /// `cub-stackgan` (StackGAN's CUB-finetuned Inception): `eval::inception_score::IsModel`.
    pub is_model: String,
    /// Cached real statistics (`.npz`/`.safetensors`), or empty to compute them.
    #[serde(deserialize_with = "null_as_empty")]
    pub fid_real_stats: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            config_name: String::new(),
            dataset_name: "birds".into(),
            data_dir: String::new(),
            gpu_id: 0,
            workers: 4,
            cuda: true,
            b_validation: false,
            rnn_type: "LSTM".into(),
            tree: Tree::default(),
            train: Train::default(),
            gan: Gan::default(),
            text: Text::default(),
            clipgan: Clipgan::default(),
        }
    }
}

impl Default for Tree {
    fn default() -> Self {
        Tree { branch_num: 3, base_size: 64 }
    }
}

impl Default for Train {
    fn default() -> Self {
        Train {
            flag: true,
            device: String::new(),
            net_e: String::new(),
            net_g: String::new(),
            b_net_d: true,
            batch_size: 64,
            max_epoch: 600,
            snapshot_interval: 2000,
            discriminator_lr: 2e-4,
            generator_lr: 2e-4,
            encoder_lr: 2e-4,
            backbone_lr: 2e-5,
            linear_lr: 2e-3,
            base_lr: 0.0,
            gamma: 0.0,
            step_size_up: 0,
            rnn_grad_clip: 0.25,
            clip_model_checkpoint: String::new(),
            clip_model_base: "openai/clip-vit-base-patch32".into(),
            smooth: Smooth::default(),
        }
    }
}

impl Default for Smooth {
    fn default() -> Self {
        Smooth { gamma1: 5.0, gamma2: 5.0, gamma3: 10.0, lambda: 1.0 }
    }
}

impl Default for Gan {
    fn default() -> Self {
        Gan { df_dim: 64, gf_dim: 128, z_dim: 100, condition_dim: 100, r_num: 2, b_attention: true, b_dcgan: false }
    }
}

impl Default for Text {
    fn default() -> Self {
        Text { embedding_dim: 512, captions_per_image: 10, words_num: 77 }
    }
}

impl Default for Clipgan {
    fn default() -> Self {
        Clipgan {
            seed: 100,
            device: "auto".into(),
            amp: false,
            threads: 0,
            clip_preset: "vit-b-32".into(),
            clip_weights: String::new(),
            clip_from_scratch: false,
            tokenizer: "builtin".into(),
            log_every: 10,
            tensorboard: true,
            sample_every: 0,
            checkpoint_minutes: 10.0,
            max_steps: 0,
            warmup_epochs: 1,
            cycle_epochs: 10,
            cycle_decay: 0.8,
            ema_decay: 0.999,
            skip_bad_images: false,
            caption_form: "seed".into(),
            fake_offset: 0.0,
            eval: Eval::default(),
        }
    }
}

impl Default for Eval {
    fn default() -> Self {
        Eval {
            images: 30_000,
            sampling: "auto".into(),
            passes: 0,
            r_trials: 0,
            r_folds: 10,
            r_candidates: 100,
            independent_clip: String::new(),
            fid_weights: String::new(),
            is_weights: String::new(),
            is_model: "imagenet".into(),
            fid_real_stats: String::new(),
        }
    }
}

/// What a configuration asks for, inferred as the seed does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Job {
    /// CLIP finetuning with DAMSM + contrastive losses (DAMSM configs).
    Pretrain,
    /// DM-GAN training (TRAIN.FLAG true).
    Train,
    /// Sampling + metrics (TRAIN.FLAG false).
    Eval,
}

impl Job {
    pub fn name(self) -> &'static str {
        match self {
            Job::Pretrain => "pretrain",
            Job::Train => "train",
            Job::Eval => "eval",
        }
    }

    /// The daemon's and the run folder's name for this job.
    pub fn kind(self) -> crate::rundir::JobKind {
        match self {
            Job::Pretrain => crate::rundir::JobKind::Pretrain,
            Job::Train => crate::rundir::JobKind::Train,
            Job::Eval => crate::rundir::JobKind::Eval,
        }
    }
}

impl std::fmt::Display for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Config {
    /// The job this config runs: the seed runs `pretrain_DAMSM.py` on DAMSM configs and
    /// `main.py` otherwise, where TRAIN.FLAG picks training or evaluation.
    pub fn job(&self) -> Job {
        if self.config_name.eq_ignore_ascii_case("DAMSM") {
            Job::Pretrain
        } else if self.train.flag {
            Job::Train
        } else {
            Job::Eval
        }
    }

    /// Keys that are set to a non-default value but that nothing in clipgan reads
    /// (the seed defines them for schedulers or encoders it never uses).
    pub fn unused_keys_set(&self) -> Vec<&'static str> {
        let d = Config::default();
        let mut out = Vec::new();
        if self.rnn_type != d.rnn_type {
            out.push("RNN_TYPE");
        }
        if self.train.encoder_lr != d.train.encoder_lr {
            out.push("TRAIN.ENCODER_LR");
        }
        if self.train.base_lr != d.train.base_lr {
            out.push("TRAIN.BASE_LR");
        }
        if self.train.gamma != d.train.gamma {
            out.push("TRAIN.GAMMA");
        }
        if self.train.step_size_up != d.train.step_size_up {
            out.push("TRAIN.STEP_SIZE_UP");
        }
        if self.gan.b_attention != d.gan.b_attention {
            out.push("GAN.B_ATTENTION");
        }
        if self.gan.b_dcgan != d.gan.b_dcgan {
            out.push("GAN.B_DCGAN");
        }
        out
    }
}
