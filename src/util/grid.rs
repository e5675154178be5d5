//! Image grids for sample images (`RunWriter::sample`): N images laid out row-major in
//! `cols` columns, separated by a thin dark border.
use anyhow::{bail, Result};
use image::{Rgb, RgbImage};
use tch::{Device, Kind, Tensor};

/// Pixels between cells and around the grid.
pub const GRID_PAD: u32 = 2;
pub const PAD_COLOUR: Rgb<u8> = Rgb([32, 32, 32]);

/// Where image `index` (row-major) of a grid of `rows` x `cols` images lies in a picture
/// of `size` pixels: (x, y, width, height). `padded`: laid out by [`image_grid_01`]
/// ([`GRID_PAD`] pixels around and between cells); else the picture is split evenly.
/// None when `index` is outside the grid or the cells would be empty.
pub fn grid_cell(size: (u32, u32), rows: u32, cols: u32, index: u32, padded: bool) -> Option<(u32, u32, u32, u32)> {
    if rows == 0 || cols == 0 || index >= rows * cols {
        return None;
    }
    let pad = if padded { GRID_PAD } else { 0 };
    let cw = size.0.saturating_sub(pad) / cols;
    let ch = size.1.saturating_sub(pad) / rows;
    if cw <= pad || ch <= pad {
        return None;
    }
    let (r, c) = (index / cols, index % cols);
    Some((pad + c * cw, pad + r * ch, cw - pad, ch - pad))
}

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

#[cfg(test)]
mod cell_tests {
    use super::*;

    #[test]
    fn grid_cells_are_found_padded_and_even() {
        // 2 x 4 grid of 32 px images: 4 * 34 + 2 = 138 wide, 2 * 34 + 2 = 70 high.
        assert_eq!(grid_cell((138, 70), 2, 4, 0, true), Some((2, 2, 32, 32)));
        assert_eq!(grid_cell((138, 70), 2, 4, 5, true), Some((36, 36, 32, 32)));
        assert_eq!(grid_cell((138, 70), 2, 4, 8, true), None);
        assert_eq!(grid_cell((64, 64), 2, 2, 3, false), Some((32, 32, 32, 32)));
        assert_eq!(grid_cell((3, 3), 2, 2, 0, true), None);
        assert_eq!(grid_cell((64, 64), 0, 2, 0, false), None);
    }
}
