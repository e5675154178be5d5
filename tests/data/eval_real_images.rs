//! The real images that FID, KID and FD_CLIP compare generated images with are the test
//! images as the training pipeline prepares them (bounding-box crop, shorter side resized,
//! centre crop, no flip), not the bounding-box crop squashed to a square.
use crate::common::*;
use clipgan::data::transforms::{self, PixelMode};
use clipgan::data::{Dataset, DatasetSpec, Loader, LoaderConfig, Split, Tokenizer};
use clipgan::jobs::eval::real_test_image;
use std::sync::Arc;

#[test]
fn real_images_are_the_evaluation_loaders_test_images() {
    let dir = tempfile::tempdir().unwrap();
    birds(dir.path(), "birds_py2");
    let test = Arc::new(Dataset::open(&DatasetSpec::new(dir.path(), "birds", 10), Split::Test).unwrap());
    let mut config = clipgan::config::Config::default();
    config.train.batch_size = test.len() as u32;
    config.workers = 0;
    let size = 64;
    let cfg = LoaderConfig { sizes: vec![size], ..LoaderConfig::for_evaluation(&config, PixelMode::Gan) };
    let batch = Loader::new(test.clone(), Arc::new(Tokenizer::builtin().unwrap()), cfg, 0, 0).unwrap().next().unwrap().unwrap();
    let from_loader = transforms::tensor_to_images(&batch.images[0], PixelMode::Gan);
    let mut squashed_differs = false;
    for (row, &n) in batch.indices.iter().enumerate() {
        let real = real_test_image(&test, n, size).unwrap();
        assert_eq!(real.dimensions(), (size, size));
        assert_eq!(real, from_loader[row], "test image {n}");
        // The bounding-box crops of these images are not square: squashing them (the old
        // reference) gives other pixels.
        let crop = test.load_image(n).unwrap();
        squashed_differs |= crop.width() != crop.height() && transforms::resize_exact(&crop, size, size) != real;
    }
    assert!(squashed_differs);
}
