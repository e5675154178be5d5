//! The command line's own scripts, run as a user runs them: `make install`'s files
//! (completions in the real bash, zsh and fish) and `scripts/gpu-check.sh --dry-run`.
mod gpu_check;
mod install;
