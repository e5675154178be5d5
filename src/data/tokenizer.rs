//! CLIP's byte-level BPE tokenizer: lower-cased caption, `<|startoftext|>` ... `<|endoftext|>`,
//! truncated or zero-padded to WORDS_NUM, with an attention mask and lengths.
//!
//! The BPE itself is the crate `instant-clip-tokenizer` (bit-exact with OpenAI's
//! `simple_tokenizer.py`). Its vocabulary is either the one it embeds (OpenAI's
//! `bpe_simple_vocab_16e6.txt`, `builtin`) or read from a HuggingFace checkpoint folder
//! (`tokenizer.json`, or `vocab.json` + `merges.txt`). A CLIP vocabulary's ids follow from
//! its merge list (256 byte tokens, 256 end-of-word byte tokens, one token per merge, then
//! the two specials), so a HuggingFace file is turned into a merge list and its `vocab` is
//! checked to follow that layout; a file that does not is refused rather than mis-read.
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// The embedded vocabulary's size (OpenAI CLIP): 512 byte tokens + 48,894 merges + 2 specials.
pub const CLIP_VOCAB_SIZE: usize = 49_408;

/// A caption's token ids: `ids.len()` = words_num; `ids[..len]` = BOS, text, EOS; then zeros.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tokens {
    pub ids: Vec<i64>,
    /// Real tokens, BOS and EOS included (2..=words_num).
    pub len: usize,
}

/// A batch of tokenized captions, on one device.
#[derive(Debug)]
pub struct TokenBatch {
    /// [B, L] i64; padding is 0 (as OpenAI's `clip.tokenize`).
    pub ids: Tensor,
    /// [B, L] Bool, true at BOS..=EOS (the real tokens).
    pub mask: Tensor,
    /// [B] i64: real tokens per caption, BOS and EOS included; EOS sits at `lengths - 1`.
    pub lengths: Tensor,
}

impl TokenBatch {
    pub fn to_device(&self, device: Device) -> TokenBatch {
        TokenBatch { ids: self.ids.to_device(device), mask: self.mask.to_device(device), lengths: self.lengths.to_device(device) }
    }

    /// Rows `0..B` as `Tokens` (for logs, tests and sample captions).
    pub fn rows(&self) -> Vec<Tokens> {
        let ids = self.ids.to_device(Device::Cpu);
        let lengths = self.lengths.to_device(Device::Cpu);
        let b = ids.size()[0];
        (0..b)
            .map(|i| Tokens { ids: Vec::<i64>::try_from(ids.get(i)).unwrap_or_default(), len: lengths.int64_value(&[i]) as usize })
            .collect()
    }
}

impl Clone for TokenBatch {
    fn clone(&self) -> Self {
        TokenBatch { ids: self.ids.shallow_clone(), mask: self.mask.shallow_clone(), lengths: self.lengths.shallow_clone() }
    }
}

pub struct Tokenizer {
    bpe: instant_clip_tokenizer::Tokenizer,
    bos: i64,
    eos: i64,
    vocab_size: usize,
    /// Where the vocabulary came from (`builtin` or a file), for messages.
    pub source: String,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer").field("source", &self.source).field("vocab_size", &self.vocab_size).finish()
    }
}

impl Tokenizer {
    /// OpenAI CLIP's vocabulary (49,408 tokens), embedded in the binary.
    pub fn builtin() -> Result<Tokenizer> {
        let bpe = instant_clip_tokenizer::Tokenizer::new();
        Ok(Tokenizer::wrap(bpe, CLIP_VOCAB_SIZE, "builtin".into()))
    }

    /// A HuggingFace CLIP tokenizer: a `tokenizer.json`, or a checkpoint folder holding
    /// `tokenizer.json` or `vocab.json` + `merges.txt`.
    pub fn from_file(path: &Path) -> Result<Tokenizer> {
        if path.is_dir() {
            let json = path.join("tokenizer.json");
            if json.is_file() {
                return Tokenizer::from_tokenizer_json(&json);
            }
            let (vocab, merges) = (path.join("vocab.json"), path.join("merges.txt"));
            if vocab.is_file() && merges.is_file() {
                return Tokenizer::from_vocab_merges(&vocab, &merges);
            }
            bail!("{}: the folder holds neither tokenizer.json nor vocab.json + merges.txt", path.display());
        }
        if !path.exists() {
            bail!("{}: tokenizer file not found", path.display());
        }
        Tokenizer::from_tokenizer_json(path)
    }

    /// `CLIPGAN.TOKENIZER`: `builtin` (or empty) or a path, relative paths taken from `base`.
    pub fn from_setting(setting: &str, base: &Path) -> Result<Tokenizer> {
        let s = setting.trim();
        if s.is_empty() || s.eq_ignore_ascii_case("builtin") {
            return Tokenizer::builtin();
        }
        let path = crate::config::resolve_against(base, s).unwrap_or_else(|| PathBuf::from(s));
        Tokenizer::from_file(&path).with_context(|| format!("CLIPGAN.TOKENIZER = {s:?}"))
    }

