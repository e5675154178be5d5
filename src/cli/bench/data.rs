//! `clipgan bench loader`: images per second of the data loader (decode, bounding-box crop,
//! resize, random crop, flip, the 64/128/256 copies, tensors, tokens), on the synthetic
//! dataset at 256 px and on CUB-like JPEGs of 500x375 that the bench draws itself; plus a
//! single-thread profile of where an image's time goes.
use super::timing::{cpu_seconds, thread_cpu_seconds};
use crate::data::synth::{self, SynthConfig};
use crate::data::transforms::{self, PixelMode};
use crate::data::{CaptionForm, Dataset, DatasetSpec, Loader, LoaderConfig, Split, Tokenizer};
use crate::seed::{self, splitmix64, stream};
use anyhow::{Context, Result};
use clap::Args;
use rand::Rng;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct LoaderArgs {
    /// Images per dataset (one epoch per run).
    #[arg(long, default_value_t = 512)]
    pub images: usize,
    /// Timed runs per case (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Which case: synth, jpeg or both.
    #[arg(long, default_value = "both")]
    pub case: String,
    /// Keep the generated datasets here (default: a temporary folder, removed after).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

pub fn run(args: LoaderArgs) -> Result<()> {
    let tmp;
    let root = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = TempDir::new()?;
            tmp.0.clone()
        }
    };
    let tok = Arc::new(Tokenizer::builtin()?);
    println!(
        "loader bench: batches of {}, {} worker threads, sizes 64/128/256 ([-1, 1] pixels), 2 captions, augmenting; {} images, {} runs",
        args.batch, args.workers, args.images, args.runs
    );
    if args.case == "synth" || args.case == "both" {
        let dir = root.join("synth256");
        if !dir.exists() {
            synth::generate(&dir, &SynthConfig { train: args.images, test: 8, size: 256, seed: 1 })?;
        }
        case("synthetic 256x256", &dir, &tok, &args)?;
    }
    if args.case == "jpeg" || args.case == "both" {
        let dir = root.join("jpeg500");
        if !dir.exists() {
            cub_like(&dir, args.images)?;
        }
        case("JPEG 500x375 (CUB-like, bbox crop)", &dir, &tok, &args)?;
    }
    Ok(())
}

fn case(name: &str, dir: &Path, tok: &Arc<Tokenizer>, args: &LoaderArgs) -> Result<()> {
    let ds = Arc::new(Dataset::open(&DatasetSpec::new(dir, "birds", 10), Split::Train)?);
    let bytes: u64 = ds.records.iter().filter_map(|r| std::fs::metadata(&r.image_path).ok()).map(|m| m.len()).sum();
    let cfg = LoaderConfig {
        batch_size: args.batch,
        workers: args.workers,
        prefetch: 2 * args.workers.max(1),
        seed: 1,
        shuffle: true,
        augment: true,
        drop_last: true,
        sizes: vec![64, 128, 256],
        mode: PixelMode::Gan,
        captions: 2,
        words_num: 77,
        caption_form: CaptionForm::Raw,
    };
    let mut rates = Vec::new();
    let mut cpu_rates = Vec::new();
    for run in 0..args.runs {
        let (t0, c0) = (Instant::now(), cpu_seconds());
        let mut images = 0;
        for b in Loader::new(ds.clone(), tok.clone(), cfg.clone(), run as u64, 0)? {
            images += b?.len();
        }
        rates.push(images as f64 / t0.elapsed().as_secs_f64());
        cpu_rates.push(images as f64 / (cpu_seconds() - c0).max(1e-9));
    }
    let median = |v: &[f64]| {
        let mut s = v.to_vec();
        s.sort_by(|a, b| a.total_cmp(b));
        s[s.len() / 2]
    };
    let m = median(&rates);
    println!("\n{name}: {} images, mean file {:.0} KB", ds.len(), bytes as f64 / ds.len() as f64 / 1024.0);
    println!("  images/s per run (wall clock): {}", rates.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", "));
    println!("  median: {m:.0} images/s ({:.1} batches/s)", m / args.batch as f64);
    // On a shared machine the wall clock measures the load; CPU time measures the work.
    let c = median(&cpu_rates);
    println!(
        "  per CPU-second: median {c:.0} images (so {:.0} images/s on {} otherwise idle cores; load average now {})",
        c * args.workers.max(1) as f64,
        args.workers.max(1),
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().next().unwrap_or("?")
    );

    // Where one image's time goes, on one thread (CPU time, so the machine's load does not count).
    let n = ds.len().min(64);
    let (mut t_dec, mut t_tf, mut t_px) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let t = thread_cpu_seconds();
        let img = ds.load_image(i)?;
        t_dec += thread_cpu_seconds() - t;
        let t = thread_cpu_seconds();
        let aug = transforms::Augment::draw(&mut seed::chacha(1, &[stream::BENCH, i as u64]));
        let out = transforms::prepare(&img, &cfg.sizes, Some(aug));
        t_tf += thread_cpu_seconds() - t;
        let t = thread_cpu_seconds();
        let mut buf = Vec::new();
        for im in &out {
            transforms::push_chw(im, PixelMode::Gan, &mut buf);
        }
        t_px += thread_cpu_seconds() - t;
    }
    let ms = |t: f64| t * 1000.0 / n as f64;
    println!(
        "  one thread, CPU time per image: decode + bbox crop {:.2} ms, resize/crop/flip/copies {:.2} ms, to floats {:.2} ms (total {:.2} ms = {:.0} images/s/thread)",
        ms(t_dec),
        ms(t_tf),
        ms(t_px),
        ms(t_dec + t_tf + t_px),
        1000.0 / ms(t_dec + t_tf + t_px)
    );
    Ok(())
}

