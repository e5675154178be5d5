//! `clipgan data check DIR`: read an AttnGAN-layout dataset the way training does, decode
//! every image, and report counts, classes, caption statistics, image sizes and every
//! problem found.
use super::dataset::{check_bbox, decode_rgb, Dataset, DatasetSpec, Split};
use super::pickle;
use super::tokenizer::Tokenizer;
use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// DATASET_NAME; None: `coco` when there is no class_info.pickle, `birds` when there
    /// are CUB bounding boxes, else `synthetic`.
    pub dataset_name: Option<String>,
    /// None: 5 for coco, else 10.
    pub captions_per_image: Option<usize>,
    pub words_num: usize,
    /// Decode every image (the slow part) on this many threads.
    pub threads: usize,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions { dataset_name: None, captions_per_image: None, words_num: 77, threads: 2 }
    }
}

/// min / median / mean / max.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub min: usize,
    pub median: usize,
    pub mean: f64,
    pub max: usize,
}

impl Stats {
    fn of(mut v: Vec<usize>) -> Option<Stats> {
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let mean = v.iter().sum::<usize>() as f64 / v.len() as f64;
        Some(Stats { min: v[0], median: v[v.len() / 2], mean, max: v[v.len() - 1] })
    }
}

#[derive(Clone, Debug, Default)]
pub struct SplitReport {
    pub split: String,
    pub images: usize,
    pub classes: usize,
    pub class_ids: Option<(i64, i64)>,
    pub classes_from: Option<PathBuf>,
    pub captions: usize,
    /// Caption lengths in CLIP tokens, BOS and EOS included.
    pub tokens: Option<Stats>,
    /// Captions longer than WORDS_NUM (truncated when used).
    pub over_words_num: usize,
    pub bboxes: usize,
    pub decoded: usize,
    pub width: Option<Stats>,
    pub height: Option<Stats>,
}

