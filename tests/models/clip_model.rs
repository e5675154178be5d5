//! CLIP in tch: HuggingFace names and loading, a numerical cross-check against a plain
//! PyTorch reference forward (tests/fixtures/clip/make_clip_fixture.py), presets,
//! clipgan checkpoints, hub-cache resolution, pixel conversion.
use clipgan::checkpoint::{self, Checkpoint};
use clipgan::models::clip::{self, Clip, ClipConfig};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{nn, Device, Kind, Tensor};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clip").join(rel)
}

fn expected() -> HashMap<String, Tensor> {
    checkpoint::read_safetensors(&fixture("hf_tiny_expected.safetensors"), Device::Cpu).unwrap().0.into_iter().collect()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

fn set_subr(vs: &nn::VarStore, e: &HashMap<String, Tensor>) {
    let vars = vs.variables();
    tch::no_grad(|| {
        vars["linear_subr.weight"].shallow_clone().copy_(&e["subr_weight"]);
        vars["linear_subr.bias"].shallow_clone().copy_(&e["subr_bias"]);
    });
}

fn check_forward(model: &Clip, e: &HashMap<String, Tensor>) {
    let t = tch::no_grad(|| model.encode_text(&e["ids"], &e["mask"]));
    let i = tch::no_grad(|| model.encode_image(&e["pixels"]));
    for (name, got) in [("words", &t.words), ("sentence", &t.sentence), ("regions", &i.regions), ("code", &i.code)] {
        let d = max_abs_diff(got, &e[name]);
        assert!(d < 1e-5, "{name} differs from the PyTorch reference by {d}");
    }
    let code = tch::no_grad(|| model.image_code(&e["pixels"]));
    assert!(max_abs_diff(&code, &e["code"]) < 1e-5);
}

#[test]
fn hf_folder_loads_and_matches_the_pytorch_reference() {
    let (vs, model, cfg) = clip::load_clip(&fixture("hf_tiny"), "vit-b-32", Device::Cpu).unwrap();
    assert_eq!(cfg.text.hidden_size, 16);
    assert_eq!(cfg.text.intermediate_size, 40);
    assert_eq!(cfg.vision.num_attention_heads, 3);
    assert_eq!(cfg.vision.num_regions(), 16);
    assert_eq!(cfg.projection_dim, 8);
    assert!(!model.subr_loaded, "HF weights have no linear_subr");
    // Every HF parameter name exists (the file's tensors, minus position_ids buffers).
    let header = checkpoint::read_header(&fixture("hf_tiny/model.safetensors")).unwrap();
    let vars = vs.variables();
    for (name, ..) in &header.tensors {
        assert!(vars.contains_key(name) || name.ends_with("position_ids"), "{name}");
    }
    assert_eq!(vars.len(), header.tensors.len() - 2 + 2, "HF parameters + linear_subr weight and bias");
    assert_eq!(cfg.num_parameters() + cfg.subr_parameters(), vars.values().map(|t| t.numel() as i64).sum::<i64>());
    let e = expected();
    set_subr(&vs, &e);
    check_forward(&model, &e);
    assert!((model.logit_scale.double_value(&[]) - 2.6592).abs() < 1e-6);
}

#[test]
fn gradients_reach_every_trained_parameter() {
    let (vs, model, _) = clip::load_clip(&fixture("hf_tiny"), "vit-b-32", Device::Cpu).unwrap();
    let e = expected();
    let t = model.encode_text(&e["ids"], &e["mask"]);
    let i = model.encode_image(&e["pixels"]);
    let loss = t.words.square().mean(Kind::Float)
        + t.sentence.square().mean(Kind::Float)
        + i.regions.square().mean(Kind::Float)
        + i.code.square().mean(Kind::Float);
    loss.backward();
    for (name, p) in vs.variables() {
        let g = p.grad();
        if name == "logit_scale" {
            assert!(!g.defined(), "DAMSM does not use logit_scale");
            continue;
        }
        assert!(g.defined() && g.abs().sum(Kind::Float).double_value(&[]) > 0.0, "{name} gets no gradient");
    }
}

/// Write a modified copy of the fixture folder and return its path.
fn modified_folder(dir: &Path, edit: impl FnOnce(&mut Vec<(String, Tensor)>)) -> PathBuf {
    let (mut ts, _) = checkpoint::read_safetensors(&fixture("hf_tiny/model.safetensors"), Device::Cpu).unwrap();
    edit(&mut ts);
    let out = dir.join("m");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::copy(fixture("hf_tiny/config.json"), out.join("config.json")).unwrap();
    let refs: Vec<(&str, &Tensor)> = ts.iter().map(|(n, t)| (n.as_str(), t)).collect();
    Tensor::write_safetensors(&refs, out.join("model.safetensors")).unwrap();
    out
}

#[test]
fn renamed_missing_misshaped_and_extra_tensors_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let renamed = modified_folder(tmp.path(), |ts| {
        let i = ts.iter().position(|(n, _)| n == "visual_projection.weight").unwrap();
        ts[i].0 = "visual_proj.weight".into();
    });
    let e = clip::load_clip(&renamed, "vit-b-32", Device::Cpu).unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains("missing (1): visual_projection.weight") && msg.contains("unexpected (1): visual_proj.weight"), "{msg}");
    assert!(msg.contains("model.safetensors"), "{msg}");

    let tmp = tempfile::tempdir().unwrap();
    let missing = modified_folder(tmp.path(), |ts| ts.retain(|(n, _)| n != "text_model.encoder.layers.1.mlp.fc2.bias"));
    let msg = format!("{:#}", clip::load_clip(&missing, "vit-b-32", Device::Cpu).unwrap_err());
    assert!(msg.contains("missing (1): text_model.encoder.layers.1.mlp.fc2.bias"), "{msg}");

    let tmp = tempfile::tempdir().unwrap();
    let misshaped = modified_folder(tmp.path(), |ts| {
        let i = ts.iter().position(|(n, _)| n == "text_projection.weight").unwrap();
        ts[i].1 = Tensor::zeros([8, 17], (Kind::Float, Device::Cpu));
    });
    let msg = format!("{:#}", clip::load_clip(&misshaped, "vit-b-32", Device::Cpu).unwrap_err());
    assert!(msg.contains("text_projection.weight: [8, 17] in the file, [8, 16] in the model"), "{msg}");

    let tmp = tempfile::tempdir().unwrap();
    let bad_buffer = modified_folder(tmp.path(), |ts| {
        let i = ts.iter().position(|(n, _)| n == "text_model.embeddings.position_ids").unwrap();
        ts[i].1 = Tensor::zeros([1, 12], (Kind::Int64, Device::Cpu));
    });
    let msg = format!("{:#}", clip::load_clip(&bad_buffer, "vit-b-32", Device::Cpu).unwrap_err());
    assert!(msg.contains("position_ids"), "{msg}");

    // A bare .safetensors takes its architecture from the preset: the wrong one is refused
    // with every mis-shaped tensor named and a hint at the preset.
    let tmp = tempfile::tempdir().unwrap();
    let bare = tmp.path().join("weights.safetensors");
    std::fs::copy(fixture("hf_tiny/model.safetensors"), &bare).unwrap();
    let msg = format!("{:#}", clip::load_clip(&bare, "tiny", Device::Cpu).unwrap_err());
    assert!(msg.contains("CLIP preset \"tiny\"") && msg.contains("wrong shape"), "{msg}");
    // ... and with config.json beside it, the architecture comes from there.
    std::fs::copy(fixture("hf_tiny/config.json"), tmp.path().join("config.json")).unwrap();
    clip::load_clip(&bare, "tiny", Device::Cpu).unwrap();

    // Missing things are named.
    let msg = format!("{:#}", clip::load_clip(&tmp.path().join("nothing.safetensors"), "tiny", Device::Cpu).unwrap_err());
    assert!(msg.contains("nothing.safetensors") && msg.contains("does not exist"), "{msg}");
    let msg = format!("{:#}", clip::load_clip(tmp.path().parent().unwrap(), "tiny", Device::Cpu).unwrap_err());
    assert!(msg.contains("config.json"), "{msg}");
}

