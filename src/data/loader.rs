//! The batched loader for both training stages and evaluation.
//!
//! Determinism: the batch at (epoch, position) depends only on (seed, epoch, position).
//! The epoch's order is a shuffle seeded by (seed, epoch); each image's crop, flip and
//! caption choice come from a generator seeded by (seed, epoch, image index). No running
//! generator is carried between batches, so a run resumed at batch k of epoch e
//! (`start_batch`) sees exactly the batches it would have seen.
//!
//! Threads: `workers` background threads each build whole batches (positions
//! start + w, start + w + workers, ...) and hand them over through their own bounded
//! channel; the iterator takes them in order. At most `prefetch` batches wait (rounded
//! up to a multiple of `workers`) plus one in progress per worker: bounded memory.
//! `workers = 0` builds batches on the calling thread.
use super::captions::{CaptionForm, Stage};
use super::dataset::Dataset;
use super::tokenizer::{TokenBatch, Tokenizer, Tokens};
use super::transforms::{self, Augment, PixelMode};
use crate::config::Config;
use crate::seed::{self, stream};
use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use tch::Tensor;

#[derive(Clone, Debug, PartialEq)]
pub struct LoaderConfig {
    pub batch_size: usize,
    /// Background decoding threads (0: decode on the calling thread).
    pub workers: usize,
    /// Finished batches that may wait in the queue.
    pub prefetch: usize,
    pub seed: u64,
    pub shuffle: bool,
    /// Random crop + flip; false: centre crop, no flip (validation, evaluation).
    pub augment: bool,
    /// Leave out the last partial batch.
    pub drop_last: bool,
    /// Image sizes of each batch, e.g. [224] (CLIP finetuning) or [64, 128, 256] (GAN).
    pub sizes: Vec<u32>,
    pub mode: PixelMode,
    /// Captions per image in a batch: 1, or 2 (two different captions of each image).
    pub captions: usize,
    pub words_num: usize,
    /// What the tokenizer gets for a caption line (the seed's differs per stage).
    pub caption_form: CaptionForm,
}

impl LoaderConfig {
    /// The image sizes a config trains at: BASE_SIZE · 2^i for i < BRANCH_NUM.
    pub fn sizes_for(config: &Config) -> Vec<u32> {
        (0..config.tree.branch_num.max(1)).map(|i| config.tree.base_size << i).collect()
    }

    /// Training batches of a config (pretraining: `PixelMode::Clip`, GAN: `PixelMode::Gan`):
    /// shuffled, augmented, two captions per image, fixed batch size; captions in the
    /// form CLIPGAN.CAPTION_FORM gives that stage (`PixelMode::Clip` is finetuning's).
    /// An unknown form is refused when the config loads.
    pub fn for_training(config: &Config, mode: PixelMode) -> LoaderConfig {
        let stage = if mode == PixelMode::Clip { Stage::Finetune } else { Stage::Gan };
        LoaderConfig {
            caption_form: CaptionForm::for_stage(&config.clipgan.caption_form, stage).unwrap_or(CaptionForm::Raw),
            batch_size: config.train.batch_size as usize,
            workers: config.workers as usize,
            prefetch: 2 * (config.workers as usize).max(1),
            seed: config.clipgan.seed,
            shuffle: true,
            augment: true,
            drop_last: true,
            sizes: LoaderConfig::sizes_for(config),
            mode,
            captions: 2,
            words_num: config.text.words_num as usize,
        }
    }

    /// Validation/evaluation batches: in order, centre crop, no flip, one caption, every image.
    pub fn for_evaluation(config: &Config, mode: PixelMode) -> LoaderConfig {
        LoaderConfig { shuffle: false, augment: false, drop_last: false, captions: 1, ..LoaderConfig::for_training(config, mode) }
    }

    fn validate(&self, dataset: &Dataset) -> Result<()> {
        if self.batch_size == 0 {
            bail!("data loader: the batch size must be at least 1");
        }
        if self.sizes.is_empty() || self.sizes.contains(&0) {
            bail!("data loader: image sizes must be at least 1 pixel (got {:?})", self.sizes);
        }
        if !(1..=2).contains(&self.captions) {
            bail!("data loader: captions per image in a batch must be 1 or 2 (got {})", self.captions);
        }
        if self.captions > dataset.captions_per_image() {
            bail!("data loader: two different captions per image need CAPTIONS_PER_IMAGE >= 2 (it is {})", dataset.captions_per_image());
        }
        if self.words_num < 2 {
            bail!("data loader: WORDS_NUM must be at least 2 (BOS and EOS)");
        }
        if dataset.is_empty() {
            bail!("data loader: the {} split is empty", dataset.split);
        }
        Ok(())
    }
}

