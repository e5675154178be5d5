//! Shared training infrastructure: optimizer (against PyTorch), gradient clipping,
//! schedule, seeds, checkpoints (round trip, corruption, truncation, mismatches), grids.
use clipgan::checkpoint::{self, Checkpoint};
use clipgan::seed;
use clipgan::train::optim::{clip_grad_norm, Adam, ParamGroup};
use clipgan::train::schedule::WarmRestarts;
use std::collections::HashMap;
use tch::{nn, Device, Kind, Tensor};

fn reference() -> serde_json::Value {
    serde_json::from_str(include_str!("../fixtures/clip/optim_reference.json")).unwrap()
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn assert_close(got: &Tensor, want: &[f32], tol: f32, what: &str) {
    let got: Vec<f32> = Vec::try_from(got.flatten(0, -1).to_kind(Kind::Float)).unwrap();
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * (1.0 + w.abs()), "{what}[{i}]: got {g}, want {w}");
    }
}

fn run_optimizer(name: &str, weight_decay: f64, decoupled: bool) {
    let r = reference();
    let a = Tensor::from_slice(&floats(&r["a0"])).reshape([3, 4]).set_requires_grad(true);
    let b = Tensor::from_slice(&floats(&r["b0"])).set_requires_grad(true);
    let groups = vec![
        ParamGroup::new("a", vec![("a".into(), a.shallow_clone())], 0.01),
        ParamGroup::new("b", vec![("b".into(), b.shallow_clone())], 0.002),
    ];
    let mut opt = Adam::new(groups, (0.5, 0.999), 1e-8, weight_decay, decoupled);
    for (i, step) in r["grads"].as_array().unwrap().iter().enumerate() {
        opt.zero_grad();
        let ga = Tensor::from_slice(&floats(&step[0])).reshape([3, 4]);
        let gb = Tensor::from_slice(&floats(&step[1]));
        // d/dp (p * g).sum() = g: the reference's gradients, exactly.
        let mut loss = (&a * &ga).sum(Kind::Float);
        if i != 2 {
            loss += (&b * &gb).sum(Kind::Float);
        }
        loss.backward();
        if i == 3 {
            for g in 0..2 {
                let lr = opt.lr(g);
                opt.set_lr(g, lr * 0.5);
            }
        }
        opt.step();
        let want = &r[name][i];
        assert_close(&a, &floats(&want[0]), 2e-6, &format!("{name} step {i} a"));
        assert_close(&b, &floats(&want[1]), 2e-6, &format!("{name} step {i} b"));
    }
}

#[test]
fn adamw_matches_pytorch() {
    run_optimizer("adamw", 0.01, true);
}

#[test]
fn adam_with_l2_matches_pytorch() {
    run_optimizer("adam_l2", 0.1, false);
}

#[test]
fn clip_grad_norm_matches_pytorch() {
    let r = reference();
    let a = Tensor::from_slice(&floats(&r["a0"])).reshape([3, 4]).set_requires_grad(true);
    let b = Tensor::from_slice(&floats(&r["b0"])).set_requires_grad(true);
    let ga = Tensor::from_slice(&floats(&r["grads"][0][0])).reshape([3, 4]) * 3.0;
    let gb = Tensor::from_slice(&floats(&r["grads"][0][1])) * 3.0;
    ((&a * &ga).sum(Kind::Float) + (&b * &gb).sum(Kind::Float)).backward();
    let norm = clip_grad_norm(&[a.shallow_clone(), b.shallow_clone()], 0.25);
    let want = r["clip_norm"].as_f64().unwrap();
    assert!((norm - want).abs() < 1e-4 * want, "norm {norm} vs {want}");
    assert_close(&a.grad(), &floats(&r["clipped_a"]), 1e-5, "clipped a");
    assert_close(&b.grad(), &floats(&r["clipped_b"]), 1e-5, "clipped b");
    // A NaN gradient is reported, not hidden.
    let c = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
    (&c * f64::NAN).sum(Kind::Float).backward();
    assert!(clip_grad_norm(&[c], 1.0).is_nan());
}

