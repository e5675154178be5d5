//! The text each stage feeds CLIP's tokenizer for a caption line (`CLIPGAN.CAPTION_FORM`).
//!
//! The seed differs per stage: its finetuning dataset passes the caption file's line as
//! it is (`raw`), while its DM-GAN and evaluation datasets rebuild each caption from
//! AttnGAN's tokens (`words`: the line lower-cased, split by the regular expression
//! `\w+`, each token stripped of non-ASCII characters, joined with single spaces), so
//! punctuation never reaches CLIP there. `seed` (the default) follows that per stage;
//! `raw` or `words` use one form everywhere.
use crate::config::CAPTION_FORMS;
use anyhow::{bail, Result};
use std::borrow::Cow;

/// What a caption line becomes before CLIP's tokenizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptionForm {
    /// The line as read (trimmed; CUB's "\u{fffd}\u{fffd}" already a space).
    Raw,
    /// AttnGAN's `\w+` tokens of the lower-cased line, ASCII only, joined with spaces.
    Words,
}

/// The stages that feed CLIP captions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// CLIP finetuning (`clipgan pretrain`): the seed's `raw`.
    Finetune,
    /// DM-GAN training and evaluation (`clipgan train`, `clipgan eval`): the seed's `words`.
    Gan,
}

impl CaptionForm {
    /// The form `setting` (a `CAPTION_FORMS` value) gives `stage`.
    pub fn for_stage(setting: &str, stage: Stage) -> Result<CaptionForm> {
        Ok(match (setting.trim().to_ascii_lowercase().as_str(), stage) {
            ("seed" | "", Stage::Finetune) | ("raw", _) => CaptionForm::Raw,
            ("seed" | "", Stage::Gan) | ("words", _) => CaptionForm::Words,
            (other, _) => bail!("CLIPGAN.CAPTION_FORM: '{other}' (expected one of: {})", CAPTION_FORMS.join(", ")),
        })
    }

    /// The text CLIP's tokenizer gets for `line`.
    pub fn apply<'a>(self, line: &'a str) -> Cow<'a, str> {
        match self {
            CaptionForm::Raw => Cow::Borrowed(line),
            CaptionForm::Words => Cow::Owned(attngan_words(line)),
        }
    }
}

/// AttnGAN's caption tokens joined with spaces, as the seed rebuilt captions:
/// `RegexpTokenizer(r'\w+').tokenize(cap.lower())`, then `t.encode('ascii', 'ignore')`
/// per token, then `' '.join(tokens)`. A word character is Python's `\w` on `str`: a
/// letter or digit (Unicode) or `_`. A token that loses every character to the ASCII
/// filter stays as an empty string, so the join keeps its two spaces (CLIP's tokenizer
/// collapses white space).
pub fn attngan_words(line: &str) -> String {
    let lower = line.to_lowercase();
    let tokens: Vec<String> = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|t| !t.is_empty())
        .map(|t| t.chars().filter(char::is_ascii).collect())
        .collect();
    tokens.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_follow_attngans_tokenizer() {
        assert_eq!(
            attngan_words("This bird has a red-crested, WHITE belly!  It's small."),
            "this bird has a red crested white belly it s small"
        );
        assert_eq!(attngan_words("a bird_with 2 wings..."), "a bird_with 2 wings");
        // Non-ASCII letters are word characters, then dropped from their token.
        assert_eq!(attngan_words("Café ünder"), "caf nder");
        assert_eq!(attngan_words("a é b"), "a  b");
        assert_eq!(attngan_words("...!"), "");
    }

    #[test]
    fn the_seed_form_differs_per_stage() {
        assert_eq!(CaptionForm::for_stage("seed", Stage::Finetune).unwrap(), CaptionForm::Raw);
        assert_eq!(CaptionForm::for_stage("seed", Stage::Gan).unwrap(), CaptionForm::Words);
        assert_eq!(CaptionForm::for_stage("raw", Stage::Gan).unwrap(), CaptionForm::Raw);
        assert_eq!(CaptionForm::for_stage("words", Stage::Finetune).unwrap(), CaptionForm::Words);
        assert!(CaptionForm::for_stage("tokens", Stage::Gan).is_err());
        assert_eq!(CaptionForm::Words.apply("A red bird."), "a red bird");
        assert_eq!(CaptionForm::Raw.apply("A red bird."), "A red bird.");
    }
}
