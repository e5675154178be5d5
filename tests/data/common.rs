//! Small AttnGAN-layout datasets built by the tests around the Python-written pickles in
//! tests/fixtures/data (the pickles are the only part that needs Python, so they are committed).
#![allow(dead_code)]
use std::path::{Path, PathBuf};

pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data").join(rel)
}

pub fn write(path: &Path, bytes: impl AsRef<[u8]>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

pub fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap();
}

/// A JPEG (quality 95) whose pixel (x, y) is `f(x, y)`.
pub fn write_jpeg(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)));
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95).encode_image(&img).unwrap();
    write(path, bytes);
}

pub const BIRD_KEYS_TRAIN: [&str; 4] = [
    "001.Black_footed_Albatross/Black_Footed_Albatross_0001_796111",
    "001.Black_footed_Albatross/Black_Footed_Albatross_0002_55",
    "002.Laysan_Albatross/Laysan_Albatross_0003_1033",
    "002.Laysan_Albatross/Laysan_Albatross_0004_930",
];
pub const BIRD_KEYS_TEST: [&str; 2] = ["003.Sooty_Albatross/Sooty_Albatross_0001_1071", "003.Sooty_Albatross/Sooty_Albatross_0002_796395"];

pub fn bird_caption(key: &str, k: usize) -> String {
    let short = key.rsplit('/').next().unwrap().to_lowercase().replace('_', " ");
    format!("caption {k} of {short}: a bird with white wings")
}

/// Image size of the n-th bird (all keys, train then test): varied, landscape and portrait.
pub fn bird_size(n: usize) -> (u32, u32) {
    [(96, 72), (72, 96), (80, 80), (120, 64), (64, 100), (90, 70)][n % 6]
}

/// Bounding box of the n-th bird: a box inside the image, painted white in the image.
pub fn bird_bbox(n: usize) -> [u32; 4] {
    let (w, h) = bird_size(n);
    [w / 4 + n as u32, h / 5, w / 3, h / 2]
}

/// A CUB-like dataset: pickles from `pickles` (birds_py2 or birds_p4), 10 captions per image
/// (with blank lines and CUB's "\u{fffd}\u{fffd}" in one), JPEGs with a white bird in its
/// bounding box on a background whose colour encodes the image number, images.txt and
/// bounding_boxes.txt.
pub fn birds(dir: &Path, pickles: &str) {
    for split in ["train", "test"] {
        for f in ["filenames.pickle", "class_info.pickle"] {
            copy(&fixture(&format!("{pickles}/{split}/{f}")), &dir.join(split).join(f));
        }
    }
    let mut images_txt = String::new();
    let mut boxes_txt = String::new();
    for (n, key) in BIRD_KEYS_TRAIN.iter().chain(BIRD_KEYS_TEST.iter()).enumerate() {
        let mut text = String::new();
        for k in 0..10 {
            text.push_str(&bird_caption(key, k));
            text.push('\n');
            if k == 3 {
                text.push_str("\n   \n");
            }
        }
        if n == 0 {
            text = text.replacen("caption 5 of", "caption\u{fffd}\u{fffd}5 of", 1);
        }
        write(&dir.join("text").join(format!("{key}.txt")), text);
        let (w, h) = bird_size(n);
        let [bx, by, bw, bh] = bird_bbox(n);
        let bg = [40 * n as u8, 100, 200 - 30 * n as u8];
        write_jpeg(&dir.join("CUB_200_2011/images").join(format!("{key}.jpg")), w, h, |x, y| {
            if x >= bx && x < bx + bw && y >= by && y < by + bh {
                [255, 255, 255]
            } else {
                bg
            }
        });
        images_txt.push_str(&format!("{} {key}.jpg\n", n + 1));
        boxes_txt.push_str(&format!("{} {bx}.0 {by}.0 {bw}.0 {bh}.0\n", n + 1));
    }
    write(&dir.join("CUB_200_2011/images.txt"), images_txt);
    write(&dir.join("CUB_200_2011/bounding_boxes.txt"), boxes_txt);
}

pub const COCO_TRAIN: [&str; 3] = ["COCO_train2014_000000000009", "COCO_train2014_000000000025", "COCO_train2014_000000000030"];
pub const COCO_TEST: [&str; 2] = ["COCO_val2014_000000000042", "COCO_val2014_000000000073"];

/// A COCO-like dataset: no class_info, 5 to 7 captions per image, images in train2014/ and
/// val2014/ (COCO's own folders).
pub fn coco(dir: &Path) {
    for split in ["train", "test"] {
        copy(&fixture(&format!("coco_p2/{split}/filenames.pickle")), &dir.join(split).join("filenames.pickle"));
    }
    for (n, key) in COCO_TRAIN.iter().chain(COCO_TEST.iter()).enumerate() {
        let text: String = (0..5 + n % 3).map(|k| format!("a photo number {n} with caption {k}\n")).collect();
        write(&dir.join("text").join(format!("{key}.txt")), text);
        let sub = if key.contains("val2014") { "val2014" } else { "train2014" };
        write_jpeg(&dir.join(sub).join(format!("{key}.jpg")), 64 + 8 * n as u32, 48, |x, _| [x as u8, 0, 0]);
    }
}
