//! Fréchet distance, Inception Score, KID and the R-precision protocol against known
//! answers (issue 7's tests).
use clipgan::eval::frechet::{frechet_distance, Stats};
use clipgan::eval::inception_score::inception_score;
use clipgan::eval::kid::{kid, mmd2_unbiased};
use clipgan::eval::rprecision::{r_precision, Protocol};
use tch::{Device, Kind, Tensor};

const F64: (Kind, Device) = (Kind::Double, Device::Cpu);

fn stats(mu: &[f64], sigma: &[f64]) -> Stats {
    let d = mu.len() as i64;
    Stats { mu: Tensor::from_slice(mu), sigma: Tensor::from_slice(sigma).view([d, d]) }
}

fn random_cov(d: i64, n: i64, seed: i64) -> Tensor {
    tch::manual_seed(seed);
    let x = Tensor::randn([n, d], F64);
    x.transpose(0, 1).matmul(&x) / n as f64
}

#[test]
fn identical_stats_give_zero() {
    let s = random_cov(32, 100, 1);
    let a = Stats { mu: Tensor::ones([32], F64), sigma: s.shallow_clone() };
    let b = Stats { mu: Tensor::ones([32], F64), sigma: s };
    let d = frechet_distance(&a, &b).unwrap();
    assert!(d.abs() < 1e-9, "{d}");
}

#[test]
fn diagonal_covariances_closed_form() {
    // diag: sum (mu1-mu2)^2 + sum (sqrt(a) - sqrt(b))^2
    let a = stats(&[0.0, 1.0, 2.0], &[4.0, 0.0, 0.0, 0.0, 9.0, 0.0, 0.0, 0.0, 1.0]);
    let b = stats(&[1.0, 1.0, 0.0], &[1.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 16.0]);
    let want = (1.0 + 0.0 + 4.0) + (1.0 + 1.0 + 9.0);
    let d = frechet_distance(&a, &b).unwrap();
    assert!((d - want).abs() < 1e-10, "{d} vs {want}");
}

#[test]
fn known_2x2_case() {
    // S1 = [[2,1],[1,2]], S2 = I: tr sqrt(S1) = sqrt(3) + 1 (eigenvalues 3 and 1).
    let a = stats(&[0.0, 0.0], &[2.0, 1.0, 1.0, 2.0]);
    let b = stats(&[3.0, 4.0], &[1.0, 0.0, 0.0, 1.0]);
    let want = 25.0 + 4.0 + 2.0 - 2.0 * (3f64.sqrt() + 1.0);
    let d = frechet_distance(&a, &b).unwrap();
    assert!((d - want).abs() < 1e-12, "{d} vs {want}");
}

#[test]
fn singular_covariance_is_stable() {
    // 10 samples in 64-d: rank 9. The distance of a set to itself must still be ~0:
    // the square roots of the ~55 round-off eigenvalues (~1e-16) add ~1e-8 each, so
    // relative to the traces (~128) the error stays below 1e-8.
    let s = random_cov(64, 10, 2);
    let tr = 2.0 * s.trace().double_value(&[]);
    let a = Stats { mu: Tensor::zeros([64], F64), sigma: s.shallow_clone() };
    let b = Stats { mu: Tensor::zeros([64], F64), sigma: s };
    let d = frechet_distance(&a, &b).unwrap();
    assert!((d / tr).abs() < 1e-8, "{d} (traces {tr})");
}

