//! The command line's own scripts, run as a user runs them: `make install`'s files
//! (completions in the real bash, zsh and fish) and `scripts/gpu-check.sh --dry-run`;
//! and the binary under bad input (issue 13's campaign, `hardening.rs`).
mod gpu_check;
mod hardening;
mod install;
