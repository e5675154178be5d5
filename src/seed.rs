//! Randomness derived from (seed, position), never from a generator's running state, so
//! that a job resumed from a checkpoint draws exactly what an uninterrupted run would.
//!
//! Every random draw of a job names its purpose (one of [`stream`]) and its position
//! (epoch, step, sample index ...): `derive(seed, &[stream::INIT])`,
//! `derive(seed, &[stream::STEP, step])`. libtorch's global generator is re-seeded from
//! such a value right before the draws that need it ([`seed_torch`]). Rust-side draws
//! take a generator seeded the same way: [`Rng`] for simple choices, [`chacha`] where
//! `rand`'s API is wanted (the data loader's shuffles and augmentation, the synthetic
//! dataset).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Purposes of random draws, so two uses of the same position never share numbers.
pub mod stream {
    /// Model parameter initialisation.
    pub const INIT: u64 = 1;
    /// Anything drawn inside a training step (dropout, noise ...): parts `[STEP, step]`.
    pub const STEP: u64 = 2;
    /// Validation (candidate choice for R-precision ...): parts `[VAL, epoch]`.
    pub const VAL: u64 = 3;
    /// Sample grids (fixed captions and noise).
    pub const SAMPLE: u64 = 4;
    /// Benchmarks and other inputs made up on the spot.
    pub const BENCH: u64 = 5;
    /// The data loader's order of an epoch's records: parts `[SHUFFLE, epoch]`.
    pub const SHUFFLE: u64 = 6;
    /// The data loader's crop, flip and caption choice of one record:
    /// parts `[AUGMENT, epoch, record]`.
    pub const AUGMENT: u64 = 7;
    /// The synthetic dataset's split of species into train and test classes:
    /// parts `[SYNTH_SPECIES, attempt]`.
    pub const SYNTH_SPECIES: u64 = 8;
    /// A synthetic scene (marking, background, pose, captions): parts
    /// `[SYNTH_SCENE, split, index]`.
    pub const SYNTH_SCENE: u64 = 9;
    /// A synthetic image's pixel noise: parts `[SYNTH_NOISE, hash of its key]`.
    pub const SYNTH_NOISE: u64 = 10;
}

/// SplitMix64's increment (the golden ratio in 64 bits).
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's finaliser alone: a bijective, well-mixed 64-bit hash.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64's output for state `x`: a bijective, well-mixed 64-bit hash (also a cheap
/// per-pixel noise hash).
pub fn splitmix64(x: u64) -> u64 {
    mix64(x.wrapping_add(GOLDEN))
}

/// A seed for the draw at `parts` (purpose, epoch, step, ...) of the run seeded `seed`.
/// Different part lists give unrelated values; `[a, b]` and `[b, a]` differ.
pub fn derive(seed: u64, parts: &[u64]) -> u64 {
    let mut h = splitmix64(seed);
    for (i, p) in parts.iter().enumerate() {
        // Mix the index too, so trailing zero parts still change the result.
        h = splitmix64(h ^ splitmix64(p.wrapping_add((i as u64 + 1).wrapping_mul(0xD6E8_FEB8_6659_FD93))));
    }
    h
}

/// A `rand` generator (ChaCha8) for the draw at `parts` of the run seeded `seed`.
pub fn chacha(seed: u64, parts: &[u64]) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(derive(seed, parts))
}

/// Seed libtorch's generators (CPU and every CUDA device) for the draw at `parts`.
pub fn seed_torch(seed: u64, parts: &[u64]) {
    // libtorch takes a non-negative i64 here.
    tch::manual_seed((derive(seed, parts) >> 1) as i64);
}

/// A small deterministic generator for Rust-side choices (candidate lists, shuffles)
/// seeded from [`derive`]; xorshift-free SplitMix64 stream.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64, parts: &[u64]) -> Rng {
        Rng(derive(seed, parts))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix64(self.0)
    }

    /// Uniform in `0..n` (n > 0), without modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0)");
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}
