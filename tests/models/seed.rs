//! Re-seeding libtorch's global generator from a position repeats its draws. Alone in
//! its own test process: other tests creating random tensors in parallel threads would
//! draw from the same global generator between the seeding and the draws.
use clipgan::seed;
use tch::{Device, Kind, Tensor};

#[test]
fn seeding_from_a_position_repeats_the_draws() {
    seed::seed_torch(5, &[seed::stream::STEP, 3]);
    let a = Tensor::randn([4], (Kind::Float, Device::Cpu));
    let _ = Tensor::randn([10], (Kind::Float, Device::Cpu));
    seed::seed_torch(5, &[seed::stream::STEP, 3]);
    let b = Tensor::randn([4], (Kind::Float, Device::Cpu));
    assert_eq!(Vec::<f32>::try_from(&a).unwrap(), Vec::<f32>::try_from(&b).unwrap());
    seed::seed_torch(5, &[seed::stream::STEP, 4]);
    let c = Tensor::randn([4], (Kind::Float, Device::Cpu));
    assert_ne!(Vec::<f32>::try_from(&a).unwrap(), Vec::<f32>::try_from(&c).unwrap());
}
