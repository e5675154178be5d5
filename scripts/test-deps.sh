#!/usr/bin/env bash
# Installs what the test suite's real components need (sourced by `make test` after
# scripts/env.sh): Debian packages with apt (when running as root and one is missing) and
# Python packages into clipgan's venv (when scripts/requirements-test.txt changed).
# Without root, missing Debian packages are listed; the tests that need them fail with a
# message naming the package.
#
# Add a Debian package here when a test runs a real program from it.
# bash, zsh and fish: the shell completions are tested in the real shells (tests/cli).
# xterm, kitty, xvfb, imagemagick: the console in real graphics terminals, screenshots (tests/console/terminals.rs);
# openssh-server, openssh-client, tmux: the console over a real SSH connection (same file);
# bsdutils: `script`, a pty for the jobs' live progress line (tests/jobs/progress.rs).
CLIPGAN_TEST_APT_PACKAGES=(bash zsh fish xterm kitty xvfb imagemagick openssh-server openssh-client tmux bsdutils)

clipgan_test_deps() {
    local missing=() p
    for p in "${CLIPGAN_TEST_APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "clipgan: installing Debian packages for the tests: ${missing[*]}" >&2
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 ||
                { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; } ||
                { echo "clipgan: apt-get install ${missing[*]} failed" >&2; return 1; }
        else
            echo "clipgan: the tests need these Debian packages, which are missing: ${missing[*]} (sudo apt install ${missing[*]})" >&2
        fi
    fi
    local req stamp
    req="$(dirname "${BASH_SOURCE[0]}")/requirements-test.txt"
    stamp="$VIRTUAL_ENV/.clipgan-test-requirements"
    if [ -s "$req" ] && ! cmp -s "$req" "$stamp"; then
        echo "clipgan: installing the tests' Python packages into $VIRTUAL_ENV" >&2
        python -m pip install -q --disable-pip-version-check -r "$req" || { echo "clipgan: pip install -r $req failed" >&2; return 1; }
        cp "$req" "$stamp"
    fi
}
