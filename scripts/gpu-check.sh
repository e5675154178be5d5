#!/usr/bin/env bash
# The GPU path checked in one command (docs/training.md, "The GPU check").
#
#   scripts/gpu-check.sh --prepare      here (Rust, the venv): build the release binary,
#                                       strip it into .gpu/clipgan (+ .gpu/clipgan.torch)
#   scripts/gpu-check.sh                on the GPU machine (no Rust, no network): the six
#                                       checks on CUDA, one table at the end
#   scripts/gpu-check.sh --dry-run      anywhere: the plan, and the CPU halves of the checks
#
# Options: --binary PATH (default .gpu/clipgan), --python PATH (the Python whose torch
# `lib` folder the binary runs against; default python3), --built-for VERSION (the torch
# the binary needs; default .gpu/clipgan.torch, else what the binary says), --work DIR
# (kept), --keep (keep the temporary folder), --only 1,3,... (a subset of the checks).
#
# It needs, besides the binary: bash, coreutils, that Python with torch (the PyTorch
# reference runs on it) and, for the FID comparison against pytorch-fid's own model, the
# pytorch_fid package (else the repo's re-implementation of that model is used, and the
# table says so). Exit status: 0 when every check run passed, 1 when one failed, 2 when
# it refused to start (no binary, torch of another version).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODE=gpu
BINARY=""
PYTHON="${PYTHON:-python3}"
BUILT_FOR=""
WORK=""
KEEP=0
ONLY=""

die() { echo "gpu-check: $*" >&2; exit 2; }
usage() { sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --prepare) MODE=prepare ;;
        --dry-run) MODE=dry ;;
        --binary) BINARY="${2:?--binary needs a path}"; shift ;;
        --python) PYTHON="${2:?--python needs a path}"; shift ;;
        --built-for) BUILT_FOR="${2:?--built-for needs a version}"; shift ;;
        --work) WORK="${2:?--work needs a folder}"; KEEP=1; shift ;;
        --keep) KEEP=1 ;;
        --only) ONLY="${2:?--only needs a list such as 1,3}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option $1" ;;
    esac
    shift
done

GPU_DIR="$ROOT/.gpu"

# --prepare: the release binary, stripped, and the torch version it was built for.
if [ "$MODE" = prepare ]; then
    # shellcheck disable=SC1091
    source "$ROOT/scripts/env.sh" || die "scripts/env.sh failed"
    (cd "$ROOT" && cargo build --release --bin clipgan) || die "cargo build --release failed"
    mkdir -p "$GPU_DIR"
    cp "$CARGO_TARGET_DIR/release/clipgan" "$GPU_DIR/clipgan.tmp" || die "copying the binary failed"
    strip "$GPU_DIR/clipgan.tmp" || die "strip failed (binutils)"
    mv "$GPU_DIR/clipgan.tmp" "$GPU_DIR/clipgan"
    built="$("$GPU_DIR/clipgan" doctor --json | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["torch_built_for"] or "")')"
    [ -n "$built" ] || die "the binary cannot say which torch it was built for"
    echo "$built" > "$GPU_DIR/clipgan.torch"
    echo "gpu-check: $GPU_DIR/clipgan ($(du -h "$GPU_DIR/clipgan" | cut -f1)), built for torch $built"
    echo "gpu-check: copy the repository with .gpu/ to the GPU machine and run scripts/gpu-check.sh there"
    exit 0
fi

# ---------------------------------------------------------------- set-up
BINARY="${BINARY:-$GPU_DIR/clipgan}"
[ -x "$BINARY" ] || die "no clipgan binary at $BINARY (run scripts/gpu-check.sh --prepare on a machine with Rust, or give --binary PATH)"
BINARY="$(cd "$(dirname "$BINARY")" && pwd)/$(basename "$BINARY")"
command -v "$PYTHON" >/dev/null || die "no Python at $PYTHON (give --python PATH)"
TORCH_INFO="$("$PYTHON" -c 'import os, torch; print(torch.__version__); print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>&1)" ||
    die "$PYTHON cannot import torch: $(tail -n 1 <<<"$TORCH_INFO")"