#[test]
fn optimizer_state_round_trip_gives_identical_updates() {
    let make = || {
        let p = Tensor::from_slice(&[0.5f32, -1.0, 2.0]).set_requires_grad(true);
        let opt = Adam::new(vec![ParamGroup::new("g", vec![("w".into(), p.shallow_clone())], 0.1)], (0.9, 0.999), 1e-8, 0.01, true);
        (p, opt)
    };
    let grad_step = |p: &Tensor, opt: &mut Adam, k: f64| {
        opt.zero_grad();
        (p * p * k).sum(Kind::Float).backward();
        opt.step();
    };
    let (p1, mut o1) = make();
    for k in 1..=3 {
        grad_step(&p1, &mut o1, k as f64);
    }
    // Save after 3 steps, restore into a fresh optimizer over a copy of the weights.
    let state: HashMap<String, Tensor> = o1.state_tensors("optim.").into_iter().map(|(k, v)| (k, v.copy())).collect();
    assert!(state.contains_key("optim.w.exp_avg") && state.contains_key("optim.w.step"));
    let (p2, mut o2) = make();
    tch::no_grad(|| p2.shallow_clone().copy_(&p1));
    o2.load_state(&state, "optim.").unwrap();
    for k in 4..=6 {
        grad_step(&p1, &mut o1, k as f64);
        grad_step(&p2, &mut o2, k as f64);
    }
    assert_eq!(Vec::<f32>::try_from(&p1).unwrap(), Vec::<f32>::try_from(&p2).unwrap());
    // A fresh optimizer (no restored moments) would diverge from it.
    let (p3, mut o3) = make();
    tch::no_grad(|| p3.shallow_clone().copy_(&p1));
    grad_step(&p3, &mut o3, 7.0);
    grad_step(&p1, &mut o1, 7.0);
    assert_ne!(Vec::<f32>::try_from(&p1).unwrap(), Vec::<f32>::try_from(&p3).unwrap());
    // Missing and unexpected entries are named.
    let mut bad: HashMap<String, Tensor> = state.iter().map(|(k, v)| (k.clone(), v.shallow_clone())).collect();
    bad.remove("optim.w.exp_avg_sq");
    bad.insert("optim.v.exp_avg".into(), Tensor::zeros([3], (Kind::Float, Device::Cpu)));
    let err = o2.load_state(&bad, "optim.").unwrap_err().to_string();
    assert!(err.contains("optim.w.exp_avg_sq") && err.contains("optim.v.exp_avg"), "{err}");
}

#[test]
fn schedule_warmup_cosine_restarts() {
    let s = WarmRestarts { warmup_epochs: 1.0, cycle_epochs: 4.0, cycle_decay: 0.5, floor: 1e-7 };
    let peak = 1e-3;
    let close = |a: f64, b: f64| (a - b).abs() < 1e-12 + 1e-9 * b.abs();
    assert!(close(s.lr(peak, 0.0), 1e-7));
    assert!(close(s.lr(peak, 0.5), 1e-7 + (peak - 1e-7) * 0.5));
    assert!(close(s.lr(peak, 1.0), peak));
    // Half-way through the cosine part: the mean of peak and floor.
    assert!(close(s.lr(peak, 2.5), 1e-7 + (peak - 1e-7) * 0.5));
    assert!(s.lr(peak, 3.99) < 1e-5);
    // Restart: warm-up again towards a decayed peak.
    assert!(close(s.lr(peak, 4.0), 1e-7));
    assert!(close(s.lr(peak, 5.0), peak * 0.5));
    assert!(close(s.lr(peak, 9.0), peak * 0.25));
    // Monotone inside phases.
    let xs: Vec<f64> = (0..=40).map(|i| s.lr(peak, 1.0 + i as f64 * 0.07)).collect();
    assert!(xs.windows(2).all(|w| w[1] <= w[0]));
    // A zero peak stays zero (a frozen group).
    assert_eq!(s.lr(0.0, 1.5), 0.0);
    assert!(close(WarmRestarts::position(3, 5, 10), 3.5));
    // No warm-up: the cycle starts at its peak.
    let s0 = WarmRestarts { warmup_epochs: 0.0, ..s };
    assert!(close(s0.lr(peak, 0.0), peak));
}

