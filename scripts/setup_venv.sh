#!/usr/bin/env bash
# Create or refresh the project's virtual environment (.venv by default) with everything the
# tests, the demo and the recipes need. Idempotent: a stamp file records the hash of the files
# that define the environment, so a second call is a no-op unless they changed.
#
# Why the order matters (measured; README "Install"):
#   * torch first, pinned to the CPU build on disk unless the venv already has a torch (a user
#     on a GPU machine installs their CUDA build first and we keep it);
#   * fairseq-fixed is built WITHOUT build isolation, otherwise pip pulls a multi-GB CUDA torch
#     into the temporary build env and compiles the extensions against the wrong torch.
set -euo pipefail

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
FAIRSEQ_SPEC="fairseq-fixed==0.12.3.1"

stamp_of() { cat pyproject.toml scripts/setup_venv.sh | sha256sum | cut -d' ' -f1; }
STAMP_FILE="$VENV/.dynloss-setup-stamp"

if [[ -f "$STAMP_FILE" && "$(cat "$STAMP_FILE")" == "$(stamp_of)" ]]; then
    echo "[setup] $VENV is up to date"
    exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "[setup] creating $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
# This machine's pip config lists find-links folders that may not exist; drop that noise only.
pip_install() { "${PIP[@]}" install -q "$@" 2>&1 | { grep -v "^WARNING: Location 'file:" || true; }; }

pip_install "pip>=24" "setuptools>=64" wheel "cython<3.1" numpy
if "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    echo "[setup] keeping installed torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
else
    echo "[setup] installing $TORCH_SPEC"
    pip_install "$TORCH_SPEC"
fi
if ! "$VENV/bin/python" -c "import fairseq" 2>/dev/null; then
    echo "[setup] building $FAIRSEQ_SPEC (C++/Cython extensions, a few minutes on 2 cores)"
    pip_install --no-build-isolation "$FAIRSEQ_SPEC"
fi
echo "[setup] installing fairseq-dynloss (editable) and test extras"
pip_install --no-build-isolation -e ".[test]"
"$VENV/bin/python" -c "import fairseq, fairseq_dynloss, sacrebleu, sentencepiece, hydra; print('[setup] ok: fairseq', fairseq.__version__)"
stamp_of > "$STAMP_FILE"