TORCH_VERSION="$(sed -n 1p <<<"$TORCH_INFO")"
TORCH_LIB="$(sed -n 2p <<<"$TORCH_INFO")"
[ -f "$TORCH_LIB/libtorch_cpu.so" ] || die "$TORCH_LIB has no libtorch_cpu.so (is $PYTHON's torch a pip install?)"
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

if [ -z "$WORK" ]; then
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/clipgan-gpu-check.XXXXXX")" || die "mktemp failed"
fi
mkdir -p "$WORK/logs" "$WORK/home" || die "cannot write $WORK"
LOGS="$WORK/logs"
# Runs, the daemon's state and its socket stay inside the work folder.
export CLIPGAN_HOME="$WORK/home"
unset CLIPGAN_RUN_DIR CLIPGAN_DEVICE CLIPGAN_SLOT
START=$SECONDS

# The helper that reads the JSON the binary and the references print (stdlib only).
HELPER="$WORK/check.py"
cat > "$HELPER" <<'PY'
import glob, json, math, os, sys

def load(path):
    with open(path) as f:
        return json.load(f)

def public(v):
    return v.split("+")[0].split(" ")[0].strip()

def fail(msg):
    print(msg)
    sys.exit(1)

def doctor(path, mode, torch_lib):
    d = load(path)
    gib = lambda b: f"{b / 2**30:.1f} GiB" if b else "memory ?"
    loaded = os.path.realpath(d.get("loaded_from") or "")
    if loaded != os.path.realpath(torch_lib):
        fail(f"libtorch loaded from {d.get('loaded_from')}, not {torch_lib}")
    if not d["torch_matches"]:
        fail(f"torch {d['torch_loaded']} loaded, built for {d['torch_built_for']}")
    if d["cpu_tensor_op"] != "ok":
        fail(f"CPU tensor op: {d['cpu_tensor_op']}")
    if mode == "dry":
        print(f"torch {d['torch_loaded']} from {torch_lib}; CPU op ok; CUDA devices {len(d['cuda_devices'])} (dry run: not needed)")
        return
    devs = d["cuda_devices"]
    if not d["cuda_available"] or not devs:
        fail(f"no CUDA device (backend {d['cuda_backend']}; NVML: {d.get('nvml_error') or 'ok'})")
    bad = [x for x in devs if x["tensor_op"] != "ok"]
    if bad:
        fail(f"cuda:{bad[0]['index']} tensor op {bad[0]['tensor_op']}")
    names = ", ".join(f"{x['name'] or '?'} {gib(x['memory_total_bytes'])}" for x in devs)
    missing = [k for k in ("driver_version", "cuda_runtime", "cudnn_version") if not d.get(k)]
    text = (f"{names}; driver {d.get('driver_version') or '?'} (CUDA {d.get('driver_cuda') or '?'}), "
            f"runtime {d.get('cuda_runtime') or '?'}, cuDNN {d.get('cudnn_version') or '?'} ({'on' if d['cudnn_available'] else 'OFF'})")
    if missing or not d["cudnn_available"]:
        fail(text + f"; missing: {', '.join(missing) or 'cuDNN'}")
    print(text)

def unit_codes(path):
    d = load(path)
    out = []
    for item in d.get("texts", []) + d.get("images", []):
        c = item["code"]
        n = math.sqrt(sum(x * x for x in c)) or 1.0
        out.append([x / n for x in c])
    return out

def codes(ref, other, bound, what):
    a, b = unit_codes(ref), unit_codes(other)
    if not a or len(a) != len(b):
        fail(f"{what}: {len(a)} vs {len(b)} codes")
    worst = max(abs(x - y) for u, v in zip(a, b) for x, y in zip(u, v))
    if not math.isfinite(worst) or worst > float(bound):
        fail(f"{what}: max |d| {worst:.2e} > {float(bound):.0e}")
    print(f"{what} {worst:.1e} (<= {float(bound):.0e})")

