//! `clipgan data ...`: the synthetic dataset and dataset checks.
use crate::data::check::{self, CheckOptions};
use crate::data::synth::{self, SynthConfig};
use crate::data::Tokenizer;
use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Write the synthetic captioned dataset (AttnGAN's CUB layout, 10 captions per image,
    /// unseen test classes): the default dataset of the demo and the tests.
    Synth {
        /// Output folder (must not exist, or be empty).
        #[arg(long)]
        out: PathBuf,
        /// Training images.
        #[arg(long, default_value_t = 2000)]
        train: usize,
        /// Test images.
        #[arg(long, default_value_t = 400)]
        test: usize,
        /// Image side in pixels.
        #[arg(long, default_value_t = 128)]
        size: u32,
        #[arg(long, default_value_t = 100)]
        seed: u64,
    },
    /// Read a dataset as training does, decode every image, and report counts, classes,
    /// caption statistics, image sizes and every problem found (exit status 1 if any).
    Check {
        /// The dataset folder (DATA_DIR).
        dir: PathBuf,
        /// DATASET_NAME (default: coco without class_info.pickle, birds with CUB bounding boxes, else synthetic).
        #[arg(long)]
        dataset_name: Option<String>,
        /// TEXT.CAPTIONS_PER_IMAGE (default: 5 for coco, else 10).
        #[arg(long)]
        captions_per_image: Option<usize>,
        /// TEXT.WORDS_NUM, for counting captions that get truncated.
        #[arg(long, default_value_t = 77)]
        words_num: usize,
        /// `builtin` or a tokenizer.json / CLIP checkpoint folder.
        #[arg(long, default_value = "builtin")]
        tokenizer: String,
        /// Image-decoding threads.
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
}

pub fn run(cmd: DataCommand) -> Result<ExitCode> {
    match cmd {
        DataCommand::Synth { out, train, test, size, seed } => {
            let t0 = std::time::Instant::now();
            let s = synth::generate(&out, &SynthConfig { train, test, size, seed })?;
            println!(
                "wrote {}: {} train images ({} classes), {} test images ({} unseen classes), {size}x{size} px, {} captions each, in {:.1} s",
                out.display(),
                s.train_images,
                s.train_classes,
                s.test_images,
                s.test_classes,
                synth::CAPTIONS_PER_IMAGE,
                t0.elapsed().as_secs_f64()
            );
            println!("use it with DATASET_NAME: birds and DATA_DIR: {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::Check { dir, dataset_name, captions_per_image, words_num, tokenizer, threads } => {
            let tok = Tokenizer::from_setting(&tokenizer, &std::env::current_dir()?)?;
            let opts = CheckOptions { dataset_name, captions_per_image, words_num, threads };
            let report = check::check(&dir, &opts, &tok);
            print!("{report}");
            Ok(if report.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}
