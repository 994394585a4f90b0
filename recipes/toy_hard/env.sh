# Settings of the toy_hard recipes (sourced, not run): the toy recipes' scripts, run on the hard
# corpus in its own work folder.
TOY_HARD="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOY="$TOY_HARD/../toy"
export WORK="${WORK:-$(cd "$TOY_HARD/../.." && pwd)/work/toy_hard}"
# Corpus sizes: TRAIN_PAIRS / VALID_PAIRS / TEST_PAIRS (6000 / 500 / 1000); SPM_VOCAB (1000).
# Target-noise rate of the training split (dev and test stay clean); give each rate its own WORK.
NOISE_RATE="${NOISE_RATE:-0}"
export CORPUS_ARGS="--preset hard --train ${TRAIN_PAIRS:-6000} --valid ${VALID_PAIRS:-500} --test ${TEST_PAIRS:-1000} --noise-rate $NOISE_RATE --noise-seed ${NOISE_SEED:-0}"
export SPM_VOCAB="${SPM_VOCAB:-1000}"