def run(run_dir, steps, resumed_from):
    """A training run: finished at `steps`, finite losses, a latest checkpoint, and (when
    resumed_from > 0) metrics after the resume point."""
    st = load(os.path.join(run_dir, "status.json"))
    if st.get("state") != "finished" or st.get("step") != int(steps):
        fail(f"{os.path.basename(run_dir)}: state {st.get('state')} at step {st.get('step')} (expected finished at {steps}): {st.get('message', '')}")
    if not os.path.isfile(os.path.join(run_dir, "checkpoints", "latest.safetensors")):
        fail(f"{os.path.basename(run_dir)}: no checkpoints/latest.safetensors")
    losses, last = 0, 0
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("tag", "").startswith("loss/"):
                v = e["value"]
                if isinstance(v, str) or not math.isfinite(v):
                    fail(f"{os.path.basename(run_dir)}: {e['tag']} = {v} at step {e['step']}")
                losses += 1
                last = max(last, e["step"])
    if losses == 0:
        fail(f"{os.path.basename(run_dir)}: no loss logged")
    if int(resumed_from) > 0 and last <= int(resumed_from):
        fail(f"{os.path.basename(run_dir)}: no loss after the resume at step {resumed_from}")
    print(f"{losses} finite losses to step {last}")

def ratio(ours, ref, what, goal, mode):
    a, b = load(ours), load(ref)
    ta, tb = a["median_wall_s"], b["median_wall_s"]
    if not (ta > 0 and tb > 0 and math.isfinite(ta) and math.isfinite(tb)):
        fail(f"{what}: bad times {ta} / {tb}")
    r = tb / ta
    note = ""
    if mode == "gpu" and goal:
        note = f" (goal >= {goal}x: {'met' if r >= float(goal) else 'NOT met'})"
    print(f"{what} {ta:.3f} s vs {tb:.3f} s: {r:.2f}x{note}")

def resources(path, pid, mode):
    d = load(path)
    procs = [p for p in d["procs"] if p["pid"] == int(pid)]
    if not procs:
        fail(f"worker {pid} not in the sample")
    p = procs[0]
    if not p.get("rss_bytes") or p.get("cpu_percent") is None:
        fail(f"worker {pid}: rss {p.get('rss_bytes')}, cpu {p.get('cpu_percent')}")
    if mode == "dry":
        err = d.get("gpu_error") or ""
        if not err.startswith("no NVIDIA GPU / driver"):
            fail(f"expected 'no NVIDIA GPU / driver' without NVML, got {d.get('gpus') or err!r}")
        print(f"worker cpu {p['cpu_percent']:.0f}% rss {p['rss']}; GPU: '{err[:60]}'")
        return
    if "gpus" not in d:
        fail(f"NVML: {d.get('gpu_error')}")
    mem = [m for m in p["gpu_mem"] if m["bytes"] > 0]
    if not mem:
        # NVML names processes by the host's pids: inside a container they may not match.
        seen = "; ".join(f"GPU{g['index']} {g['name']} {g['mem_used_bytes'] / 2**30:.2f} GiB used, util {g['util_percent']}%" for g in d["gpus"])
        fail(f"worker {pid}: NVML lists no GPU memory for it (another pid namespace?); devices: {seen or 'none'}")
    dev = mem[0]["device"]
    gpu = [g for g in d["gpus"] if g["index"] == dev][0]
    if p["gpu_util"]:
        util = f"worker util {p['gpu_util'][0]['percent']}%"
    elif gpu["util_percent"] is not None:
        util = f"device util {gpu['util_percent']}% (no per-process figure)"
    else:
        fail(f"worker {pid}: no utilisation reported")
    print(f"worker {mem[0]['bytes'] / 2**30:.2f} GiB on GPU{dev}, {util}, cpu {p['cpu_percent']:.0f}%")

