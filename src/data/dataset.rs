//! AttnGAN's preprocessed dataset layout (method.md §8), for CUB birds, COCO and the
//! synthetic dataset of `clipgan data synth`:
//!
//! ```text
//! DATA_DIR/train/filenames.pickle     list of keys, e.g. "002.Laysan_Albatross/Laysan_Albatross_0002_1027"
//! DATA_DIR/train/class_info.pickle    list of class ids, one per key (COCO: none; class = image index)
//! DATA_DIR/test/...                   the same for the test split
//! DATA_DIR/text/<key>.txt             captions, one per line (CUB 10, COCO 5 or more)
//! DATA_DIR/CUB_200_2011/images/<key>.jpg          CUB images, or
//! DATA_DIR/images/<key>.jpg                       AttnGAN's COCO images, or
//! DATA_DIR/{train2014,val2014}/<key>.jpg          COCO's own folders, by the key's prefix
//! DATA_DIR/CUB_200_2011/{images.txt,bounding_boxes.txt}   CUB bounding boxes (x, y, w, h)
//! ```
//!
//! Caption k of image n is caption number n·CAPTIONS_PER_IMAGE + k. A caption file with
//! more non-empty lines than CAPTIONS_PER_IMAGE uses the first ones (AttnGAN does; some COCO
//! images have 6 or 7); fewer is an error.
use super::pickle;
use crate::config::LoadedConfig;
use anyhow::{bail, Context, Result};
use image::RgbImage;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    /// The split's folder name in the AttnGAN layout.
    pub fn dir_name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.dir_name())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct DatasetSpec {
    pub data_dir: PathBuf,
    /// `birds`, `coco`, or another name (e.g. `synthetic`). `coco` may lack class_info.pickle
    /// (class = image index); `birds` must have bounding boxes.
    pub dataset_name: String,
    pub captions_per_image: usize,
    /// Skip unreadable/missing images (counted, reported) instead of failing.
    pub skip_bad_images: bool,
}

impl DatasetSpec {
    pub fn new(data_dir: impl Into<PathBuf>, dataset_name: &str, captions_per_image: usize) -> DatasetSpec {
        DatasetSpec { data_dir: data_dir.into(), dataset_name: dataset_name.into(), captions_per_image, skip_bad_images: false }
    }

    /// DATA_DIR (required, must exist), DATASET_NAME, TEXT.CAPTIONS_PER_IMAGE,
    /// CLIPGAN.SKIP_BAD_IMAGES.
    pub fn from_config(loaded: &LoadedConfig) -> Result<DatasetSpec> {
        let c = &loaded.config;
        Ok(DatasetSpec {
            data_dir: loaded.require("DATA_DIR")?,
            dataset_name: c.dataset_name.clone(),
            captions_per_image: c.text.captions_per_image as usize,
            skip_bad_images: c.clipgan.skip_bad_images,
        })
    }

    fn is_coco(&self) -> bool {
        self.dataset_name.eq_ignore_ascii_case("coco")
    }

    fn is_birds(&self) -> bool {
        self.dataset_name.eq_ignore_ascii_case("birds")
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub key: String,
    pub class_id: i64,
    pub image_path: PathBuf,
    /// CUB bounding box (x, y, w, h) in pixels of the original image.
    pub bbox: Option<[f32; 4]>,
    /// Exactly CAPTIONS_PER_IMAGE captions.
    pub captions: Vec<String>,
}

/// Something wrong with the data, naming the file it is about.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    pub path: PathBuf,
    pub message: String,
    /// A problem with one image (missing file): skippable with SKIP_BAD_IMAGES.
    pub image: bool,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

#[derive(Clone, Debug)]
pub struct Dataset {
    pub records: Vec<Record>,
    pub split: Split,
    pub spec: DatasetSpec,
    /// Where the class ids came from (None: one class per image, as COCO).
    pub class_source: Option<PathBuf>,
    /// Where the bounding boxes came from (None: no bbox crop).
    pub bbox_source: Option<PathBuf>,
}

impl Dataset {
    /// Read a split; any problem (see [`Dataset::scan`]) is an error naming the file. With
    /// `skip_bad_images`, missing images are left for the loader to skip and count.
    pub fn open(spec: &DatasetSpec, split: Split) -> Result<Dataset> {
        let (ds, problems) = Dataset::scan(spec, split)?;
        let fatal: Vec<&Problem> = problems.iter().filter(|p| !(p.image && spec.skip_bad_images)).collect();
        if let Some(first) = fatal.first() {
            let more = match fatal.len() {
                1 => String::new(),
                n => format!(" (and {} more problems; `clipgan data check {}` lists them all)", n - 1, spec.data_dir.display()),
            };
            bail!("{first}{more}");
        }
        Ok(ds)
    }