#[derive(Clone, Debug)]
pub struct Report {
    pub dir: PathBuf,
    pub dataset_name: String,
    pub captions_per_image: usize,
    pub words_num: usize,
    pub splits: Vec<SplitReport>,
    /// Classes present in both splits (CUB and synthetic: none).
    pub shared_classes: usize,
    pub problems: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

pub fn infer_name(dir: &Path) -> String {
    if !dir.join("train/class_info.pickle").is_file() && !dir.join("test/class_info.pickle").is_file() {
        "coco".into()
    } else if dir.join("CUB_200_2011/bounding_boxes.txt").is_file() {
        "birds".into()
    } else {
        "synthetic".into()
    }
}

pub fn check(dir: &Path, opts: &CheckOptions, tokenizer: &Tokenizer) -> Report {
    let name = opts.dataset_name.clone().unwrap_or_else(|| infer_name(dir));
    let cpi = opts.captions_per_image.unwrap_or(if name.eq_ignore_ascii_case("coco") { 5 } else { 10 });
    let spec = DatasetSpec::new(dir, &name, cpi);
    let mut report = Report {
        dir: dir.to_path_buf(),
        dataset_name: name,
        captions_per_image: cpi,
        words_num: opts.words_num,
        splits: Vec::new(),
        shared_classes: 0,
        problems: Vec::new(),
    };
    let mut class_sets: Vec<BTreeSet<i64>> = Vec::new();
    let mut keys_seen: HashSet<String> = HashSet::new();
    for split in [Split::Train, Split::Test] {
        let (ds, problems) = match Dataset::scan(&spec, split) {
            Ok(x) => x,
            Err(e) => {
                report.problems.push(format!("{e:#}"));
                continue;
            }
        };
        report.problems.extend(problems.iter().map(|p| p.to_string()));
        let mut in_split = HashSet::new();
        for r in &ds.records {
            if !in_split.insert(r.key.as_str()) {
                report.problems.push(format!("{}/filenames.pickle: {} is listed twice", split.dir_name(), r.key));
            } else if !keys_seen.insert(r.key.clone()) {
                report.problems.push(format!("{}/filenames.pickle: {} is also in the train split", split.dir_name(), r.key));
            }
        }
        let mut s = SplitReport {
            split: split.to_string(),
            images: ds.len(),
            classes: ds.num_classes(),
            classes_from: ds.class_source.clone(),
            bboxes: ds.records.iter().filter(|r| r.bbox.is_some()).count(),
            ..Default::default()
        };
        let ids: BTreeSet<i64> = ds.records.iter().map(|r| r.class_id).collect();
        s.class_ids = ids.first().copied().zip(ids.last().copied());
        if ds.class_source.is_some() {
            class_sets.push(ids);
        }
        let lengths: Vec<usize> = ds.records.iter().flat_map(|r| r.captions.iter()).map(|c| tokenizer.encode_text(c).len() + 2).collect();
        s.captions = lengths.len();
        s.over_words_num = lengths.iter().filter(|&&l| l > opts.words_num).count();
        s.tokens = Stats::of(lengths);
        // Decode every image that exists (missing ones are already reported).
        let todo: Vec<usize> = (0..ds.len()).filter(|&n| ds.records[n].image_path.is_file()).collect();
        let (sizes, errors) = decode_all(&ds, &todo, opts.threads.max(1));
        s.decoded = sizes.len();
        s.width = Stats::of(sizes.iter().map(|d| d.0 as usize).collect());
        s.height = Stats::of(sizes.iter().map(|d| d.1 as usize).collect());
        report.problems.extend(errors);
        report.splits.push(s);
    }
    if class_sets.len() == 2 {
        report.shared_classes = class_sets[0].intersection(&class_sets[1]).count();
    }
    let caps = dir.join("captions.pickle");
    if caps.is_file() {
        match pickle::read(&caps).and_then(|v| pickle::attngan_captions(&v, &caps)) {
            Ok((train, test, _)) => {
                for (n, s) in [train, test].into_iter().zip(&report.splits) {
                    if n != s.images * cpi {
                        report.problems.push(format!(
                            "{}: {n} {} captions, but the split has {} images x {cpi} captions",
                            caps.display(),
                            s.split,
                            s.images
                        ));
                    }
                }
            }
            Err(e) => report.problems.push(format!("{e:#}")),
        }
    }
    report
}

fn decode_all(ds: &Dataset, todo: &[usize], threads: usize) -> (Vec<(u32, u32)>, Vec<String>) {
    let results: Vec<Vec<Result<(u32, u32), String>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    todo.iter()
                        .skip(t)
                        .step_by(threads)
                        .map(|&n| {
                            let rec = &ds.records[n];
                            let img = decode_rgb(&rec.image_path).map_err(|e| format!("{e:#}"))?;
                            let (w, h) = img.dimensions();
                            if let Some(b) = rec.bbox {
                                check_bbox(b, w, h).map_err(|e| {
                                    let src = ds.bbox_source.as_deref().unwrap_or(Path::new("bounding_boxes.txt"));
                                    format!("{}: the bounding box of {} does not fit its image: {e}", src.display(), rec.key)
                                })?;
                            }
                            Ok((w, h))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
    });
    let mut sizes = Vec::new();
    let mut errors = Vec::new();
    for r in results.into_iter().flatten() {
        match r {
            Ok(s) => sizes.push(s),
            Err(e) => errors.push(e),
        }
    }
    errors.sort();
    (sizes, errors)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "dataset {} ({}, {} captions per image, WORDS_NUM {})",
            self.dir.display(),
            self.dataset_name,
            self.captions_per_image,
            self.words_num
        )?;
        for s in &self.splits {
            write!(f, "{:5}: {} images, {} classes", s.split, s.images, s.classes)?;
            match (&s.classes_from, s.class_ids) {
                (Some(_), Some((lo, hi))) => writeln!(f, " (ids {lo}..{hi})")?,
                _ => writeln!(f, " (one per image: no class_info.pickle)")?,
            }
            write!(f, "       captions: {}", s.captions)?;
            if let Some(t) = &s.tokens {
                write!(f, "; tokens incl. BOS/EOS min {} median {} mean {:.1} max {}", t.min, t.median, t.mean, t.max)?;
            }
            writeln!(f, "; {} longer than WORDS_NUM {} (truncated)", s.over_words_num, self.words_num)?;
            write!(f, "       images decoded: {}/{}", s.decoded, s.images)?;
            if let (Some(w), Some(h)) = (&s.width, &s.height) {
                write!(f, "; width {}..{} (median {}), height {}..{} (median {})", w.min, w.max, w.median, h.min, h.max, h.median)?;
            }
            writeln!(f, "; bounding boxes: {}", s.bboxes)?;
        }
        if self.splits.len() == 2 && self.splits.iter().all(|s| s.classes_from.is_some()) {
            writeln!(f, "classes in both splits: {}", self.shared_classes)?;
        }
        if self.problems.is_empty() {
            writeln!(f, "no problems found")?;
        } else {
            writeln!(f, "{} problems:", self.problems.len())?;
            for p in &self.problems {
                writeln!(f, "  {p}")?;
            }
        }
        Ok(())
    }
}
