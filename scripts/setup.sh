#!/usr/bin/env bash
# Set up hotcold on a Debian/Ubuntu machine: system packages, the project's
# virtual environment (.venv), the patched Caffe build (caffe_patch/build.sh)
# and the hotcold package. Idempotent: a second run takes seconds.
#
# usage: scripts/setup.sh [build.sh options, e.g. --cuda, --force]
#   --cuda links the CUDA build of Caffe into .venv (toolkit: --cuda-toolkit DIR|pip,
#   else $CUDA_HOME, else the nvcc on PATH); a later run with --cpu links the CPU
#   build back. Both stay cached side by side.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
say() { echo "[setup] $*" >&2; }
die() { echo "scripts/setup.sh: error: $*" >&2; exit 1; }

python=${HOTCOLD_PYTHON:-python3}
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

# The interpreter must be able to make a venv and compile an extension.
needs=()
"$python" -c 'import venv, ensurepip' 2>/dev/null || needs+=(python3-venv)
"$python" - <<'PY' 2>/dev/null || needs+=(python3-dev)
import os, sys, sysconfig
inc = os.path.join(sysconfig.get_paths()["include"], "Python.h")
lib = os.path.join(sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("LDLIBRARY"))
sys.exit(0 if os.path.exists(inc) and os.path.exists(lib) else 1)
PY
if [ ${#needs[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || die "$python lacks ${needs[*]} and there is no apt-get; install them for $python"
  say "installing ${needs[*]}"
  as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 "${needs[@]}" >/dev/null \
    || die "apt-get install ${needs[*]} failed"
fi

if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $("$python" --version)"
  "$python" -m venv .venv
fi

stamp=.venv/.hotcold-setup-stamp
want=$(cat setup.py | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing hotcold and its Python dependencies into .venv"
  log=.venv/pip-install.log
  { .venv/bin/python -m pip install --upgrade pip && .venv/bin/python -m pip install -e '.[test]'; } >"$log" 2>&1 \
    || { tail -30 "$log" >&2; die "pip install failed; full log: $log"; }
  echo "$want" > "$stamp"
fi

bash caffe_patch/build.sh --venv "$repo/.venv" "$@" >/dev/null
say "ready: $(.venv/bin/hotcold --version)"
