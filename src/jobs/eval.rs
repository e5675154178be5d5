//! `clipgan eval`: load the EMA generator (TRAIN.NET_G or --net-g; a missing or unreadable
//! file is an error, never random weights: method.md §9 bug 4), generate images for the
//! test captions (the protocol's EVAL.IMAGES, chosen per dataset by `eval::sampling`; one
//! R-precision trial each), save them as PNG under
//! `<run>/images/<generator>/` (one file per image, the caption's image key as path, so
//! FID tools read the folder recursively), then compute from exactly the saved pixels:
//! R-precision with the finetuned CLIP (and EVAL.INDEPENDENT_CLIP, labelled), FD_CLIP
//! (Fréchet distance of CLIP image codes, generated vs real test images), and FID / IS
//! when EVAL.FID_WEIGHTS / EVAL.IS_WEIGHTS are configured (else reported unavailable with
//! the reason; the IS network is EVAL.IS_MODEL's, named in the results). `--snapshots
//! RUN` evaluates every `netG_epoch_*.safetensors` of a train run in one job, logging each
//! at its training step.
use crate::config::{self, LoadedConfig};
use crate::data::{transforms, CaptionForm, Dataset, DatasetSpec, Split, Stage, Tokenizer};
use crate::device;
use crate::eval::frechet::{frechet_distance, Stats};
use crate::eval::inception::{self, FidInception};
use crate::eval::inception_score::{inception_score, IsModel, IsNetwork, MeanStd};
use crate::eval::kid::kid;
use crate::eval::rprecision::{r_precision, Protocol, RPrecision};
use crate::eval::sampling::{Plan, Sampling};
use crate::eval::stackgan_inception;
use crate::eval::stats as fid_stats;
use crate::jobs::{train, Outcome, StopFlag, Worker, LATEST};
use crate::models::clip::{self, Clip};
use crate::models::dmgan;
use crate::rundir::{RunDir, RunWriter};
use crate::util::oom::catch_out_of_memory;
use crate::{checkpoint, seed};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

#[derive(Clone, Debug, Default)]
pub struct Options {
    pub cfg: Option<PathBuf>,
    /// Overrides TRAIN.NET_G.
    pub net_g: Option<PathBuf>,
    /// Overrides TRAIN.CLIP_MODEL_CHECKPOINT.
    pub clip: Option<PathBuf>,
    pub run_dir: Option<PathBuf>,
    /// Evaluate every netG snapshot of this train run.
    pub snapshots: Option<PathBuf>,
    /// `--set KEY=VALUE` overrides of the config (recorded in the run's `config.yml`).
    pub overrides: Vec<String>,
}

/// One generator to evaluate: its file, the training step it was saved at, a label.
#[derive(Clone, Debug)]
pub struct Target {
    pub path: PathBuf,
    pub step: u64,
    pub label: String,
}

fn meta_u64(meta: &std::collections::BTreeMap<String, String>, keys: &[&str]) -> Option<u64> {
    keys.iter().find_map(|k| meta.get(*k).and_then(|v| v.parse().ok()))
}

/// `netG_epoch_NNNN.safetensors` files of a train run, in epoch order, with their steps
/// (checkpoint meta `step`, else the epoch from the name).
pub fn snapshot_targets(run: &Path) -> Result<Vec<Target>> {
    let dir = run.join(crate::rundir::CHECKPOINTS_DIR);
    let rd = std::fs::read_dir(&dir).with_context(|| format!("{}: no checkpoints folder (is it a train run?)", run.display()))?;
    let mut out = Vec::new();
    for e in rd {
        let p = e?.path();
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let Some(epoch) = train::snapshot_epoch(&name) else {
            continue;
        };
        let meta = checkpoint::read_meta(&p).with_context(|| format!("{}: unreadable generator snapshot", p.display()))?;
        let step = meta_u64(&meta, &["step", "global_step"]).unwrap_or(epoch);
        let label = train::snapshot_name(epoch).trim_end_matches(".safetensors").to_string();
        out.push((epoch, Target { path: p, step, label }));
    }
    out.sort_by_key(|(e, _)| *e);
    if out.is_empty() {
        bail!("{} holds no {}*.safetensors snapshots", dir.display(), train::SNAPSHOT_PREFIX);
    }
    Ok(out.into_iter().map(|(_, t)| t).collect())
}

