//! Image transforms (method.md §3, AttnGAN's `get_imgs`): resize the shorter side to
//! floor(largest·76/64), crop the largest size (random offset when augmenting, else the
//! centre), flip horizontally (augmenting only, p = 0.5), then the smaller copies by
//! antialiased resize of that crop; pixels as CLIP-normalised values or in [-1, 1].
use fast_image_resize as fir;
use image::RgbImage;
use rand::Rng;
use std::cell::RefCell;
use tch::{Kind, Tensor};

/// CLIP's normalisation (method.md §3).
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
pub const CLIP_STD: [f32; 3] = [0.268_629_55, 0.261_302_6, 0.275_777_1];

/// How pixels are stored in a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelMode {
    /// CLIP inputs: (x/255 - mean) / std per channel.
    Clip,
    /// [-1, 1]: x/127.5 - 1. The one convention for real images shown to D and for G's tanh outputs.
    Gan,
}

/// The size images are resized to before cropping `size` (AttnGAN: 256 -> 304, CLIP 224 -> 266).
pub fn load_size(size: u32) -> u32 {
    size * 76 / 64
}

/// The random part of a transform, drawn per (seed, epoch, image).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Augment {
    /// Crop offset as a fraction of the free range, in [0, 1).
    pub crop_x: f64,
    pub crop_y: f64,
    pub flip: bool,
}

impl Augment {
    pub fn draw(rng: &mut impl Rng) -> Augment {
        Augment { crop_x: rng.gen(), crop_y: rng.gen(), flip: rng.gen_bool(0.5) }
    }
}

thread_local! {
    // fast_image_resize keeps scratch buffers in its Resizer: one per thread, reused.
    static RESIZER: RefCell<fir::Resizer> = RefCell::new(fir::Resizer::new());
}

/// Resize to exactly `w` x `h` with an antialiased bilinear filter (the kernel widened when
/// shrinking, as PIL's and torchvision's `Resize`; fast_image_resize's convolution).
pub fn resize_exact(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    let (w, h) = (w.max(1), h.max(1));
    if img.dimensions() == (w, h) {
        return img.clone();
    }
    let resized = fir::images::ImageRef::new(img.width(), img.height(), img.as_raw(), fir::PixelType::U8x3)
        .map_err(|e| e.to_string())
        .and_then(|src| {
            let mut dst = fir::images::Image::new(w, h, fir::PixelType::U8x3);
            let opts = fir::ResizeOptions::new().resize_alg(fir::ResizeAlg::Convolution(fir::FilterType::Bilinear));
            RESIZER.with(|r| r.borrow_mut().resize(&src, &mut dst, &opts)).map_err(|e| e.to_string())?;
            RgbImage::from_raw(w, h, dst.into_vec()).ok_or_else(|| "buffer size".to_string())
        });
    // Both calls only fail on inconsistent sizes, which RgbImage rules out; stay safe anyway.
    resized.unwrap_or_else(|_| image::imageops::resize(img, w, h, image::imageops::FilterType::Triangle))
}

/// Resize so the shorter side is `short` (torchvision's `Resize(int)`: the longer side is
/// int(short·long/short_side)), antialiased.
pub fn resize_shorter(img: &RgbImage, short: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let (nw, nh) = if w <= h {
        (short, ((short as u64 * h as u64) / w.max(1) as u64).max(1) as u32)
    } else {
        (((short as u64 * w as u64) / h.max(1) as u64).max(1) as u32, short)
    };
    resize_exact(img, nw, nh)
}

/// The `w` x `h` region at (x, y) as a new image (row copies). The region must lie inside.
pub fn crop(img: &RgbImage, x: u32, y: u32, w: u32, h: u32) -> RgbImage {
    let stride = img.width() as usize * 3;
    let raw = img.as_raw();
    let mut out = Vec::with_capacity(w as usize * h as usize * 3);
    for row in y as usize..(y + h) as usize {
        let start = row * stride + x as usize * 3;
        out.extend_from_slice(&raw[start..start + w as usize * 3]);
    }
    RgbImage::from_raw(w, h, out).unwrap_or_else(|| RgbImage::new(w, h))
}

