//! DM-GAN networks: parameter counts of the seed's bird config (method.md §5), shapes of
//! every stage and discriminator, the per-caption word mask of the memory addressing,
//! spectral norm semantics, and loading the generator back from a checkpoint.
use clipgan::checkpoint::{self, Checkpoint};
use clipgan::models::dmgan::{self, Discriminator, GanConfig, Generator};
use tch::{nn, Device, Kind, Tensor};

fn bird(condition_dim: i64, r_num: i64) -> GanConfig {
    GanConfig { branch_num: 3, gf_dim: 64, df_dim: 32, z_dim: 100, condition_dim, r_num, nef: 512 }
}

fn tiny(branch_num: i64) -> GanConfig {
    GanConfig { branch_num, gf_dim: 4, df_dim: 4, z_dim: 8, condition_dim: 6, r_num: 1, nef: 12 }
}

fn counts(cfg: &GanConfig) -> Vec<(String, i64)> {
    dmgan::parameter_counts(cfg)
}

#[test]
fn parameter_counts_equal_dm_gans() {
    tch::set_num_threads(1);
    let c = counts(&bird(100, 2));
    let want = [("G", 21_617_490), ("D64", 2_468_066), ("D128", 5_745_634), ("D256", 18_854_370)];
    assert_eq!(c, want.iter().map(|(n, v)| (n.to_string(), *v)).collect::<Vec<_>>());
    assert_eq!(counts(&bird(512, 2))[0].1, 35_963_330);
    assert_eq!(counts(&bird(100, 3))[0].1, 22_503_762);
}

#[test]
fn shapes_of_every_branch_and_discriminator() {
    tch::manual_seed(0);
    for branches in 1..=3 {
        let cfg = tiny(branches);
        let vs = nn::VarStore::new(Device::Cpu);
        let g = Generator::new(vs.root(), &cfg);
        let (b, l) = (2, 5);
        let z = Tensor::randn([b, cfg.z_dim], (Kind::Float, Device::Cpu));
        let sent = Tensor::randn([b, cfg.nef], (Kind::Float, Device::Cpu));
        let words = Tensor::randn([b, cfg.nef, l], (Kind::Float, Device::Cpu));
        let mask = Tensor::from_slice(&[false, false, false, true, true, false, false, false, false, false]).view([b, l]);
        let out = g.forward_t(&z, &sent, &words, &mask, true);
        assert_eq!(out.images.len(), branches as usize);
        for (k, img) in out.images.iter().enumerate() {
            let s = 64 << k;
            assert_eq!(img.size(), [b, 3, s, s]);
            assert!(img.abs().max().double_value(&[]) <= 1.0);
        }
        assert_eq!(out.mu.size(), [b, cfg.condition_dim]);
        assert_eq!(out.logvar.size(), [b, cfg.condition_dim]);
        for (k, att) in out.attention.iter().enumerate() {
            let s = 64 << k;
            assert_eq!(att.size(), [b, s * s, l]);
        }
        for (k, img) in out.images.iter().enumerate() {
            let dvs = nn::VarStore::new(Device::Cpu);
            let d = Discriminator::new(dvs.root(), &cfg, k);
            assert_eq!(d.code(img).size(), [b, cfg.df_dim * 8, 4, 4]);
            let o = d.forward(img, &sent);
            assert_eq!(o.uncond.size(), [b]);
            assert_eq!(o.cond.size(), [b]);
        }
    }
}

#[test]
fn padding_gets_zero_attention_with_each_captions_own_mask() {
    tch::manual_seed(1);
    let cfg = tiny(2);
    let vs = nn::VarStore::new(Device::Cpu);
    let g = Generator::new(vs.root(), &cfg);
    // Three captions of different lengths: 2, 4 and 6 real tokens of 6. With bug 8
    // (a batch-major repeated mask) pixels would get other captions' masks.
    let (b, l) = (3i64, 6i64);
    let lens = [2i64, 4, 6];
    let mask: Vec<bool> = (0..b).flat_map(|i| (0..l).map(move |t| t >= lens[i as usize])).collect();
    let mask = Tensor::from_slice(&mask).view([b, l]);
    let z = Tensor::randn([b, cfg.z_dim], (Kind::Float, Device::Cpu));
    let sent = Tensor::randn([b, cfg.nef], (Kind::Float, Device::Cpu));
    let words = Tensor::randn([b, cfg.nef, l], (Kind::Float, Device::Cpu));
    let out = g.forward_t(&z, &sent, &words, &mask, true);
    let att = &out.attention[0]; // [B, 64*64, L]
    for i in 0..b {
        let a = att.get(i);
        let n = lens[i as usize];
        let real = a.narrow(1, 0, n);
        // Every pixel's weights over its caption's real words sum to 1 ...
        let sums = real.sum_dim_intlist(1, false, Kind::Float);
        assert!((sums - 1.0).abs().max().double_value(&[]) < 1e-5, "caption {i}");
        // ... and every real word gets weight somewhere; padding gets exactly zero.
        assert!(real.min().double_value(&[]) > 0.0, "caption {i}");
        if n < l {
            assert_eq!(a.narrow(1, n, l - n).abs().max().double_value(&[]), 0.0, "caption {i}");
        }
    }
    // Padding words do not influence the images at all.
    let words2 = words.copy();
    let _ = words2.narrow(2, 2, 4).get(0).fill_(100.0); // caption 0's padding
    let eps = Tensor::randn([b, cfg.condition_dim], (Kind::Float, Device::Cpu));
    let a = g.forward_eps(&z, Some(&eps), &sent, &words, &mask, false).images[1].get(0);
    let b2 = g.forward_eps(&z, Some(&eps), &sent, &words2, &mask, false).images[1].get(0);
    assert!((a - b2).abs().max().double_value(&[]) < 1e-6);
}