#[test]
fn seeds_are_positional() {
    assert_eq!(seed::derive(100, &[2, 7]), seed::derive(100, &[2, 7]));
    assert_ne!(seed::derive(100, &[2, 7]), seed::derive(100, &[7, 2]));
    assert_ne!(seed::derive(100, &[2, 7]), seed::derive(101, &[2, 7]));
    assert_ne!(seed::derive(100, &[2]), seed::derive(100, &[2, 0]));
    let mut r = seed::Rng::new(1, &[2]);
    let mut v: Vec<u32> = (0..50).collect();
    r.shuffle(&mut v);
    let mut sorted = v.clone();
    sorted.sort();
    assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    assert_ne!(v, sorted);
    let counts = (0..3000).fold([0u32; 3], |mut c, _| {
        c[r.below(3) as usize] += 1;
        c
    });
    assert!(counts.iter().all(|&c| (800..1200).contains(&c)), "{counts:?}");
}

fn sample_checkpoint() -> (Checkpoint, nn::VarStore) {
    let vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    let _ = root.sub("enc").var("weight", &[3, 2], nn::Init::Randn { mean: 0.0, stdev: 1.0 });
    let _ = root.sub("enc").zeros("bias", &[3]);
    let mut ck = Checkpoint::new("test");
    ck.set_meta("epoch", 7);
    ck.push_var_store("model.", &vs);
    ck.push("extra.step", Tensor::from(42i64));
    ck.push("extra.half", Tensor::from_slice(&[1.5f32, -2.0]).to_kind(Kind::Half));
    ck.push("extra.flag", Tensor::from_slice(&[true, false, true]));
    (ck, vs)
}

#[test]
fn checkpoint_round_trip_and_var_store_loading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.safetensors");
    let (ck, vs) = sample_checkpoint();
    checkpoint::save(&path, &ck).unwrap();
    // No temporary file is left next to it.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    let mut back = checkpoint::load(&path, Device::Cpu).unwrap();
    assert_eq!(back.meta_parse::<u32>("epoch").unwrap(), 7);
    assert_eq!(back.meta_str("job").unwrap(), "test");
    assert!(back.meta_str("nothing").unwrap_err().to_string().contains("nothing"));
    assert_eq!(checkpoint::read_meta(&path).unwrap()["epoch"], "7");
    let map = back.tensor_map();
    assert_eq!(map["extra.step"].int64_value(&[]), 42);
    assert_eq!(map["extra.half"].kind(), Kind::Half);
    assert_eq!(Vec::<bool>::try_from(&map["extra.flag"]).unwrap(), vec![true, false, true]);
    // Into a fresh VarStore of the same layout.
    let vs2 = nn::VarStore::new(Device::Cpu);
    let _ = vs2.root().sub("enc").zeros("weight", &[3, 2]);
    let _ = vs2.root().sub("enc").zeros("bias", &[3]);
    let model_only: HashMap<String, Tensor> =
        map.iter().filter(|(k, _)| k.starts_with("model.")).map(|(k, v)| (k.clone(), v.shallow_clone())).collect();
    checkpoint::load_var_store(&vs2, &model_only, "model.", |_| false).unwrap();
    let w1 = vs.variables()["enc.weight"].copy();
    let w2 = vs2.variables()["enc.weight"].copy();
    assert_eq!(Vec::<f32>::try_from(w1.flatten(0, -1)).unwrap(), Vec::<f32>::try_from(w2.flatten(0, -1)).unwrap());
    // A model with another layout: missing, unexpected and mis-shaped names are listed.
    let vs3 = nn::VarStore::new(Device::Cpu);
    let _ = vs3.root().sub("enc").zeros("weight", &[2, 2]);
    let _ = vs3.root().sub("dec").zeros("weight", &[1]);
    let err = checkpoint::load_var_store(&vs3, &model_only, "model.", |_| false).unwrap_err().to_string();
    assert!(err.contains("missing (1): model.dec.weight"), "{err}");
    assert!(err.contains("unexpected (1): model.enc.bias"), "{err}");
    assert!(err.contains("model.enc.weight: [3, 2] in the file, [2, 2] in the model"), "{err}");
    // Allowed-missing names are returned, not errors.
    let vs4 = nn::VarStore::new(Device::Cpu);
    let _ = vs4.root().sub("enc").zeros("weight", &[3, 2]);
    let _ = vs4.root().sub("enc").zeros("bias", &[3]);
    let _ = vs4.root().sub("new").zeros("weight", &[2]);
    let missing = checkpoint::load_var_store(&vs4, &model_only, "model.", |n| n.starts_with("new.")).unwrap();
    assert_eq!(missing, vec!["new.weight".to_string()]);
}

