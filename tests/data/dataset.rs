//! The AttnGAN-layout reader: CUB-like and COCO-like fixtures with Python-written pickles,
//! the bounding-box crop, and every bad-input case of issue 3.

use crate::common::*;
use clipgan::data::dataset::{bbox_crop_rect, check_bbox, decode_rgb};
use clipgan::data::{Dataset, DatasetSpec, Split};
use std::path::Path;

fn spec(dir: &Path, name: &str, cpi: usize) -> DatasetSpec {
    DatasetSpec::new(dir, name, cpi)
}

fn open_err(spec: &DatasetSpec, split: Split) -> String {
    format!("{:#}", Dataset::open(spec, split).unwrap_err())
}

#[test]
fn reads_cub_layout_from_python2_and_python3_pickles() {
    for pickles in ["birds_py2", "birds_p4"] {
        let tmp = tempfile::tempdir().unwrap();
        birds(tmp.path(), pickles);
        let ds = Dataset::open(&spec(tmp.path(), "birds", 10), Split::Train).unwrap();
        assert_eq!(ds.len(), 4, "{pickles}");
        let keys: Vec<&str> = ds.records.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, BIRD_KEYS_TRAIN);
        assert_eq!(ds.records.iter().map(|r| r.class_id).collect::<Vec<_>>(), vec![1, 1, 2, 2]);
        assert_eq!(ds.num_classes(), 2);
        assert!(ds.class_source.is_some() && ds.bbox_source.is_some());
        // Caption k of image n = caption number n*10 + k; blank lines skipped; CUB's U+FFFD pair is a space.
        assert_eq!(ds.caption(2, 7), bird_caption(BIRD_KEYS_TRAIN[2], 7));
        assert_eq!(ds.caption(0, 5), bird_caption(BIRD_KEYS_TRAIN[0], 5));
        assert_eq!(ds.caption_position(27), (2, 7));
        assert_eq!(ds.num_captions(), 40);
        assert_eq!(ds.records[1].bbox, Some(bird_bbox(1).map(|v| v as f32)));
        assert!(ds.records[3].image_path.ends_with(format!("CUB_200_2011/images/{}.jpg", BIRD_KEYS_TRAIN[3])));

        let test = Dataset::open(&spec(tmp.path(), "birds", 10), Split::Test).unwrap();
        assert_eq!(test.len(), 2);
        assert_eq!(test.records[1].class_id, 3);
        assert_eq!(test.num_classes(), 1);
        assert_eq!(test.caption(1, 9), bird_caption(BIRD_KEYS_TEST[1], 9));
        assert_eq!(test.records[0].bbox, Some(bird_bbox(4).map(|v| v as f32)));
    }
}

#[test]
fn reads_coco_layout_without_classes() {
    let tmp = tempfile::tempdir().unwrap();
    coco(tmp.path());
    let ds = Dataset::open(&spec(tmp.path(), "coco", 5), Split::Train).unwrap();
    assert_eq!(ds.len(), 3);
    // No class_info: each image is its own class.
    assert_eq!(ds.records.iter().map(|r| r.class_id).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert_eq!(ds.num_classes(), 3);
    assert!(ds.class_source.is_none() && ds.bbox_source.is_none());
    // More captions than CAPTIONS_PER_IMAGE: the first five (AttnGAN).
    assert_eq!(ds.records[1].captions.len(), 5);
    assert_eq!(ds.caption(1, 4), "a photo number 1 with caption 4");
    assert!(ds.records[0].image_path.ends_with("train2014/COCO_train2014_000000000009.jpg"));
    let test = Dataset::open(&spec(tmp.path(), "coco", 5), Split::Test).unwrap();
    assert!(test.records[0].image_path.ends_with("val2014/COCO_val2014_000000000042.jpg"));
    assert_eq!(test.load_image(1).unwrap().dimensions(), (64 + 8 * 4, 48));
    // AttnGAN's own COCO layout: images/<key>.jpg.
    std::fs::rename(tmp.path().join("val2014"), tmp.path().join("images")).unwrap();
    let test = Dataset::open(&spec(tmp.path(), "coco", 5), Split::Test).unwrap();
    assert!(test.records[0].image_path.ends_with("images/COCO_val2014_000000000042.jpg"));
    // A coco dataset with class_info.pickle uses it.
    copy(&fixture("birds_p4/test/class_info.pickle"), &tmp.path().join("test/class_info.pickle"));
    let test = Dataset::open(&spec(tmp.path(), "coco", 5), Split::Test).unwrap();
    assert_eq!(test.records[0].class_id, 3);
}

#[test]
fn spec_from_config_resolves_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    birds(&tmp.path().join("data/birds"), "birds_p4");
    let cfg = tmp.path().join("cfg/bird.yml");
    write(&cfg, "DATASET_NAME: birds\nDATA_DIR: data/birds\nTEXT:\n  CAPTIONS_PER_IMAGE: 10\nCLIPGAN:\n  SKIP_BAD_IMAGES: true\n");
    let loaded = clipgan::config::load(&cfg).unwrap();
    let s = DatasetSpec::from_config(&loaded).unwrap();
    assert_eq!(s.data_dir, tmp.path().join("data/birds"));
    assert_eq!((s.dataset_name.as_str(), s.captions_per_image, s.skip_bad_images), ("birds", 10, true));
    assert_eq!(Dataset::open(&s, Split::Test).unwrap().len(), 2);
    write(&cfg, "DATA_DIR: data/nothing\n");
    let e = format!("{:#}", DatasetSpec::from_config(&clipgan::config::load(&cfg).unwrap()).unwrap_err());
    assert!(e.contains("DATA_DIR") && e.contains("does not exist"), "{e}");
}

