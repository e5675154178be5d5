# Sourced by the Makefile (and usable by hand: `source scripts/env.sh`).
#
# Makes sure a Python venv with the pinned torch exists, then exports what the tch build
# needs. Everything heavy lives outside the clone under $CLIPGAN_CACHE (default
# ~/.cache/clipgan) so that CI and later clones reuse it; a fresh machine builds it from
# zero the first time (about 2 minutes for torch, 5 for the first cargo build).
TORCH_VERSION=2.11.0
CLIPGAN_CACHE="${CLIPGAN_CACHE:-$HOME/.cache/clipgan}"
CLIPGAN_VENV="${CLIPGAN_VENV:-$CLIPGAN_CACHE/venv-torch-$TORCH_VERSION}"

clipgan_make_venv() {
    local py
    py="$(command -v python3 || command -v python)" || { echo "clipgan: python3 is needed to install torch" >&2; return 1; }
    echo "clipgan: creating $CLIPGAN_VENV with torch==$TORCH_VERSION (first run only)" >&2
    mkdir -p "$CLIPGAN_CACHE"
    rm -rf "$CLIPGAN_VENV.tmp"
    if ! "$py" -m venv "$CLIPGAN_VENV.tmp" 2>/dev/null; then
        # Debian's python3 ships venv's pip bootstrap (ensurepip) in a separate package.
        rm -rf "$CLIPGAN_VENV.tmp"
        local pkg=python3-venv
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "clipgan: $py cannot make a venv with pip; installing $pkg with apt" >&2
            { DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg" >/dev/null 2>&1 ||
              { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg" >/dev/null; }; } ||
              { echo "clipgan: apt-get install $pkg failed" >&2; return 1; }
            "$py" -m venv "$CLIPGAN_VENV.tmp" || return 1
        else
            echo "clipgan: $py cannot make a venv with pip (no ensurepip). Install Debian's $pkg (sudo apt install $pkg), then run this again." >&2
            return 1
        fi
    fi
    "$CLIPGAN_VENV.tmp/bin/python" -m pip install -q --disable-pip-version-check "torch==$TORCH_VERSION" || return 1
    # Only a complete install gets the final name, so an interrupted one is redone.
    # (A venv's python works from a renamed folder; only pip's launcher scripts don't,
    # and we always call `python -m pip`.)
    rm -rf "$CLIPGAN_VENV"
    mv "$CLIPGAN_VENV.tmp" "$CLIPGAN_VENV"
}

if [ ! -x "$CLIPGAN_VENV/bin/python" ]; then
    clipgan_make_venv || { echo "clipgan: could not install torch==$TORCH_VERSION into $CLIPGAN_VENV" >&2; return 1 2>/dev/null || exit 1; }
fi

export VIRTUAL_ENV="$CLIPGAN_VENV"
export PATH="$CLIPGAN_VENV/bin:$PATH"
export LIBTORCH_USE_PYTORCH=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CLIPGAN_CACHE/target}"
