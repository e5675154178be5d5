//! Transforms and the batched loader: shapes, pixel conventions, caption choice,
//! determinism under a seed (workers, resume at a batch), bad images.

use crate::common::*;
use clipgan::data::transforms::{self, Augment, CLIP_MEAN, CLIP_STD};
use clipgan::data::{Batch, CaptionForm, Dataset, DatasetSpec, Loader, LoaderConfig, PixelMode, Split, Tokenizer};
use image::RgbImage;
use std::sync::Arc;
use tch::Tensor;

fn cfg(batch: usize, workers: usize) -> LoaderConfig {
    LoaderConfig {
        batch_size: batch,
        workers,
        prefetch: 2,
        seed: 7,
        shuffle: true,
        augment: true,
        drop_last: true,
        sizes: vec![16, 32],
        mode: PixelMode::Gan,
        captions: 2,
        words_num: 16,
        caption_form: CaptionForm::Raw,
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    ds: Arc<Dataset>,
    tok: Arc<Tokenizer>,
}

fn fixture_birds() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    birds(dir.path(), "birds_py2");
    let ds = Arc::new(Dataset::open(&DatasetSpec::new(dir.path(), "birds", 10), Split::Train).unwrap());
    Fixture { dir: dir.path().to_path_buf(), _dir: dir, ds, tok: Arc::new(Tokenizer::builtin().unwrap()) }
}

fn all(f: &Fixture, c: &LoaderConfig, epoch: u64, start: usize) -> Vec<Batch> {
    Loader::new(f.ds.clone(), f.tok.clone(), c.clone(), epoch, start).unwrap().map(|b| b.unwrap()).collect()
}

fn same(a: &Batch, b: &Batch) -> bool {
    a.indices == b.indices
        && a.caption_ids == b.caption_ids
        && a.images.iter().zip(&b.images).all(|(x, y)| x.equal(y))
        && a.tokens.iter().zip(&b.tokens).all(|(x, y)| x.ids.equal(&y.ids) && x.mask.equal(&y.mask))
        && a.class_ids.equal(&b.class_ids)
}

fn gradient(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 6) as u8, (y * 11) as u8, ((x + y) * 3) as u8]))
}

#[test]
fn resize_crop_flip_and_copies() {
    assert_eq!((transforms::load_size(256), transforms::load_size(224), transforms::load_size(128)), (304, 266, 152));
    let img = gradient(40, 20);
    let resized = transforms::resize_shorter(&img, 19);
    assert_eq!(resized.dimensions(), (38, 19));
    assert_eq!(transforms::resize_shorter(&gradient(20, 50), 19).dimensions(), (19, 47));
    // No augmentation: centre crop of the 38x19 resize at (round(22/2), round(3/2)) = (11, 2).
    let out = transforms::prepare(&img, &[8, 16], None);
    assert_eq!(out[1].dimensions(), (16, 16));
    assert_eq!(out[1], transforms::crop(&resized, 11, 2, 16, 16));
    assert_eq!(out[0], transforms::resize_exact(&out[1], 8, 8));
    // Offsets as fractions of the free range; flip mirrors.
    let a = Augment { crop_x: 0.0, crop_y: 0.999, flip: false };
    let plain = transforms::prepare(&img, &[16], Some(a));
    assert_eq!(plain[0], transforms::crop(&resized, 0, 3, 16, 16));
    let flipped = transforms::prepare(&img, &[16], Some(Augment { flip: true, ..a }));
    assert_eq!(flipped[0], image::imageops::flip_horizontal(&plain[0]), "a mirror image");
    assert_ne!(flipped[0], plain[0]);
    assert_eq!(transforms::crop(&resized, 11, 2, 16, 16).get_pixel(0, 0), resized.get_pixel(11, 2));
    assert_eq!(transforms::crop(&resized, 11, 2, 16, 16).get_pixel(15, 15), resized.get_pixel(26, 17));
    // Antialiased: a one-pixel checkerboard shrinks to grey, not to an aliasing pattern;
    // a flat image stays flat.
    let checker = RgbImage::from_fn(64, 64, |x, y| if (x + y) % 2 == 0 { image::Rgb([255; 3]) } else { image::Rgb([0; 3]) });
    let small = transforms::resize_exact(&checker, 16, 16);
    assert!(small.pixels().all(|p| p.0.iter().all(|&c| (118..=138).contains(&c))), "{:?}", small.get_pixel(3, 3));
    let flat = transforms::resize_exact(&RgbImage::from_pixel(50, 30, image::Rgb([10, 200, 90])), 21, 13);
    assert!(flat.pixels().all(|p| p.0 == [10, 200, 90]));
    let right = transforms::prepare(&img, &[16], Some(Augment { crop_x: 0.99, crop_y: 0.0, flip: false }));
    assert_eq!(right[0], transforms::crop(&resized, 22, 0, 16, 16));
}