    /// Read a split and list every problem found instead of stopping at the first.
    /// Errors only when nothing can be listed (no folder, no readable filenames.pickle).
    pub fn scan(spec: &DatasetSpec, split: Split) -> Result<(Dataset, Vec<Problem>)> {
        let dir = &spec.data_dir;
        if !dir.is_dir() {
            bail!("{}: dataset folder not found", dir.display());
        }
        if spec.captions_per_image == 0 {
            bail!("CAPTIONS_PER_IMAGE must be at least 1");
        }
        let split_dir = dir.join(split.dir_name());
        if !split_dir.is_dir() {
            bail!("{}: the {split} split's folder is missing (AttnGAN layout: {split}/filenames.pickle)", split_dir.display());
        }
        let names_path = split_dir.join("filenames.pickle");
        if !names_path.is_file() {
            bail!("{}: missing (the list of the {split} split's images)", names_path.display());
        }
        let keys = pickle::string_list(&pickle::read(&names_path)?, &names_path, "a list of image names")?;
        if keys.is_empty() {
            bail!("{}: the {split} split lists no images", names_path.display());
        }
        let mut problems = Vec::new();

        // Classes.
        let class_path = split_dir.join("class_info.pickle");
        let (class_ids, class_source) = if class_path.is_file() {
            let ids = pickle::int_list(&pickle::read(&class_path)?, &class_path, "a list of class ids")?;
            if ids.len() != keys.len() {
                bail!("{}: {} class ids for the {} images of {}", class_path.display(), ids.len(), keys.len(), names_path.display());
            }
            (ids, Some(class_path))
        } else if spec.is_coco() {
            ((0..keys.len() as i64).collect(), None)
        } else {
            bail!(
                "{}: missing (DATASET_NAME {:?} needs class ids; a dataset without classes is DATASET_NAME coco)",
                class_path.display(),
                spec.dataset_name
            );
        };

        // Bounding boxes.
        let cub = dir.join("CUB_200_2011");
        let bbox_path = cub.join("bounding_boxes.txt");
        let bboxes = if bbox_path.is_file() {
            Some(read_bboxes(&cub.join("images.txt"), &bbox_path)?)
        } else if spec.is_birds() {
            bail!("{}: missing (CUB's bounding boxes; DATASET_NAME birds crops every image to its bird)", bbox_path.display());
        } else {
            None
        };

        // Images.
        let roots = ImageRoots::find(dir);
        let mut records = Vec::with_capacity(keys.len());
        for (n, key) in keys.iter().enumerate() {
            if key.is_empty() || key.contains("..") || Path::new(key).is_absolute() {
                bail!("{}: item {n} ({key:?}) is not a relative image name", names_path.display());
            }
            let image_path = roots.path_for(key);
            if let Some(what) = not_a_file(&image_path) {
                problems.push(Problem { path: image_path.clone(), message: format!("image of {key} {what}"), image: true });
            }
            let bbox = match &bboxes {
                Some(map) => match map.get(key.as_str()) {
                    Some(b) => Some(*b),
                    None => {
                        problems.push(Problem { path: bbox_path.clone(), message: format!("no bounding box for {key}"), image: false });
                        None
                    }
                },
                None => None,
            };
            let text_path = dir.join("text").join(format!("{key}.txt"));
            let captions = match read_captions(&text_path, spec.captions_per_image) {
                Ok(c) => c,
                Err(p) => {
                    problems.push(p);
                    Vec::new()
                }
            };
            records.push(Record { key: key.clone(), class_id: class_ids[n], image_path, bbox, captions });
        }
        let bbox_source = bboxes.map(|_| bbox_path);
        Ok((Dataset { records, split, spec: spec.clone(), class_source, bbox_source }, problems))
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn captions_per_image(&self) -> usize {
        self.spec.captions_per_image
    }

    /// Caption k of image n (caption number n·CAPTIONS_PER_IMAGE + k).
    pub fn caption(&self, n: usize, k: usize) -> &str {
        &self.records[n].captions[k]
    }

    /// Caption number i (= n·CAPTIONS_PER_IMAGE + k) as (n, k).
    pub fn caption_position(&self, i: usize) -> (usize, usize) {
        (i / self.spec.captions_per_image, i % self.spec.captions_per_image)
    }

    pub fn num_captions(&self) -> usize {
        self.records.len() * self.spec.captions_per_image
    }

    /// Distinct class ids (COCO: one per image).
    pub fn num_classes(&self) -> usize {
        self.records.iter().map(|r| r.class_id).collect::<BTreeSet<_>>().len()
    }

    /// Image n decoded to RGB, cropped to its bounding box as AttnGAN does (a square of
    /// side 1.5·max(w, h) around the box centre, clamped to the image).
    pub fn load_image(&self, n: usize) -> Result<RgbImage> {
        let rec = &self.records[n];
        let img = decode_rgb(&rec.image_path)?;
        match rec.bbox {
            None => Ok(img),
            Some(b) => {
                let (w, h) = img.dimensions();
                check_bbox(b, w, h).with_context(|| {
                    let src = self.bbox_source.as_deref().unwrap_or(Path::new("bounding_boxes.txt"));
                    format!("{}: the bounding box of {} does not fit its image {}", src.display(), rec.key, rec.image_path.display())
                })?;
                let (x1, y1, x2, y2) = bbox_crop_rect(b, w, h);
                Ok(super::transforms::crop(&img, x1, y1, x2 - x1, y2 - y1))
            }
        }
    }
}

/// Why `path` is not a regular file (following symlinks): "not found", "is a folder",
/// "is a device or other special file"; None for a file. A symlink to `/dev/zero` was
/// reported as not found, and reading it would never end.
pub fn not_a_file(path: &Path) -> Option<&'static str> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("not found"),
        Err(_) => Some("cannot be read"),
        Ok(m) if m.is_file() => None,
        Ok(m) if m.is_dir() => Some("is a folder, not a file"),
        Ok(_) => Some("is a device or other special file, not a regular file"),
    }
}