#[test]
fn damaged_checkpoints_are_refused_with_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.safetensors");
    let (ck, _) = sample_checkpoint();
    checkpoint::save(&path, &ck).unwrap();
    let good = std::fs::read(&path).unwrap();
    let name = path.display().to_string();

    // Truncated.
    std::fs::write(&path, &good[..good.len() - 5]).unwrap();
    let e = checkpoint::load(&path, Device::Cpu).unwrap_err().to_string();
    assert!(e.contains(&name) && e.contains("truncated"), "{e}");
    std::fs::write(&path, &good[..4]).unwrap();
    let e = checkpoint::load(&path, Device::Cpu).unwrap_err().to_string();
    assert!(e.contains(&name) && e.contains("truncated"), "{e}");
    // A flipped bit in the tensor data.
    let mut bad = good.clone();
    let last = bad.len() - 3;
    bad[last] ^= 0x10;
    std::fs::write(&path, &bad).unwrap();
    let e = checkpoint::load(&path, Device::Cpu).unwrap_err().to_string();
    assert!(e.contains(&name) && e.contains("checksum"), "{e}");
    // A damaged header.
    let mut bad = good.clone();
    bad[10] = b'#';
    std::fs::write(&path, &bad).unwrap();
    let e = checkpoint::load(&path, Device::Cpu).unwrap_err().to_string();
    assert!(e.contains(&name) && e.contains("header"), "{e}");
    // Not a checkpoint at all.
    std::fs::write(&path, b"hello, this is text and not a checkpoint").unwrap();
    let e = checkpoint::load(&path, Device::Cpu).unwrap_err().to_string();
    assert!(e.contains(&name), "{e}");
    // A missing file.
    let e = checkpoint::load(&dir.path().join("none.safetensors"), Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("none.safetensors"), "{e}");
    // A plain safetensors file (e.g. HuggingFace weights) is not a clipgan checkpoint, but
    // read_safetensors reads it.
    let plain = dir.path().join("plain.safetensors");
    let t = Tensor::from_slice(&[1.0f32, 2.0]);
    Tensor::write_safetensors(&[("x", &t)], &plain).unwrap();
    let e = checkpoint::load(&plain, Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("not a clipgan checkpoint"), "{e}");
    let (ts, _) = checkpoint::read_safetensors(&plain, Device::Cpu).unwrap();
    assert_eq!(ts[0].0, "x");
    // Saving over an existing checkpoint replaces it whole.
    checkpoint::save(&path, &ck).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), good);
}

#[test]
fn grids_lay_out_cells_row_major() {
    // Three 2x2 images: red, green, blue, in [-1, 1].
    let imgs = Tensor::full([3, 3, 2, 2], -1.0, (Kind::Float, Device::Cpu));
    for i in 0..3 {
        let _ = imgs.get(i).get(i).fill_(1.0);
    }
    let g = clipgan::util::grid::image_grid(&imgs, 2).unwrap();
    let pad = clipgan::util::grid::GRID_PAD;
    assert_eq!(g.dimensions(), (2 * (2 + pad) + pad, 2 * (2 + pad) + pad));
    assert_eq!(g.get_pixel(pad, pad).0, [255, 0, 0]);
    assert_eq!(g.get_pixel(pad + 2 + pad + 1, pad + 1).0, [0, 255, 0]);
    assert_eq!(g.get_pixel(pad, pad + 2 + pad).0, [0, 0, 255]);
    // The empty fourth cell is background.
    assert_eq!(g.get_pixel(pad + 2 + pad, pad + 2 + pad).0, [32, 32, 32]);
    // [0, 1] variant with clamping, and shape errors.
    let g = clipgan::util::grid::image_grid_01(&Tensor::full([1, 3, 1, 1], 2.0, (Kind::Float, Device::Cpu)), 4).unwrap();
    assert_eq!(g.get_pixel(pad, pad).0, [255, 255, 255]);
    assert!(clipgan::util::grid::image_grid(&Tensor::zeros([3, 2, 2], (Kind::Float, Device::Cpu)), 2).is_err());
}