def slots(status_path):
    d = load(status_path)
    seen = {}
    for task in d["tasks"]:
        if task.get("group") != "gpucheck":
            continue
        if task.get("state") != "finished":
            fail(f"task {task['id']}: {task.get('state')} {task.get('message', '')}")
        with open(os.path.join(task["run_dir"], "logs", "stdout.log")) as f:
            line = next((l for l in f if l.startswith("fake-run: run")), "")
        # The worker's own view: "fake-run: run ID slot=S cuda_visible_devices=G from ..."
        words = dict(w.split("=", 1) for w in line.split() if "=" in w)
        seen[words.get("slot")] = words.get("cuda_visible_devices")
    want = {"0": "0", "1": "1"}
    if seen != want:
        fail(f"slot -> CUDA_VISIBLE_DEVICES {seen}, documented {want}")
    print("slot 0 -> CUDA_VISIBLE_DEVICES=0, slot 1 -> 1 (--gpus 0,1 --slots 2)")

def all_final(status_path):
    d = load(status_path)
    ts = [t for t in d["tasks"] if t.get("group") == "gpucheck"]
    final = {"finished", "failed", "killed", "lost", "diverged", "stopped", "dep_failed"}
    sys.exit(0 if len(ts) == 2 and all(t.get("state") in final for t in ts) else 1)

def field(path, key):
    print(load(path)[key])

if __name__ == "__main__":
    globals()[sys.argv[1].replace("-", "_")](*sys.argv[2:])
PY
py() { "$PYTHON" "$HELPER" "$@"; }

# ---------------------------------------------------------------- results
declare -A RESULT DETAIL
NAMES=([0]="torch" [1]="doctor" [2]="CLIP embed" [3]="pretrain/train" [4]="speed vs PyTorch" [5]="resources (NVML)" [6]="slots --gpus")
record() { RESULT[$1]="$2"; DETAIL[$1]="$3"; }
wanted() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }

print_table() {
    local i status failed=0
    echo
    echo "clipgan GPU check ($([ "$MODE" = dry ] && echo "dry run, CPU" || echo GPU)), $(date -u '+%Y-%m-%d %H:%M UTC'), $((SECONDS - START)) s"
    printf '%-2s %-17s %-6s %s\n' "#" "check" "result" "detail"
    for i in 0 1 2 3 4 5 6; do
        status="${RESULT[$i]:-}"
        [ -n "$status" ] || continue
        [ "$status" = FAIL ] && failed=1
        printf '%-2s %-17s %-6s %s\n' "$i" "${NAMES[$i]}" "$status" "${DETAIL[$i]}"
    done
    echo "logs: $LOGS$([ "$KEEP" = 1 ] || [ "$failed" = 1 ] || echo ' (removed)')"
    return $failed
}

finish() {
    local rc=0
    print_table || rc=1
    # The daemon of check 6 may still be up after a failure; stop it (it lives in $WORK).
    "$BINARY" daemon --stop >/dev/null 2>&1 || true
    if [ "$rc" = 0 ] && [ "$KEEP" = 0 ]; then
        rm -rf "$WORK"
    fi
    exit "${1:-$rc}"
}

# Run a command with a time limit, its output in $LOGS/NAME.log (stdout alone in
# $LOGS/NAME.out when asked with OUT=1).
logged() {
    local name="$1" limit="$2"
    shift 2
    if [ "${OUT:-0}" = 1 ]; then
        timeout "$limit" "$@" >"$LOGS/$name.out" 2>"$LOGS/$name.log"
    else
        timeout "$limit" "$@" >"$LOGS/$name.log" 2>&1
    fi
}

# ---------------------------------------------------------------- the plan
if [ "$MODE" = dry ]; then
    DEVICE=cpu
    cat <<EOF
gpu-check --dry-run: the plan, with the CPU halves of the comparisons run on tiny sizes
  binary   $BINARY
  torch    $TORCH_VERSION at $TORCH_LIB
  work     $WORK
On the GPU, each check does (here: what runs instead):
  1 doctor: the GPU is seen (name, memory, driver, CUDA, cuDNN)         (here: torch and CPU only)
  2 clip embed of the pretrain checkpoint, CPU vs CUDA in f32 and bf16 autocast (here: CPU f32 vs CPU bf16)
  3 pretrain + train of cfg/demo for 24 steps, resumed to 32, with and without AMP, on CUDA
                                                                         (here: 3 steps resumed to 5, CPU, no AMP)
  4 bench train-step (bird, batch 4) and fid-features (batch 32) vs the PyTorch references on CUDA
                                                                         (here: demo batch 2, FID batch 2, CPU)
  5 resources data source: a CUDA worker's GPU memory and utilisation through NVML
                                                                         (here: no NVML -> 'no NVIDIA GPU / driver')
  6 two slots with --gpus 0,1 hand out CUDA_VISIBLE_DEVICES 0 and 1     (the same here)