    /// The tokenizer a config asks for (`CLIPGAN.TOKENIZER`).
    pub fn from_config(loaded: &crate::config::LoadedConfig) -> Result<Tokenizer> {
        Tokenizer::from_setting(&loaded.config.clipgan.tokenizer, &loaded.base_dir)
    }

    fn from_tokenizer_json(path: &Path) -> Result<Tokenizer> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let json: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))?;
        let model = &json["model"];
        if model["type"].as_str().is_some_and(|t| t != "BPE") {
            bail!("{}: model.type is {}, expected BPE (a CLIP tokenizer)", path.display(), model["type"]);
        }
        let vocab = parse_vocab(&model["vocab"]).with_context(|| format!("{}: model.vocab", path.display()))?;
        let merges_json =
            model["merges"].as_array().with_context(|| format!("{}: model.merges is missing or not a list", path.display()))?;
        let mut merges = Vec::with_capacity(merges_json.len());
        for (i, m) in merges_json.iter().enumerate() {
            // Older files write "a b", newer ones ["a", "b"].
            let pair = match m {
                serde_json::Value::String(s) => s.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())),
                serde_json::Value::Array(v) if v.len() == 2 => match (v[0].as_str(), v[1].as_str()) {
                    (Some(a), Some(b)) => Some((a.to_string(), b.to_string())),
                    _ => None,
                },
                _ => None,
            };
            merges.push(pair.with_context(|| format!("{}: model.merges[{i}] is not a pair of tokens", path.display()))?);
        }
        let mut specials = vocab.clone();
        for t in json["added_tokens"].as_array().into_iter().flatten() {
            if let (Some(c), Some(id)) = (t["content"].as_str(), t["id"].as_i64()) {
                specials.insert(c.to_string(), id);
            }
        }
        Tokenizer::from_parts(path, &vocab, &specials, &merges)
    }

    fn from_vocab_merges(vocab_path: &Path, merges_path: &Path) -> Result<Tokenizer> {
        let text = std::fs::read_to_string(vocab_path).with_context(|| format!("cannot read {}", vocab_path.display()))?;
        let json: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", vocab_path.display()))?;
        let vocab = parse_vocab(&json).with_context(|| format!("{}", vocab_path.display()))?;
        let text = std::fs::read_to_string(merges_path).with_context(|| format!("cannot read {}", merges_path.display()))?;
        let mut merges = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.starts_with("#version") || line.trim().is_empty() {
                continue;
            }
            let (a, b) = line
                .split_once(' ')
                .with_context(|| format!("{}:{}: expected two tokens separated by a space", merges_path.display(), i + 1))?;
            merges.push((a.to_string(), b.to_string()));
        }
        Tokenizer::from_parts(vocab_path, &vocab, &vocab, &merges)
    }

    /// Check that `vocab` is CLIP's layout for `merges`, then build the BPE from the merges.
    fn from_parts(
        path: &Path,
        vocab: &HashMap<String, i64>,
        with_specials: &HashMap<String, i64>,
        merges: &[(String, String)],
    ) -> Result<Tokenizer> {
        let size = 512 + merges.len() + 2;
        if size > u16::MAX as usize {
            bail!("{}: {} merges is more than a CLIP vocabulary holds", path.display(), merges.len());
        }
        let expected = clip_layout(merges);
        for (token, &id) in vocab {
            if token == "<|startoftext|>" || token == "<|endoftext|>" {
                continue;
            }
            match expected.get(token) {
                Some(&e) if e == id => {}
                Some(&e) => bail!(
                    "{}: token {token:?} has id {id}, but CLIP's byte-level layout for these merges gives it {e}; not a CLIP tokenizer",
                    path.display()
                ),
                None => {
                    bail!("{}: token {token:?} (id {id}) is neither a byte token nor made by a merge; not a CLIP tokenizer", path.display())
                }
            }
        }
        for (name, want) in [("<|startoftext|>", size as i64 - 2), ("<|endoftext|>", size as i64 - 1)] {
            match with_specials.get(name) {
                Some(&id) if id == want => {}
                Some(&id) => bail!("{}: {name} has id {id}, expected {want} (right after the merges)", path.display()),
                None => bail!("{}: the special token {name} is missing", path.display()),
            }
        }
        // The crate reads OpenAI's merges file: a header line, then one "a b" per line.
        let mut text = String::from("#version: 0.2\n");
        for (a, b) in merges {
            text.push_str(a);
            text.push(' ');
            text.push_str(b);
            text.push('\n');
        }
        let bpe = instant_clip_tokenizer::Tokenizer::with_vocabulary(Cursor::new(text), size as u16)
            .map_err(|e| anyhow::anyhow!("{}: invalid merge list: {e}", path.display()))?;
        Ok(Tokenizer::wrap(bpe, size, path.display().to_string()))
    }

    fn wrap(bpe: instant_clip_tokenizer::Tokenizer, vocab_size: usize, source: String) -> Tokenizer {
        let bos = bpe.start_of_text().to_u16() as i64;
        let eos = bpe.end_of_text().to_u16() as i64;
        Tokenizer { bpe, bos, eos, vocab_size, source }
    }

    pub fn bos_id(&self) -> i64 {
        self.bos
    }

    pub fn eos_id(&self) -> i64 {
        self.eos
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The caption's BPE ids without BOS/EOS, untruncated (for caption statistics).
    pub fn encode_text(&self, text: &str) -> Vec<i64> {
        let mut out = Vec::with_capacity(text.len() / 3 + 4);
        self.bpe.encode(text, &mut out);
        // The crate treats the literal text "<start_of_text>"/"<end_of_text>" as the special
        // tokens; a caption must never smuggle a second EOS in (models find EOS by position).
        out.into_iter().map(|t| t.to_u16() as i64).filter(|&id| id != self.bos && id != self.eos).collect()
    }

    /// BOS, the caption's tokens, EOS, zero padding, `words_num` ids in all (at least 2).
    /// A caption too long keeps its first `words_num - 2` tokens and EOS last (as OpenAI's
    /// `clip.tokenize(..., truncate=True)`).
    pub fn encode(&self, text: &str, words_num: usize) -> Tokens {
        let words_num = words_num.max(2);
        let body = self.encode_text(text);
        let keep = body.len().min(words_num - 2);
        let mut ids = Vec::with_capacity(words_num);
        ids.push(self.bos);
        ids.extend_from_slice(&body[..keep]);
        ids.push(self.eos);
        let len = ids.len();
        ids.resize(words_num, 0);
        Tokens { ids, len }
    }

    /// `encode` for each text, as CPU tensors.
    pub fn encode_batch(&self, texts: &[&str], words_num: usize) -> TokenBatch {
        let rows: Vec<Tokens> = texts.iter().map(|t| self.encode(t, words_num)).collect();
        TokenBatch::from_tokens(&rows, words_num.max(2))
    }

    /// Token ids back to text (lossy; for logs and sample captions): BOS dropped, stops at
    /// EOS, so padding is ignored.
    pub fn decode(&self, ids: &[i64]) -> String {
        let tokens = ids
            .iter()
            .skip_while(|&&id| id == self.bos)
            .take_while(|&&id| id != self.eos)
            .filter_map(|&id| u16::try_from(id).ok())
            .filter_map(|id| instant_clip_tokenizer::Token::from_u16(id, &self.bpe));
        self.bpe.decode(tokens).trim_end().to_string()
    }
}