/// One batch, on the CPU.
#[derive(Debug)]
pub struct Batch {
    /// One per size (in `LoaderConfig::sizes` order): [B, 3, s, s] f32.
    pub images: Vec<Tensor>,
    /// One per caption slot (1 or 2).
    pub tokens: Vec<TokenBatch>,
    /// [B] i64.
    pub class_ids: Tensor,
    /// The dataset record of each row.
    pub indices: Vec<usize>,
    /// Per slot: the caption number k (0..CAPTIONS_PER_IMAGE) of each row.
    pub caption_ids: Vec<Vec<usize>>,
    pub epoch: u64,
    /// Position of the batch in its epoch.
    pub position: usize,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

/// An image that could not be used, with the reason (SKIP_BAD_IMAGES).
#[derive(Clone, Debug, PartialEq)]
pub struct Skipped {
    pub index: usize,
    pub path: PathBuf,
    pub reason: String,
}

/// The order of an epoch's records.
pub fn epoch_order(n: usize, seed: u64, epoch: u64, shuffle: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if shuffle {
        order.shuffle(&mut seed::chacha(seed, &[stream::SHUFFLE, epoch]));
    }
    order
}

/// What a record contributes to a batch.
struct Sample {
    index: usize,
    images: Vec<image::RgbImage>,
    captions: Vec<usize>,
}

struct Shared {
    dataset: Arc<Dataset>,
    tokenizer: Arc<Tokenizer>,
    cfg: LoaderConfig,
    epoch: u64,
    order: Vec<usize>,
    skipped: Mutex<BTreeMap<usize, Skipped>>,
}

impl Shared {
    fn sample(&self, index: usize) -> Result<Sample> {
        let mut rng = seed::chacha(self.cfg.seed, &[stream::AUGMENT, self.epoch, index as u64]);
        let aug = Augment::draw(&mut rng);
        let cpi = self.dataset.captions_per_image();
        let first = rng.gen_range(0..cpi);
        let mut captions = vec![first];
        if self.cfg.captions == 2 {
            captions.push((first + 1 + rng.gen_range(0..cpi - 1)) % cpi);
        }
        let img = self.dataset.load_image(index)?;
        let images = transforms::prepare(&img, &self.cfg.sizes, self.cfg.augment.then_some(aug));
        Ok(Sample { index, images, captions })
    }

    /// The sample at slot `q` of the epoch order; with SKIP_BAD_IMAGES a bad image is
    /// replaced by the next usable one in the order (so the result is still a function of
    /// (seed, epoch, position)).
    fn sample_at(&self, q: usize) -> Result<Sample> {
        let n = self.order.len();
        for step in 0..n {
            let index = self.order[(q + step) % n];
            if self.dataset.spec.skip_bad_images && self.skipped.lock().map(|s| s.contains_key(&index)).unwrap_or(false) {
                continue;
            }
            match self.sample(index) {
                Ok(s) => return Ok(s),
                Err(e) if self.dataset.spec.skip_bad_images => {
                    let path = self.dataset.records[index].image_path.clone();
                    if let Ok(mut s) = self.skipped.lock() {
                        s.insert(index, Skipped { index, path, reason: format!("{e:#}") });
                    }
                }
                Err(e) => return Err(e),
            }
        }
        bail!("no usable image in the {} split of {} (every one was skipped)", self.dataset.split, self.dataset.spec.data_dir.display())
    }