EOF
else
    DEVICE=cuda
    echo "gpu-check: $BINARY on torch $TORCH_VERSION ($TORCH_LIB), work folder $WORK"
fi

# ---------------------------------------------------------------- 0: the torch version
if [ -z "$BUILT_FOR" ] && [ -f "$BINARY.torch" ]; then
    BUILT_FOR="$(cat "$BINARY.torch")"
fi
if [ -z "$BUILT_FOR" ]; then
    if OUT=1 logged doctor-version 60 "$BINARY" doctor --json; then :; fi
    BUILT_FOR="$(py field "$LOGS/doctor-version.out" torch_built_for 2>/dev/null)"
fi
if [ -z "$BUILT_FOR" ] || [ "$BUILT_FOR" = None ]; then
    record 0 FAIL "cannot tell which torch $BINARY was built for (no $BINARY.torch; give --built-for)"
    finish 2
fi
if [ "${TORCH_VERSION%%+*}" != "${BUILT_FOR%%+*}" ]; then
    record 0 FAIL "$PYTHON has torch $TORCH_VERSION, but the binary was built for torch $BUILT_FOR: install torch==${BUILT_FOR%%+*} or rebuild (--prepare) against this one"
    echo "gpu-check: refusing to run: torch $TORCH_VERSION is not the $BUILT_FOR the binary was built for" >&2
    finish 2
fi
record 0 PASS "torch $TORCH_VERSION (built for $BUILT_FOR)"

# ---------------------------------------------------------------- 1: doctor
if wanted 1; then
    if OUT=1 logged doctor 120 "$BINARY" doctor --json || [ -s "$LOGS/doctor.out" ]; then
        if d="$(py doctor "$LOGS/doctor.out" "$MODE" "$TORCH_LIB")"; then record 1 PASS "$d"; else record 1 FAIL "$d"; fi
    else
        record 1 FAIL "clipgan doctor failed: $(tail -n 3 "$LOGS/doctor.log" | tr '\n' ' ')"
    fi
fi

# ---------------------------------------------------------------- 3: pretrain and train
# A demo config with some keys replaced (or added) in its sections.
config_with() { # SRC OUT SECTION.KEY=VALUE...
    local src="$1" out="$2"
    shift 2
    awk -v sets="$*" '
        BEGIN { n = split(sets, kv, " "); for (i = 1; i <= n; i++) { split(kv[i], p, "="); split(p[1], sk, "."); val[sk[1] "." sk[2]] = p[2]; sec[sk[1]] = 1 } }
        function flush(s,   k, parts) { for (k in val) { split(k, parts, "."); if (parts[1] == s && !(k in done)) { print "  " parts[2] ": " val[k]; done[k] = 1 } } }
        /^[A-Z_]+:/ { if (cur != "") flush(cur); cur = substr($0, 1, index($0, ":") - 1); print; next }
        /^  [A-Z_]+:/ && cur != "" { key = $1; sub(":", "", key); k = cur "." key; if (k in val) { if (!(k in done)) { print "  " key ": " val[k]; done[k] = 1 }; next } }
        { print }
        END { if (cur != "") flush(cur) }
    ' "$src" > "$out"
}

if [ "$MODE" = dry ]; then
    SYNTH=(--train 64 --test 32 --size 64); STEPS1=3; STEPS2=5; BATCH_P=8; BATCH_T=4; AMPS=(false); THREADS=1
else
    SYNTH=(--train 512 --test 128 --size 128); STEPS1=24; STEPS2=32; BATCH_P=32; BATCH_T=8; AMPS=(false true); THREADS=0