#[test]
fn bbox_crop_follows_attngan() {
    // r = int(0.75 * max(w, h)), centre = int(x + w/2), int(y + h/2), clamped.
    assert_eq!(bbox_crop_rect([24.0, 14.0, 32.0, 36.0], 96, 72), (13, 5, 67, 59));
    assert_eq!(bbox_crop_rect([0.0, 0.0, 50.0, 50.0], 60, 60), (0, 0, 60, 60));
    assert_eq!(bbox_crop_rect([60.0, 27.0, 325.0, 304.0], 500, 375), (0, 0, 465, 375));
    assert_eq!(bbox_crop_rect([10.5, 20.5, 10.0, 4.0], 100, 100), (8, 15, 22, 29));
    // Degenerate input never gives an empty crop.
    let (x1, y1, x2, y2) = bbox_crop_rect([200.0, 200.0, 0.0, 0.0], 100, 100);
    assert!(x2 > x1 && y2 > y1 && x2 <= 100 && y2 <= 100);

    let tmp = tempfile::tempdir().unwrap();
    birds(tmp.path(), "birds_py2");
    let ds = Dataset::open(&spec(tmp.path(), "birds", 10), Split::Train).unwrap();
    // Bird 0: 96x72 image, box (24, 14, 32, 36) -> crop (13, 5)..(67, 59).
    let img = ds.load_image(0).unwrap();
    assert_eq!(img.dimensions(), (54, 54));
    let white = |p: &image::Rgb<u8>| p.0.iter().all(|&c| c > 230);
    // The box sits at (24-13, 14-5) = (11, 9) in the crop, 32x36.
    assert!(white(img.get_pixel(11 + 16, 9 + 18)));
    assert!(!white(img.get_pixel(3, 3)) && !white(img.get_pixel(50, 50)));
    assert!(white(img.get_pixel(12, 10)) && !white(img.get_pixel(8, 10)));
    // Bird 3: 120x64, box (33, 12, 40, 32): r = 30, centre (53, 28) -> x 23..83, y 0..58 (clamped).
    assert_eq!(ds.load_image(3).unwrap().dimensions(), (60, 58));
}

#[test]
fn missing_folder_split_and_pickles() {
    let tmp = tempfile::tempdir().unwrap();
    let e = open_err(&spec(&tmp.path().join("nowhere"), "birds", 10), Split::Train);
    assert!(e.contains("nowhere") && e.contains("dataset folder not found"), "{e}");

    birds(tmp.path(), "birds_p4");
    std::fs::remove_file(tmp.path().join("train/filenames.pickle")).unwrap();
    let e = open_err(&spec(tmp.path(), "birds", 10), Split::Train);
    assert!(e.contains("train/filenames.pickle") && e.contains("missing"), "{e}");

    std::fs::remove_dir_all(tmp.path().join("test")).unwrap();
    let e = open_err(&spec(tmp.path(), "birds", 10), Split::Test);
    assert!(e.contains("test") && e.contains("split's folder is missing"), "{e}");

    let tmp = tempfile::tempdir().unwrap();
    birds(tmp.path(), "birds_p4");
    std::fs::remove_file(tmp.path().join("train/class_info.pickle")).unwrap();
    let e = open_err(&spec(tmp.path(), "birds", 10), Split::Train);
    assert!(e.contains("train/class_info.pickle") && e.contains("missing"), "{e}");

    let tmp = tempfile::tempdir().unwrap();
    birds(tmp.path(), "birds_p4");
    std::fs::remove_file(tmp.path().join("CUB_200_2011/bounding_boxes.txt")).unwrap();
    let e = open_err(&spec(tmp.path(), "birds", 10), Split::Train);
    assert!(e.contains("bounding_boxes.txt") && e.contains("missing"), "{e}");
    // Another dataset name without boxes: no crop.
    let ds = Dataset::open(&spec(tmp.path(), "synthetic", 10), Split::Train).unwrap();
    assert!(ds.bbox_source.is_none() && ds.records[0].bbox.is_none());
    assert_eq!(ds.load_image(0).unwrap().dimensions(), bird_size(0));
}

