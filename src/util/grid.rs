//! Image grids for sample images (`RunWriter::sample`): N images laid out row-major in
//! `cols` columns, separated by a thin dark border.
use anyhow::{bail, Result};
use image::{Rgb, RgbImage};
use tch::{Device, Kind, Tensor};

/// Pixels between cells and around the grid.
pub const GRID_PAD: u32 = 2;
const PAD_COLOUR: Rgb<u8> = Rgb([32, 32, 32]);

/// A grid of `images` ([N, 3, H, W], values in [-1, 1], the GAN convention).
pub fn image_grid(images: &Tensor, cols: usize) -> Result<RgbImage> {
    image_grid_01(&((images.detach().to_kind(Kind::Float) + 1.0) / 2.0), cols)
}

/// A grid of `images` ([N, 3, H, W], values in [0, 1]); values outside are clamped.
pub fn image_grid_01(images: &Tensor, cols: usize) -> Result<RgbImage> {
    let size = images.size();
    if size.len() != 4 || size[1] != 3 {
        bail!("an image grid needs a [N, 3, H, W] tensor, got {size:?}");
    }
    let (n, h, w) = (size[0] as usize, size[2] as u32, size[3] as u32);
    if n == 0 || cols == 0 {
        bail!("an image grid needs at least one image and one column");
    }
    let cols = cols.min(n);
    let rows = n.div_ceil(cols);
    // [N, H, W, 3] bytes.
    let bytes = (images.detach().to_device(Device::Cpu).to_kind(Kind::Float).clamp(0.0, 1.0) * 255.0)
        .round()
        .to_kind(Kind::Uint8)
        .permute([0, 2, 3, 1])
        .contiguous();
    let mut data = vec![0u8; n * (h * w * 3) as usize];
    let numel = data.len();
    bytes.copy_data_u8(&mut data, numel);
    let gw = cols as u32 * (w + GRID_PAD) + GRID_PAD;
    let gh = rows as u32 * (h + GRID_PAD) + GRID_PAD;
    let mut out = RgbImage::from_pixel(gw, gh, PAD_COLOUR);
    for i in 0..n {
        let (r, c) = ((i / cols) as u32, (i % cols) as u32);
        let (x0, y0) = (GRID_PAD + c * (w + GRID_PAD), GRID_PAD + r * (h + GRID_PAD));
        let cell = &data[i * (h * w * 3) as usize..(i + 1) * (h * w * 3) as usize];
        for y in 0..h {
            for x in 0..w {
                let k = ((y * w + x) * 3) as usize;
                out.put_pixel(x0 + x, y0 + y, Rgb([cell[k], cell[k + 1], cell[k + 2]]));
            }
        }
    }
    Ok(out)
}