fi
PRETRAIN_RUN=""
if wanted 3 || wanted 2; then
    mkdir -p "$CLIPGAN_HOME/cfg"
    if ! logged synth 300 "$BINARY" data synth --out "$CLIPGAN_HOME/data/synth" "${SYNTH[@]}"; then
        record 3 FAIL "clipgan data synth failed (see $LOGS/synth.log)"
    fi
fi
# One job kind: run to STEPS1, resume to STEPS2, check both. Prints the run folder.
train_and_resume() { # JOB AMP EXTRA_ARGS...
    local job="$1" amp="$2" cfg run detail
    shift 2
    local common=(CLIPGAN.DEVICE="'$DEVICE'" CLIPGAN.AMP=$amp CLIPGAN.THREADS=$THREADS CLIPGAN.LOG_EVERY=1 CLIPGAN.CHECKPOINT_MINUTES=0)
    local batch=$BATCH_P
    [ "$job" = train ] && batch=$BATCH_T
    cfg="$CLIPGAN_HOME/cfg/$job-amp-$amp"
    config_with "$ROOT/cfg/demo/$job.yml" "$cfg-1.yml" "${common[@]}" CLIPGAN.MAX_STEPS=$STEPS1 TRAIN.BATCH_SIZE=$batch CLIPGAN.SAMPLE_EVERY=$STEPS2
    config_with "$ROOT/cfg/demo/$job.yml" "$cfg-2.yml" "${common[@]}" CLIPGAN.MAX_STEPS=$STEPS2 TRAIN.BATCH_SIZE=$batch CLIPGAN.SAMPLE_EVERY=$STEPS2
    run="$CLIPGAN_HOME/runs/$job-amp-$amp"
    if ! logged "$job-amp-$amp-1" 300 "$BINARY" "$job" --cfg "$cfg-1.yml" --run-dir "$run" "$@"; then
        echo "$job (AMP $amp) failed: $(tail -n 2 "$LOGS/$job-amp-$amp-1.log" | tr '\n' ' ')"
        return 1
    fi
    detail="$(py run "$run" "$STEPS1" 0)" || { echo "$job (AMP $amp): $detail"; return 1; }
    if ! logged "$job-amp-$amp-2" 300 "$BINARY" "$job" --cfg "$cfg-2.yml" --resume "$run" "$@"; then
        echo "$job (AMP $amp) resume failed: $(tail -n 2 "$LOGS/$job-amp-$amp-2.log" | tr '\n' ' ')"
        return 1
    fi
    grep -q "continuing from" "$LOGS/$job-amp-$amp-2.log" || { echo "$job (AMP $amp): the resume did not continue from the checkpoint"; return 1; }
    detail="$(py run "$run" "$STEPS2" "$STEPS1")" || { echo "$job (AMP $amp) after resume: $detail"; return 1; }
    echo "$job AMP $amp: $STEPS1 steps + resume to $STEPS2 ok"
}
if { wanted 3 || wanted 2; } && [ -z "${RESULT[3]:-}" ]; then
    parts=() ok=1
    for amp in "${AMPS[@]}"; do
        if out="$(train_and_resume pretrain "$amp")"; then parts+=("$out"); else parts+=("$out"); ok=0; fi
        [ "$amp" = false ] && [ "$ok" = 1 ] && PRETRAIN_RUN="$CLIPGAN_HOME/runs/pretrain-amp-false"
        if [ "$ok" = 1 ] && wanted 3; then
            if out="$(train_and_resume train "$amp" --clip "$CLIPGAN_HOME/runs/pretrain-amp-$amp")"; then parts+=("$out"); else parts+=("$out"); ok=0; fi
        fi
        [ "$ok" = 1 ] || break
    done
    note=""
    [ "$MODE" = dry ] && note="; AMP runs on CUDA only (CPU ignores CLIPGAN.AMP)"
    [ "$MODE" = gpu ] && note="; GAN training runs f32 whatever CLIPGAN.AMP says (its note)"
    if wanted 3; then
        joined="$(printf '%s; ' "${parts[@]}")"
        joined="${joined%; }"
        if [ "$ok" = 1 ]; then record 3 PASS "$joined$note"; else record 3 FAIL "$joined"; fi
    fi