fn single_target(loaded: &LoadedConfig, net_g: Option<&Path>) -> Result<Target> {
    let path = match net_g {
        Some(p) => {
            if !p.exists() {
                bail!("--net-g {}: no such file or folder (the generator to evaluate)", p.display());
            }
            p.to_path_buf()
        }
        None => loaded.require("TRAIN.NET_G")?,
    };
    let file = if path.is_dir() { path.join(crate::rundir::CHECKPOINTS_DIR).join(LATEST) } else { path.clone() };
    let step = checkpoint::read_meta(&file).ok().and_then(|m| meta_u64(&m, &["step", "global_step"])).unwrap_or(0);
    let label = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "netG".into());
    Ok(Target { path, step, label })
}

/// `clipgan eval`; returns the process exit code.
pub fn main(opts: &Options) -> Result<u8> {
    let (outcome, dir) = run(opts)?;
    println!("run folder: {}", dir.path().display());
    Ok(outcome.exit_code())
}

/// Run the job; errors after the run folder exists are recorded there too.
pub fn run(opts: &Options) -> Result<(Outcome, RunDir)> {
    device::init_torch();
    let cfg_path = opts.cfg.clone().context("a config is needed: --cfg FILE")?;
    let loaded = config::load_with(&cfg_path, &opts.overrides)?;
    for w in &loaded.warnings {
        eprintln!("{w}");
    }
    // Check the generators before making a run folder: a missing one is a plain error.
    let targets = match &opts.snapshots {
        Some(run) => snapshot_targets(run)?,
        None => vec![single_target(&loaded, opts.net_g.as_deref())?],
    };
    let name = cfg_path.file_stem().map(|s| crate::rundir::name_from_file_stem(&s.to_string_lossy())).unwrap_or_else(|| "eval".into());
    let mut w = Worker::start(opts.run_dir.as_deref(), &name, "eval", Some(&cfg_path))?;
    w.run.set_tensorboard(loaded.config.clipgan.tensorboard);
    let dir = w.run.dir().clone();
    let result = catch_out_of_memory(|| evaluate(&loaded, opts, &targets, &mut w.run, &w.stop));
    w.conclude(result).map(|outcome| (outcome, dir))
}

/// What is computed on generated (and real) images.
struct Encoders {
    clip: Clip,
    independent: Option<(Clip, String)>,
    fid: Option<FidInception>,
    /// The IS network when it is not the FID network.
    is: Option<IsNetwork>,
    /// IS wanted (from `is`, or from `fid` when both are pytorch-fid's with the same weights).
    want_is: bool,
    _stores: Vec<tch::nn::VarStore>,
}

/// The per-image outputs of one generator.
struct Collected {
    img_codes: Vec<Tensor>,
    sent_codes: Vec<Tensor>,
    ind_img: Vec<Tensor>,
    ind_sent: Vec<Tensor>,
    fid_feats: Vec<Tensor>,
    logits: Vec<Tensor>,
    classes: Vec<i64>,
}

fn cat(v: &[Tensor]) -> Tensor {
    Tensor::cat(v, 0)
}

/// Images in [0, 1] (B x 3 x H x W, already quantised as the PNGs) through the encoders:
/// always the finetuned CLIP; for generated images (`generated`) also the independent CLIP
/// and the Inception logits; FID features when `fid`.
fn encode_images(enc: &Encoders, x01: &Tensor, out: &mut Collected, generated: bool, fid: bool) -> Result<()> {
    let _g = tch::no_grad_guard();
    let x = x01 * 2.0 - 1.0;
    out.img_codes.push(enc.clip.image_code(&clip::pixels_for_clip(&x, enc.clip.cfg.vision.image_size)).to_device(Device::Cpu));
    if let (true, Some((ind, _))) = (generated, &enc.independent) {
        out.ind_img.push(ind.image_code(&clip::pixels_for_clip(&x, ind.cfg.vision.image_size)).to_device(Device::Cpu));
    }
    let fid_net = enc.fid.as_ref().filter(|_| fid);
    let is_net = if generated { enc.is.as_ref() } else { None };
    // The FID network gives the IS logits too when both are the same weights.
    let is_from_fid = generated && enc.want_is && enc.is.is_none();
    if fid_net.is_none() && is_net.is_none() {
        return Ok(());
    }
    let x299 = if x01.size()[2] == 299 && x01.size()[3] == 299 {
        x01.shallow_clone()
    } else {
        x01.upsample_bilinear2d([299, 299], false, None, None)
    };
    if let Some(net) = fid_net {
        let o = net.forward(&x299, 2048, is_from_fid)?;
        out.fid_feats.push(o.features.to_device(Device::Cpu));
        if let Some(l) = o.logits {
            out.logits.push(l.to_device(Device::Cpu));
        }
    }
    if let Some(net) = is_net {
        out.logits.push(net.logits(&x299)?.to_device(Device::Cpu));
    }
    Ok(())
}