#[test]
fn spectral_norm_divides_by_the_top_singular_value_and_updates_u_v_per_call() {
    tch::manual_seed(2);
    let cfg = tiny(1);
    let vs = nn::VarStore::new(Device::Cpu);
    let d = Discriminator::new(vs.root(), &cfg, 0);
    let vars = vs.variables();
    let w = vars["img_code_s16.2.weight_orig"].shallow_clone();
    // Orthogonal weights have all singular values 1 (any u is a fixed point): use a
    // random weight with a distinct top singular value.
    tch::no_grad(|| w.shallow_clone().copy_(&Tensor::randn(w.size(), (Kind::Float, Device::Cpu))));
    let u0 = vars["img_code_s16.2.weight_u"].copy();
    let x = Tensor::randn([2, 3, 64, 64], (Kind::Float, Device::Cpu));
    // After many calls the power iteration has converged: u, v are the top singular pair.
    for _ in 0..60 {
        let _ = tch::no_grad(|| d.code(&x));
    }
    let u = vars["img_code_s16.2.weight_u"].copy();
    assert!((&u - &u0).abs().max().double_value(&[]) > 1e-3, "u is updated by the forward calls");
    let wm = w.view([w.size()[0], -1]);
    let sigma = Tensor::linalg_eigvalsh(&wm.matmul(&wm.tr()), "L").max().double_value(&[]).sqrt();
    let v = vars["img_code_s16.2.weight_v"].copy();
    let est = u.dot(&wm.mv(&v)).double_value(&[]);
    assert!((est - sigma).abs() / sigma < 1e-3, "sigma {sigma} vs estimate {est}");
    // Trainable parameters exclude the u, v buffers.
    let trainable: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
    let all: i64 = vars.values().map(|t| t.numel() as i64).sum();
    assert!(all > trainable);
    assert_eq!(dmgan::count_parameters(&vs), trainable);
}

#[test]
fn spectral_norm_gradient_uses_each_calls_own_u_v() {
    // Two calls, then backward through the first: the gradient must equal that of a
    // fresh copy doing only the first call (bug 9: in-place u, v made it use the last).
    tch::manual_seed(3);
    let cfg = tiny(1);
    let x1 = Tensor::randn([2, 3, 64, 64], (Kind::Float, Device::Cpu));
    let x2 = Tensor::randn([2, 3, 64, 64], (Kind::Float, Device::Cpu));
    // Two identical discriminators (B copies A's weights and u, v before any call).
    let vs_a = nn::VarStore::new(Device::Cpu);
    let d_a = Discriminator::new(vs_a.root(), &cfg, 0);
    let mut vs_b = nn::VarStore::new(Device::Cpu);
    let d_b = Discriminator::new(vs_b.root(), &cfg, 0);
    vs_b.copy(&vs_a).unwrap();
    // Random weights, so the power iteration moves u, v (orthogonal ones are fixed points).
    tch::no_grad(|| {
        for (name, t) in vs_a.variables() {
            if name.ends_with("weight_orig") {
                let r = Tensor::randn(t.size(), (Kind::Float, Device::Cpu));
                t.shallow_clone().copy_(&r);
                vs_b.variables()[&name].shallow_clone().copy_(&r);
            }
        }
    });
    let la = d_a.code(&x1).sum(Kind::Float);
    let _ = d_a.code(&x2).sum(Kind::Float);
    la.backward();
    d_b.code(&x1).sum(Kind::Float).backward();
    let name = "img_code_s16.4.weight_orig";
    let ga = vs_a.variables()[name].grad();
    let gb = vs_b.variables()[name].grad();
    assert!((ga - gb).abs().max().double_value(&[]) < 1e-6);
}

