//! Evaluation (method.md section 7, docs/evaluation.md): Fréchet distance, Inception
//! Score, KID, R-precision, pytorch-fid's FID Inception V3, StackGAN's CUB Inception, image
//! folders and cached statistics, the published reference rows and the report of results.
//! The `clipgan eval` job that uses them is `jobs::eval`.
pub mod folders;
pub mod frechet;
pub mod inception;
pub mod inception_score;
pub mod kid;
pub mod pth;
pub mod reference;
pub mod report;
pub mod rprecision;
pub mod sampling;
pub mod stackgan_inception;
pub mod stats;
