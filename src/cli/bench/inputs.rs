//! Random inputs the benches share.
use crate::data::TokenBatch;
use crate::seed;
use tch::Tensor;

/// Random token batch: lengths uniform in [min_len, max_len], BOS/EOS ids, zero padding.
pub(super) fn random_tokens(b: i64, l: i64, min_len: i64, max_len: i64, vocab: i64, salt: u64) -> TokenBatch {
    let mut rng = seed::Rng::new(7, &[seed::stream::BENCH, salt]);
    let mut ids = vec![0i64; (b * l) as usize];
    let mut mask = vec![false; (b * l) as usize];
    let mut lengths = Vec::new();
    for r in 0..b {
        let n = (min_len + rng.below((max_len - min_len + 1) as u64) as i64).min(l);
        for t in 0..n {
            let id = if t == 0 {
                vocab - 2
            } else if t == n - 1 {
                vocab - 1
            } else {
                1 + rng.below((vocab - 3) as u64) as i64
            };
            ids[(r * l + t) as usize] = id;
            mask[(r * l + t) as usize] = true;
        }
        lengths.push(n);
    }
    TokenBatch {
        ids: Tensor::from_slice(&ids).view([b, l]),
        mask: Tensor::from_slice(&mask).view([b, l]),
        lengths: Tensor::from_slice(&lengths),
    }
}