#[test]
fn clipgan_checkpoints_carry_their_architecture_and_linear_subr() {
    let (vs, _, cfg) = clip::load_clip(&fixture("hf_tiny"), "vit-b-32", Device::Cpu).unwrap();
    let e = expected();
    set_subr(&vs, &e);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("snap.safetensors");
    let mut ck = Checkpoint::new("pretrain");
    ck.set_meta(clip::CONFIG_META_KEY, cfg.to_hf_json());
    ck.push_var_store(clip::CHECKPOINT_PREFIX, &vs);
    ck.push("optim.something", Tensor::zeros([3], (Kind::Float, Device::Cpu)));
    checkpoint::save(&path, &ck).unwrap();
    // The preset argument is irrelevant: the checkpoint names its own architecture.
    let (_, model, cfg2) = clip::load_finetuned_clip(&path, Device::Cpu).unwrap();
    assert_eq!(cfg, cfg2);
    assert!(model.subr_loaded);
    check_forward(&model, &e);
    // HF weights are not a finetuned CLIP.
    let msg = format!("{:#}", clip::load_finetuned_clip(&fixture("hf_tiny"), Device::Cpu).unwrap_err());
    assert!(msg.contains("linear_subr"), "{msg}");
    // A run folder resolves to its latest checkpoint.
    let run = tmp.path().join("run");
    std::fs::create_dir_all(run.join("checkpoints")).unwrap();
    std::fs::copy(&path, run.join("checkpoints/latest.safetensors")).unwrap();
    let (_, model, _) = clip::load_finetuned_clip(&run, Device::Cpu).unwrap();
    check_forward(&model, &e);
    // A clipgan checkpoint missing linear_subr is refused (no silent random layer).
    let mut ck = Checkpoint::new("pretrain");
    ck.set_meta(clip::CONFIG_META_KEY, cfg.to_hf_json());
    for (n, t) in vs.variables() {
        if !n.starts_with("linear_subr") {
            ck.push(format!("clip.{n}"), t);
        }
    }
    let bad = tmp.path().join("bad.safetensors");
    checkpoint::save(&bad, &ck).unwrap();
    let msg = format!("{:#}", clip::load_clip(&bad, "tiny", Device::Cpu).unwrap_err());
    assert!(msg.contains("missing (2): clip.linear_subr.bias, clip.linear_subr.weight"), "{msg}");
    // A truncated checkpoint is refused with its name.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let msg = format!("{:#}", clip::load_clip(&path, "tiny", Device::Cpu).unwrap_err());
    assert!(msg.contains("snap.safetensors") && msg.contains("truncated"), "{msg}");
}