/// Mirror left-right in place.
pub fn flip_horizontal(img: &mut RgbImage) {
    let w = img.width() as usize;
    for row in img.chunks_exact_mut(w * 3) {
        for i in 0..w / 2 {
            let j = w - 1 - i;
            for c in 0..3 {
                row.swap(i * 3 + c, j * 3 + c);
            }
        }
    }
}

/// The `sizes` copies of an image (in the order given): resize to load_size(max), crop
/// max x max (at `aug`'s offset, else centred as torchvision's CenterCrop), flip, smaller
/// copies resized from the crop.
pub fn prepare(img: &RgbImage, sizes: &[u32], aug: Option<Augment>) -> Vec<RgbImage> {
    let largest = sizes.iter().copied().max().unwrap_or(1).max(1);
    let resized = resize_shorter(img, load_size(largest).max(largest));
    let (w, h) = resized.dimensions();
    let (fx, fy) = (w - largest, h - largest);
    let (x, y) = match aug {
        Some(a) => (((a.crop_x * (fx + 1) as f64) as u32).min(fx), ((a.crop_y * (fy + 1) as f64) as u32).min(fy)),
        None => ((fx as f64 / 2.0).round() as u32, (fy as f64 / 2.0).round() as u32),
    };
    let mut top = crop(&resized, x, y, largest, largest);
    if aug.is_some_and(|a| a.flip) {
        flip_horizontal(&mut top);
    }
    sizes.iter().map(|&s| if s == largest { top.clone() } else { resize_exact(&top, s, s) }).collect()
}

/// Append an image as CHW floats in `mode` to `out`.
pub fn push_chw(img: &RgbImage, mode: PixelMode, out: &mut Vec<f32>) {
    let (scale, shift) = match mode {
        PixelMode::Gan => ([1.0 / 127.5; 3], [-1.0; 3]),
        PixelMode::Clip => {
            let mut sc = [0.0; 3];
            let mut sh = [0.0; 3];
            for c in 0..3 {
                sc[c] = 1.0 / (255.0 * CLIP_STD[c]);
                sh[c] = -CLIP_MEAN[c] / CLIP_STD[c];
            }
            (sc, sh)
        }
    };
    let raw = img.as_raw();
    out.reserve(raw.len());
    for c in 0..3 {
        out.extend(raw.chunks_exact(3).map(|p| p[c] as f32 * scale[c] + shift[c]));
    }
}

/// One image as a [3, H, W] f32 tensor in `mode`.
pub fn image_tensor(img: &RgbImage, mode: PixelMode) -> Tensor {
    let mut v = Vec::with_capacity(img.as_raw().len());
    push_chw(img, mode, &mut v);
    Tensor::from_slice(&v).view([3, img.height() as i64, img.width() as i64])
}

/// [B, 3, H, W] images in `from` mode back to 8-bit RGB (for sample grids and checks).
pub fn tensor_to_images(t: &Tensor, from: PixelMode) -> Vec<RgbImage> {
    let t = t.to_device(tch::Device::Cpu).to_kind(Kind::Float);
    let t = match from {
        PixelMode::Gan => (t + 1.0) * 127.5,
        PixelMode::Clip => {
            let mean = Tensor::from_slice(&CLIP_MEAN).view([1, 3, 1, 1]);
            let std = Tensor::from_slice(&CLIP_STD).view([1, 3, 1, 1]);
            (t * std + mean) * 255.0
        }
    };
    let t = t.round().clamp(0.0, 255.0).to_kind(Kind::Uint8).permute([0, 2, 3, 1]).contiguous();
    let (b, h, w) = (t.size()[0], t.size()[1] as u32, t.size()[2] as u32);
    (0..b)
        .map(|i| {
            let bytes = Vec::<u8>::try_from(t.get(i).flatten(0, -1)).unwrap_or_default();
            RgbImage::from_raw(w, h, bytes).unwrap_or_else(|| RgbImage::new(w, h))
        })
        .collect()
}