#[test]
fn orthogonal_init_and_batchnorm_init() {
    tch::manual_seed(6);
    let cfg = tiny(2);
    let vs = nn::VarStore::new(Device::Cpu);
    let _g = Generator::new(vs.root(), &cfg);
    let vars = vs.variables();
    // ca_net.fc: [4 ncf, nef] = [24, 12]: orthonormal columns.
    let w = &vars["ca_net.fc.weight"];
    let gram = w.tr().matmul(w);
    assert!((gram - Tensor::eye(12, (Kind::Float, Device::Cpu))).abs().max().double_value(&[]) < 1e-4);
    assert_eq!(vars["ca_net.fc.bias"].abs().max().double_value(&[]), 0.0);
    let bn = &vars["h_net2.residual.0.block.1.weight"];
    assert!((bn.mean(Kind::Float).double_value(&[]) - 1.0).abs() < 0.05);
    assert_eq!(vars["h_net2.residual.0.block.1.bias"].abs().max().double_value(&[]), 0.0);
    // Conv weights [out, in·k·k] flattened: orthonormal rows (out < in·k·k).
    let c = vars["h_net2.upsample.1.weight"].view([8, -1]);
    let gram = c.matmul(&c.tr());
    assert!((gram - Tensor::eye(8, (Kind::Float, Device::Cpu))).abs().max().double_value(&[]) < 1e-4);
}

#[test]
fn load_generator_reads_the_ema_weights_and_refuses_other_files() {
    tch::manual_seed(7);
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny(2);
    let vs = nn::VarStore::new(Device::Cpu);
    let g = Generator::new(vs.root(), &cfg);
    let mut ck = Checkpoint::new("train");
    ck.set_meta(dmgan::GAN_META_KEY, cfg.to_json());
    ck.set_meta("kind", "snapshot");
    ck.push_var_store(dmgan::EMA_G_PREFIX, &vs);
    let snap = dir.path().join("netG_epoch_0001.safetensors");
    checkpoint::save(&snap, &ck).unwrap();
    let (_vs2, g2, cfg2) = dmgan::load_generator(&snap, Device::Cpu).unwrap();
    assert_eq!(cfg2, cfg);
    let z = Tensor::randn([2, cfg.z_dim], (Kind::Float, Device::Cpu));
    let sent = Tensor::randn([2, cfg.nef], (Kind::Float, Device::Cpu));
    let words = Tensor::randn([2, cfg.nef, 4], (Kind::Float, Device::Cpu));
    let mask = Tensor::zeros([2, 4], (Kind::Bool, Device::Cpu));
    let eps = Tensor::randn([2, cfg.condition_dim], (Kind::Float, Device::Cpu));
    let a = g.forward_eps(&z, Some(&eps), &sent, &words, &mask, false).images[1].copy();
    let b = g2.forward_eps(&z, Some(&eps), &sent, &words, &mask, false).images[1].copy();
    assert!((a - b).abs().max().double_value(&[]) < 1e-6);

    // A run folder works through checkpoints/latest.safetensors.
    let run = dir.path().join("run");
    std::fs::create_dir_all(run.join("checkpoints")).unwrap();
    std::fs::copy(&snap, run.join("checkpoints/latest.safetensors")).unwrap();
    assert!(dmgan::load_generator(&run, Device::Cpu).is_ok());

    // Missing, not a GAN checkpoint, corrupt: errors naming the file.
    let missing = dir.path().join("nope.safetensors");
    let e = format!("{:#}", dmgan::load_generator(&missing, Device::Cpu).unwrap_err());
    assert!(e.contains("nope.safetensors"), "{e}");
    let mut other = Checkpoint::new("pretrain");
    other.push("clip.x", Tensor::zeros([2], (Kind::Float, Device::Cpu)));
    let other_path = dir.path().join("clip.safetensors");
    checkpoint::save(&other_path, &other).unwrap();
    let e = format!("{:#}", dmgan::load_generator(&other_path, Device::Cpu).unwrap_err());
    assert!(e.contains("clip.safetensors") && e.contains("not a DM-GAN checkpoint"), "{e}");
    let bad = dir.path().join("bad.safetensors");
    let mut bytes = std::fs::read(&snap).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0xff;
    std::fs::write(&bad, &bytes).unwrap();
    let e = format!("{:#}", dmgan::load_generator(&bad, Device::Cpu).unwrap_err());
    assert!(e.contains("bad.safetensors"), "{e}");
    // Wrong architecture for the weights.
    let mut wrong = Checkpoint::new("train");
    wrong.set_meta(dmgan::GAN_META_KEY, tiny(3).to_json());
    wrong.push_var_store(dmgan::EMA_G_PREFIX, &vs);
    let wrong_path = dir.path().join("wrong.safetensors");
    checkpoint::save(&wrong_path, &wrong).unwrap();
    let e = format!("{:#}", dmgan::load_generator(&wrong_path, Device::Cpu).unwrap_err());
    assert!(e.contains("wrong.safetensors") && e.contains("missing"), "{e}");
}