    fn batch(&self, position: usize) -> Result<Batch> {
        let b = self.cfg.batch_size;
        let start = position * b;
        let end = (start + b).min(self.order.len());
        let rows = end - start;
        let mut pixels: Vec<Vec<f32>> = self.cfg.sizes.iter().map(|&s| Vec::with_capacity(rows * 3 * (s * s) as usize)).collect();
        let mut indices = Vec::with_capacity(rows);
        let mut class_ids = Vec::with_capacity(rows);
        let mut caption_ids = vec![Vec::with_capacity(rows); self.cfg.captions];
        let mut tokens: Vec<Vec<Tokens>> = vec![Vec::with_capacity(rows); self.cfg.captions];
        for q in start..end {
            let s = self.sample_at(q)?;
            for (img, buf) in s.images.iter().zip(pixels.iter_mut()) {
                transforms::push_chw(img, self.cfg.mode, buf);
            }
            let rec = &self.dataset.records[s.index];
            for (slot, &k) in s.captions.iter().enumerate() {
                caption_ids[slot].push(k);
                tokens[slot].push(self.tokenizer.encode(&self.cfg.caption_form.apply(&rec.captions[k]), self.cfg.words_num));
            }
            indices.push(s.index);
            class_ids.push(rec.class_id);
        }
        let images = pixels
            .iter()
            .zip(&self.cfg.sizes)
            .map(|(buf, &s)| Tensor::from_slice(buf).view([rows as i64, 3, s as i64, s as i64]))
            .collect();
        Ok(Batch {
            images,
            tokens: tokens.iter().map(|t| TokenBatch::from_tokens(t, self.cfg.words_num)).collect(),
            class_ids: Tensor::from_slice(&class_ids),
            indices,
            caption_ids,
            epoch: self.epoch,
            position,
        })
    }
}

/// An iterator over one epoch's batches from `start_batch` on.
pub struct Loader {
    shared: Arc<Shared>,
    len: usize,
    next: usize,
    start: usize,
    receivers: Vec<Receiver<Result<Batch>>>,
    handles: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    failed: bool,
}

impl Loader {
    pub fn new(dataset: Arc<Dataset>, tokenizer: Arc<Tokenizer>, cfg: LoaderConfig, epoch: u64, start_batch: usize) -> Result<Loader> {
        cfg.validate(&dataset)?;
        let n = dataset.len();
        let len = if cfg.drop_last { n / cfg.batch_size } else { n.div_ceil(cfg.batch_size) };
        let order = epoch_order(n, cfg.seed, epoch, cfg.shuffle);
        let workers = cfg.workers;
        let per_worker = cfg.prefetch.div_ceil(workers.max(1)).max(1);
        let shared = Arc::new(Shared { dataset, tokenizer, cfg, epoch, order, skipped: Mutex::new(BTreeMap::new()) });
        let start = start_batch.min(len);
        let stop = Arc::new(AtomicBool::new(false));
        let mut receivers = Vec::new();
        let mut handles = Vec::new();
        let threads = workers.min(len - start);
        for w in 0..threads {
            let (tx, rx) = sync_channel(per_worker);
            let (shared, stop) = (shared.clone(), stop.clone());
            let handle = std::thread::Builder::new().name(format!("clipgan-data-{w}")).spawn(move || {
                for position in (start + w..len).step_by(threads) {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let batch = shared.batch(position);
                    let failed = batch.is_err();
                    if tx.send(batch).is_err() || failed {
                        return;
                    }
                }
            })?;
            receivers.push(rx);
            handles.push(handle);
        }
        Ok(Loader { shared, len, next: start, start, receivers, handles, stop, failed: false })
    }

    /// Batches per epoch.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Images skipped so far (SKIP_BAD_IMAGES), with the reason.
    pub fn skipped(&self) -> Vec<Skipped> {
        self.shared.skipped.lock().map(|s| s.values().cloned().collect()).unwrap_or_default()
    }

    /// The epoch's order of record indices.
    pub fn order(&self) -> &[usize] {
        &self.shared.order
    }
}

impl Iterator for Loader {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if self.failed || self.next >= self.len {
            return None;
        }
        let position = self.next;
        let item = if self.receivers.is_empty() {
            self.shared.batch(position)
        } else {
            let w = (position - self.start) % self.receivers.len();
            match self.receivers[w].recv() {
                Ok(item) => item,
                Err(_) => Err(anyhow::anyhow!("data loader thread {w} stopped before batch {position}")),
            }
        };
        self.next += 1;
        self.failed = item.is_err();
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = if self.failed { 0 } else { self.len - self.next };
        (0, Some(left))
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receivers makes a worker blocked on a full queue return.
        self.receivers.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}
