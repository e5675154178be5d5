//! The CLIP tokenizer: ids against OpenAI's, truncation, padding, masks, HuggingFace files.
use clipgan::data::{Tokenizer, Tokens};
use std::path::{Path, PathBuf};
use tch::Kind;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data").join(name)
}

fn real_ids(t: &Tokens) -> &[i64] {
    &t.ids[..t.len]
}

// Ids computed by OpenAI's simple_tokenizer.py (the first two are also in CLIP's README).
const KNOWN: &[(&str, &[i64])] = &[
    ("a photo of a cat", &[49406, 320, 1125, 539, 320, 2368, 49407]),
    ("a diagram", &[49406, 320, 22697, 49407]),
    ("a dog", &[49406, 320, 1929, 49407]),
    ("A person riding a motorcycle", &[49406, 320, 2533, 6765, 320, 10297, 49407]),
    ("This bird has a RED crown and   white belly.", &[49406, 589, 3329, 791, 320, 736, 6902, 537, 1579, 10404, 269, 49407]),
    (
        "the small bird's wings are grey-brown, with 2 stripes",
        &[49406, 518, 2442, 3329, 568, 5178, 631, 5046, 268, 2866, 267, 593, 273, 14239, 49407],
    ),
];

#[test]
fn builtin_matches_openai_ids_and_pads_with_zeros() {
    let tok = Tokenizer::builtin().unwrap();
    assert_eq!((tok.bos_id(), tok.eos_id(), tok.vocab_size()), (49406, 49407, 49408));
    for (text, ids) in KNOWN {
        let t = tok.encode(text, 77);
        assert_eq!(real_ids(&t), *ids, "{text}");
        assert_eq!(t.len, ids.len());
        assert_eq!(t.ids.len(), 77);
        assert!(t.ids[t.len..].iter().all(|&i| i == 0), "padding is 0 after EOS");
    }
    assert_eq!(tok.decode(&tok.encode("A photo of a CAT", 77).ids), "a photo of a cat");
}

#[test]
fn truncation_keeps_eos_last() {
    let tok = Tokenizer::builtin().unwrap();
    let t = tok.encode("a photo of a cat", 5);
    assert_eq!(t.ids, vec![49406, 320, 1125, 539, 49407]);
    assert_eq!(t.len, 5);
    // Exactly fitting: no truncation, no padding.
    let t = tok.encode("a photo of a cat", 7);
    assert_eq!(t.ids, vec![49406, 320, 1125, 539, 320, 2368, 49407]);
    // Empty caption: BOS, EOS.
    let t = tok.encode("", 4);
    assert_eq!((t.ids.clone(), t.len), (vec![49406, 49407, 0, 0], 2));
    // Text spelling a special token never yields a second BOS/EOS.
    let t = tok.encode("hi <end_of_text> there", 10);
    assert_eq!(t.ids.iter().filter(|&&i| i == 49407).count(), 1);
    assert_eq!(t.ids[t.len - 1], 49407);
}

#[test]
fn batch_tensors_ids_mask_lengths() {
    let tok = Tokenizer::builtin().unwrap();
    let b = tok.encode_batch(&["a dog", "a photo of a cat", "a very long caption that will not fit"], 6);
    assert_eq!(b.ids.size(), vec![3, 6]);
    assert_eq!(b.ids.kind(), Kind::Int64);
    assert_eq!(b.mask.kind(), Kind::Bool);
    assert_eq!(b.lengths.kind(), Kind::Int64);
    let ids: Vec<Vec<i64>> = (0..3).map(|i| Vec::<i64>::try_from(b.ids.get(i)).unwrap()).collect();
    assert_eq!(ids[0], vec![49406, 320, 1929, 49407, 0, 0]);
    assert_eq!(ids[1], vec![49406, 320, 1125, 539, 320, 49407]);
    assert_eq!(ids[2][5], 49407);
    assert_eq!(Vec::<i64>::try_from(&b.lengths).unwrap(), vec![4, 6, 6]);
    let mask: Vec<Vec<bool>> = (0..3).map(|i| Vec::<bool>::try_from(b.mask.get(i)).unwrap()).collect();
    assert_eq!(mask[0], vec![true, true, true, true, false, false]);
    assert_eq!(mask[1], vec![true; 6]);
    let rows = b.rows();
    assert_eq!(rows[0].ids, ids[0]);
    assert_eq!(rows[0].len, 4);
}