/// u8-quantised copy in [0, 1] of images in [-1, 1]: what a PNG holds.
fn quantise(images: &Tensor) -> Tensor {
    ((images.to_kind(Kind::Float) + 1.0) * 127.5).round().clamp(0.0, 255.0) / 255.0
}

fn save_png(path: &Path, x01: &Tensor) -> Result<()> {
    let t = (x01 * 255.0).round().clamp(0.0, 255.0).to_kind(Kind::Uint8).to_device(Device::Cpu).permute([1, 2, 0]).contiguous();
    let (h, w) = (t.size()[0] as u32, t.size()[1] as u32);
    let data = Vec::<u8>::try_from(t.view(-1))?;
    let img = image::RgbImage::from_raw(w, h, data).context("image buffer")?;
    if let Some(p) = path.parent() {
        crate::util::fsx::create_dir_all(p)?;
    }
    img.save(path).with_context(|| format!("cannot write {}", path.display()))
}

fn r_json(r: &RPrecision, label: &str) -> Value {
    json!({ "encoder": label, "mean": r.mean, "std": r.std, "folds": r.folds, "trials": r.trials, "candidates": r.candidates })
}

fn unavailable(reason: impl Into<String>) -> Value {
    json!({ "unavailable": reason.into() })
}

/// Generate and score every target in turn; a stop request ends the job between batches
/// (the targets scored so far stay in results.json).
fn evaluate(loaded: &LoadedConfig, opts: &Options, targets: &[Target], run: &mut RunWriter, stop: &StopFlag) -> Result<(Outcome, String)> {
    let c = &loaded.config;
    let e = &c.clipgan.eval;
    run.dir().write_config(&loaded.resolved_yaml())?;
    let device = device::select(c)?;
    device::apply_threads(c);

    run.set_message("loading the encoders and data");
    let clip_path = match &opts.clip {
        Some(p) => p.clone(),
        None => loaded.require("TRAIN.CLIP_MODEL_CHECKPOINT")?,
    };
    let mut stores = Vec::new();
    let (vs, clip_model, _) =
        clip::load_finetuned_clip(&clip_path, device).with_context(|| format!("loading the finetuned CLIP {}", clip_path.display()))?;
    stores.push(vs);
    let independent = if e.independent_clip.trim().is_empty() {
        None
    } else {
        let p = loaded.require("CLIPGAN.EVAL.INDEPENDENT_CLIP")?;
        let (vs, m, _) =
            clip::load_clip(&p, &c.clipgan.clip_preset, device).with_context(|| format!("loading the independent CLIP {}", p.display()))?;
        stores.push(vs);
        Some((m, p.display().to_string()))
    };
    let mut notes = serde_json::Map::new();
    let fid = if e.fid_weights.trim().is_empty() {
        notes.insert("fid".into(), unavailable(format!("CLIPGAN.EVAL.FID_WEIGHTS is not set. {}", inception::weights_help())));
        None
    } else {
        let p = loaded.require("CLIPGAN.EVAL.FID_WEIGHTS")?;
        let (vs, net) = inception::load(&p, device)?;
        stores.push(vs);
        Some((net, p))
    };
    let is_model: IsModel = e.is_model.parse().map_err(anyhow::Error::msg)?;
    let mut is_weights = None;
    let is = if e.is_weights.trim().is_empty() {
        let what = match is_model {
            IsModel::Imagenet => "pytorch-fid's Inception".to_string(),
            IsModel::CubStackgan => stackgan_inception::weights_help(),
        };
        notes.insert("is".into(), unavailable(format!("CLIPGAN.EVAL.IS_WEIGHTS is not set (IS_MODEL {is_model}: {what})")));
        None
    } else {
        let p = loaded.require("CLIPGAN.EVAL.IS_WEIGHTS")?;
        is_weights = Some(p.clone());
        if is_model == IsModel::Imagenet && fid.as_ref().is_some_and(|(_, f)| *f == p) {
            None // the FID network gives the logits too
        } else {
            let (vs, net) = IsNetwork::load(is_model, &p, device)
                .with_context(|| format!("loading the Inception Score's network (IS_MODEL {is_model})"))?;
            stores.push(vs);
            Some(net)
        }
    };
    let want_is = !e.is_weights.trim().is_empty();
    let fid_weights_path = fid.as_ref().map(|(_, p)| p.clone());
    let enc = Encoders { clip: clip_model, independent, fid: fid.map(|(n, _)| n), is, want_is, _stores: stores };

    let spec = DatasetSpec::from_config(loaded)?;
    let test = Dataset::open(&spec, Split::Test)?;
    let tokenizer = Tokenizer::from_config(loaded)?;
    let words_num = c.text.words_num as usize;
    // The seed's evaluation dataset fed CLIP AttnGAN's words of each caption (CAPTION_FORM).
    let caption_form = CaptionForm::for_stage(&c.clipgan.caption_form, Stage::Gan)?;
    let cpi = test.captions_per_image();
    // The protocol's image count (EVAL.IMAGES, chosen per dataset), or EVAL.PASSES full passes.
    let (sampling, images) = match e.passes {
        0 => (Sampling::resolve(&e.sampling, &c.dataset_name)?, e.images as usize),
        p => (Sampling::Passes, p as usize * test.len()),
    };
    let plan = Plan::new(sampling, test.len(), cpi, images, c.clipgan.seed)?;
    let total = plan.len();
    let trials = if e.r_trials == 0 { total } else { e.r_trials as usize };
    if trials > total {
        bail!("CLIPGAN.EVAL.R_TRIALS {trials}: more than the {total} generated images (each trial uses its own image)");
    }
    let protocol = Protocol { candidates: e.r_candidates as usize, trials, folds: e.r_folds as usize, seed: c.clipgan.seed };
    let batch = c.train.batch_size.max(1) as usize;
    run.set_totals(Some((targets.len() * total.div_ceil(batch)) as u64), None);

    let mut results = Vec::new();
    let mut real: Option<RealRefs> = None;
    let mut progress = 0u64;
    for target in targets {
        run.set_message(format!("{}: loading the generator", target.label));
        let (_gvs, gen, gcfg) =
            dmgan::load_generator(&target.path, device).with_context(|| format!("loading the generator {}", target.path.display()))?;
        let out_dir = run.dir().file(&format!("images/{}", target.label));
        let mut col = Collected {
            img_codes: vec![],
            sent_codes: vec![],
            ind_img: vec![],
            ind_sent: vec![],
            fid_feats: vec![],
            logits: vec![],
            classes: vec![],
        };
        let mut size = 0;
        // The plan's items in order: item i is R-precision trial i.
        for (bi, chunk) in plan.items.chunks(batch).enumerate() {
            if stop.is_raised() {
                return Ok((Outcome::Stopped, "stopped on request".to_string()));
            }
            let items: Vec<(usize, usize, usize)> = chunk.iter().map(|it| (it.pass, it.image, it.caption)).collect();
            let owned: Vec<String> = items.iter().map(|&(_, n, k)| caption_form.apply(test.caption(n, k)).into_owned()).collect();
            let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
            let tok = tokenizer.encode_batch(&texts, words_num).to_device(device);
            let _g = tch::no_grad_guard();
            let tf = enc.clip.encode_text(&tok.ids, &tok.mask);
            seed::seed_torch(c.clipgan.seed, &[seed::stream::SAMPLE, 0xE7A1, bi as u64]);
            let z = Tensor::randn([items.len() as i64, gcfg.z_dim], (Kind::Float, device));
            let out = gen.forward(&z, &tf.sentence, &tf.words, &tok.mask.logical_not());
            let images = out.images.last().context("the generator returned no images")?;
            let x01 = quantise(images);
            size = x01.size()[2];
            for (j, &(p, n, k)) in items.iter().enumerate() {
                let key = &test.records[n].key;
                save_png(&out_dir.join(format!("{key}_p{p}_c{k}.png")), &x01.get(j as i64))?;
                col.classes.push(test.records[n].class_id);
            }
            encode_images(&enc, &x01, &mut col, true, true)?;
            col.sent_codes.push(tf.sentence.to_device(Device::Cpu));
            if let Some((ind, _)) = &enc.independent {
                let iw = words_num.min(ind.cfg.text.max_position_embeddings as usize);
                let t = tokenizer.encode_batch(&texts, iw).to_device(device);
                col.ind_sent.push(ind.encode_text(&t.ids, &t.mask).sentence.to_device(Device::Cpu));
            }
            progress += 1;
            run.progress(progress)?;
        }
        // Real test images at the generator's size, quantised like the generated ones.
        if real.is_none() {
            run.set_message("encoding the real test images");
            real = Some(real_stats(loaded, &enc, &test, size, batch, device, fid_weights_path.as_deref(), run)?);
        }
        let RealRefs { clip: real_clip, fid: real_fid, fid_features: real_feats } = real.as_ref().expect("set above");
        run.set_message(format!("{}: metrics", target.label));
        let mut r = serde_json::Map::new();
        r.insert("generator".into(), json!(target.path.display().to_string()));
        r.insert("step".into(), json!(target.step));
        r.insert("images".into(), json!(total));
        r.insert("trials".into(), json!(protocol.trials));
        r.insert("sampling".into(), plan.to_json());
        r.insert("image_folder".into(), json!(out_dir.display().to_string()));
        let mut scalars: Vec<(String, f64)> = Vec::new();
        let rp = r_precision(&cat(&col.img_codes), &cat(&col.sent_codes), &col.classes, &protocol)?;
        scalars.push(("eval/r_precision".into(), rp.mean));
        scalars.push(("eval/r_precision_std".into(), rp.std));
        r.insert("r_precision".into(), r_json(&rp, &format!("finetuned CLIP ({})", clip_path.display())));
        if let Some((_, label)) = &enc.independent {
            let ri = r_precision(&cat(&col.ind_img), &cat(&col.ind_sent), &col.classes, &protocol)?;
            scalars.push(("eval/r_precision_independent".into(), ri.mean));
            r.insert("r_precision_independent".into(), r_json(&ri, &format!("independent CLIP ({label})")));
        }
        let fd_clip = frechet_distance(&Stats::from_features(&cat(&col.img_codes))?, real_clip)?;
        scalars.push(("eval/fd_clip".into(), fd_clip));
        r.insert("fd_clip".into(), json!({ "value": fd_clip, "encoder": "finetuned CLIP image codes", "real": "test split images" }));
        match real_fid {
            Some(rs) => {
                let gen_feats = cat(&col.fid_feats);
                let f = frechet_distance(&Stats::from_features(&gen_feats)?, rs)?;
                scalars.push(("eval/fid".into(), f));
                r.insert("fid".into(), json!({ "value": f, "dims": 2048, "images": total }));
                r.insert("kid".into(), kid_json(&gen_feats, real_feats.as_ref(), c.clipgan.seed, &mut scalars)?);
            }
            None => {
                r.insert("fid".into(), notes.get("fid").cloned().unwrap_or(Value::Null));
                r.insert("kid".into(), notes.get("fid").cloned().unwrap_or(Value::Null));
            }
        }
        if want_is {
            let s: MeanStd = inception_score(&cat(&col.logits), 10)?;
            scalars.push(("eval/is".into(), s.mean));
            scalars.push(("eval/is_std".into(), s.std));
            let weights = is_weights.as_ref().map(|p| p.display().to_string());
            r.insert("is".into(), json!({ "mean": s.mean, "std": s.std, "splits": 10, "model": is_model.as_str(), "weights": weights }));
        } else {
            r.insert("is".into(), notes.get("is").cloned().unwrap_or(Value::Null));
        }
        let refs: Vec<(&str, f64)> = scalars.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        run.scalars(target.step, &refs)?;
        super::live::println(&format!(
            "{} (step {}): R-precision {:.2} ± {:.2} % ({} trials on {total} generated images), FD_CLIP {fd_clip:.4}",
            target.label,
            target.step,
            rp.mean * 100.0,
            rp.std * 100.0,
            rp.trials
        ));
        results.push(Value::Object(r));
        run.dir().write_results(&json!({ "job": "eval", "dataset": c.dataset_name, "protocol": protocol, "results": results }))?;
    }
    Ok((Outcome::Finished, "evaluated".to_string()))
}