#[test]
fn pixel_conventions() {
    let img = RgbImage::from_pixel(4, 4, image::Rgb([255, 0, 51]));
    let g = transforms::image_tensor(&img, PixelMode::Gan);
    assert_eq!(g.size(), vec![3, 4, 4]);
    let v: Vec<f32> = Vec::try_from(g.mean_dim(Some(&[1i64, 2][..]), false, tch::Kind::Float)).unwrap();
    assert!((v[0] - 1.0).abs() < 1e-6 && (v[1] + 1.0).abs() < 1e-6 && (v[2] - (51.0 / 127.5 - 1.0)).abs() < 1e-6, "{v:?}");
    let c = transforms::image_tensor(&img, PixelMode::Clip);
    let v: Vec<f32> = Vec::try_from(c.mean_dim(Some(&[1i64, 2][..]), false, tch::Kind::Float)).unwrap();
    let want = [(1.0 - CLIP_MEAN[0]) / CLIP_STD[0], (0.0 - CLIP_MEAN[1]) / CLIP_STD[1], (0.2 - CLIP_MEAN[2]) / CLIP_STD[2]];
    for i in 0..3 {
        assert!((v[i] - want[i]).abs() < 1e-5, "{v:?} vs {want:?}");
    }
    // Back to pixels from both conventions.
    let pic = gradient(6, 5);
    for mode in [PixelMode::Gan, PixelMode::Clip] {
        let t = transforms::image_tensor(&pic, mode).unsqueeze(0);
        assert_eq!(transforms::tensor_to_images(&t, mode)[0], pic);
    }
}

#[test]
fn batches_hold_images_two_different_captions_and_classes() {
    let f = fixture_birds();
    let c = cfg(2, 2);
    let loader = Loader::new(f.ds.clone(), f.tok.clone(), c.clone(), 0, 0).unwrap();
    assert_eq!(loader.len(), 2);
    let batches: Vec<Batch> = loader.map(|b| b.unwrap()).collect();
    assert_eq!(batches.len(), 2);
    let mut seen: Vec<usize> = Vec::new();
    for (p, b) in batches.iter().enumerate() {
        assert_eq!(b.position, p);
        assert_eq!(b.images[0].size(), vec![2, 3, 16, 16]);
        assert_eq!(b.images[1].size(), vec![2, 3, 32, 32]);
        assert!(b.images[1].min().double_value(&[]) >= -1.0 && b.images[1].max().double_value(&[]) <= 1.0);
        assert_eq!(b.tokens.len(), 2);
        assert_eq!(b.tokens[0].ids.size(), vec![2, 16]);
        let classes: Vec<i64> = Vec::try_from(&b.class_ids).unwrap();
        for (row, &n) in b.indices.iter().enumerate() {
            assert_eq!(classes[row], f.ds.records[n].class_id);
            let (k1, k2) = (b.caption_ids[0][row], b.caption_ids[1][row]);
            assert_ne!(k1, k2, "two different captions of the same image");
            for (slot, k) in [k1, k2].into_iter().enumerate() {
                let want = f.tok.encode(f.ds.caption(n, k), 16);
                assert_eq!(b.tokens[slot].rows()[row], want);
            }
        }
        seen.extend(&b.indices);
    }
    seen.sort();
    assert_eq!(seen, vec![0, 1, 2, 3], "an epoch visits every image once");

    // Without drop_last the last batch is partial; one caption slot; CLIP pixels at one size.
    let c1 = LoaderConfig { batch_size: 3, drop_last: false, captions: 1, sizes: vec![24], mode: PixelMode::Clip, ..c };
    let batches = all(&f, &c1, 0, 0);
    assert_eq!(batches.iter().map(|b| b.len()).collect::<Vec<_>>(), vec![3, 1]);
    assert_eq!(batches[1].images[0].size(), vec![1, 3, 24, 24]);
    assert_eq!(batches[0].tokens.len(), 1);
    assert!(batches[0].images[0].min().double_value(&[]) < -1.0, "CLIP-normalised pixels go below -1");
}