#[test]
fn random_64d_matches_direct_eigen_computation() {
    let s1 = random_cov(64, 200, 3);
    let s2 = random_cov(64, 150, 4) * 2.0;
    tch::manual_seed(5);
    let mu1 = Tensor::randn([64], F64);
    let mu2 = Tensor::randn([64], F64);
    // Direct: tr sqrt(S1 S2) = sum of sqrt of the (complex) eigenvalues of S1 S2.
    let ev = s1.matmul(&s2).linalg_eigvals();
    let re = ev.real().to_kind(Kind::Double);
    let im = ev.imag().to_kind(Kind::Double);
    let (re, im): (Vec<f64>, Vec<f64>) = (Vec::try_from(&re).unwrap(), Vec::try_from(&im).unwrap());
    let tr_sqrt: f64 = re
        .iter()
        .zip(&im)
        .map(|(r, i)| {
            let m = (r * r + i * i).sqrt();
            ((m + r) / 2.0).sqrt() // real part of the principal square root
        })
        .sum();
    let diff = &mu1 - &mu2;
    let want = diff.dot(&diff).double_value(&[]) + s1.trace().double_value(&[]) + s2.trace().double_value(&[]) - 2.0 * tr_sqrt;
    let got = frechet_distance(&Stats { mu: mu1, sigma: s1 }, &Stats { mu: mu2, sigma: s2 }).unwrap();
    let rel = ((got - want) / want).abs();
    assert!(rel < 1e-6, "got {got}, direct {want}, relative error {rel}");
}

#[test]
fn stats_from_features_match_numpy_cov() {
    let f = Tensor::from_slice(&[1.0, 2.0, 3.0, 5.0, 5.0, 11.0]).view([3, 2]);
    let s = Stats::from_features(&f).unwrap();
    let mu: Vec<f64> = Vec::try_from(&s.mu).unwrap();
    assert_eq!(mu, vec![3.0, 6.0]);
    let sig: Vec<f64> = Vec::try_from(s.sigma.view(-1)).unwrap();
    // np.cov([[1,3,5],[2,5,11]]) = [[4, 9], [9, 21]]
    assert_eq!(sig, vec![4.0, 9.0, 9.0, 21.0]);
}

#[test]
fn mismatched_dimensions_are_an_error() {
    let a = stats(&[0.0, 0.0], &[1.0, 0.0, 0.0, 1.0]);
    let b = stats(&[0.0], &[1.0]);
    assert!(frechet_distance(&a, &b).is_err());
}

#[test]
fn inception_score_known_answers() {
    // Each image certain of one class, classes uniform over 10 within every split: IS = 10.
    let n = 100;
    let labels = Tensor::arange(n, (Kind::Int64, Device::Cpu)).remainder(10);
    let logits = labels.one_hot(10).to_kind(Kind::Double) * 1000.0;
    let s = inception_score(&logits, 10).unwrap();
    assert!((s.mean - 10.0).abs() < 1e-6 && s.std < 1e-6, "{s:?}");
    // Uniform predictions: IS = 1.
    let s = inception_score(&Tensor::zeros([50, 7], F64), 5).unwrap();
    assert!((s.mean - 1.0).abs() < 1e-12, "{s:?}");
    // Two classes, p(y|x) = (0.8, 0.2) or (0.2, 0.8) half each: IS = exp(KL(0.8,0.2 || 0.5,0.5)).
    let l = (4f64).ln();
    let rows: Vec<f64> = (0..20).flat_map(|i| if i % 2 == 0 { [l, 0.0] } else { [0.0, l] }).collect();
    let s = inception_score(&Tensor::from_slice(&rows).view([20, 2]), 2).unwrap();
    let want = (0.8 * (0.8f64 / 0.5).ln() + 0.2 * (0.2f64 / 0.5).ln()).exp();
    assert!((s.mean - want).abs() < 1e-12, "{s:?} vs {want}");
    assert!(inception_score(&Tensor::zeros([5, 3], F64), 10).is_err());
}

