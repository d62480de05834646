#!/usr/bin/env bash
# The two commands of the README; each sets everything up first (idempotent, so rerunning is cheap):
#   ./run.sh sweep [overrides...]   a real BOHB study: experiment=quick on a CPU, experiment=gpu with CUDA
#                                   (experiment=... picks another; sweeper=bohb_cell: cell_quick, cell_gpu)
#   ./run.sh test  [pytest args...] lint, type checks and the test suite
# VENV (default .venv) picks the virtual environment; PYTHON (default python3) the interpreter for it.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
DATASET_DIR=/usr/share/datasets/fashion-mnist

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

install_debian_packages() {
  command -v apt-get >/dev/null || return 0
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "setup: apt-get install ${missing[*]}"
  as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
    || echo "setup: could not install ${missing[*]} with apt-get; continuing without them"
}

setup() {
  # Fashion-MNIST offline from Debian; without apt the first run downloads it through torchvision.
  [ -d "$DATASET_DIR" ] || install_debian_packages dataset-fashion-mnist
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # The sweeper (./sweeper, its own distribution) and the app, editable, in one command: pip takes the
  # app's hydra-bohb-sweeper dependency from the path instead of looking for it on PyPI.
  "$VENV/bin/python" -m pip install -q -e ./sweeper -e ".[dev]"
}

has_cuda() { "$VENV/bin/python" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; }

case "${1:-}" in
  sweep)
    shift
    setup
    # The preset: experiment=... on the command line picks it; sweeper=bohb_cell (or _mo) the cell
    # space's (cell_quick, cell_gpu); otherwise quick or gpu.
    if has_cuda; then size=gpu; else size=quick; fi
    case " $* " in
      *" experiment="*) preset=() ;;
      *" sweeper=bohb_cell "* | *" sweeper=bohb_cell_mo "*) preset=("experiment=cell_${size}") ;;
      *) preset=("experiment=${size}") ;;
    esac
    # ${preset[@]+...}: an empty array is "unbound" to `set -u` in bash before 4.4.
    echo "setup done; running: python train.py -m ${preset[*]+${preset[*]} }$*"
    exec "$VENV/bin/python" train.py -m ${preset[@]+"${preset[@]}"} "$@"
    ;;
  test)
    shift
    # Real engines the tests start on loopback: PostgreSQL (shared studies), a one-node SLURM cluster
    # (accounting through slurmdbd on MariaDB: submitit reads job states from sacct),
    # a headless browser (optuna-dashboard).
    install_debian_packages postgresql slurm-wlm slurmdbd munge mariadb-server chromium chromium-driver
    setup
    "$VENV/bin/ruff" check . && "$VENV/bin/ruff" format --check . && "$VENV/bin/mypy"
    # Test files spread over the cores (a file stays on one worker: its module fixtures run once), handed
    # out longest first (tests/conftest.py orders them; xdist would otherwise put files with many tests first).
    exec "$VENV/bin/python" -m pytest -n auto --dist loadfile --no-loadscope-reorder "$@"
    ;;
  *)
    echo "usage: ./run.sh sweep [hydra overrides...] | ./run.sh test [pytest args...]" >&2
    exit 2
    ;;
esac