#[test]
fn pickles_of_the_wrong_shape_or_corrupt() {
    let cases = [
        ("filenames_dict.pickle", "train/filenames.pickle", "found type dict"),
        ("filenames_ints.pickle", "train/filenames.pickle", "item 0 is of type int, not a string"),
        ("class_info_strings.pickle", "train/class_info.pickle", "item 0 is of type str, not an integer"),
        ("class_info_short.pickle", "train/class_info.pickle", "3 class ids for the 4 images"),
    ];
    for (bad, target, msg) in cases {
        let tmp = tempfile::tempdir().unwrap();
        birds(tmp.path(), "birds_py2");
        copy(&fixture(&format!("bad/{bad}")), &tmp.path().join(target));
        let e = open_err(&spec(tmp.path(), "birds", 10), Split::Train);
        assert!(e.contains(target) && e.contains(msg), "{bad}: {e}");
    }
    // A truncated pickle and a file that is not a pickle at all.
    let tmp = tempfile::tempdir().unwrap();
    birds(tmp.path(), "birds_py2");
    let p = tmp.path().join("train/filenames.pickle");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = open_err(&spec(tmp.path(), "birds", 10), Split::Train);
    assert!(e.contains("train/filenames.pickle") && e.contains("not a readable pickle"), "{e}");
    std::fs::write(&p, "002.Laysan_Albatross/Laysan_Albatross_0002_1027\n").unwrap();
    let e = open_err(&spec(tmp.path(), "birds", 10), Split::Train);
    assert!(e.contains("train/filenames.pickle") && e.contains("not a readable pickle"), "{e}");
}

#[test]
fn caption_files_missing_or_short() {
    let tmp = tempfile::tempdir().unwrap();
    birds(tmp.path(), "birds_p4");
    let f = tmp.path().join("text").join(format!("{}.txt", BIRD_KEYS_TRAIN[1]));
    std::fs::remove_file(&f).unwrap();
    let e = open_err(&spec(tmp.path(), "birds", 10), Split::Train);
    assert!(e.contains(&format!("{}.txt", BIRD_KEYS_TRAIN[1])) && e.contains("caption file not found"), "{e}");
    // Nine captions where ten are expected.
    let nine: String = (0..9).map(|k| format!("caption {k}\n")).collect();
    write(&f, nine);
    let e = open_err(&spec(tmp.path(), "birds", 10), Split::Train);
    assert!(e.contains(&format!("{}.txt", BIRD_KEYS_TRAIN[1])) && e.contains("9 captions, expected 10"), "{e}");
    // A second problem is counted, and scan lists both.
    std::fs::remove_file(tmp.path().join("text").join(format!("{}.txt", BIRD_KEYS_TRAIN[3]))).unwrap();
    let e = open_err(&spec(tmp.path(), "birds", 10), Split::Train);
    assert!(e.contains("and 1 more problems"), "{e}");
    let (_, problems) = Dataset::scan(&spec(tmp.path(), "birds", 10), Split::Train).unwrap();
    assert_eq!(problems.len(), 2);
    // Fewer captions per image are fine.
    let ds = Dataset::open(&spec(tmp.path(), "birds", 5), Split::Test).unwrap();
    assert_eq!(ds.records[0].captions.len(), 5);
}

