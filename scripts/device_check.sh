#!/usr/bin/env bash
# One GPU check of the whole project on a lent GPU machine (one H100/H200, 16 cores, python3.12 with
# torch/torchvision/pytorch-lightning/matplotlib/numpy/pyyaml preinstalled, NO network).
#
#   scripts/device_check.sh --prepare      HERE, beforehand: wheels -> .device/wheels, data -> .device/fashion-mnist
#   scripts/device_check.sh                THERE, from the repo root, with $OUT set; carry
#                                          [".device/wheels", ".device/fashion-mnist"], timeout_s 600
#   scripts/device_check.sh --cpu-smoke    HERE: the same steps at tiny sizes on the CPU (OUT=/tmp/devout)
#                                          (--dry-run is the same mode)
#
# The wheels `--prepare` downloads (python 3.12, manylinux x86_64; antlr4-python3-runtime 4.9.3, which
# omegaconf 2.3 pins, is only an sdist on PyPI, so its pure-Python wheel is built here first):
#
#   python3 -m pip wheel --no-deps --wheel-dir .device/wheels antlr4-python3-runtime==4.9.3
#   python3 -m pip download --dest .device/wheels --find-links .device/wheels --only-binary=:all: \
#       --python-version 3.12 --implementation cp --abi cp312 \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
#       --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
#       hydra-core omegaconf optuna wandb hydra-joblib-launcher
#
# then moves the wheels of numpy and pyyaml (the GPU image has both) to .device/preinstalled-wheels,
# which stays here, so that what travels (.device/wheels ~31 MiB + .device/fashion-mnist ~30 MiB)
# stays under the 64 MiB a run may carry.
#
# Why the shape of the GPU run: a lent machine gives ~15 minutes in all (start-up included) and one
# command at most 10 minutes, so every step has its own `timeout`, all steps share one deadline
# (TOTAL_BUDGET_S, default 520 s), a failed step never stops the next one, and only <= 8 files in $OUT
# come back (no deeper than $OUT/a/b/file): the Hydra output folders are written outside $OUT and packed
# into one tarball; the numbers that matter are copied next to it as single files.
#
# Knobs (environment): OUT, PYTHON (default python3; .venv/bin/python in --cpu-smoke), TOTAL_BUDGET_S,
# STEPS (default "install,pipeline,gpu,baseline,study"), STUDY_EXPERIMENT (default gpu; cell_gpu: the
# cell space), STUDY_OVERRIDES (extra overrides of the study), GPU_THROUGHPUT_ARGS (extra arguments of
# benchmarks/gpu_throughput.py). The cell study in what a lent machine's 15 minutes leave:
#   STEPS=install,study STUDY_EXPERIMENT=cell_gpu TOTAL_BUDGET_S=540 \
#   STUDY_OVERRIDES='hydra.sweeper.n_trials=24 hydra.sweeper.budget=9
#     hydra.sweeper.final_evaluation.overrides=["trainer.max_epochs=30","early_stopping_patience=null"]'
# (experiment=cell_gpu as it stands, about one GPU-hour, does not fit one lent machine).
set -uo pipefail  # deliberately no -e: a failing step is recorded and the next one still runs
cd "$(dirname "$0")/.."
ROOT=$PWD

WHEELS=.device/wheels                 # carried: carry=[".device/wheels", ".device/fashion-mnist"]
PRUNED=.device/preinstalled-wheels    # not carried: wheels of packages the GPU image already has
DATA=.device/fashion-mnist
DEBIAN_DATA=/usr/share/datasets/fashion-mnist
# Installed on the lent machine: import names that tell the install step it has nothing to do.
NEEDED_IMPORTS="hydra omegaconf optuna wandb hydra_plugins.hydra_joblib_launcher"
NEEDED_PACKAGES="hydra-core omegaconf optuna wandb hydra-joblib-launcher"
# Wheels not to carry: the GPU image has these (torchvision and Lightning need them), and numpy alone is
# 16 MB. Other dependencies the image also has (click, protobuf, requests, ...) are small and still
# carried: pip only installs them where the image's version does not satisfy wandb/optuna/hydra.
PREINSTALLED="numpy pyyaml"