#[test]
fn kid_matches_direct_mmd_and_vanishes_for_equal_distributions() {
    tch::manual_seed(7);
    let x = Tensor::randn([6, 3], F64);
    let y = Tensor::randn([6, 3], F64) + 1.0;
    // Direct double loop.
    let k = |a: &Tensor, b: &Tensor| (a.dot(b).double_value(&[]) / 3.0 + 1.0).powi(3);
    let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
    for i in 0..6 {
        for j in 0..6 {
            if i != j {
                sxx += k(&x.get(i), &x.get(j));
            }
        }
        for j in 0..6 {
            sxy += k(&x.get(i), &y.get(j));
        }
    }
    for i in 0..6 {
        for j in 0..6 {
            if i != j {
                syy += k(&y.get(i), &y.get(j));
            }
        }
    }
    let want = sxx / 30.0 + syy / 30.0 - 2.0 * sxy / 36.0;
    let got = mmd2_unbiased(&x, &y).unwrap();
    assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    // Subsets as large as the sets: every subset is a permutation, so KID = MMD², std 0.
    let s = kid(&x, &y, 3, 100, 1).unwrap();
    assert!((s.mean - want).abs() < 1e-9 && s.std < 1e-9, "{s:?}");
    // Same distribution: near 0 (unbiased); shifted: clearly positive.
    let a = Tensor::randn([400, 64], F64);
    let b = Tensor::randn([400, 64], F64);
    let same = kid(&a, &b, 10, 200, 2).unwrap();
    let shifted = kid(&a, &(&b + 0.5), 10, 200, 2).unwrap();
    eprintln!("same {same:?} shifted {shifted:?}");
    assert!(same.mean.abs() < 3.0 * same.std.max(1e-3), "{same:?}");
    assert!(shifted.mean > 10.0 * same.mean.abs() && shifted.mean > 5.0 * shifted.std, "{shifted:?} vs {same:?}");
}

fn small_protocol(trials: usize) -> Protocol {
    Protocol { candidates: 100, trials, folds: 10, seed: 3 }
}

#[test]
fn rprecision_perfect_encoder_scores_one() {
    // 300 images in 30 classes, each code a distinct one-hot: image i's code equals text i's.
    let n = 3000;
    let codes = Tensor::eye(n, (Kind::Float, Device::Cpu));
    let classes: Vec<i64> = (0..n).map(|i| i / 10).collect();
    let r = r_precision(&codes, &codes, &classes, &small_protocol(3000)).unwrap();
    assert_eq!(r.mean, 1.0);
    assert_eq!(r.std, 0.0);
    assert_eq!(r.folds.len(), 10);
}

#[test]
fn rprecision_random_encoder_scores_chance() {
    let n = 20_000;
    tch::manual_seed(11);
    let img = Tensor::randn([n, 16], (Kind::Float, Device::Cpu));
    let txt = Tensor::randn([n, 16], (Kind::Float, Device::Cpu));
    let classes: Vec<i64> = (0..n).collect();
    let r = r_precision(&img, &txt, &classes, &small_protocol(20_000)).unwrap();
    // chance 1/100; 20,000 trials on distinct images: std of the mean ~0.0007.
    assert!((r.mean - 0.01).abs() < 0.003, "{r:?}");
    // A constant encoder ties everywhere: DM-GAN's argmax gives a tie to the first index,
    // the ground truth, so every trial is a hit.
    let ones = Tensor::ones([1000, 4], (Kind::Float, Device::Cpu));
    let r = r_precision(&ones, &ones, &classes[..1000], &small_protocol(1000)).unwrap();
    assert_eq!(r.mean, 1.0);
}