/// Test image n as the reference for FID, KID and FD_CLIP at the generator's output size:
/// prepared as the training pipeline prepares test images (`LoaderConfig::for_evaluation`:
/// bounding-box crop, shorter side resized to 76/64 of the size, centre crop, no flip),
/// so the statistics describe the images G was trained to match. 8-bit, like the PNGs of
/// the generated images.
pub fn real_test_image(test: &Dataset, n: usize, size: u32) -> Result<image::RgbImage> {
    let img = test.load_image(n)?;
    Ok(transforms::prepare(&img, &[size], None).swap_remove(0))
}

/// KID's subsets: torch-fidelity's defaults (100 subsets of 1,000 images, fewer when a set
/// is smaller).
const KID_SUBSETS: usize = 100;
const KID_SUBSET_SIZE: usize = 1000;

/// KID of generated vs real Inception pool3 features (mean ± std over subsets), or why not.
fn kid_json(gen_feats: &Tensor, real_feats: Option<&Tensor>, seed: u64, scalars: &mut Vec<(String, f64)>) -> Result<Value> {
    let Some(real) = real_feats else {
        return Ok(unavailable("KID needs the real images' features; CLIPGAN.EVAL.FID_REAL_STATS holds only their mean and covariance"));
    };
    let k = kid(gen_feats, real, KID_SUBSETS, KID_SUBSET_SIZE, seed)?;
    scalars.push(("eval/kid".into(), k.mean));
    scalars.push(("eval/kid_std".into(), k.std));
    let size = KID_SUBSET_SIZE.min(gen_feats.size()[0] as usize).min(real.size()[0] as usize);
    Ok(json!({ "mean": k.mean, "std": k.std, "subsets": KID_SUBSETS, "subset_size": size, "features": "Inception pool3 (2048)" }))
}

