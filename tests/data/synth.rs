//! `clipgan data synth` and `clipgan data check`: the round trip through the binary,
//! determinism, captions that say what the pixels show, and check's problem reports.

use crate::common::*;
use clipgan::data::synth::{self, SynthConfig, BACKGROUNDS, BODY_COLOURS, MARK_COLOURS};
use clipgan::data::{Dataset, DatasetSpec, Split};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

fn clipgan(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_clipgan")).args(args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn small(seed: u64) -> SynthConfig {
    SynthConfig { train: 40, test: 12, size: 64, seed }
}

#[test]
fn synth_then_check_round_trip_through_the_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("synth");
    let o = out.to_str().unwrap();
    let (code, text) = clipgan(&["data", "synth", "--out", o, "--train", "40", "--test", "12", "--size", "64", "--seed", "3"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("40 train images") && text.contains("12 test images"), "{text}");
    let (code, text) = clipgan(&["data", "check", o]);
    assert_eq!(code, 0, "{text}");
    for want in [
        "(birds, 10 captions per image",
        "train: 40 images, 6 classes",
        "test : 12 images, 2 classes",
        "captions: 400",
        "images decoded: 40/40",
        "width 64..64",
        "bounding boxes: 40",
        "classes in both splits: 0",
        "no problems found",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // The reader opens it as the training jobs do.
    let ds = Dataset::open(&DatasetSpec::new(&out, "birds", 10), Split::Test).unwrap();
    assert_eq!(ds.len(), 12);
    assert!(ds.records.iter().all(|r| r.bbox.is_some() && r.captions.len() == 10));

    // Damage it: check names every problem and exits 1.
    let key = ds.records[3].key.clone();
    std::fs::write(out.join("CUB_200_2011/images").join(format!("{key}.jpg")), b"not an image").unwrap();
    let key2 = ds.records[5].key.clone();
    let t = out.join("text").join(format!("{key2}.txt"));
    let text9: String = std::fs::read_to_string(&t).unwrap().lines().take(9).map(|l| format!("{l}\n")).collect();
    std::fs::write(&t, text9).unwrap();
    let (code, text) = clipgan(&["data", "check", o]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("2 problems"), "{text}");
    assert!(text.contains(&format!("{key}.jpg: not an image")), "{text}");
    assert!(text.contains(&format!("{key2}.txt: 9 captions, expected 10")), "{text}");
    // ...and training refuses it, naming the first.
    let e = format!("{:#}", Dataset::open(&DatasetSpec::new(&out, "birds", 10), Split::Test).unwrap_err());
    assert!(e.contains(&format!("{key2}.txt")), "{e}");

    // A non-empty output folder is refused; nothing is overwritten.
    let (code, text) = clipgan(&["data", "synth", "--out", o, "--train", "4", "--test", "2"]);
    assert_eq!(code, 1);
    assert!(text.contains("already exists and is not empty"), "{text}");
    let (code, text) = clipgan(&["data", "synth", "--out", tmp.path().join("x").to_str().unwrap(), "--size", "8"]);
    assert_eq!(code, 1);
    assert!(text.contains("--size"), "{text}");
    assert!(!tmp.path().join("x").exists());
}

#[test]
fn check_reports_every_problem_of_a_damaged_cub_and_a_coco_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("birds");
    birds(&dir, "birds_p4");
    copy(&fixture("birds_p4/captions.pickle"), &dir.join("captions.pickle"));
    let d = dir.to_str().unwrap();
    let (code, text) = clipgan(&["data", "check", d]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("train: 4 images, 2 classes (ids 1..2)") && text.contains("classes in both splits: 0"), "{text}");
    // Problems in both splits, a bbox outside its image, a captions.pickle of another dataset.
    std::fs::remove_file(dir.join("text").join(format!("{}.txt", BIRD_KEYS_TRAIN[0]))).unwrap();
    std::fs::remove_file(dir.join("CUB_200_2011/images").join(format!("{}.jpg", BIRD_KEYS_TEST[1]))).unwrap();
    let boxes = dir.join("CUB_200_2011/bounding_boxes.txt");
    let b = std::fs::read_to_string(&boxes).unwrap();
    write(&boxes, b.replace(&format!("2 {}.0", bird_bbox(1)[0]), "2 500.0"));
    copy(&fixture("bad/captions_not_list.pickle"), &dir.join("captions.pickle"));
    let (code, text) = clipgan(&["data", "check", d]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("4 problems"), "{text}");
    assert!(text.contains(&format!("{}.txt: caption file not found", BIRD_KEYS_TRAIN[0])), "{text}");
    assert!(text.contains(&format!("{}.jpg: image of", BIRD_KEYS_TEST[1])), "{text}");
    assert!(text.contains(&format!("bounding box of {} does not fit", BIRD_KEYS_TRAIN[1])), "{text}");
    assert!(text.contains("captions.pickle: expected [train_captions"), "{text}");

    let dir = tmp.path().join("coco");
    coco(&dir);
    let (code, text) = clipgan(&["data", "check", dir.to_str().unwrap(), "--words-num", "8"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("(coco, 5 captions per image, WORDS_NUM 8)"), "{text}");
    assert!(text.contains("train: 3 images, 3 classes (one per image"), "{text}");
    // "a photo number 0 with caption 0" is 9 tokens with BOS/EOS: all longer than 8.
    assert!(text.contains("15 longer than WORDS_NUM 8"), "{text}");
    let (code, text) = clipgan(&["data", "check", tmp.path().join("nothing").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(text.contains("dataset folder not found"), "{text}");
}

#[test]
fn same_seed_same_dataset_other_seed_other_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let gen = |name: &str, seed: u64| {
        let p = tmp.path().join(name);
        synth::generate(&p, &small(seed)).unwrap();
        p
    };
    let (a, b, c) = (gen("a", 5), gen("b", 5), gen("c", 6));
    let files = |root: &Path| -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.file_name().unwrap() != "README.txt" {
                    out.push((p.strip_prefix(root).unwrap().display().to_string(), std::fs::read(&p).unwrap()));
                }
            }
        }
        out.sort();
        out
    };
    let (fa, fb, fc) = (files(&a), files(&b), files(&c));
    assert_eq!(fa.len(), 52 + 52 + 5 + 4 + 1, "52 images, 52 caption files, 5 pickles, 4 CUB index files, attributes");
    assert!(fa == fb, "same seed, same bytes");
    assert!(fa != fc);
    assert!(!tmp.path().read_dir().unwrap().any(|e| e.unwrap().file_name().to_string_lossy().contains("partial")));
}

