//! Which (test image, caption) pairs `clipgan eval` generates from: the protocol's
//! ~30,000 generated images, one R-precision trial each (method.md section 7).
//!
//! - `passes` (CUB's protocol, DM-GAN's evaluation loop): pass after pass over every test
//!   image, one caption drawn per (pass, image), until the requested number of images
//!   (CUB: 2,933 images x 10 passes + 670 of an 11th = 30,000).
//! - `captions` (COCO's protocol: 6,000 images x 5 captions): `images / captions per image`
//!   test images drawn once from the seed, each with every one of its captions; item
//!   order is caption-major (pass k uses caption k of every chosen image).
//!
//! `auto` picks `captions` for `DATASET_NAME: coco` and `passes` otherwise. A pure function
//! of sizes and the seed, so it is tested without data.
use crate::seed::{self, Rng};
use anyhow::{bail, Result};

/// How the generated images are chosen (`CLIPGAN.EVAL.SAMPLING`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sampling {
    Passes,
    Captions,
}

impl Sampling {
    /// The mode a config asks for: `auto` follows the dataset's protocol.
    pub fn resolve(setting: &str, dataset_name: &str) -> Result<Sampling> {
        match setting.trim().to_ascii_lowercase().as_str() {
            "passes" => Ok(Sampling::Passes),
            "captions" => Ok(Sampling::Captions),
            "auto" | "" if dataset_name.eq_ignore_ascii_case("coco") => Ok(Sampling::Captions),
            "auto" | "" => Ok(Sampling::Passes),
            other => bail!("CLIPGAN.EVAL.SAMPLING: '{other}' (expected auto, passes or captions)"),
        }
    }
}

/// One generated image: pass `pass`, test image `image`, its caption `caption`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Item {
    pub pass: usize,
    pub image: usize,
    pub caption: usize,
}

/// The images to generate, in order, and what they cover.
#[derive(Clone, Debug)]
pub struct Plan {
    pub sampling: Sampling,
    pub items: Vec<Item>,
    /// Distinct test images used.
    pub test_images: usize,
}

impl Plan {
    /// `images` items from a test split of `n` images with `cpi` captions each.
    pub fn new(sampling: Sampling, n: usize, cpi: usize, images: usize, seed: u64) -> Result<Plan> {
        if n == 0 || cpi == 0 || images == 0 {
            bail!("evaluation sampling: {n} test images with {cpi} captions each, {images} images asked (all must be 1 or more)");
        }
        let items: Vec<Item> = match sampling {
            Sampling::Passes => (0..images)
                .map(|i| {
                    let (pass, image) = (i / n, i % n);
                    let caption = Rng::new(seed, &[seed::stream::SAMPLE, 0xE7A1, pass as u64, image as u64]).below(cpi as u64) as usize;
                    Item { pass, image, caption }
                })
                .collect(),
            Sampling::Captions => {
                let m = images.div_ceil(cpi);
                if m > n {
                    bail!(
                        "evaluation sampling 'captions': {images} images need {m} test images with {cpi} captions each, the test split has {n} \
                         (lower CLIPGAN.EVAL.IMAGES or set SAMPLING: passes)"
                    );
                }
                let mut all: Vec<usize> = (0..n).collect();
                let mut rng = Rng::new(seed, &[seed::stream::SAMPLE, 0xE7A2]);
                for i in 0..m {
                    let j = i + rng.below((n - i) as u64) as usize;
                    all.swap(i, j);
                }
                let mut chosen = all[..m].to_vec();
                chosen.sort_unstable();
                (0..cpi).flat_map(|k| chosen.iter().map(move |&image| Item { pass: k, image, caption: k })).take(images).collect()
            }
        };
        let mut seen = vec![false; n];
        items.iter().for_each(|it| seen[it.image] = true);
        let test_images = seen.iter().filter(|s| **s).count();
        Ok(Plan { sampling, items, test_images })
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Passes started over the test images (the last one may be partial).
    pub fn passes(&self) -> usize {
        self.items.iter().map(|it| it.pass + 1).max().unwrap_or(0)
    }

    /// What results.json records about the sampling.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "mode": self.sampling,
            "images": self.len(),
            "test_images": self.test_images,
            "passes": self.passes(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cub_passes_until_the_image_count_with_distinct_items() {
        // CUB: 2,933 test images, 10 captions; 30,000 images = 10 full passes + 670.
        let p = Plan::new(Sampling::Passes, 2933, 10, 30_000, 100).unwrap();
        assert_eq!((p.len(), p.passes(), p.test_images), (30_000, 11, 2933));
        assert_eq!(p.items.iter().filter(|it| it.pass == 10).count(), 670);
        // Every item is a distinct (pass, image) pair: no image counts twice in one pass.
        let mut keys: Vec<(usize, usize)> = p.items.iter().map(|it| (it.pass, it.image)).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), 30_000);
        assert!(p.items.iter().all(|it| it.caption < 10));
    }

    #[test]
    fn coco_uses_6000_images_with_all_5_captions() {
        let p = Plan::new(Sampling::Captions, 40_470, 5, 30_000, 100).unwrap();
        assert_eq!((p.len(), p.test_images, p.passes()), (30_000, 6000, 5));
        for k in 0..5 {
            let imgs: Vec<usize> = p.items.iter().filter(|it| it.caption == k).map(|it| it.image).collect();
            assert_eq!(imgs.len(), 6000);
            assert_eq!(imgs, p.items[..6000].iter().map(|it| it.image).collect::<Vec<_>>());
        }
        // Drawn over the whole split, not its first 6,000.
        assert!(p.items.iter().any(|it| it.image >= 6000));
        assert!(Plan::new(Sampling::Captions, 100, 5, 30_000, 1).unwrap_err().to_string().contains("test split has 100"));
    }

    #[test]
    fn auto_follows_the_dataset() {
        assert_eq!(Sampling::resolve("auto", "coco").unwrap(), Sampling::Captions);
        assert_eq!(Sampling::resolve("auto", "birds").unwrap(), Sampling::Passes);
        assert_eq!(Sampling::resolve("passes", "coco").unwrap(), Sampling::Passes);
        assert!(Sampling::resolve("random", "birds").is_err());
    }
}
