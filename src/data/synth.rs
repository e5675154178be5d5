//! `clipgan data synth`: a procedurally drawn, captioned image dataset in AttnGAN's CUB
//! layout (pickles, text/<class>/<img>.txt, CUB_200_2011/images, bounding boxes), the
//! embedded default dataset of the demo and the tests.
//!
//! Each image shows one object on a plain background. A class is a "species": a shape with
//! a colour scheme (body colour + colour of a marking). Per image the marking's kind
//! (stripe, spot, outline), the background colour, the object's size and position, and
//! small colour jitter vary. The loader crops every image to its object (the CUB bounding
//! box rule), so size and position are undone like a bird's; the ten captions per image
//! describe what survives the crop (shape, body colour, marking kind and colour,
//! background) with several templates, synonyms and attribute orders. Test classes are
//! held out (unseen combinations) but made of attributes seen in training, like CUB's
//! 150/50 split. `attributes.txt` lists the truth of every image.
use super::pickle;
use crate::seed::{self, splitmix64, stream};
use crate::util::fsx;
use anyhow::{bail, Context, Result};
use image::RgbImage;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_pickle::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq)]
pub struct SynthConfig {
    pub train: usize,
    pub test: usize,
    /// Image side in pixels.
    pub size: u32,
    pub seed: u64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig { train: 2000, test: 400, size: 128, seed: 100 }
    }
}

/// Captions per image (as CUB).
pub const CAPTIONS_PER_IMAGE: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Shape {
    Circle,
    Square,
    Triangle,
    Diamond,
    Star,
    Cross,
}

pub const SHAPES: [Shape; 6] = [Shape::Circle, Shape::Square, Shape::Triangle, Shape::Diamond, Shape::Star, Shape::Cross];

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
            Shape::Diamond => "diamond",
            Shape::Star => "star",
            Shape::Cross => "cross",
        }
    }

    /// Words a caption may use for the shape.
    pub fn synonyms(self) -> &'static [&'static str] {
        match self {
            Shape::Circle => &["circle", "disc", "round shape"],
            Shape::Square => &["square", "box", "block"],
            Shape::Triangle => &["triangle", "three-sided shape"],
            Shape::Diamond => &["diamond", "rhombus"],
            Shape::Star => &["star", "five-pointed star"],
            Shape::Cross => &["cross", "plus sign"],
        }
    }

    /// Whether (u, v) (object coordinates, [-1, 1]², v down) is inside the shape.
    fn inside(self, u: f32, v: f32) -> bool {
        match self {
            Shape::Circle => u * u + v * v <= 0.9 * 0.9,
            Shape::Square => u.abs().max(v.abs()) <= 0.8,
            Shape::Triangle => (-0.85..=0.75).contains(&v) && u.abs() <= 0.95 * (v + 0.85) / 1.6,
            Shape::Diamond => u.abs() + v.abs() <= 0.95,
            Shape::Star => in_star(u, v),
            Shape::Cross => (u.abs() <= 0.28 && v.abs() <= 0.9) || (v.abs() <= 0.28 && u.abs() <= 0.9),
        }
    }

    /// Where a spot sits (the triangle's centroid is low).
    fn centre_v(self) -> f32 {
        if self == Shape::Triangle {
            0.2
        } else {
            0.0
        }
    }
}

fn in_star(u: f32, v: f32) -> bool {
    // Even-odd test against the 10-vertex star (outer 0.95, inner 0.4, point up).
    static VERTICES: std::sync::OnceLock<[(f32, f32); 10]> = std::sync::OnceLock::new();
    let vert = VERTICES.get_or_init(|| {
        std::array::from_fn(|i| {
            let r = if i % 2 == 0 { 0.95 } else { 0.4 };
            let a = std::f32::consts::PI * i as f32 / 5.0;
            (r * a.sin(), -r * a.cos() + 0.05)
        })
    });
    let mut inside = false;
    for i in 0..10 {
        let (xi, yi) = vert[i];
        let (xj, yj) = vert[(i + 9) % 10];
        if (yi > v) != (yj > v) && u < (xj - xi) * (v - yi) / (yj - yi) + xi {
            inside = !inside;
        }
    }
    inside
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Marking {
    Stripe,
    Spot,
    Outline,
}

pub const MARKINGS: [Marking; 3] = [Marking::Stripe, Marking::Spot, Marking::Outline];

impl Marking {
    pub fn name(self) -> &'static str {
        match self {
            Marking::Stripe => "stripe",
            Marking::Spot => "spot",
            Marking::Outline => "outline",
        }
    }

    pub fn synonyms(self) -> &'static [&'static str] {
        match self {
            Marking::Stripe => &["stripe", "band"],
            Marking::Spot => &["spot", "dot"],
            Marking::Outline => &["outline", "border", "rim"],
        }
    }

    fn covers(self, shape: Shape, u: f32, v: f32) -> bool {
        match self {
            Marking::Stripe => v.abs() <= 0.15,
            Marking::Spot => u * u + (v - shape.centre_v()).powi(2) <= 0.3 * 0.3,
            Marking::Outline => !shape.inside(u / 0.78, v / 0.78),
        }
    }
}