# ------------------------------------------------------------------------------------------------------
# --prepare (here, with network): wheels and data into .device/
# ------------------------------------------------------------------------------------------------------
prepare() {
  local py=${PYTHON:-python3}
  [ -x .venv/bin/python ] && py=${PYTHON:-.venv/bin/python}
  mkdir -p "$WHEELS" "$PRUNED" "$DATA"
  "$py" -m pip wheel --no-deps --wheel-dir "$WHEELS" antlr4-python3-runtime==4.9.3 || return 1
  "$py" -m pip download --dest "$WHEELS" --find-links "$WHEELS" --only-binary=:all: \
    --python-version 3.12 --implementation cp --abi cp312 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    $NEEDED_PACKAGES || return 1
  local name wheel
  for name in $PREINSTALLED; do
    for wheel in "$WHEELS"/*.whl; do
      # Wheel file names normalise the project name to lower case with underscores.
      [ "$(basename "$wheel" | cut -d- -f1 | tr 'A-Z-' 'a-z_')" = "$name" ] && mv -v "$wheel" "$PRUNED"/
    done
  done
  cp -v "$DEBIAN_DATA"/*-ubyte.gz "$DATA"/ || return 1
  ls -la "$WHEELS"
  du -sh "$WHEELS" "$DATA" "$PRUNED"
  local mib
  mib=$(( $(du -cb "$WHEELS" "$DATA" | tail -n 1 | cut -f1) / 1048576 ))
  if [ "$mib" -ge 63 ]; then
    echo "prepare: $WHEELS + $DATA are ${mib} MiB; at most 64 MiB (with the work tree) may travel" >&2
    return 1
  fi
  echo "prepare: done (${mib} MiB to carry); run with carry=[\"$WHEELS\", \"$DATA\"]"
}

# ------------------------------------------------------------------------------------------------------
# Helpers for the run
# ------------------------------------------------------------------------------------------------------
STARTED=$(date +%s)
SUMMARY=()
now() { date +%s; }
remaining() { echo $((DEADLINE - $(now))); }
log() { echo "[device_check +$(($(now) - STARTED))s] $*"; }

# run_step NAME CAP_SECONDS COMMAND...: run COMMAND with min(CAP, time left) seconds, output into
# $LOGS/NAME.log (and a short tail on the console); record the outcome for the summary.
run_step() {
  local name=$1 cap=$2
  shift 2
  local left limit rc t0
  left=$(( $(remaining) - RESERVE_S ))
  limit=$(( cap < left ? cap : left ))
  if [ "$limit" -lt 20 ]; then
    log "$name: skipped, ${left}s left"
    SUMMARY+=("$(printf '%-16s skipped (no time left)' "$name")")
    return 0
  fi
  log "$name: start (timeout ${limit}s): $*"
  t0=$(now)
  # SIGINT first so Lightning/Hydra/the sweeper wind down and write their results; SIGKILL 20 s later.
  # `timeout` signals its whole process group, so spawned children and joblib workers stop too.
  timeout --signal=INT --kill-after=20 "$limit" "$@" >"$LOGS/$name.log" 2>&1
  rc=$?
  local took=$(( $(now) - t0 )) verdict="ok"
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then verdict="TIMEOUT after ${limit}s"
  elif [ "$rc" -ne 0 ]; then verdict="FAILED rc=$rc"; fi
  log "$name: $verdict (${took}s); last lines of $LOGS/$name.log:"
  tail -n 8 "$LOGS/$name.log" | sed 's/^/    /'
  SUMMARY+=("$(printf '%-16s %-26s %5ss' "$name" "$verdict" "$took")")
  return 0
}

step_wanted() { [[ ",$STEPS," == *",$1,"* ]]; }

# ------------------------------------------------------------------------------------------------------
# The steps
# ------------------------------------------------------------------------------------------------------
install_deps() {
  # The lent machine cannot reach PyPI: everything comes from the carried wheels. A normal install lets
  # pip check the wheels against the preinstalled packages; if that fails, the README's fallback puts
  # every carried wheel into /tmp/site without dependency resolution.
  if "$PYTHON" -c "import $(echo "$NEEDED_IMPORTS" | tr ' ' ',')" 2>/dev/null; then
    echo "already importable: $NEEDED_IMPORTS"
    return 0
  fi
  if [ ! -d "$WHEELS" ]; then
    echo "no $WHEELS: run scripts/device_check.sh --prepare on the development machine and carry .device" >&2
    return 1
  fi
  "$PYTHON" -m pip install -q --no-index --find-links "$WHEELS" --no-compile --no-cache-dir \
    $NEEDED_PACKAGES || {
    echo "pip install with dependency resolution failed; installing every wheel into /tmp/site" >&2
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site "$WHEELS"/*.whl || return 1
    export PYTHONPATH=/tmp/site:$PYTHONPATH
    echo "export PYTHONPATH=/tmp/site:\$PYTHONPATH" >"$WORK/pythonpath.sh"
  }
  "$PYTHON" -c "import $(echo "$NEEDED_IMPORTS" | tr ' ' ',')" && echo "imports ok: $NEEDED_IMPORTS"
}

environment_report() {
  {
    echo "date: $(date -u)"; echo "mode: $MODE"; echo "host: $(uname -a)"; echo "cpus: $(nproc)"
    command -v nvidia-smi >/dev/null && nvidia-smi
    "$PYTHON" - <<'EOF'
import importlib, platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda,
      "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(), "bf16", torch.cuda.is_bf16_supported())
for name in ("pytorch_lightning", "torchvision", "numpy", "hydra", "omegaconf", "optuna", "wandb", "matplotlib"):
    try:
        print(name, importlib.import_module(name).__version__)
    except Exception as exc:
        print(name, "MISSING", type(exc).__name__, exc)
EOF
  } >"$LOGS/environment.txt" 2>&1
  head -n 40 "$LOGS/environment.txt" | grep -E "device|torch|MISSING|NVIDIA|python" | head -n 12
}

# Copy the results worth reading on their own to $OUT (7 files at most: only 8 come back) and pack the rest.
collect() {
  local f
  [ -f "$WORK/baseline/result.yaml" ] && cp "$WORK/baseline/result.yaml" "$OUT/baseline_result.yaml"
  for f in optimization_results best_config final_evaluation; do
    [ -f "$WORK/gpu-study/$f.yaml" ] && cp "$WORK/gpu-study/$f.yaml" "$WORK/results/gpu_study_$f.yaml"
  done
  # One yaml with the study's results (optimization_results + best_config + final_evaluation).
  if compgen -G "$WORK/results/gpu_study_*.yaml" >/dev/null; then
    for f in "$WORK"/results/gpu_study_*.yaml; do
      echo "# ---- $(basename "$f")"; cat "$f"
    done >"$OUT/gpu_study_results.yaml"
  fi
  [ -f "$WORK/gpu-study/report.md" ] && cp "$WORK/gpu-study/report.md" "$OUT/gpu_study_report.md"
  summary | tee "$OUT/summary.txt"
  cp "$LOGS"/*.log "$LOGS"/environment.txt "$WORK/results/" 2>/dev/null
  # Everything (logs, Hydra folders, Optuna db, W&B offline runs) in one tarball under 16 MiB.
  tar -C "$WORK" -czf "$OUT/device_check.tar.gz" logs results baseline gpu-study 2>/dev/null
  if [ "$(du -m "$OUT/device_check.tar.gz" | cut -f1)" -ge 15 ]; then
    tar -C "$WORK" -czf "$OUT/device_check.tar.gz" --exclude='wandb' logs results baseline gpu-study 2>/dev/null
  fi
  ls -la "$OUT"
}

summary() {
  echo "==================== device_check summary ($MODE, $(($(now) - STARTED))s) ===================="
  printf '%s\n' "${SUMMARY[@]}"
  "$PYTHON" - "$OUT" "$WORK" <<'EOF'
import json, sys
from pathlib import Path

import yaml

out, work = Path(sys.argv[1]), Path(sys.argv[2])
env = work / "logs" / "environment.txt"
if env.exists():
    print(next((l for l in env.read_text().splitlines() if l.startswith("device ")), "device: cpu"))

p = out / "pipeline_throughput.json"
if p.exists():
    r = json.loads(p.read_text())
    for cfg, res in r["results"].items():
        fl = res["flavours"]
        print(f"pipeline_throughput {cfg}: " + ", ".join(
            f"{k} {v['median_seconds_per_epoch']:.2f}s/epoch" for k, v in fl.items()
        ) + " | " + ", ".join(f"{k} {v:.1f}x" for k, v in res["ratios"].items()))

p = out / "gpu_throughput.json"
if p.exists():
    r = json.loads(p.read_text())
    print(f"gpu_throughput ({r['machine']['device_name']}, complete={r['complete']}):")
    for name, v in r["variants"].items():
        if "error" in v:
            print(f"  {name:<26} ERROR {v['error'][:100]}")
        elif "aggregate_epochs_per_min" in v:
            mem = v.get("max_memory_allocated_mib_per_process")
            print(f"  {name:<26} {v['aggregate_epochs_per_min']:8.1f} epochs/min "
                  f"x{v.get('ratio_vs_single_fp32', float('nan')):.2f}  "
                  f"per process {v['mean_process_epochs_per_min']:.1f}"
                  + (f"  max {max(mem)} MiB/process" if mem else ""))

p = out / "baseline_result.yaml"
if p.exists():
    r = yaml.safe_load(p.read_text())
    print(f"baseline: state={r.get('state')} epochs={r.get('epochs')} val_acc_best={r.get('val_acc_best')} "
          f"test_acc={r.get('test_acc')} wall={r.get('wall_time_s', 0):.0f}s")

p = work / "gpu-study" / "optimization_results.yaml"
if p.exists():
    r = yaml.safe_load(p.read_text()) or {}
    keys = [k for k in r if not isinstance(r[k], (list, dict))]
    print("gpu study: " + ", ".join(f"{k}={r[k]}" for k in keys[:12]))
    for k in ("best", "best_trial", "best_params", "best_value"):
        if k in r:
            print(f"  {k}: {r[k]}")
p = work / "gpu-study" / "final_evaluation.yaml"
if p.exists():
    print("gpu study final evaluation:", json.dumps(yaml.safe_load(p.read_text()), default=str)[:600])
EOF
}

# ------------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------------
MODE=gpu
case "${1:-}" in
  --prepare) prepare; exit $? ;;
  --cpu-smoke|--dry-run) MODE=cpu-smoke ;;
  "") ;;
  *) echo "usage: $0 [--prepare | --cpu-smoke | --dry-run]" >&2; exit 2 ;;
esac

if [ "$MODE" = cpu-smoke ]; then
  OUT=${OUT:-/tmp/devout}
  PYTHON=${PYTHON:-.venv/bin/python}
  TOTAL_BUDGET_S=${TOTAL_BUDGET_S:-900}
  CAP_PIPELINE=240 CAP_GPU=240 CAP_BASELINE=180 CAP_STUDY=300
else
  : "${OUT:?set OUT to the folder whose files come back}"
  PYTHON=${PYTHON:-python3}
  TOTAL_BUDGET_S=${TOTAL_BUDGET_S:-520}
  # Caps per step; the study gets what is left of TOTAL_BUDGET_S.
  CAP_PIPELINE=100 CAP_GPU=${CAP_GPU:-190} CAP_BASELINE=150 CAP_STUDY=600
fi
STEPS=${STEPS:-install,pipeline,gpu,baseline,study}
RESERVE_S=15  # kept back for collecting and packing
DEADLINE=$((STARTED + TOTAL_BUDGET_S))
OUT=$(mkdir -p "$OUT" && cd "$OUT" && pwd)
WORK=$(mktemp -d /tmp/device_check.XXXX)  # Hydra folders etc.; packed into $OUT at the end
LOGS=$WORK/logs
mkdir -p "$LOGS" "$WORK/results" "$WORK/baseline" "$WORK/gpu-study"

# The project without `pip install -e .` (no build backend offline): src/ holds jahs_bohb, the root
# holds hydra_plugins.hydra_bohb_sweeper (a namespace package, merged with hydra-joblib-launcher's).
# Exported, so joblib's worker processes find them too.
export PYTHONPATH=$ROOT/src:$ROOT${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 HYDRA_FULL_ERROR=1 MPLBACKEND=Agg WANDB_MODE=offline WANDB_SILENT=true
if [ -d "$DATA" ]; then DATA_ROOT=$ROOT/$DATA; else DATA_ROOT=$DEBIAN_DATA; fi

log "mode=$MODE OUT=$OUT WORK=$WORK PYTHON=$PYTHON budget=${TOTAL_BUDGET_S}s steps=$STEPS data=$DATA_ROOT"

if step_wanted install; then
  if [ "$MODE" = cpu-smoke ]; then
    # Here the venv has everything; only check that the carried wheels (with the preinstalled ones
    # --prepare set aside) resolve for python 3.12 without an index.
    if [ -d "$WHEELS" ]; then
      run_step install-check 120 "$PYTHON" -m pip install --dry-run --ignore-installed --no-index \
        --find-links "$WHEELS" --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --find-links "$PRUNED" --target "$WORK/site-check" $NEEDED_PACKAGES
    else
      SUMMARY+=("$(printf '%-16s skipped (no %s; run --prepare)' install-check "$WHEELS")")
    fi
  else
    export -f install_deps
    export PYTHON WHEELS WORK NEEDED_IMPORTS NEEDED_PACKAGES
    run_step install 120 bash -c install_deps
    # shellcheck disable=SC1091
    [ -f "$WORK/pythonpath.sh" ] && . "$WORK/pythonpath.sh"
  fi
fi
environment_report

if [ "$MODE" = cpu-smoke ]; then
  PIPELINE_ARGS=(--device cpu --train-images 500 --epochs 1 --threads 1 --num-workers 0)
  # No bf16 variant here: bf16 autocast on a CPU is ~10x slower than fp32 and alone outlasts the cap on a
  # busy 2-core machine (it is the same `trainer.precision` override that experiment=gpu uses).
  GPU_ARGS=(--device cpu --train-images 500 --val-images 200 --procs 1,2 --epochs 1 --variants channels_last)
  TINY=(data.limit_train=500 data.limit_val=500)
  BASELINE_ARGS=("${TINY[@]}" trainer.max_epochs=1)
  # experiment=gpu may not exist yet on this checkout; the smoke test then uses the CPU preset.
  STUDY_EXPERIMENT=${STUDY_EXPERIMENT:-gpu}
  [ -f "conf/experiment/$STUDY_EXPERIMENT.yaml" ] || { STUDY_EXPERIMENT=quick; log "no such preset: smoke uses experiment=quick"; }
  STUDY_ARGS=("${TINY[@]}" hydra.sweeper.n_trials=2 hydra.sweeper.budget=1 "hydra.sweeper.final_evaluation.overrides=['trainer.max_epochs=1','evaluate_test=true']")
else
  PIPELINE_ARGS=(--device cuda --epochs 2 --num-workers 4)
  GPU_ARGS=(--window 8 --variant-timeout 100)
  BASELINE_ARGS=()
  STUDY_EXPERIMENT=${STUDY_EXPERIMENT:-gpu}
  STUDY_ARGS=()
fi
# shellcheck disable=SC2206
GPU_ARGS+=(${GPU_THROUGHPUT_ARGS:-})
# shellcheck disable=SC2206
STUDY_ARGS+=(${STUDY_OVERRIDES:-})

if step_wanted pipeline; then
  if [ -f benchmarks/pipeline_throughput.py ]; then
    run_step pipeline "$CAP_PIPELINE" "$PYTHON" benchmarks/pipeline_throughput.py "${PIPELINE_ARGS[@]}" \
      --data-dir "$DATA_ROOT" --out "$OUT/pipeline_throughput.json"
  else
    SUMMARY+=("$(printf '%-16s skipped (no benchmarks/pipeline_throughput.py)' pipeline)")
  fi
fi
if step_wanted gpu; then
  run_step gpu-throughput "$CAP_GPU" "$PYTHON" benchmarks/gpu_throughput.py "${GPU_ARGS[@]}" \
    --data-root "$DATA_ROOT" --out "$OUT/gpu_throughput.json"
fi
if step_wanted baseline; then
  run_step baseline "$CAP_BASELINE" "$PYTHON" train.py data.root="$DATA_ROOT" evaluate_test=true logger=none \
    trainer.enable_progress_bar=false "${BASELINE_ARGS[@]}" hydra.run.dir="$WORK/baseline"
fi
if step_wanted study; then
  run_step gpu-study "$CAP_STUDY" "$PYTHON" train.py -m experiment="$STUDY_EXPERIMENT" data.root="$DATA_ROOT" \
    logger.wandb.mode=offline "${STUDY_ARGS[@]}" hydra.sweep.dir="$WORK/gpu-study"
fi

collect