/// Decode an image file to RGB (grey, CMYK, alpha are converted); errors name the file.
/// A truncated JPEG is an error (the decoder would otherwise fill the rest with grey).
pub fn decode_rgb(path: &Path) -> Result<RgbImage> {
    // A special file (a symlink to /dev/zero) would be read forever; a missing one gets
    // the read error below.
    if let Some(what) = not_a_file(path).filter(|w| *w != "not found") {
        bail!("{}: cannot read the image: it {what}", path.display());
    }
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read the image", path.display()))?;
    let format = image::guess_format(&bytes).with_context(|| format!("{}: not an image (unknown format)", path.display()))?;
    if format == image::ImageFormat::Jpeg && !jpeg_has_end(&bytes) {
        bail!("{}: truncated JPEG (no end-of-image marker)", path.display());
    }
    let img =
        image::load_from_memory_with_format(&bytes, format).with_context(|| format!("{}: cannot decode the image", path.display()))?;
    if img.width() == 0 || img.height() == 0 {
        bail!("{}: the image is empty", path.display());
    }
    Ok(img.into_rgb8())
}

/// JPEG files end with the EOI marker FF D9 (some writers append padding after it).
fn jpeg_has_end(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(64)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

/// A box must have a positive size and lie within the image (2 px tolerance for rounding).
pub fn check_bbox(b: [f32; 4], width: u32, height: u32) -> Result<()> {
    let [x, y, w, h] = b;
    let tol = 2.0;
    if !b.iter().all(|v| v.is_finite()) || w <= 0.0 || h <= 0.0 {
        bail!("box (x {x}, y {y}, w {w}, h {h}) has no area");
    }
    if x < -tol || y < -tol || x + w > width as f32 + tol || y + h > height as f32 + tol {
        bail!("box (x {x}, y {y}, w {w}, h {h}) lies outside the {width}x{height} image");
    }
    Ok(())
}

/// AttnGAN's crop around a bounding box: r = int(0.75·max(w, h)), centre = int(x + w/2),
/// int(y + h/2); the square [c - r, c + r) clamped to the image. Returns (x1, y1, x2, y2).
pub fn bbox_crop_rect(b: [f32; 4], width: u32, height: u32) -> (u32, u32, u32, u32) {
    let [x, y, w, h] = b;
    let r = (w.max(h) * 0.75) as i64;
    let cx = ((2.0 * x + w) / 2.0) as i64;
    let cy = ((2.0 * y + h) / 2.0) as i64;
    let clamp = |v: i64, hi: u32| v.clamp(0, hi as i64) as u32;
    let (mut x1, mut x2) = (clamp(cx - r, width), clamp(cx + r, width));
    let (mut y1, mut y2) = (clamp(cy - r, height), clamp(cy + r, height));
    // Never an empty crop (a checked box always gives one; this guards degenerate input).
    if x2 <= x1 {
        x1 = x1.min(width.saturating_sub(1));
        x2 = x1 + 1;
    }
    if y2 <= y1 {
        y1 = y1.min(height.saturating_sub(1));
        y2 = y1 + 1;
    }
    (x1, y1, x2, y2)
}

/// Where a key's image lives.
struct ImageRoots {
    /// `CUB_200_2011/images` or `images`, when present.
    flat: Option<PathBuf>,
    dir: PathBuf,
}

impl ImageRoots {
    fn find(dir: &Path) -> ImageRoots {
        let flat = [dir.join("CUB_200_2011").join("images"), dir.join("images")].into_iter().find(|p| p.is_dir());
        ImageRoots { flat, dir: dir.to_path_buf() }
    }

    fn path_for(&self, key: &str) -> PathBuf {
        let file = format!("{key}.jpg");
        if let Some(root) = &self.flat {
            return root.join(file);
        }
        // COCO's own folders: COCO_train2014_... / COCO_val2014_...
        let sub = if key.contains("val2014") { "val2014" } else { "train2014" };
        self.dir.join(sub).join(file)
    }
}

/// Non-empty lines of a caption file, the first `count` of them (AttnGAN's rule; it also
/// turns the "\u{fffd}\u{fffd}" of some CUB files into a space).
pub fn read_captions(path: &Path, count: usize) -> std::result::Result<Vec<String>, Problem> {
    let problem = |message: String| Problem { path: path.to_path_buf(), message, image: false };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(problem("caption file not found".into())),
        Err(e) => return Err(problem(format!("cannot read the caption file: {e}"))),
    };
    // AttnGAN decodes captions as UTF-8 and fails on anything else; a NUL is no text.
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) => t,
        Err(e) => return Err(problem(format!("the caption file is not UTF-8 text (invalid byte at offset {})", e.valid_up_to()))),
    };
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        return Err(problem(format!("the caption file holds a NUL byte (at offset {at})")));
    }
    let lines: Vec<String> =
        text.lines().map(|l| l.replace("\u{fffd}\u{fffd}", " ").trim().to_string()).filter(|l| !l.is_empty()).collect();
    if lines.len() < count {
        return Err(problem(format!("{} captions, expected {count} (TEXT.CAPTIONS_PER_IMAGE)", lines.len())));
    }
    Ok(lines.into_iter().take(count).collect())
}

