//! `clipgan clip embed`: sentence and image codes of a CLIP checkpoint, and the ranking
//! of the given texts for each image (a quick sanity check of a checkpoint).
use crate::data::transforms::{self, PixelMode};
use crate::data::Tokenizer;
use crate::models::clip;
use crate::train::amp;
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use tch::{Kind, Tensor};

#[derive(Subcommand, Debug)]
pub enum ClipCommand {
    /// Print the sentence codes of --text and the image codes of --image as JSON, with
    /// the texts ranked by cosine similarity for each image.
    Embed(EmbedArgs),
}

#[derive(Args, Debug)]
pub struct EmbedArgs {
    /// A HuggingFace CLIP folder, a .safetensors file, a clipgan finetuning checkpoint or
    /// run folder, or a hub name in the local HuggingFace cache.
    #[arg(long)]
    pub model: PathBuf,
    /// Architecture for a .safetensors file without config.json beside it.
    #[arg(long, default_value = "vit-b-32")]
    pub preset: String,
    /// A caption (repeatable).
    #[arg(long)]
    pub text: Vec<String>,
    /// An image file (repeatable).
    #[arg(long)]
    pub image: Vec<PathBuf>,
    /// `builtin` (CLIP's vocabulary) or a tokenizer.json / CLIP folder.
    #[arg(long, default_value = "builtin")]
    pub tokenizer: String,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Run the encoders under bf16 autocast (as `CLIPGAN.AMP` does in training; on the
    /// CPU too, where training ignores it), to compare with f32 codes.
    #[arg(long)]
    pub amp: bool,
    /// Leave the codes out of the output (rankings only).
    #[arg(long)]
    pub no_codes: bool,
}

pub fn run(cmd: ClipCommand) -> Result<ExitCode> {
    match cmd {
        ClipCommand::Embed(a) => embed(a),
    }
}

fn codes_json(t: &Tensor) -> Vec<Vec<f64>> {
    let t = t.to_kind(Kind::Double).to_device(tch::Device::Cpu);
    (0..t.size()[0]).map(|i| Vec::<f64>::try_from(t.get(i)).unwrap_or_default()).collect()
}

fn embed(a: EmbedArgs) -> Result<ExitCode> {
    if a.text.is_empty() && a.image.is_empty() {
        bail!("give at least one --text or --image");
    }
    let device = crate::device::from_flag(&a.device)?;
    let (_vs, model, ccfg) = clip::load_clip(&a.model, &a.preset, device)?;
    let tokenizer = Tokenizer::from_setting(&a.tokenizer, &std::env::current_dir()?)?;
    if tokenizer.vocab_size() as i64 > ccfg.text.vocab_size {
        bail!(
            "the tokenizer ({}) has {} tokens but this CLIP's vocabulary has {}",
            tokenizer.source,
            tokenizer.vocab_size(),
            ccfg.text.vocab_size
        );
    }
    let size = ccfg.vision.image_size as u32;
    let texts: Vec<&str> = a.text.iter().map(String::as_str).collect();
    let sent = if texts.is_empty() {
        None
    } else {
        let tok = tokenizer.encode_batch(&texts, ccfg.text.max_position_embeddings as usize);
        Some(tch::no_grad(|| {
            amp::autocast_bf16(device, a.amp, || model.encode_text(&tok.ids.to_device(device), &tok.mask.to_device(device)).sentence)
        }))
    };
    let images = if a.image.is_empty() {
        None
    } else {
        let mut pixels = Vec::new();
        for path in &a.image {
            let img = crate::data::dataset::decode_rgb(path)?;
            // CLIP's own preprocessing: shorter side to the model's size, centre crop.
            let r = transforms::resize_shorter(&img, size);
            let (w, h) = r.dimensions();
            let crop = image::imageops::crop_imm(&r, (w - size) / 2, (h - size) / 2, size, size).to_image();
            pixels.push(transforms::image_tensor(&crop, PixelMode::Clip));
        }
        let pixels = Tensor::stack(&pixels, 0).to_device(device);
        Some(tch::no_grad(|| amp::autocast_bf16(device, a.amp, || model.image_code(&pixels))))
    };
    let mut out = json!({
        "model": a.model.display().to_string(),
        "projection_dim": ccfg.projection_dim,
        "image_size": size,
        "finetuned": model.subr_loaded,
        "device": format!("{device:?}"),
        "amp": a.amp,
    });
    if !a.no_codes {
        if let Some(s) = &sent {
            out["texts"] = json!(texts.iter().zip(codes_json(s)).map(|(t, c)| json!({"text": t, "code": c})).collect::<Vec<_>>());
        }
        if let Some(i) = &images {
            out["images"] = json!(a
                .image
                .iter()
                .zip(codes_json(i))
                .map(|(p, c)| json!({"file": p.display().to_string(), "code": c}))
                .collect::<Vec<_>>());
        }
    }
    if let (Some(s), Some(i)) = (&sent, &images) {
        let norm = |t: &Tensor| t / t.norm_scalaropt_dim(2, [1], true).clamp_min(1e-8);
        let cos = codes_json(&norm(i).matmul(&norm(s).tr()));
        let rankings: Vec<_> = a
            .image
            .iter()
            .zip(cos)
            .map(|(p, row)| {
                let mut order: Vec<usize> = (0..row.len()).collect();
                order.sort_by(|&x, &y| row[y].total_cmp(&row[x]));
                json!({
                    "file": p.display().to_string(),
                    "ranking": order.iter().map(|&k| json!({"text": texts[k], "index": k, "cosine": row[k]})).collect::<Vec<_>>(),
                })
            })
            .collect();
        out["rankings"] = json!(rankings);
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}