fi

# ---------------------------------------------------------------- 2: CLIP embed
if wanted 2; then
    if [ -z "$PRETRAIN_RUN" ]; then
        record 2 FAIL "no pretrain checkpoint to embed with (check 3's pretrain failed)"
    else
        mapfile -t images < <(find "$CLIPGAN_HOME/data/synth" -name '*.jpg' | sort | head -n 2)
        embed=("$BINARY" clip embed --model "$PRETRAIN_RUN" --text "a small red circle" --text "a large blue square on green"
            --text "an orange triangle" --image "${images[0]}" --image "${images[1]}")
        F32_BOUND=5e-3; BF16_BOUND=5e-2
        if ! OUT=1 logged embed-cpu 120 "${embed[@]}" --device cpu; then
            record 2 FAIL "clip embed on the CPU failed: $(tail -n 2 "$LOGS/embed-cpu.log" | tr '\n' ' ')"
        elif [ "$MODE" = dry ]; then
            if ! OUT=1 logged embed-cpu-amp 120 "${embed[@]}" --device cpu --amp; then
                record 2 FAIL "clip embed --amp on the CPU failed: $(tail -n 2 "$LOGS/embed-cpu-amp.log" | tr '\n' ' ')"
            elif d="$(py codes "$LOGS/embed-cpu.out" "$LOGS/embed-cpu-amp.out" "$BF16_BOUND" "CPU f32 vs CPU bf16: max |d| of unit codes")"; then
                record 2 PASS "$d; CUDA halves on the GPU"
            else
                record 2 FAIL "$d"
            fi
        else
            detail="" ok=1
            for amp in f32 bf16; do
                flag=(); bound=$F32_BOUND
                [ "$amp" = bf16 ] && flag=(--amp) && bound=$BF16_BOUND
                if ! OUT=1 logged "embed-cuda-$amp" 120 "${embed[@]}" --device cuda "${flag[@]}"; then
                    detail+="clip embed on CUDA ($amp) failed: $(tail -n 2 "$LOGS/embed-cuda-$amp.log" | tr '\n' ' '); "; ok=0; continue
                fi
                d="$(py codes "$LOGS/embed-cpu.out" "$LOGS/embed-cuda-$amp.out" "$bound" "CPU f32 vs CUDA $amp")" || ok=0
                detail+="$d; "
            done
            if [ "$ok" = 1 ]; then record 2 PASS "${detail%; }"; else record 2 FAIL "${detail%; }"; fi
        fi
    fi
fi

# ---------------------------------------------------------------- 4: speed against PyTorch
if wanted 4; then
    if [ "$MODE" = dry ]; then
        step_ours=(--cfg "$ROOT/cfg/demo/train.yml" --batch 2 --iters 1 --threads 1)
        step_ref=(--preset demo --batch 2 --iters 1 --threads 1)
        fid=(--batch 2 --iters 1 --threads 1)
    else
        step_ours=(--cfg "$ROOT/cfg/clip_bird_DMGAN.yml" --batch 4 --iters 5)
        step_ref=(--preset bird --batch 4 --iters 5)
        fid=(--batch 32 --iters 5)
    fi
    detail="" ok=1
    if OUT=1 logged step-clipgan 300 "$BINARY" bench train-step "${step_ours[@]}" --device "$DEVICE" --json &&
        OUT=1 logged step-pytorch 300 "$PYTHON" "$ROOT/benches/reference/dmgan_step.py" "${step_ref[@]}" --device "$DEVICE" --json; then
        d="$(py ratio "$LOGS/step-clipgan.out" "$LOGS/step-pytorch.out" "DM-GAN step" 1.25 "$MODE")" || ok=0
        detail+="$d; "
    else
        ok=0
        detail+="train-step bench failed (see $LOGS/step-*.log); "
    fi
    if "$PYTHON" -c 'import pytorch_fid, torchvision' 2>/dev/null; then
        fid_model=pytorch-fid fid_what="FID features vs pytorch-fid"
    else
        fid_model=repo fid_what="FID features vs benches/reference/fid_inception.py (pytorch-fid not installed)"
    fi
    if OUT=1 logged fid-clipgan 300 "$BINARY" bench fid-features "${fid[@]}" --device "$DEVICE" --json &&
        OUT=1 logged fid-pytorch 300 "$PYTHON" "$ROOT/benches/reference/fid_inception.py" bench "${fid[@]}" --model "$fid_model" --device "$DEVICE" --json; then
        d="$(py ratio "$LOGS/fid-clipgan.out" "$LOGS/fid-pytorch.out" "$fid_what" 1.0 "$MODE")" || ok=0
        detail+="$d"
    else
        ok=0
        detail+="fid-features bench failed (see $LOGS/fid-*.log)"
    fi
    [ "$MODE" = dry ] && detail+="; CPU, tiny sizes: no speed goal"
    if [ "$ok" = 1 ]; then record 4 PASS "$detail"; else record 4 FAIL "$detail"; fi