#[test]
fn unreadable_and_truncated_images() {
    let tmp = tempfile::tempdir().unwrap();
    birds(tmp.path(), "birds_p4");
    let s = spec(tmp.path(), "birds", 10);
    let img = |n: usize| tmp.path().join("CUB_200_2011/images").join(format!("{}.jpg", BIRD_KEYS_TRAIN[n]));
    // Missing image: an error at open (unless skipping).
    std::fs::remove_file(img(0)).unwrap();
    let e = open_err(&s, Split::Train);
    assert!(e.contains(&format!("{}.jpg", BIRD_KEYS_TRAIN[0])) && e.contains("not found"), "{e}");
    let skipping = DatasetSpec { skip_bad_images: true, ..s.clone() };
    let ds = Dataset::open(&skipping, Split::Train).unwrap();
    let e = format!("{:#}", ds.load_image(0).unwrap_err());
    assert!(e.contains(&format!("{}.jpg", BIRD_KEYS_TRAIN[0])) && e.contains("cannot read"), "{e}");
    // Not an image; truncated JPEG; corrupt JPEG body.
    std::fs::write(img(0), b"this is not a jpeg").unwrap();
    let ds = Dataset::open(&s, Split::Train).unwrap();
    let e = format!("{:#}", ds.load_image(0).unwrap_err());
    assert!(e.contains(&format!("{}.jpg", BIRD_KEYS_TRAIN[0])) && e.contains("not an image"), "{e}");
    let bytes = std::fs::read(img(1)).unwrap();
    std::fs::write(img(1), &bytes[..bytes.len() * 2 / 3]).unwrap();
    let e = format!("{:#}", ds.load_image(1).unwrap_err());
    assert!(e.contains(&format!("{}.jpg", BIRD_KEYS_TRAIN[1])) && e.contains("truncated"), "{e}");
    let mut corrupt = std::fs::read(img(2)).unwrap();
    let n = corrupt.len();
    corrupt.splice(2..n - 2, std::iter::repeat_n(0xFFu8, n - 4));
    std::fs::write(img(2), &corrupt).unwrap();
    let e = format!("{:#}", ds.load_image(2).unwrap_err());
    assert!(e.contains(&format!("{}.jpg", BIRD_KEYS_TRAIN[2])) && e.contains("cannot decode"), "{e}");
    assert!(decode_rgb(&img(3)).is_ok());
}

#[test]
fn bounding_box_outside_the_image_or_malformed() {
    assert!(check_bbox([10.0, 10.0, 20.0, 20.0], 40, 40).is_ok());
    assert!(check_bbox([-1.0, 0.0, 41.0, 40.0], 40, 40).is_ok(), "rounding tolerance");
    assert!(check_bbox([30.0, 10.0, 20.0, 20.0], 40, 40).is_err());
    assert!(check_bbox([10.0, 10.0, 0.0, 20.0], 40, 40).is_err());
    assert!(check_bbox([f32::NAN, 10.0, 5.0, 5.0], 40, 40).is_err());

    let tmp = tempfile::tempdir().unwrap();
    birds(tmp.path(), "birds_p4");
    let boxes = tmp.path().join("CUB_200_2011/bounding_boxes.txt");
    let text = std::fs::read_to_string(&boxes).unwrap();
    // Bird 2 is 80x80: a box from x = 70, 30 wide, leaves it.
    write(&boxes, text.replace(&format!("3 {}.0", bird_bbox(2)[0]), "3 70.0"));
    let ds = Dataset::open(&spec(tmp.path(), "birds", 10), Split::Train).unwrap();
    let e = format!("{:#}", ds.load_image(2).unwrap_err());
    assert!(e.contains("bounding_boxes.txt") && e.contains(BIRD_KEYS_TRAIN[2]) && e.contains("outside the 80x80 image"), "{e}");
    assert!(ds.load_image(1).is_ok());

    // A malformed line, an unknown id, a key without a box.
    write(&boxes, text.replace("2 ", "2 x "));
    let e = open_err(&spec(tmp.path(), "birds", 10), Split::Train);
    assert!(e.contains("bounding_boxes.txt:2") && e.contains("expected"), "{e}");
    write(&boxes, format!("{text}99 1 1 2 2\n"));
    let e = open_err(&spec(tmp.path(), "birds", 10), Split::Train);
    assert!(e.contains("bounding_boxes.txt:7") && e.contains("image id 99"), "{e}");
    write(&boxes, text.lines().filter(|l| !l.starts_with("4 ")).map(|l| format!("{l}\n")).collect::<String>());
    let e = open_err(&spec(tmp.path(), "birds", 10), Split::Train);
    assert!(e.contains("bounding_boxes.txt") && e.contains(&format!("no bounding box for {}", BIRD_KEYS_TRAIN[3])), "{e}");
    std::fs::remove_file(tmp.path().join("CUB_200_2011/images.txt")).unwrap();
    let e = open_err(&spec(tmp.path(), "birds", 10), Split::Train);
    assert!(e.contains("images.txt") && e.contains("cannot read"), "{e}");
}
