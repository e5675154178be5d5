//! Image folders for FID/IS: recursive listing (pytorch-fid only globs one level; method.md
//! §9 bug 6), decoding to [0, 1] tensors with errors naming the file, batched feature
//! extraction through the FID Inception or an Inception Score network with decoding on a
//! background thread.
use super::inception::FidInception;
use super::inception_score::IsNetwork;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use tch::{Device, Kind, Tensor};

/// Extensions read (case-insensitive); the `image` crate is built with PNG and JPEG.
pub const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

fn is_image(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Every image file under `dir`, recursively, sorted by path (hidden entries skipped).
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        bail!("{} is not a folder of images", dir.display());
    }
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("cannot list {}", d.display()))? {
            let entry = entry.with_context(|| format!("cannot list {}", d.display()))?;
            let p = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let ft = entry.file_type()?;
            if ft.is_dir() || (ft.is_symlink() && p.is_dir()) {
                stack.push(p);
            } else if is_image(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// One image as a 3 x H x W float tensor in [0, 1] (RGB; grey and alpha converted as
/// PIL's `convert('RGB')` does).
pub fn read_image(path: &Path) -> Result<Tensor> {
    let img = image::ImageReader::open(path)
        .with_context(|| format!("cannot open image {}", path.display()))?
        .with_guessed_format()
        .with_context(|| format!("cannot read image {}", path.display()))?
        .decode()
        .with_context(|| format!("corrupt or unsupported image {}", path.display()))?
        .to_rgb8();
    let (w, h) = img.dimensions();
    let t = Tensor::from_data_size(img.as_raw(), &[h as i64, w as i64, 3], Kind::Uint8);
    Ok(t.permute([2, 0, 1]).to_kind(Kind::Float) / 255.0)
}

/// 1 x 3 x 299 x 299: each image resized on its own (pytorch-fid resizes inside the
/// network, which is the same bilinear map), so folders of mixed sizes batch together.
fn to_299(img: &Tensor) -> Tensor {
    let x = img.unsqueeze(0);
    let s = x.size();
    if s[2] == 299 && s[3] == 299 {
        x
    } else {
        x.upsample_bilinear2d([299, 299], false, None, None)
    }
}

/// Features (N x dims, float32 on the CPU) and, with `logits`, classifier logits
/// (N x 1008) of the images at `paths`, in order. `progress` gets (done, total).
pub fn extract(
    net: &FidInception,
    paths: &[PathBuf],
    dims: i64,
    logits: bool,
    batch_size: usize,
    device: Device,
    mut progress: impl FnMut(usize, usize),
) -> Result<(Tensor, Option<Tensor>)> {
    let (mut feats, mut logs) = (Vec::new(), Vec::new());
    for_batches(paths, batch_size, &mut progress, |batch| {
        let out = net.forward(&batch.to_device(device), dims, logits)?;
        feats.push(out.features.to_device(Device::Cpu));
        if let Some(l) = out.logits {
            logs.push(l.to_device(Device::Cpu));
        }
        Ok(())
    })?;
    Ok((Tensor::cat(&feats, 0), logits.then(|| Tensor::cat(&logs, 0))))
}

/// The Inception Score logits (N x classes, float32 on the CPU) of the images at `paths`,
/// in order, through either IS network.
pub fn is_logits(
    net: &IsNetwork,
    paths: &[PathBuf],
    batch_size: usize,
    device: Device,
    mut progress: impl FnMut(usize, usize),
) -> Result<Tensor> {
    let mut logs = Vec::new();
    for_batches(paths, batch_size, &mut progress, |batch| {
        logs.push(net.logits(&batch.to_device(device))?.to_device(Device::Cpu));
        Ok(())
    })?;
    Ok(Tensor::cat(&logs, 0))
}

/// Decode `paths` in batches of 299 x 299 images on a background thread and hand each
/// batch to `f` in order.
fn for_batches(
    paths: &[PathBuf],
    batch_size: usize,
    progress: &mut impl FnMut(usize, usize),
    mut f: impl FnMut(&Tensor) -> Result<()>,
) -> Result<()> {
    if paths.is_empty() {
        bail!("no images to extract features from");
    }
    let batch_size = batch_size.max(1);
    // Decode the next batch while the network runs on this one.
    let (tx, rx) = mpsc::sync_channel::<Result<Tensor>>(2);
    let owned: Vec<PathBuf> = paths.to_vec();
    let reader = std::thread::spawn(move || {
        for chunk in owned.chunks(batch_size) {
            let batch = chunk.iter().map(|p| read_image(p).map(|t| to_299(&t))).collect::<Result<Vec<_>>>().map(|v| Tensor::cat(&v, 0));
            let failed = batch.is_err();
            if tx.send(batch).is_err() || failed {
                return;
            }
        }
    });
    let mut done = 0;
    for batch in rx.iter() {
        let batch = batch?;
        f(&batch)?;
        done += batch.size()[0] as usize;
        progress(done, paths.len());
    }
    let _ = reader.join();
    if done != paths.len() {
        bail!("feature extraction stopped after {done} of {} images", paths.len());
    }
    Ok(())
}