fi

# ---------------------------------------------------------------- 5: resources data source
if wanted 5; then
    # A worker that computes for a while: the train-step bench on the device.
    worker_cfg="$ROOT/cfg/demo/train.yml"
    "$BINARY" bench train-step --cfg "$worker_cfg" --batch 2 --iters 100000 --threads 1 --device "$DEVICE" >"$LOGS/resources-worker.log" 2>&1 &
    worker=$!
    # Sample once it is computing (its first timed iteration printed), at most 60 s.
    for _ in $(seq 1 120); do
        grep -q "^iteration 1:" "$LOGS/resources-worker.log" 2>/dev/null && break
        kill -0 "$worker" 2>/dev/null || break
        sleep 0.5
    done
    nvml=()
    # Without NVML on purpose in the dry run, so that it takes the no-driver path anywhere.
    [ "$MODE" = dry ] && nvml=(env CLIPGAN_NVML_LIB="$WORK/no-libnvidia-ml.so")
    if ! kill -0 "$worker" 2>/dev/null; then
        record 5 FAIL "the worker ended early: $(tail -n 2 "$LOGS/resources-worker.log" | tr '\n' ' ')"
    elif OUT=1 logged resources 60 "${nvml[@]}" "$BINARY" resources --pid "$worker" --samples 3 --interval-ms 1000 --json; then
        if d="$(py resources "$LOGS/resources.out" "$worker" "$MODE")"; then record 5 PASS "$d"; else record 5 FAIL "$d"; fi
    else
        record 5 FAIL "clipgan resources failed: $(tail -n 2 "$LOGS/resources.log" | tr '\n' ' ')"
    fi
    kill "$worker" 2>/dev/null
    wait "$worker" 2>/dev/null
fi

# ---------------------------------------------------------------- 6: slots and --gpus
if wanted 6; then
    ok=1
    logged slots-group 60 "$BINARY" groups add gpucheck --slots 2 --gpus 0,1 || ok=0
    # Both tasks are queued before either starts (a busy machine once let the first
    # finish before the second was queued, so both ran in slot 0).
    [ "$ok" = 1 ] && { logged slots-pause 60 "$BINARY" pause --group gpucheck --wait || ok=0; }
    for _ in 1 2; do
        [ "$ok" = 1 ] || break
        logged slots-add 60 "$BINARY" queue add --job fake-run --group gpucheck -- --steps 10 --step-ms 50 --sample-every 0 || ok=0
    done
    [ "$ok" = 1 ] && { logged slots-resume 60 "$BINARY" resume --group gpucheck || ok=0; }
    if [ "$ok" = 0 ]; then
        record 6 FAIL "queueing on the daemon failed: $(tail -n 2 "$LOGS"/slots-*.log | tr '\n' ' ')"
    else
        for _ in $(seq 1 120); do
            OUT=1 logged slots-status 30 "$BINARY" status --json && py all_final "$LOGS/slots-status.out" && break
            sleep 0.5
        done
        if d="$(py slots "$LOGS/slots-status.out")"; then record 6 PASS "$d"; else record 6 FAIL "$d"; fi
    fi
    logged daemon-stop 60 "$BINARY" daemon --stop
fi

finish