#[test]
fn rprecision_trial_t_uses_generated_image_t() {
    // 200 images; the first 100 match their captions, the other 100 point away from
    // theirs (always a miss). Trial t is image t: 100 trials are all hits, 200 trials
    // half; more trials than generated images is an error (the old protocol reused image
    // t mod N, counting some images twice).
    let n = 200;
    let img = Tensor::eye(n, (Kind::Float, Device::Cpu));
    let txt = img.copy();
    let _ = txt.narrow(0, 100, 100).g_mul_scalar_(-1.0);
    let classes: Vec<i64> = (0..n).collect();
    let p = Protocol { candidates: 10, trials: 100, folds: 10, seed: 1 };
    assert_eq!(r_precision(&img, &txt, &classes, &p).unwrap().mean, 1.0);
    let p = Protocol { candidates: 10, trials: 200, folds: 10, seed: 1 };
    let r = r_precision(&img, &txt, &classes, &p).unwrap();
    assert_eq!(r.mean, 0.5);
    assert_eq!(r.folds, [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    let p = Protocol { candidates: 10, trials: 201, folds: 10, seed: 1 };
    let e = r_precision(&img, &txt, &classes, &p).unwrap_err().to_string();
    assert!(e.contains("201 trials but 200 generated images"), "{e}");
}

#[test]
fn rprecision_candidates_come_from_other_classes() {
    // Texts of an image's own class are identical to its code, the others' orthogonal; a
    // candidate from the same class would show as a tie. Drawn only from other classes,
    // every candidate scores 0 against the ground truth's 1.
    let n = 200;
    let classes: Vec<i64> = (0..n).map(|i| i / 50).collect(); // 4 classes of 50
    let class_codes = Tensor::eye(4, (Kind::Float, Device::Cpu));
    let idx = Tensor::from_slice(&classes);
    let codes = class_codes.index_select(0, &idx);
    let p = Protocol { candidates: 100, trials: 200, folds: 10, seed: 1 };
    let r = r_precision(&codes, &codes, &classes, &p).unwrap();
    assert_eq!(r.mean, 1.0);
    // Too few other-class captions for 99 negatives: an error, not a silent shortcut.
    let few: Vec<i64> = (0..n).map(|i| if i < 150 { 0 } else { 1 }).collect();
    let e = r_precision(&codes, &codes, &few, &p).unwrap_err().to_string();
    assert!(e.contains("only 50 captions of other classes"), "{e}");
    // Deterministic for a seed.
    let r1 = r_precision(&codes, &codes.flip([1]), &classes, &p).unwrap();
    let r2 = r_precision(&codes, &codes.flip([1]), &classes, &p).unwrap();
    assert_eq!(r1.folds, r2.folds);
}

#[test]
fn rprecision_one_pass_ranks_every_image_once_against_other_classes() {
    // CLIP finetuning's validation: each image once, candidates capped by the split.
    let classes = [0i64, 0, 1, 1, 2, 2];
    let eye = Tensor::eye(6, (Kind::Float, Device::Cpu));
    let p = Protocol::one_pass(&classes, 100, 1).unwrap();
    // Each image matches its own caption: all hits; 4 other-class captions each.
    let rp = r_precision(&eye, &eye, &classes, &p).unwrap();
    assert_eq!((rp.mean, rp.trials, rp.candidates), (1.0, 6, 5));
    assert!((rp.chance() - 0.2).abs() < 1e-12);
    // Fewer candidates asked: chance follows.
    let rp = r_precision(&eye, &eye, &classes, &Protocol::one_pass(&classes, 2, 1).unwrap()).unwrap();
    assert!((rp.chance() - 0.5).abs() < 1e-12 && rp.mean == 1.0);
    // Only other classes' captions compete: image 0's own caption also leans towards
    // caption 1 (same class), which is no candidate, so it is still a hit.
    let sent = eye.copy();
    sent.get(0).copy_(&(eye.get(0) * 0.5 + eye.get(1)));
    assert_eq!(r_precision(&eye, &sent, &classes, &p).unwrap().mean, 1.0);
    // Every caption the same: ties go to the ground truth (DM-GAN's argmax), all hits.
    let same = Tensor::ones([6, 6], (Kind::Float, Device::Cpu));
    assert_eq!(r_precision(&eye, &same, &classes, &p).unwrap().mean, 1.0);
    // Captions of image i+2 (another class): never first.
    let shifted = eye.roll([2], [0]);
    assert_eq!(r_precision(&eye, &shifted, &classes, &p).unwrap().mean, 0.0);
    // A split of one class has no other-class captions: no protocol.
    assert!(Protocol::one_pass(&[4, 4, 4], 100, 1).is_none());
}
