//! clipgan's DM-GAN computes what DM-GAN's own modules compute: random weights and inputs
//! are written with clipgan's outputs, and benches/reference/dmgan_parity.py loads them into
//! the PyTorch modules of benches/reference/dmgan_step.py (the same torch) and compares
//! every branch's image, μ, log σ² and each discriminator's two logits.

use clipgan::models::dmgan::{Discriminator, GanConfig, Generator};
use std::path::Path;
use std::process::Command;
use tch::{nn, Device, Kind, Tensor};

#[test]
fn generator_and_discriminators_equal_dm_gans_pytorch_modules() {
    tch::set_num_threads(1);
    tch::manual_seed(41);
    // Three branches (so both memory stages and D256's extra blocks take part), two
    // residual blocks, captions of different lengths.
    let cfg = GanConfig { branch_num: 3, gf_dim: 4, df_dim: 4, z_dim: 8, condition_dim: 6, r_num: 2, nef: 16 };
    let (b, l) = (3i64, 7i64);
    let g_vs = nn::VarStore::new(Device::Cpu);
    let g = Generator::new(g_vs.root(), &cfg);
    let d_vs: Vec<nn::VarStore> = (0..3).map(|_| nn::VarStore::new(Device::Cpu)).collect();
    let ds: Vec<Discriminator> = d_vs.iter().enumerate().map(|(k, vs)| Discriminator::new(vs.root(), &cfg, k)).collect();

    let mut file: Vec<(String, Tensor)> = Vec::new();
    // Weights as they are before any forward call (spectral norm's u, v change in it).
    let _ = tch::no_grad_guard();
    for (prefix, vs) in std::iter::once(("g".to_string(), &g_vs)).chain(d_vs.iter().enumerate().map(|(k, vs)| (format!("d{k}"), vs))) {
        for (name, t) in vs.variables() {
            file.push((format!("{prefix}.{name}"), t.copy()));
        }
    }
    let z = Tensor::randn([b, cfg.z_dim], (Kind::Float, Device::Cpu));
    let eps = Tensor::randn([b, cfg.condition_dim], (Kind::Float, Device::Cpu));
    let sent = Tensor::randn([b, cfg.nef], (Kind::Float, Device::Cpu));
    let words = Tensor::randn([b, cfg.nef, l], (Kind::Float, Device::Cpu));
    let lengths = Tensor::from_slice(&[7i64, 4, 5]).view([b, 1]);
    let pad = Tensor::arange(l, (Kind::Int64, Device::Cpu)).view([1, l]).ge_tensor(&lengths);
    let out = g.forward_eps(&z, Some(&eps), &sent, &words, &pad, true);
    for (name, t) in [("z", &z), ("eps", &eps), ("sent", &sent), ("words", &words), ("pad", &pad)] {
        file.push((format!("in.{name}"), t.copy()));
    }
    file.push(("out.mu".into(), out.mu.copy()));
    file.push(("out.logvar".into(), out.logvar.copy()));
    for (k, d) in ds.iter().enumerate() {
        let img = &out.images[k];
        assert_eq!(img.size(), [b, 3, 64 << k, 64 << k]);
        let code = d.code(img);
        file.push((format!("out.img{k}"), img.copy()));
        file.push((format!("out.d{k}.uncond"), d.uncond_logits(&code)));
        file.push((format!("out.d{k}.cond"), d.cond_logits(&code, &sent)));
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("parity.safetensors");
    Tensor::write_safetensors(&file, &path).unwrap();

    let python = std::env::var_os("VIRTUAL_ENV").map(|v| Path::new(&v).join("bin/python")).unwrap_or_else(|| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/reference/dmgan_parity.py");
    let o = Command::new(python)
        .arg(&script)
        .arg(&path)
        .args(["--branch", "3", "--ngf", "4", "--ndf", "4", "--z", "8", "--ncf", "6", "--r-num", "2", "--nef", "16", "--tol", "1e-4"])
        .output()
        .expect("python runs");
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "clipgan and PyTorch differ (or the script failed):\n{text}");
    for want in ["image 256 px", "D256 conditional logit", "largest difference"] {
        assert!(text.contains(want), "{text}");
    }
    println!("{text}");
}
