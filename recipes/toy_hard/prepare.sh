#!/usr/bin/env bash
# The hard corpus -> sentencepiece -> fairseq-preprocess, through recipes/toy/prepare.sh.
#   NOISE_RATE=0.2 WORK=work/toy_hard_noise20 bash recipes/toy_hard/prepare.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
bash "$TOY/prepare.sh"
