//! The finetuning losses against direct, slow computations (AttnGAN's per-caption
//! loops, written out in f64), with class masks and padding; and the bf16 autocast
//! binding.
use clipgan::train::amp::autocast_bf16;
use clipgan::train::losses::{class_mask, nt_xent, sentence_loss, words_loss};
use tch::{Device, Kind, Tensor};

fn v2(t: &Tensor) -> Vec<Vec<f64>> {
    let t = t.to_kind(Kind::Double);
    (0..t.size()[0]).map(|i| Vec::<f64>::try_from(t.get(i)).unwrap()).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

fn softmax(x: &[f64]) -> Vec<f64> {
    let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = x.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// Mean over rows of -log softmax(row)[target], skipping masked (None) entries.
fn ce_rows(s: &[Vec<Option<f64>>]) -> f64 {
    let n = s.len();
    (0..n)
        .map(|a| {
            let row: Vec<f64> = s[a].iter().flatten().cloned().collect();
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            lse - s[a][a].unwrap()
        })
        .sum::<f64>()
        / n as f64
}

fn transpose(s: &[Vec<Option<f64>>]) -> Vec<Vec<Option<f64>>> {
    (0..s.len()).map(|i| (0..s.len()).map(|j| s[j][i]).collect()).collect()
}

/// AttnGAN's words_loss, literally: per caption i its T_i words, per image j.
/// Returns (loss0, loss1, attention[i][t][r] of caption i on image i).
fn words_loss_reference(
    regions: &Tensor,
    words: &Tensor,
    lengths: &[usize],
    classes: Option<&[i64]>,
    g1: f64,
    g2: f64,
    g3: f64,
) -> (f64, f64, Vec<Vec<Vec<f64>>>) {
    let b = lengths.len();
    // regions[j] as [r][d], words[i] as [t][d]
    let reg: Vec<Vec<Vec<f64>>> = (0..b).map(|j| v2(&regions.get(j as i64).tr())).collect();
    let wrd: Vec<Vec<Vec<f64>>> = (0..b).map(|i| v2(&words.get(i as i64).tr())).collect();
    let mut sim = vec![vec![None; b]; b];
    let mut att = Vec::new();
    for i in 0..b {
        let t_n = lengths[i];
        for j in 0..b {
            let r_n = reg[j].len();
            // attn[r][t] = softmax over t of v_r . e_t
            let attn_rt: Vec<Vec<f64>> =
                (0..r_n).map(|r| softmax(&(0..t_n).map(|t| dot(&reg[j][r], &wrd[i][t])).collect::<Vec<_>>())).collect();
            // attn2[t][r] = softmax over r of g1 * attn[r][t]
            let attn_tr: Vec<Vec<f64>> = (0..t_n).map(|t| softmax(&(0..r_n).map(|r| g1 * attn_rt[r][t]).collect::<Vec<_>>())).collect();
            let mut sum = 0.0;
            for t in 0..t_n {
                let d_n = wrd[i][t].len();
                let c: Vec<f64> = (0..d_n).map(|d| (0..r_n).map(|r| attn_tr[t][r] * reg[j][r][d]).sum()).collect();
                let cos = dot(&c, &wrd[i][t]) / (norm(&c) * norm(&wrd[i][t])).max(1e-8);
                sum += (g2 * cos).exp();
            }
            sim[j][i] = Some(g3 * sum.ln());
            if i == j {
                att.push(attn_tr);
            }
        }
    }
    if let Some(c) = classes {
        for j in 0..b {
            for i in 0..b {
                if i != j && c[i] == c[j] {
                    sim[j][i] = None;
                }
            }
        }
    }
    (ce_rows(&sim), ce_rows(&transpose(&sim)), att)
}

struct Inputs {
    regions: Tensor,
    words: Tensor,
    mask: Tensor,
    lengths: Vec<usize>,
}

fn inputs() -> Inputs {
    tch::manual_seed(7);
    let (b, d, r, l) = (5, 6, 7, 8);
    let lengths = vec![8usize, 3, 5, 2, 6];
    let regions = Tensor::randn([b, d, r], (Kind::Float, Device::Cpu));
    let words = Tensor::randn([b, d, l], (Kind::Float, Device::Cpu));
    let mask = Tensor::zeros([b, l], (Kind::Bool, Device::Cpu));
    for (i, &n) in lengths.iter().enumerate() {
        let _ = mask.get(i as i64).narrow(0, 0, n as i64).fill_(1);
    }
    Inputs { regions, words, mask, lengths }
}

fn close(got: &Tensor, want: f64, what: &str) {
    let g = got.double_value(&[]);
    assert!((g - want).abs() <= 1e-5 * (1.0 + want.abs()), "{what}: got {g}, want {want}");
}

#[test]
fn words_loss_matches_attngan_with_class_masks_and_padding() {
    let x = inputs();
    let classes = [0i64, 1, 0, 2, 1];
    let class_ids = Tensor::from_slice(&classes);
    for (g1, g2, g3) in [(4.0, 5.0, 10.0), (5.0, 5.0, 10.0), (1.0, 2.0, 1.0)] {
        let out = words_loss(&x.regions, &x.words, &x.mask, Some(&class_ids), g1, g2, g3);
        let (r0, r1, att) = words_loss_reference(&x.regions, &x.words, &x.lengths, Some(&classes), g1, g2, g3);
        close(&out.loss0, r0, "loss0");
        close(&out.loss1, r1, "loss1");
        // Attention maps: each caption on its own image; padding rows are zero.
        assert_eq!(out.attention.size(), vec![5, 8, 7]);
        for (i, &n) in x.lengths.iter().enumerate() {
            for t in 0..8 {
                for r in 0..7 {
                    let got = out.attention.double_value(&[i as i64, t, r]);
                    let want = if (t as usize) < n { att[i][t as usize][r as usize] } else { 0.0 };
                    assert!((got - want).abs() < 1e-5, "attention[{i}][{t}][{r}]: {got} vs {want}");
                }
            }
        }
    }
    // Without classes nothing is masked.
    let out = words_loss(&x.regions, &x.words, &x.mask, None, 4.0, 5.0, 10.0);
    let (r0, r1, _) = words_loss_reference(&x.regions, &x.words, &x.lengths, None, 4.0, 5.0, 10.0);
    close(&out.loss0, r0, "loss0 (no classes)");
    close(&out.loss1, r1, "loss1 (no classes)");
    // The class mask changes the value (it is really applied).
    let masked = words_loss(&x.regions, &x.words, &x.mask, Some(&class_ids), 4.0, 5.0, 10.0);
    assert!((masked.loss0.double_value(&[]) - out.loss0.double_value(&[])).abs() > 1e-4);
}

#[test]
fn padding_never_reaches_the_word_loss_and_gradients_are_finite() {
    let x = inputs();
    let classes = Tensor::from_slice(&[0i64, 1, 0, 2, 1]);
    let base = words_loss(&x.regions, &x.words, &x.mask, Some(&classes), 4.0, 5.0, 10.0);
    // Garbage (huge values) at padding positions changes nothing.
    let noise = Tensor::randn(x.words.size(), (Kind::Float, Device::Cpu)) * 1e3;
    let pad = x.mask.logical_not().unsqueeze(1).to_kind(Kind::Float);
    let words2 = &x.words + noise * pad;
    let other = words_loss(&x.regions, &words2, &x.mask, Some(&classes), 4.0, 5.0, 10.0);
    assert!((base.loss0.double_value(&[]) - other.loss0.double_value(&[])).abs() < 1e-6);
    assert!((base.loss1.double_value(&[]) - other.loss1.double_value(&[])).abs() < 1e-6);
    // Gradients through the masked (-inf) entries stay finite and padding gets none.
    let regions = x.regions.copy().set_requires_grad(true);
    let words = x.words.copy().set_requires_grad(true);
    let out = words_loss(&regions, &words, &x.mask, Some(&classes), 4.0, 5.0, 10.0);
    (out.loss0 + out.loss1).backward();
    for g in [regions.grad(), words.grad()] {
        assert!(g.isfinite().all().int64_value(&[]) == 1, "non-finite gradient");
    }
    let pad_grad = (words.grad() * x.mask.logical_not().unsqueeze(1).to_kind(Kind::Float)).abs().sum(Kind::Float).double_value(&[]);
    assert_eq!(pad_grad, 0.0);
    assert!(regions.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0);
}

fn cos(a: &[f64], b: &[f64]) -> f64 {
    dot(a, b) / (norm(a) * norm(b)).max(1e-8)
}

#[test]
fn sentence_loss_matches_direct_computation() {
    tch::manual_seed(3);
    let img = Tensor::randn([6, 4], (Kind::Float, Device::Cpu));
    let sent = Tensor::randn([6, 4], (Kind::Float, Device::Cpu));
    let classes = [3i64, 3, 1, 2, 1, 0];
    let (vi, vs) = (v2(&img), v2(&sent));
    for (with_classes, g3) in [(true, 10.0), (false, 10.0), (true, 1.0)] {
        let mut s: Vec<Vec<Option<f64>>> = (0..6).map(|j| (0..6).map(|i| Some(g3 * cos(&vi[j], &vs[i]))).collect()).collect();
        if with_classes {
            for j in 0..6 {
                for i in 0..6 {
                    if i != j && classes[i] == classes[j] {
                        s[j][i] = None;
                    }
                }
            }
        }
        let c = Tensor::from_slice(&classes);
        let (l0, l1) = sentence_loss(&img, &sent, with_classes.then_some(&c), g3);
        close(&l0, ce_rows(&s), "sentence loss0");
        close(&l1, ce_rows(&transpose(&s)), "sentence loss1");
    }
}

#[test]
fn nt_xent_matches_direct_computation() {
    tch::manual_seed(11);
    let z1 = Tensor::randn([4, 5], (Kind::Float, Device::Cpu));
    let z2 = Tensor::randn([4, 5], (Kind::Float, Device::Cpu));
    let z: Vec<Vec<f64>> = v2(&z1).into_iter().chain(v2(&z2)).collect();
    for tau in [0.5, 0.1] {
        let n = 4;
        let mut total = 0.0;
        for a in 0..2 * n {
            let p = (a + n) % (2 * n);
            let denom: f64 = (0..2 * n).filter(|&k| k != a).map(|k| (cos(&z[a], &z[k]) / tau).exp()).sum();
            total += -((cos(&z[a], &z[p]) / tau).exp() / denom).ln();
        }
        close(&nt_xent(&z1, &z2, tau), total / (2 * n) as f64, "nt_xent");
    }
    // Identical views with orthogonal rows: the positive dominates at small tau.
    let e = Tensor::eye(4, (Kind::Float, Device::Cpu));
    assert!(nt_xent(&e, &e, 0.05).double_value(&[]) < 1e-6);
}

#[test]
fn class_mask_marks_same_class_off_diagonal_pairs() {
    let m = class_mask(&Tensor::from_slice(&[1i64, 2, 1, 1]));
    let want = [[0, 0, 1, 1], [0, 0, 0, 0], [1, 0, 0, 1], [1, 0, 1, 0]];
    for j in 0..4 {
        for i in 0..4 {
            assert_eq!(m.int64_value(&[j, i]), want[j as usize][i as usize], "({j}, {i})");
        }
    }
}

#[test]
fn bf16_autocast_binding_works_on_the_cpu() {
    let a = Tensor::randn([4, 4], (Kind::Float, Device::Cpu));
    let inside = autocast_bf16(Device::Cpu, true, || a.matmul(&a));
    assert_eq!(inside.kind(), Kind::BFloat16);
    // The state is restored afterwards.
    assert_eq!(a.matmul(&a).kind(), Kind::Float);
    assert_eq!(autocast_bf16(Device::Cpu, false, || a.matmul(&a)).kind(), Kind::Float);
    // Nested use keeps the outer state.
    let k = autocast_bf16(Device::Cpu, true, || {
        let _ = autocast_bf16(Device::Cpu, true, || a.matmul(&a));
        a.matmul(&a).kind()
    });
    assert_eq!(k, Kind::BFloat16);
}
