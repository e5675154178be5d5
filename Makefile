# The two commands of the README:
#   make demo   the demo: synthetic data -> CLIP finetuning -> DM-GAN -> evaluation, in the console
#   make test   the test suite (what CI runs)
# Each installs what it needs the first time (a Python venv with torch under
# ~/.cache/clipgan, see scripts/env.sh), then builds with cargo.
SHELL := /bin/bash
ENV := set -euo pipefail; source scripts/env.sh;

.PHONY: demo test build release install uninstall
demo:
	@$(ENV) cargo build --release --bin clipgan; exec "$$CARGO_TARGET_DIR/release/clipgan" demo

test:
	@$(ENV) source scripts/test-deps.sh; clipgan_test_deps; cargo test --no-fail-fast

# Convenience targets for development.
build:
	@$(ENV) cargo build
release:
	@$(ENV) cargo build --release

# clipgan on the PATH, with man pages and bash/zsh/fish completions (PREFIX=/usr/local as root).
PREFIX ?= $(HOME)/.local
install:
	@$(ENV) cargo build --release --bin clipgan; scripts/install.sh "$$CARGO_TARGET_DIR/release/clipgan" "$(PREFIX)"
uninstall:
	@scripts/install.sh --uninstall "$(PREFIX)"