impl TokenBatch {
    /// Stack rows of equal length `words_num` into CPU tensors.
    pub fn from_tokens(rows: &[Tokens], words_num: usize) -> TokenBatch {
        let b = rows.len() as i64;
        let l = words_num as i64;
        let mut ids = Vec::with_capacity(rows.len() * words_num);
        let mut mask = Vec::with_capacity(rows.len() * words_num);
        let mut lengths = Vec::with_capacity(rows.len());
        for r in rows {
            debug_assert_eq!(r.ids.len(), words_num);
            ids.extend_from_slice(&r.ids);
            mask.extend((0..words_num).map(|i| i < r.len));
            lengths.push(r.len as i64);
        }
        TokenBatch {
            ids: Tensor::from_slice(&ids).view([b, l]),
            mask: Tensor::from_slice(&mask).view([b, l]).to_kind(Kind::Bool),
            lengths: Tensor::from_slice(&lengths),
        }
    }
}

fn parse_vocab(v: &serde_json::Value) -> Result<HashMap<String, i64>> {
    let obj = v.as_object().context("expected an object mapping tokens to ids")?;
    obj.iter().map(|(k, id)| Ok((k.clone(), id.as_i64().with_context(|| format!("the id of {k:?} is not an integer"))?))).collect()
}

/// The ids CLIP's byte-level BPE gives its tokens: byte symbols in GPT-2's
/// `bytes_to_unicode` order (0..256), the same with `</w>` (256..512), then one per merge.
fn clip_layout(merges: &[(String, String)]) -> HashMap<String, i64> {
    let mut order: Vec<u32> = (b'!'..=b'~').chain(0xA1..=0xAC).chain(0xAE..=0xFF).map(u32::from).collect();
    let mut n = 0;
    for b in 0..256u32 {
        if !order.contains(&b) {
            order.push(256 + n);
            n += 1;
        }
    }
    let symbols: Vec<String> = order.iter().map(|&c| char::from_u32(c).unwrap_or('\u{fffd}').to_string()).collect();
    let mut map = HashMap::with_capacity(512 + merges.len());
    for (i, s) in symbols.iter().enumerate() {
        map.insert(s.clone(), i as i64);
        map.insert(format!("{s}</w>"), 256 + i as i64);
    }
    for (i, (a, b)) in merges.iter().enumerate() {
        // Later entries win, as in the Python dict the ids come from.
        map.insert(format!("{a}{b}"), 512 + i as i64);
    }
    map
}