/// CUB's `images.txt` ("<id> <key>.jpg") and `bounding_boxes.txt` ("<id> x y w h"),
/// joined by id into key -> box.
fn read_bboxes(images_txt: &Path, bbox_txt: &Path) -> Result<HashMap<String, [f32; 4]>> {
    let read =
        |p: &Path| std::fs::read_to_string(p).with_context(|| format!("{}: cannot read (needed with {})", p.display(), bbox_txt.display()));
    let images = read(images_txt)?;
    let mut names: HashMap<&str, String> = HashMap::new();
    for (i, line) in images.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(id), Some(file), None) = (parts.next(), parts.next(), parts.next()) else {
            bail!("{}:{}: expected \"<id> <file>\"", images_txt.display(), i + 1);
        };
        let key = file.rsplit_once('.').map(|(k, _)| k).unwrap_or(file);
        names.insert(id, key.to_string());
    }
    let boxes = read(bbox_txt)?;
    let mut out = HashMap::with_capacity(names.len());
    for (i, line) in boxes.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        let nums: Option<Vec<f32>> = parts.get(1..).map(|p| p.iter().filter_map(|v| v.parse().ok()).collect());
        let (id, nums) = match (parts.first(), nums) {
            (Some(id), Some(n)) if n.len() == 4 && parts.len() == 5 => (*id, n),
            _ => bail!("{}:{}: expected \"<id> x y width height\"", bbox_txt.display(), i + 1),
        };
        let key =
            names.get(id).with_context(|| format!("{}:{}: image id {id} is not in {}", bbox_txt.display(), i + 1, images_txt.display()))?;
        out.insert(key.clone(), [nums[0], nums[1], nums[2], nums[3]]);
    }
    Ok(out)
}