/// Nearest named colour of a pixel.
fn nearest<'a>(p: [u8; 3], palette: &[(&'a str, [u8; 3])]) -> &'a str {
    let d = |c: [u8; 3]| (0..3).map(|i| (p[i] as i32 - c[i] as i32).pow(2)).sum::<i32>();
    palette.iter().min_by_key(|(_, c)| d(*c)).unwrap().0
}

#[test]
fn captions_say_what_the_pixels_show_and_test_classes_are_unseen() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s");
    let cfg = SynthConfig { train: 120, test: 40, size: 64, seed: 11 };
    synth::generate(&out, &cfg).unwrap();
    let attrs: HashMap<String, Vec<String>> = std::fs::read_to_string(out.join("attributes.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<String> = l.split('\t').map(String::from).collect();
            (f[0].clone(), f)
        })
        .collect();
    assert_eq!(attrs.len(), 160);
    let mut palette: Vec<(&str, [u8; 3])> = BODY_COLOURS.iter().chain(MARK_COLOURS.iter()).copied().collect();
    palette.extend(BACKGROUNDS.iter().copied());
    let mut class_sets = Vec::new();
    let mut templates_seen = std::collections::BTreeSet::new();
    for split in [Split::Train, Split::Test] {
        let ds = Dataset::open(&DatasetSpec::new(&out, "birds", 10), split).unwrap();
        let mut classes = std::collections::BTreeMap::new();
        for (n, r) in ds.records.iter().enumerate() {
            let a = &attrs[&r.key];
            let (shape, body, marking, mcol, bg) = (&a[3], &a[4], &a[5], &a[6], &a[7]);
            classes.insert(r.class_id, (shape.clone(), body.clone(), mcol.clone()));
            assert_eq!(r.class_id.to_string(), a[2]);
            let syn = |kind: &str, word: &str| -> Vec<&'static str> {
                let all = if kind == "shape" {
                    synth::SHAPES.iter().find(|s| s.name() == word).unwrap().synonyms()
                } else {
                    synth::MARKINGS.iter().find(|s| s.name() == word).unwrap().synonyms()
                };
                all.to_vec()
            };
            for c in &r.captions {
                let words: Vec<&str> = c.split(|ch: char| !ch.is_alphanumeric() && ch != '-').collect();
                assert!(words.contains(&body.as_str()), "{c:?} lacks the body colour {body}");
                assert!(words.contains(&mcol.as_str()), "{c:?} lacks the marking colour {mcol}");
                assert!(syn("shape", shape).iter().any(|s| c.contains(s)), "{c:?} lacks the shape {shape}");
                assert!(syn("marking", marking).iter().any(|s| c.contains(s)), "{c:?} lacks the marking {marking}");
                if c.contains("background") || c.contains("backdrop") || c.contains("against") {
                    assert!(words.contains(&bg.as_str()), "{c:?} names another background than {bg}");
                }
                templates_seen.insert(c.split(' ').take(2).collect::<Vec<_>>().join(" "));
            }
            assert_eq!(r.captions.iter().collect::<std::collections::BTreeSet<_>>().len(), 10, "ten different captions");
            // Pixels: the body is the commonest non-background colour inside the box; an
            // image corner away from the box shows the background.
            let img = clipgan::data::dataset::decode_rgb(&r.image_path).unwrap();
            let [x, y, w, h] = r.bbox.unwrap();
            let mut counts: HashMap<&str, usize> = HashMap::new();
            for py in y as u32..(y + h) as u32 {
                for px in x as u32..(x + w) as u32 {
                    *counts.entry(nearest(img.get_pixel(px, py).0, &palette)).or_default() += 1;
                }
            }
            let top = counts.iter().filter(|(k, _)| *k != bg).max_by_key(|(_, v)| **v).unwrap().0;
            assert_eq!(top, body, "image {n} of {split}: {counts:?}");
            let s = cfg.size as f32;
            let corner = [(1.0, 1.0), (s - 2.0, 1.0), (1.0, s - 2.0), (s - 2.0, s - 2.0)]
                .into_iter()
                .max_by(|a, b| {
                    let dist = |p: (f32, f32)| (p.0 - (x + w / 2.0)).abs().max((p.1 - (y + h / 2.0)).abs());
                    dist(*a).partial_cmp(&dist(*b)).unwrap()
                })
                .unwrap();
            let bg_pixel = img.get_pixel(corner.0 as u32, corner.1 as u32).0;
            assert_eq!(nearest(bg_pixel, &BACKGROUNDS), bg, "image {n}: corner {bg_pixel:?}");
        }
        class_sets.push(classes);
    }
    // Varied sentences: many different openings.
    assert!(templates_seen.len() >= 10, "{templates_seen:?}");
    // Test classes are unseen, but their shapes and colours all appear in training classes.
    let (train, test) = (&class_sets[0], &class_sets[1]);
    assert!(test.keys().all(|k| !train.contains_key(k)));
    assert!(test.values().all(|t| !train.values().any(|s| s == t)), "a test species also trains");
    for (shape, body, mcol) in test.values() {
        assert!(train.values().any(|t| &t.0 == shape), "shape {shape} unseen in training");
        assert!(train.values().any(|t| &t.1 == body), "body colour {body} unseen in training");
        assert!(train.values().any(|t| &t.2 == mcol), "marking colour {mcol} unseen in training");
    }
}