#[test]
fn hub_names_resolve_through_the_local_huggingface_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("models--acme--clip-tiny");
    let snap = repo.join("snapshots/0123abc");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123abc\n").unwrap();
    std::fs::copy(fixture("hf_tiny/config.json"), snap.join("config.json")).unwrap();
    std::fs::copy(fixture("hf_tiny/model.safetensors"), snap.join("model.safetensors")).unwrap();
    std::env::set_var("HF_HUB_CACHE", tmp.path());
    let src = clip::resolve_source(Path::new("acme/clip-tiny")).unwrap();
    assert_eq!(src, clip::ClipSource::HfFolder(snap.clone()));
    let (_, _, cfg) = clip::load_clip(Path::new("acme/clip-tiny"), "vit-b-32", Device::Cpu).unwrap();
    assert_eq!(cfg.text.hidden_size, 16);
    let msg = format!("{:#}", clip::resolve_source(Path::new("openai/clip-vit-base-patch32")).unwrap_err());
    assert!(
        msg.contains("huggingface-cli download openai/clip-vit-base-patch32") && msg.contains("models--openai--clip-vit-base-patch32"),
        "{msg}"
    );
}

#[test]
fn presets_and_hf_configs() {
    // The published ViT-B/32 size (openai/clip-vit-base-patch32: 151,277,313 parameters).
    let b32 = ClipConfig::preset("vit-b-32").unwrap();
    assert_eq!(b32.num_parameters(), 151_277_313);
    assert_eq!(b32.subr_parameters(), 768 * 512 + 512);
    assert_eq!(b32.vision.num_regions(), 49);
    assert_eq!(b32.joint_dim(), 512);
    // ViT-B/16 (149,620,737) and ViT-L/14 (427,616,513), as published.
    assert_eq!(ClipConfig::preset("vit-b-16").unwrap().num_parameters(), 149_620_737);
    assert_eq!(ClipConfig::preset("vit-l-14").unwrap().num_parameters(), 427_616_513);
    for name in clip::PRESETS {
        let c = ClipConfig::preset(name).unwrap();
        assert_eq!(ClipConfig::from_hf_json_str(&c.to_hf_json()).unwrap(), c, "{name} round trip");
    }
    assert_eq!(clip::PRESETS, clipgan::config::CLIP_PRESETS);
    assert!(ClipConfig::preset("vit-h-14").is_err());
    // The small presets really have their sizes (built, counted).
    for name in ["tiny", "small"] {
        let c = ClipConfig::preset(name).unwrap();
        let vs = nn::VarStore::new(Device::Cpu);
        let _ = Clip::new(vs.root(), &c);
        let n: i64 = vs.variables().values().map(|t| t.numel() as i64).sum();
        assert_eq!(n, c.num_parameters() + c.subr_parameters(), "{name}");
    }
    // Older HF configs: *_config_dict overrides *_config; defaults fill the rest.
    let c = ClipConfig::from_hf_json_str(r#"{"model_type":"clip","projection_dim":512,"text_config":{"hidden_size":999},"text_config_dict":{"hidden_size":512},"vision_config_dict":{"patch_size":16}}"#).unwrap();
    assert_eq!(c, ClipConfig::preset("vit-b-16").unwrap());
    assert!(ClipConfig::from_hf_json_str(r#"{"model_type":"bert"}"#).is_err());
    assert!(ClipConfig::from_hf_json_str(r#"{"vision_config":{"image_size":225}}"#).unwrap_err().to_string().contains("multiple"));
    assert!(ClipConfig::from_hf_json_str(r#"{"text_config":{"hidden_act":"relu"}}"#).is_err());
    assert!(b32.check_words_num(77).is_ok() && b32.check_words_num(78).is_err());
}

#[test]
fn pixels_for_clip_maps_gan_range_to_clip_normalisation() {
    let x = Tensor::full([1, 3, 4, 4], -1.0, (Kind::Float, Device::Cpu));
    let y = clip::pixels_for_clip(&x, 4);
    for c in 0..3 {
        let want = -clip::CLIP_MEAN[c] / clip::CLIP_STD[c];
        assert!((y.double_value(&[0, c as i64, 1, 1]) - want).abs() < 1e-5);
    }
    // Resized with antialiasing: a constant image stays constant; gradients flow.
    let x = Tensor::full([2, 3, 8, 8], 0.5, (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let y = clip::pixels_for_clip(&x, 4);
    assert_eq!(y.size(), vec![2, 3, 4, 4]);
    let want = (0.75 - clip::CLIP_MEAN[0]) / clip::CLIP_STD[0];
    assert!((y.double_value(&[1, 0, 3, 3]) - want).abs() < 1e-5);
    y.sum(Kind::Float).backward();
    assert!(x.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0);
    // Antialiased: a lone bright corner pixel of a 16 px image still shows in a 2 px
    // resize (plain bilinear samples pixels 3-4 and 11-12 only and would drop it).
    let x = Tensor::full([1, 3, 16, 16], -1.0, (Kind::Float, Device::Cpu));
    let _ = x.get(0).get(0).get(0).get(0).fill_(1.0);
    let y = clip::pixels_for_clip(&x, 2);
    let red01 = y.double_value(&[0, 0, 0, 0]) * clip::CLIP_STD[0] + clip::CLIP_MEAN[0];
    assert!(red01 > 1e-3, "the corner pixel vanished: {red01}");
}

#[test]
fn clip_embed_prints_codes_and_rankings() {
    let tmp = tempfile::tempdir().unwrap();
    // A random tiny-preset CLIP saved as a bare HF-named safetensors file.
    tch::manual_seed(5);
    let cfg = ClipConfig::preset("tiny").unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Clip::new(vs.root(), &cfg);
    let vars: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(n, _)| !n.starts_with("linear_subr")).collect();
    let refs: Vec<(&str, &Tensor)> = vars.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let weights = tmp.path().join("tiny.safetensors");
    Tensor::write_safetensors(&refs, &weights).unwrap();
    let mut files = Vec::new();
    for (name, rgb) in [("red.png", [220u8, 30, 30]), ("blue.png", [30, 30, 220])] {
        let p = tmp.path().join(name);
        image::RgbImage::from_pixel(40, 32, image::Rgb(rgb)).save(&p).unwrap();
        files.push(p);
    }
    let texts = ["a red circle", "a blue square on a white background", "three green stars"];
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_clipgan"));
    cmd.args(["clip", "embed", "--model"]).arg(&weights).args(["--preset", "tiny", "--device", "cpu"]);
    for t in texts {
        cmd.args(["--text", t]);
    }
    for f in &files {
        cmd.arg("--image").arg(f);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["texts"].as_array().unwrap().len(), 3);
    assert_eq!(j["images"][1]["code"].as_array().unwrap().len(), 32);
    assert_eq!(j["finetuned"], false);

    // The same numbers computed here: CLIP preprocessing (shorter side to 32, centre crop).
    let tok = clipgan::data::Tokenizer::builtin().unwrap().encode_batch(&texts, 77);
    let sent = tch::no_grad(|| model.encode_text(&tok.ids, &tok.mask).sentence);
    let pixels: Vec<Tensor> = files
        .iter()
        .map(|f| {
            let img = image::open(f).unwrap().to_rgb8();
            let crop = image::imageops::crop_imm(&img, 4, 0, 32, 32).to_image();
            clipgan::data::transforms::image_tensor(&crop, clipgan::data::PixelMode::Clip)
        })
        .collect();
    let codes = tch::no_grad(|| model.image_code(&Tensor::stack(&pixels, 0)));
    for (i, img) in j["rankings"].as_array().unwrap().iter().enumerate() {
        let ranking = img["ranking"].as_array().unwrap();
        assert_eq!(ranking.len(), 3);
        let cos: Vec<f64> = ranking.iter().map(|r| r["cosine"].as_f64().unwrap()).collect();
        assert!(cos.windows(2).all(|w| w[0] >= w[1]), "sorted best first: {cos:?}");
        for r in ranking {
            let k = r["index"].as_u64().unwrap() as i64;
            assert_eq!(r["text"], texts[k as usize]);
            let a = codes.get(i as i64);
            let b = sent.get(k);
            let want = (&a * &b).sum(Kind::Float).double_value(&[]) / (a.norm().double_value(&[]) * b.norm().double_value(&[]));
            assert!((r["cosine"].as_f64().unwrap() - want).abs() < 1e-5, "image {i} text {k}");
        }
    }
    let code0: Vec<f64> = j["images"][0]["code"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert!((code0[3] - codes.double_value(&[0, 3])).abs() < 1e-5);

    // --amp: the same codes under bf16 autocast: close to f32's, but not the same numbers.
    let out = cmd.arg("--amp").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let k: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((&k["amp"], &j["amp"]), (&serde_json::json!(true), &serde_json::json!(false)));
    let flat = |v: &serde_json::Value| -> Vec<f64> {
        ["texts", "images"]
            .iter()
            .flat_map(|key| v[key].as_array().unwrap().iter())
            .flat_map(|t| t["code"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
            .collect()
    };
    let (f32_codes, bf16_codes) = (flat(&j), flat(&k));
    assert_eq!(f32_codes.len(), bf16_codes.len());
    let worst = f32_codes.iter().zip(&bf16_codes).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    let scale = f32_codes.iter().map(|a| a.abs()).fold(0.0, f64::max);
    assert!(worst > 0.0 && worst < 0.05 * scale, "bf16 vs f32: max |d| {worst}, largest code value {scale}");

    // A model whose vocabulary is smaller than the tokenizer's is refused clearly.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clipgan"))
        .args(["clip", "embed", "--model"])
        .arg(fixture("hf_tiny"))
        .args(["--text", "hello", "--device", "cpu"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("vocabulary has 100"), "{}", String::from_utf8_lossy(&out.stderr));
    // A misspelt --device is refused, not taken for auto.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clipgan"))
        .args(["clip", "embed", "--model"])
        .arg(fixture("hf_tiny"))
        .args(["--text", "hello", "--device", "gpu0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--device \"gpu0\": expected auto, cpu, cuda or cuda:N"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // An unreadable image is named.
    let bad = tmp.path().join("broken.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\nbroken").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clipgan"))
        .args(["clip", "embed", "--model"])
        .arg(&weights)
        .args(["--preset", "tiny", "--device", "cpu", "--image"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken.png"), "{}", String::from_utf8_lossy(&out.stderr));
}