/// A named colour and its RGB value.
pub type Colour = (&'static str, [u8; 3]);

/// Body colours (and the marking's, with white and black added).
pub const BODY_COLOURS: [Colour; 7] = [
    ("red", [215, 35, 35]),
    ("orange", [245, 135, 20]),
    ("yellow", [240, 215, 30]),
    ("green", [35, 160, 60]),
    ("blue", [35, 80, 215]),
    ("purple", [130, 50, 180]),
    ("pink", [245, 125, 185]),
];
pub const MARK_COLOURS: [Colour; 9] = [
    ("red", [215, 35, 35]),
    ("orange", [245, 135, 20]),
    ("yellow", [240, 215, 30]),
    ("green", [35, 160, 60]),
    ("blue", [35, 80, 215]),
    ("purple", [130, 50, 180]),
    ("pink", [245, 125, 185]),
    ("white", [250, 250, 250]),
    ("black", [15, 15, 15]),
];
pub const BACKGROUNDS: [Colour; 4] =
    [("white", [245, 245, 240]), ("black", [25, 25, 30]), ("gray", [125, 125, 125]), ("beige", [222, 202, 160])];

/// A class: shape + colour scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Species {
    pub shape: Shape,
    /// Index into BODY_COLOURS.
    pub body: usize,
    /// Index into MARK_COLOURS (never the body's colour).
    pub mark: usize,
}

impl Species {
    fn name(&self) -> String {
        let cap = |s: &str| s[..1].to_uppercase() + &s[1..];
        format!("{}_{}_with_{}", cap(BODY_COLOURS[self.body].0), cap(self.shape.name()), cap(MARK_COLOURS[self.mark].0))
    }
}

/// Everything about one image.
#[derive(Clone, Debug, PartialEq)]
pub struct Scene {
    pub key: String,
    pub class_id: i64,
    pub species: Species,
    pub marking: Marking,
    /// Index into BACKGROUNDS.
    pub background: usize,
    /// Object centre and half-size in pixels.
    pub cx: f32,
    pub cy: f32,
    pub r: f32,
    pub captions: Vec<String>,
    /// Per-image colour jitter (body, marking, background).
    jitter: [[i16; 3]; 3],
}

