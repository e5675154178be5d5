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
        # Debian's python3 without python3-venv has no ensurepip: make the venv without
        # pip and bootstrap pip from its wheel on PyPI.
        rm -rf "$CLIPGAN_VENV.tmp"
        "$py" -m venv --without-pip "$CLIPGAN_VENV.tmp" || return 1
        "$CLIPGAN_VENV.tmp/bin/python" - <<'PY' || return 1
import json, subprocess, sys, tempfile, urllib.request, os
meta = json.load(urllib.request.urlopen("https://pypi.org/pypi/pip/json"))
url = next(u["url"] for u in meta["urls"] if u["filename"].endswith(".whl"))
whl = os.path.join(tempfile.mkdtemp(), url.rsplit("/", 1)[1])
urllib.request.urlretrieve(url, whl)
subprocess.check_call([sys.executable, whl + "/pip", "install", "-q", whl])
PY
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