#[test]
fn deterministic_under_a_seed_with_any_workers_and_on_resume() {
    let f = fixture_birds();
    let base = all(&f, &cfg(1, 0), 3, 0);
    assert_eq!(base.len(), 4);
    for workers in [1, 2, 3] {
        let other = all(&f, &cfg(1, workers), 3, 0);
        assert!(base.iter().zip(&other).all(|(a, b)| same(a, b)), "workers = {workers}");
    }
    // Resumed at batch 2 of epoch 3: exactly batches 2 and 3.
    let resumed = all(&f, &cfg(1, 2), 3, 2);
    assert_eq!(resumed.len(), 2);
    assert!(same(&resumed[0], &base[2]) && same(&resumed[1], &base[3]));
    assert_eq!(resumed[0].position, 2);
    assert!(all(&f, &cfg(1, 2), 3, 4).is_empty());
    // Another epoch or seed draws other orders, crops, flips and captions.
    let orders: Vec<Vec<usize>> = (0..6).map(|e| all(&f, &cfg(1, 0), e, 0).iter().flat_map(|b| b.indices.clone()).collect()).collect();
    assert!(orders.iter().any(|o| o != &orders[0]), "{orders:?}");
    let reseeded = all(&f, &LoaderConfig { seed: 8, ..cfg(1, 0) }, 3, 0);
    assert!(base.iter().zip(&reseeded).any(|(a, b)| !same(a, b)));
    // Augmentation: image 0 is cropped/flipped differently across epochs; not without it.
    let image_of = |c: &LoaderConfig, e: u64| {
        let bs = all(&f, c, e, 0);
        let b = bs.iter().find(|b| b.indices[0] == 0).unwrap();
        b.images[1].shallow_clone()
    };
    let aug: Vec<Tensor> = (0..4).map(|e| image_of(&cfg(1, 0), e)).collect();
    assert!(aug.iter().any(|t| !t.equal(&aug[0])));
    let fixed = LoaderConfig { augment: false, ..cfg(1, 0) };
    assert!(image_of(&fixed, 0).equal(&image_of(&fixed, 5)));
    // Without shuffling, records in order.
    let ordered = all(&f, &LoaderConfig { shuffle: false, ..cfg(2, 1) }, 9, 0);
    assert_eq!(ordered[0].indices, vec![0, 1]);
    assert_eq!(ordered[1].indices, vec![2, 3]);
}

#[test]
fn bad_images_fail_with_the_file_name_or_are_skipped_and_counted() {
    let f = fixture_birds();
    let bad = f.dir.join("CUB_200_2011/images").join(format!("{}.jpg", BIRD_KEYS_TRAIN[2]));
    std::fs::write(&bad, b"\xFF\xD8\xFF garbage").unwrap();
    let c = LoaderConfig { shuffle: false, ..cfg(1, 2) };
    let mut loader = Loader::new(f.ds.clone(), f.tok.clone(), c.clone(), 0, 0).unwrap();
    assert!(loader.next().unwrap().is_ok());
    assert!(loader.next().unwrap().is_ok());
    let e = format!("{:#}", loader.next().unwrap().unwrap_err());
    assert!(e.contains(&format!("{}.jpg", BIRD_KEYS_TRAIN[2])), "{e}");
    assert!(loader.next().is_none(), "the loader stops after an error");

    let spec = DatasetSpec { skip_bad_images: true, ..DatasetSpec::new(&f.dir, "birds", 10) };
    let ds = Arc::new(Dataset::open(&spec, Split::Train).unwrap());
    let loader = Loader::new(ds, f.tok.clone(), c, 0, 0).unwrap();
    let mut indices = Vec::new();
    let mut it = loader;
    for b in it.by_ref() {
        let b = b.unwrap();
        assert_eq!(b.len(), 1);
        indices.extend(b.indices);
    }
    // Image 2 is replaced by the next usable one in the epoch order.
    assert_eq!(indices, vec![0, 1, 3, 3]);
    let skipped = it.skipped();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].index, 2);
    assert!(skipped[0].path.ends_with(format!("{}.jpg", BIRD_KEYS_TRAIN[2])));
}