#[test]
fn huggingface_tokenizer_json() {
    // OpenAI's vocabulary cut to its first 5000 merges, in HuggingFace's layout.
    let tok = Tokenizer::from_file(&fixture("tokenizer.json")).unwrap();
    assert_eq!((tok.bos_id(), tok.eos_id(), tok.vocab_size()), (5512, 5513, 5514));
    let ids = |s: &str| {
        let t = tok.encode(s, 16);
        t.ids[..t.len].to_vec()
    };
    // Words whose tokens are all among the first 5000 merges tokenize as with the full vocabulary.
    assert_eq!(ids("a photo of a cat"), vec![5512, 320, 1125, 539, 320, 2368, 5513]);
    assert_eq!(ids("the bird has a yellow crown"), vec![5512, 518, 3329, 791, 320, 4481, 1192, 757, 5513]);
    // "diagram" (22697) is not: it splits into smaller tokens.
    assert_eq!(ids("a diagram"), vec![5512, 320, 570, 2447, 5513]);

    // A checkpoint folder, and the setting form.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("tokenizer.json"), dir.path().join("tokenizer.json")).unwrap();
    assert_eq!(Tokenizer::from_file(dir.path()).unwrap().eos_id(), 5513);
    assert_eq!(Tokenizer::from_setting("tokenizer.json", dir.path()).unwrap().eos_id(), 5513);
    assert_eq!(Tokenizer::from_setting("builtin", dir.path()).unwrap().eos_id(), 49407);
}

#[test]
fn huggingface_vocab_and_merges_files_and_pair_merges() {
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixture("tokenizer.json")).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // vocab.json + merges.txt (older checkpoints).
    std::fs::write(dir.path().join("vocab.json"), json["model"]["vocab"].to_string()).unwrap();
    let mut merges = String::from("#version: 0.2\n");
    for m in json["model"]["merges"].as_array().unwrap() {
        merges.push_str(m.as_str().unwrap());
        merges.push('\n');
    }
    std::fs::write(dir.path().join("merges.txt"), merges).unwrap();
    let tok = Tokenizer::from_file(dir.path()).unwrap();
    assert_eq!(&tok.encode("a photo of a cat", 8).ids[..7], &[5512, 320, 1125, 539, 320, 2368, 5513]);
    // Newer tokenizer.json files write merges as pairs.
    let mut j = json.clone();
    let pairs: Vec<serde_json::Value> = json["model"]["merges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let (a, b) = m.as_str().unwrap().split_once(' ').unwrap();
            serde_json::json!([a, b])
        })
        .collect();
    j["model"]["merges"] = serde_json::Value::Array(pairs);
    let p = dir.path().join("pairs.json");
    std::fs::write(&p, j.to_string()).unwrap();
    let tok = Tokenizer::from_file(&p).unwrap();
    assert_eq!(&tok.encode("a photo of a cat", 8).ids[..7], &[5512, 320, 1125, 539, 320, 2368, 5513]);
}

#[test]
fn bad_tokenizer_files_are_errors_naming_the_file() {
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixture("tokenizer.json")).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let err = |p: &Path| format!("{:#}", Tokenizer::from_file(p).unwrap_err());

    let missing = dir.path().join("nope.json");
    assert!(err(&missing).contains("nope.json") && err(&missing).contains("not found"));
    let p = write("garbage.json", "{ not json");
    assert!(err(&p).contains("garbage.json") && err(&p).contains("not valid JSON"), "{}", err(&p));
    // Ids that do not follow CLIP's layout (two tokens swapped).
    let mut j = json.clone();
    j["model"]["vocab"]["the</w>"] = serde_json::json!(1000);
    let p = write("swapped.json", &j.to_string());
    assert!(err(&p).contains("swapped.json") && err(&p).contains("not a CLIP tokenizer"), "{}", err(&p));
    // Special token at the wrong id.
    let mut j = json.clone();
    j["model"]["vocab"]["<|endoftext|>"] = serde_json::json!(7);
    j["added_tokens"][1]["id"] = serde_json::json!(7);
    let p = write("special.json", &j.to_string());
    assert!(err(&p).contains("<|endoftext|>"), "{}", err(&p));
    // Not a BPE model; no merges.
    let mut j = json.clone();
    j["model"]["type"] = serde_json::json!("WordPiece");
    let p = write("wordpiece.json", &j.to_string());
    assert!(err(&p).contains("expected BPE"), "{}", err(&p));
    let mut j = json.clone();
    j["model"].as_object_mut().unwrap().remove("merges");
    let p = write("nomerges.json", &j.to_string());
    assert!(err(&p).contains("merges"), "{}", err(&p));
    // A folder without tokenizer files.
    let empty = tempfile::tempdir().unwrap();
    let e = format!("{:#}", Tokenizer::from_file(empty.path()).unwrap_err());
    assert!(e.contains("neither tokenizer.json"), "{e}");
    // The setting names the key.
    let e = format!("{:#}", Tokenizer::from_setting("missing/tokenizer.json", dir.path()).unwrap_err());
    assert!(e.contains("CLIPGAN.TOKENIZER") && e.contains("missing/tokenizer.json"), "{e}");
}