/// What the generated images are compared with: CLIP-code statistics of the real test
/// images and, with the FID Inception, their FID statistics and features (for KID).
struct RealRefs {
    clip: Stats,
    fid: Option<Stats>,
    /// None when the statistics came from EVAL.FID_REAL_STATS.
    fid_features: Option<Tensor>,
}

/// The real references (EVAL.FID_REAL_STATS for FID when given; else computed and saved
/// as `<run>/fid_real_stats.npz` for reuse).
fn real_stats(
    loaded: &LoadedConfig,
    enc: &Encoders,
    test: &Dataset,
    size: i64,
    batch: usize,
    device: Device,
    fid_weights: Option<&Path>,
    run: &RunWriter,
) -> Result<RealRefs> {
    let given = &loaded.config.clipgan.eval.fid_real_stats;
    let given_stats = if given.trim().is_empty() || enc.fid.is_none() {
        None
    } else {
        Some(fid_stats::read_npz(&loaded.require("CLIPGAN.EVAL.FID_REAL_STATS")?)?)
    };
    let mut col = Collected {
        img_codes: vec![],
        sent_codes: vec![],
        ind_img: vec![],
        ind_sent: vec![],
        fid_feats: vec![],
        logits: vec![],
        classes: vec![],
    };
    let idx: Vec<usize> = (0..test.len()).collect();
    for chunk in idx.chunks(batch) {
        let imgs = chunk
            .iter()
            .map(|&n| {
                let img = real_test_image(test, n, size as u32)?;
                let (w, h) = img.dimensions();
                Ok(Tensor::from_data_size(img.as_raw(), &[1, h as i64, w as i64, 3], Kind::Uint8).permute([0, 3, 1, 2]))
            })
            .collect::<Result<Vec<_>>>()?;
        let x01 = (Tensor::cat(&imgs, 0).to_kind(Kind::Float) / 255.0).to_device(device);
        encode_images(enc, &x01, &mut col, false, given_stats.is_none())?;
    }
    let clip_stats = Stats::from_features(&cat(&col.img_codes))?;
    let (fid, fid_features) = match (given_stats, enc.fid.is_some()) {
        (Some(s), _) => (Some(s), None),
        (None, true) => {
            let feats = cat(&col.fid_feats);
            let s = Stats::from_features(&feats)?;
            fid_stats::write_npz(&run.dir().file("fid_real_stats.npz"), &s, None)?;
            let _ = fid_weights;
            (Some(s), Some(feats))
        }
        (None, false) => (None, None),
    };
    Ok(RealRefs { clip: clip_stats, fid, fid_features })
}