/// A CUB-like dataset of `n` photo-sized JPEGs (500x375, quality 90): the synthetic
/// dataset's captions and pickles, its images replaced by textured scenes (smooth
/// multi-scale value noise plus fine grain, so they compress and decode like photos)
/// and bounding boxes that fit them.
fn cub_like(dir: &Path, n: usize) -> Result<()> {
    synth::generate(dir, &SynthConfig { train: n, test: 8, size: 32, seed: 2 })?;
    let cub = dir.join("CUB_200_2011");
    let images_txt = std::fs::read_to_string(cub.join("images.txt")).context("images.txt")?;
    let mut boxes = String::new();
    for (i, line) in images_txt.lines().enumerate() {
        let Some((id, file)) = line.split_once(' ') else { continue };
        let mut rng = seed::chacha(2, &[stream::BENCH, i as u64]);
        let (w, h) = (500u32, 375u32);
        let img = textured(w, h, splitmix64(i as u64 + 1));
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90).encode_image(&img)?;
        std::fs::write(cub.join("images").join(file), bytes)?;
        let bw = rng.gen_range(120.0..320.0f32);
        let bh = rng.gen_range(120.0..300.0f32);
        let bx = rng.gen_range(0.0..(w as f32 - bw));
        let by = rng.gen_range(0.0..(h as f32 - bh));
        boxes.push_str(&format!("{id} {bx:.1} {by:.1} {bw:.1} {bh:.1}\n"));
    }
    std::fs::write(cub.join("bounding_boxes.txt"), boxes)?;
    Ok(())
}

fn textured(w: u32, h: u32, seed: u64) -> image::RgbImage {
    let hash = |x: i64, y: i64, c: u64, o: u64| {
        (splitmix64(seed ^ (x as u64).wrapping_mul(0x9E37) ^ (y as u64).wrapping_mul(0x85EB_CA6B) ^ (c << 40) ^ (o << 48)) >> 40) as f32
            / (1u64 << 24) as f32
    };
    let noise = |x: f32, y: f32, cell: f32, c: u64, o: u64| {
        let (gx, gy) = (x / cell, y / cell);
        let (x0, y0) = (gx.floor() as i64, gy.floor() as i64);
        let (fx, fy) = (gx - x0 as f32, gy - y0 as f32);
        let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
        let a = hash(x0, y0, c, o) * (1.0 - sx) + hash(x0 + 1, y0, c, o) * sx;
        let b = hash(x0, y0 + 1, c, o) * (1.0 - sx) + hash(x0 + 1, y0 + 1, c, o) * sx;
        a * (1.0 - sy) + b * sy
    };
    image::RgbImage::from_fn(w, h, |x, y| {
        let (xf, yf) = (x as f32, y as f32);
        image::Rgb([0u64, 1, 2].map(|c| {
            let v = 0.5 * noise(xf, yf, 64.0, c, 0) + 0.3 * noise(xf, yf, 16.0, c, 1) + 0.2 * noise(xf, yf, 4.0, c, 2);
            let grain = hash(x as i64, y as i64, c, 3) * 24.0 - 12.0;
            (v * 255.0 + grain).clamp(0.0, 255.0) as u8
        }))
    })
}

/// A temporary folder removed on drop (the bench's datasets).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir> {
        let p = std::env::temp_dir().join(format!("clipgan-bench-loader-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).with_context(|| format!("cannot create {}", p.display()))?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