impl Scene {
    /// CUB bounding box (x, y, w, h).
    pub fn bbox(&self) -> [f32; 4] {
        [self.cx - self.r, self.cy - self.r, 2.0 * self.r, 2.0 * self.r]
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SynthSummary {
    pub train_images: usize,
    pub test_images: usize,
    pub train_classes: usize,
    pub test_classes: usize,
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// The caption templates: (shape, body, marking kind, marking colour, background,
/// "background"/"backdrop") -> text. Several attribute orders; some omit the background.
const TEMPLATES: usize = 14;

fn caption(t: usize, s: &str, b: &str, k: &str, p: &str, g: &str, bg: &str) -> String {
    let a = article;
    match t {
        0 => format!("{} {b} {s} with {} {p} {k} on {} {g} {bg}", a(b), a(p), a(g)),
        1 => format!("this {s} is {b} and has {} {p} {k}", a(p)),
        2 => format!("{} {s} colored {b}, with {} {k} in {p}, on {} {g} {bg}", a(s), a(k), a(g)),
        3 => format!("on {} {g} {bg} there is {} {b} {s} with {} {p} {k}", a(g), a(b), a(p)),
        4 => format!("the {b} {s} has {} {p} {k}", a(p)),
        5 => format!("{} {b} {s} marked by {} {p} {k}", a(b), a(p)),
        6 => format!("{} {s} that is mostly {b} with {} {p} {k}, set against {g}", a(s), a(p)),
        7 => format!("there is {} {b} {s} with {} {p} {k}", a(b), a(p)),
        8 => format!("{} {p} {k} on {} {b} {s}, {g} {bg}", a(p), a(b)),
        9 => format!("this object is {} {s}; its body is {b} and its {k} is {p}", a(s)),
        10 => format!("a picture of {} {b} {s} with {} {p} {k} in front of {} {g} {bg}", a(b), a(p), a(g)),
        11 => format!("{g} {bg}, {b} {s}, {p} {k}"),
        12 => format!("{} {b} {s} decorated with {} {p} {k}", a(b), a(p)),
        _ => format!("this {b} {s} shows {} {p} {k} against {} {g} {bg}", a(p), a(g)),
    }
}

fn captions(rng: &mut ChaCha8Rng, sp: &Species, marking: Marking, background: usize) -> Vec<String> {
    let mut templates: Vec<usize> = (0..TEMPLATES).collect();
    templates.shuffle(rng);
    templates
        .into_iter()
        .take(CAPTIONS_PER_IMAGE)
        .map(|t| {
            let s = *sp.shape.synonyms().choose(rng).unwrap_or(&sp.shape.name());
            let k = *marking.synonyms().choose(rng).unwrap_or(&marking.name());
            let bg = if rng.gen_bool(0.7) { "background" } else { "backdrop" };
            caption(t, s, BODY_COLOURS[sp.body].0, k, MARK_COLOURS[sp.mark].0, BACKGROUNDS[background].0, bg)
        })
        .collect()
}

/// Pick the classes: (train, test), test classes unseen but (as far as the numbers allow)
/// made of shapes and colours that training classes have.
pub fn choose_species(seed: u64, n_train: usize, n_test: usize) -> (Vec<Species>, Vec<Species>) {
    let mut all = Vec::new();
    for shape in SHAPES {
        for body in 0..BODY_COLOURS.len() {
            for mark in 0..MARK_COLOURS.len() {
                if MARK_COLOURS[mark].0 != BODY_COLOURS[body].0 {
                    all.push(Species { shape, body, mark });
                }
            }
        }
    }
    let n_train = n_train.min(all.len() - 1);
    let n_test = n_test.min(all.len() - n_train);
    let uncovered = |train: &[Species], test: &[Species]| {
        let shapes: BTreeSet<Shape> = train.iter().map(|s| s.shape).collect();
        let bodies: BTreeSet<usize> = train.iter().map(|s| s.body).collect();
        let marks: BTreeSet<usize> = train.iter().map(|s| s.mark).collect();
        test.iter().filter(|s| !shapes.contains(&s.shape) || !bodies.contains(&s.body) || !marks.contains(&s.mark)).count()
    };
    let mut best: Option<(usize, Vec<Species>, Vec<Species>)> = None;
    for attempt in 0..200u64 {
        let mut rng = seed::chacha(seed, &[stream::SYNTH_SPECIES, attempt]);
        all.shuffle(&mut rng);
        let train = all[..n_train].to_vec();
        let test = all[n_train..n_train + n_test].to_vec();
        let u = uncovered(&train, &test);
        if best.as_ref().is_none_or(|b| u < b.0) {
            best = Some((u, train, test));
        }
        if u == 0 {
            break;
        }
    }
    let (_, mut train, mut test) = best.unwrap_or_default();
    train.sort();
    test.sort();
    (train, test)
}

/// Classes for a dataset of `images` images: about 40 images per class, 3/4 of the classes
/// for training (CUB: 150 of 200).
pub fn class_counts(train: usize, test: usize) -> (usize, usize) {
    let total = ((train + test) / 40).clamp(8, 200);
    let n_test = (total / 4).max(2);
    (total - n_test, n_test)
}

/// Draw every scene (cheap; rendering happens separately).
pub fn plan(cfg: &SynthConfig) -> (Vec<Scene>, Vec<Scene>, Vec<Species>, Vec<Species>) {
    let (nc_train, nc_test) = class_counts(cfg.train, cfg.test);
    let (train_sp, test_sp) = choose_species(cfg.seed, nc_train, nc_test);
    let s = cfg.size as f32;
    let make = |split: u64, count: usize, species: &[Species], first_id: usize, offset: usize| -> Vec<Scene> {
        let mut scenes: Vec<Scene> = (0..count)
            .map(|i| {
                let mut rng = seed::chacha(cfg.seed, &[stream::SYNTH_SCENE, split, i as u64]);
                let c = i % species.len();
                let sp = species[c];
                let marking = *MARKINGS.choose(&mut rng).unwrap_or(&Marking::Stripe);
                let mut background = rng.gen_range(0..BACKGROUNDS.len());
                // A white outline on a white background would be invisible, yet described.
                if marking == Marking::Outline && BACKGROUNDS[background].0 == MARK_COLOURS[sp.mark].0 {
                    background = (background + 1 + rng.gen_range(0..BACKGROUNDS.len() - 1)) % BACKGROUNDS.len();
                }
                let r = s * rng.gen_range(0.16..0.32);
                let cx = rng.gen_range(r..s - r);
                let cy = rng.gen_range(r..s - r);
                let mut jitter = [[0i16; 3]; 3];
                for row in jitter.iter_mut() {
                    for v in row.iter_mut() {
                        *v = rng.gen_range(-12..=12);
                    }
                }
                let captions = captions(&mut rng, &sp, marking, background);
                let name = sp.name();
                let class_id = (first_id + c) as i64;
                let key = format!("{class_id:03}.{name}/{name}_{:05}", offset + i + 1);
                Scene { key, class_id, species: sp, marking, background, cx, cy, r, captions, jitter }
            })
            .collect();
        // CUB's filenames are grouped by class.
        scenes.sort_by(|a, b| a.key.cmp(&b.key));
        scenes
    };
    let train = make(1, cfg.train, &train_sp, 1, 0);
    let test = make(2, cfg.test, &test_sp, 1 + train_sp.len(), cfg.train);
    (train, test, train_sp, test_sp)
}

fn jittered(c: [u8; 3], j: [i16; 3]) -> [f32; 3] {
    [0, 1, 2].map(|i| (c[i] as i16 + j[i]).clamp(0, 255) as f32)
}

/// Draw a scene: the object antialiased by 3x3 supersampling over a background with a
/// gentle vertical shade and a little noise.
pub fn render(scene: &Scene, size: u32, seed: u64) -> RgbImage {
    let sp = &scene.species;
    let body = jittered(BODY_COLOURS[sp.body].1, scene.jitter[0]);
    let mark = jittered(MARK_COLOURS[sp.mark].1, scene.jitter[1]);
    let bg = jittered(BACKGROUNDS[scene.background].1, scene.jitter[2]);
    let key_hash = scene.key.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    let noise_seed = seed::derive(seed, &[stream::SYNTH_NOISE, key_hash]);
    let s = size as f32;
    // 0 background, 1 body, 2 marking, at point (x, y) in pixels.
    let part = |x: f32, y: f32| -> u8 {
        let (u, v) = ((x - scene.cx) / scene.r, (y - scene.cy) / scene.r);
        if !sp.shape.inside(u, v) {
            0
        } else if scene.marking.covers(sp.shape, u, v) {
            2
        } else {
            1
        }
    };
    // The object's pixels; the part at every pixel corner there, so only pixels whose
    // corners disagree (edges) are supersampled.
    let (x0, x1) = ((scene.cx - scene.r - 1.0).max(0.0) as u32, ((scene.cx + scene.r + 2.0) as u32).min(size));
    let (y0, y1) = ((scene.cy - scene.r - 1.0).max(0.0) as u32, ((scene.cy + scene.r + 2.0) as u32).min(size));
    let gw = (x1 - x0 + 1) as usize;
    let corners: Vec<u8> = (y0..=y1).flat_map(|y| (x0..=x1).map(move |x| (x, y))).map(|(x, y)| part(x as f32, y as f32)).collect();
    RgbImage::from_fn(size, size, |x, y| {
        let shade = 8.0 * (0.5 - y as f32 / s);
        // Hash noise in [-4, 4): cheaper than a generator call per pixel.
        let noise = (splitmix64(noise_seed ^ (y as u64 * size as u64 + x as u64)) >> 40) as f32 / (1u64 << 24) as f32 * 8.0 - 4.0;
        let back = bg.map(|c| c + shade + noise);
        let colour = |p: u8| match p {
            0 => back,
            1 => body,
            _ => mark,
        };
        let acc = if x >= x0 && x < x1 && y >= y0 && y < y1 {
            let i = (y - y0) as usize * gw + (x - x0) as usize;
            let c = [corners[i], corners[i + 1], corners[i + gw], corners[i + gw + 1]];
            if c.iter().all(|&p| p == c[0]) {
                colour(c[0])
            } else {
                let mut acc = [0.0f32; 3];
                for sy in 0..3 {
                    for sx in 0..3 {
                        let col = colour(part(x as f32 + (sx as f32 + 0.5) / 3.0, y as f32 + (sy as f32 + 0.5) / 3.0));
                        for k in 0..3 {
                            acc[k] += col[k] / 9.0;
                        }
                    }
                }
                acc
            }
        } else {
            back
        };
        image::Rgb(acc.map(|c| (c + 0.5).clamp(0.0, 255.0) as u8))
    })
}

/// AttnGAN's `captions.pickle` word indices (its own RNN vocabulary; kept for layout
/// compatibility): lower-cased `\w+` words, index 0 = `<end>`.
fn attngan_vocab(all: &[&Scene]) -> (Vec<String>, BTreeMap<String, i64>) {
    let words = |t: &str| -> Vec<String> {
        t.to_lowercase().split(|c: char| !c.is_alphanumeric() && c != '_').filter(|w| !w.is_empty()).map(String::from).collect()
    };
    let mut set = BTreeSet::new();
    for s in all {
        for c in &s.captions {
            set.extend(words(c));
        }
    }
    let mut vocab = vec!["<end>".to_string()];
    vocab.extend(set);
    let index: BTreeMap<String, i64> = vocab.iter().enumerate().map(|(i, w)| (w.clone(), i as i64)).collect();
    (vocab, index)
}

fn caption_indices(scenes: &[Scene], index: &BTreeMap<String, i64>) -> Vec<Vec<i64>> {
    scenes
        .iter()
        .flat_map(|s| s.captions.iter())
        .map(|c| {
            c.to_lowercase()
                .split(|ch: char| !ch.is_alphanumeric() && ch != '_')
                .filter(|w| !w.is_empty())
                .filter_map(|w| index.get(w).copied())
                .collect()
        })
        .collect()
}

/// Write the dataset to `out` (which must not exist, or be empty). Everything is written
/// into a temporary sibling folder first and renamed at the end, so an interrupted run
/// leaves no half-made dataset under `out`.
pub fn generate(out: &Path, cfg: &SynthConfig) -> Result<SynthSummary> {
    if cfg.train == 0 || cfg.test == 0 {
        bail!("data synth: --train and --test must be at least 1");
    }
    if !(16..=1024).contains(&cfg.size) {
        bail!("data synth: --size must be between 16 and 1024 pixels (got {})", cfg.size);
    }
    if out.exists() && std::fs::read_dir(out).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{}: already exists and is not empty; choose a new folder", out.display());
    }
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "synth".into());
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fsx::create_dir_all(parent)?;
    let tmp = parent.join(format!(".{name}.partial.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = write_all(&tmp, cfg);
    match result {
        Ok(summary) => {
            if out.exists() {
                std::fs::remove_dir(out).with_context(|| format!("cannot replace the empty folder {}", out.display()))?;
            }
            std::fs::rename(&tmp, out).with_context(|| format!("cannot move {} to {}", tmp.display(), out.display()))?;
            Ok(summary)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

/// Files go into a temporary folder that is renamed into place at the end, so plain
/// writes (no fsync per file) are enough.
fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

fn write_all(dir: &Path, cfg: &SynthConfig) -> Result<SynthSummary> {
    let (train, test, train_sp, test_sp) = plan(cfg);
    let all: Vec<&Scene> = train.iter().chain(test.iter()).collect();

    // Pickles.
    for (split, scenes) in [("train", &train), ("test", &test)] {
        let d = dir.join(split);
        fsx::create_dir_all(&d)?;
        let names = Value::List(scenes.iter().map(|s| Value::String(s.key.clone())).collect());
        let classes = Value::List(scenes.iter().map(|s| Value::I64(s.class_id)).collect());
        write(&d.join("filenames.pickle"), &pickle::to_bytes(&names)?)?;
        write(&d.join("class_info.pickle"), &pickle::to_bytes(&classes)?)?;
    }
    let (vocab, index) = attngan_vocab(&all);
    let caps = pickle::attngan_captions_value(&caption_indices(&train, &index), &caption_indices(&test, &index), &vocab);
    write(&dir.join("captions.pickle"), &pickle::to_bytes(&caps)?)?;

    // Text, CUB's index files, the truth table.
    let cub = dir.join("CUB_200_2011");
    let mut images_txt = String::new();
    let mut boxes_txt = String::new();
    let mut labels_txt = String::new();
    let mut attrs = String::from("# key\tsplit\tclass_id\tshape\tbody\tmarking\tmarking_colour\tbackground\tx\ty\tw\th\n");
    for (i, s) in all.iter().enumerate() {
        let t = dir.join("text").join(format!("{}.txt", s.key));
        fsx::create_dir_all(t.parent().unwrap_or(dir))?;
        write(&t, (s.captions.join("\n") + "\n").as_bytes())?;
        let [x, y, w, h] = s.bbox();
        images_txt.push_str(&format!("{} {}.jpg\n", i + 1, s.key));
        boxes_txt.push_str(&format!("{} {x:.1} {y:.1} {w:.1} {h:.1}\n", i + 1));
        labels_txt.push_str(&format!("{} {}\n", i + 1, s.class_id));
        let split = if i < train.len() { "train" } else { "test" };
        attrs.push_str(&format!(
            "{}\t{split}\t{}\t{}\t{}\t{}\t{}\t{}\t{x:.1}\t{y:.1}\t{w:.1}\t{h:.1}\n",
            s.key,
            s.class_id,
            s.species.shape.name(),
            BODY_COLOURS[s.species.body].0,
            s.marking.name(),
            MARK_COLOURS[s.species.mark].0,
            BACKGROUNDS[s.background].0
        ));
    }
    fsx::create_dir_all(&cub)?;
    write(&cub.join("images.txt"), images_txt.as_bytes())?;
    write(&cub.join("bounding_boxes.txt"), boxes_txt.as_bytes())?;
    write(&cub.join("image_class_labels.txt"), labels_txt.as_bytes())?;
    let classes_txt: String =
        train_sp.iter().chain(test_sp.iter()).enumerate().map(|(i, sp)| format!("{} {:03}.{}\n", i + 1, i + 1, sp.name())).collect();
    write(&cub.join("classes.txt"), classes_txt.as_bytes())?;
    write(&dir.join("attributes.txt"), attrs.as_bytes())?;
    write(
        &dir.join("README.txt"),
        format!(
            "Synthetic captioned dataset written by `clipgan data synth --train {} --test {} --size {} --seed {}`\n\
             in AttnGAN's CUB layout ({CAPTIONS_PER_IMAGE} captions per image). Use DATASET_NAME: birds.\n\
             attributes.txt lists the truth of every image.\n",
            cfg.train, cfg.test, cfg.size, cfg.seed
        )
        .as_bytes(),
    )?;

    // Images, rendered and encoded on every core.
    let images = cub.join("images");
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(all.len());
    let errors: Vec<anyhow::Error> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (all, images) = (&all, &images);
                scope.spawn(move || -> Result<()> {
                    for s in all.iter().skip(t).step_by(threads) {
                        let img = render(s, cfg.size, cfg.seed);
                        let path: PathBuf = images.join(format!("{}.jpg", s.key));
                        fsx::create_dir_all(path.parent().unwrap_or(images))?;
                        let mut bytes = Vec::new();
                        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 92)
                            .encode_image(&img)
                            .with_context(|| format!("cannot encode {}", path.display()))?;
                        write(&path, &bytes)?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("an image thread panicked"))).err()).collect()
    });
    if let Some(e) = errors.into_iter().next() {
        return Err(e);
    }
    Ok(SynthSummary {
        train_images: train.len(),
        test_images: test.len(),
        train_classes: train_sp.len().min(train.len()),
        test_classes: test_sp.len().min(test.len()),
    })
}