#[test]
fn invalid_settings_and_early_drop() {
    let f = fixture_birds();
    let err = |c: LoaderConfig| format!("{:#}", Loader::new(f.ds.clone(), f.tok.clone(), c, 0, 0).err().unwrap());
    assert!(err(LoaderConfig { batch_size: 0, ..cfg(1, 0) }).contains("batch size"));
    assert!(err(LoaderConfig { sizes: vec![], ..cfg(1, 0) }).contains("sizes"));
    assert!(err(LoaderConfig { captions: 3, ..cfg(1, 0) }).contains("1 or 2"));
    let one = Arc::new(Dataset::open(&DatasetSpec::new(&f.dir, "birds", 1), Split::Train).unwrap());
    let e = format!("{:#}", Loader::new(one, f.tok.clone(), cfg(1, 0), 0, 0).err().unwrap());
    assert!(e.contains("CAPTIONS_PER_IMAGE >= 2"), "{e}");
    // Dropping a loader with full queues returns (its threads stop).
    let mut l = Loader::new(f.ds.clone(), f.tok.clone(), LoaderConfig { prefetch: 1, ..cfg(1, 2) }, 0, 0).unwrap();
    assert!(l.next().unwrap().is_ok());
    drop(l);
    // From a config: GAN sizes from TREE, two captions, batch size, seed.
    let mut config = clipgan::config::Config::default();
    config.train.batch_size = 4;
    let c = LoaderConfig::for_training(&config, PixelMode::Gan);
    assert_eq!((c.sizes.clone(), c.captions, c.batch_size, c.seed, c.words_num), (vec![64, 128, 256], 2, 4, 100, 77));
    let e = LoaderConfig::for_evaluation(&config, PixelMode::Gan);
    assert!(!e.shuffle && !e.augment && !e.drop_last && e.captions == 1);
}

#[test]
fn captions_reach_clip_in_the_seeds_form_per_stage() {
    // The seed fed its finetuning stage the raw line and DM-GAN / evaluation AttnGAN's
    // `\w+` words joined by spaces (no punctuation): the default `seed` form does the same.
    let f = fixture_birds();
    let config = clipgan::config::Config::default();
    let gan = LoaderConfig::for_training(&config, PixelMode::Gan);
    let finetune = LoaderConfig::for_training(&config, PixelMode::Clip);
    assert_eq!((gan.caption_form, finetune.caption_form), (CaptionForm::Words, CaptionForm::Raw));
    let base = LoaderConfig { sizes: vec![16], workers: 0, words_num: 77, ..cfg(2, 0) };
    for form in [CaptionForm::Words, CaptionForm::Raw] {
        let b = &all(&f, &LoaderConfig { caption_form: form, ..base.clone() }, 0, 0)[0];
        for (row, (&n, &k)) in b.indices.iter().zip(&b.caption_ids[0]).enumerate() {
            let line = &f.ds.records[n].captions[k];
            assert!(line.contains(':'), "{line}");
            let words = clipgan::data::captions::attngan_words(line);
            let want = f.tok.encode(if form == CaptionForm::Words { &words } else { line }, 77);
            let other = f.tok.encode(if form == CaptionForm::Words { line } else { &words }, 77);
            let got = Vec::<i64>::try_from(b.tokens[0].ids.get(row as i64)).unwrap();
            assert!(got == want.ids && got != other.ids, "{form:?}: {line}");
        }
    }
}
