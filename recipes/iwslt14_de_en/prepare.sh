#!/usr/bin/env bash
# IWSLT'14 De-En -> raw text -> sentencepiece BPE -> fairseq-preprocess --joined-dictionary.
#
#   bash prepare.sh                  # download $IWSLT14_URL, the standard split (prepare_text.py)
#   RAW_DIR=DIR bash prepare.sh      # text already split: DIR/{train,valid,test}.{$RAW_SRC,$RAW_TGT}
#   TOY=1 bash prepare.sh            # the synthetic toy corpus (no network), for CPU smoke runs
#
# Writes $WORK/raw/{train,valid,test}.{de,en} (evaluate.sh scores against raw/test.en),
# $WORK/spm/ (sentencepiece model, encoded text) and $WORK/data-bin/. Each stage is skipped once
# its .done marker exists.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
RAW="$WORK/raw"
SPM="$WORK/spm"
SPLITS=(train valid test)

line_count() { wc -l < "$1" | tr -d ' '; }

# DIR SRC TGT -> $RAW/{split}.{de,en}, copied as they are.
copy_raw() {
    local dir="$1" src="$2" tgt="$3" split file
    [[ -d "$dir" ]] || die "RAW_DIR='$dir' is not a folder"
    for split in "${SPLITS[@]}"; do
        for file in "$dir/$split.$src" "$dir/$split.$tgt"; do
            [[ -s "$file" ]] || die "missing or empty $file; RAW_DIR needs {train,valid,test}.{$src,$tgt}"
        done
        [[ "$(line_count "$dir/$split.$src")" == "$(line_count "$dir/$split.$tgt")" ]] \
            || die "$dir/$split.$src and $dir/$split.$tgt differ in line count"
    done
    mkdir -p "$RAW"
    for split in "${SPLITS[@]}"; do
        cp "$dir/$split.$src" "$RAW/$split.de"
        cp "$dir/$split.$tgt" "$RAW/$split.en"
    done
    echo "[prepare] raw text from $dir ($src -> de, $tgt -> en)"
}

download() {
    local orig="$WORK/orig" archive="$WORK/orig/de-en.tgz"
    mkdir -p "$orig"
    if [[ ! -f "$archive" ]]; then
        echo "[prepare] downloading $IWSLT14_URL"
        if command -v curl > /dev/null; then
            curl -fsSL --retry 3 -o "$archive.part" "$IWSLT14_URL" || die "could not download $IWSLT14_URL"
        elif command -v wget > /dev/null; then
            wget -q -O "$archive.part" "$IWSLT14_URL" || die "could not download $IWSLT14_URL"
        else
            die "neither curl nor wget is installed; put de-en.tgz at $archive by hand"
        fi
        mv "$archive.part" "$archive"
    fi
    if [[ -n "$IWSLT14_MD5" ]]; then
        local md5
        md5="$(md5sum "$archive" | cut -d' ' -f1)"
        [[ "$md5" == "$IWSLT14_MD5" ]] || die "$archive has md5 $md5; expected IWSLT14_MD5=$IWSLT14_MD5"
    fi
    rm -rf "$orig/de-en"
    tar -xzf "$archive" -C "$orig" || die "could not unpack $archive"
    [[ -f "$orig/de-en/train.tags.de-en.de" ]] \
        || die "$archive has no de-en/train.tags.de-en.de; is $IWSLT14_URL the IWSLT'14 De-En release?"
    local flags=(--max-len "$CLEAN_MAX_LEN" --ratio "$CLEAN_RATIO")
    case "$LOWERCASE" in
        1) flags+=(--lowercase) ;;
        0) ;;
        *) die "LOWERCASE='$LOWERCASE'; expected 0 or 1" ;;
    esac
    python "$HERE/prepare_text.py" --orig "$orig/de-en" --out "$RAW" "${flags[@]}"
}

if [[ -f "$DATA_BIN/.done" ]]; then
    echo "[prepare] $DATA_BIN exists; skipping"
    exit 0
fi

# 1. Raw parallel text.
if [[ -f "$RAW/.done" ]]; then
    echo "[prepare] $RAW exists; skipping the raw text"
elif [[ -n "$RAW_DIR" ]]; then
    copy_raw "$RAW_DIR" "$RAW_SRC" "$RAW_TGT"
elif [[ "$TOY" == 1 ]]; then
    read -r toy_train toy_valid toy_test <<< "$TOY_CORPUS"
    python "$REPO/scripts/make_toy_corpus.py" --out "$WORK/toy-corpus" --seed "$SEED" \
        --train "$toy_train" --valid "$toy_valid" --test "$toy_test"
    copy_raw "$WORK/toy-corpus" src tgt
else
    download
fi
touch "$RAW/.done"

# 2. Joint sentencepiece model over both languages; every split encoded.
if [[ -f "$SPM/.done" ]]; then
    echo "[prepare] $SPM exists; skipping sentencepiece"
else
    python "$REPO/scripts/spm_prepare.py" --raw "$RAW" --out "$SPM" --src de --tgt en \
        --vocab-size "$SPM_VOCAB" --model-type "$SPM_TYPE"
    touch "$SPM/.done"
fi

# 3. Binarised data with one dictionary for both sides.
rm -rf "$DATA_BIN"
mkdir -p "$WORK"
fairseq-preprocess --source-lang de --target-lang en --joined-dictionary --workers "$PREPROCESS_WORKERS" \
    --trainpref "$SPM/train" --validpref "$SPM/valid" --testpref "$SPM/test" \
    --destdir "$DATA_BIN" > "$WORK/preprocess.log" 2>&1 \
    || { tail -n 20 "$WORK/preprocess.log" >&2; die "fairseq-preprocess failed (log: $WORK/preprocess.log)"; }
touch "$DATA_BIN/.done"
echo "[prepare] wrote $DATA_BIN: $(line_count "$RAW/train.de") / $(line_count "$RAW/valid.de") /" \
    "$(line_count "$RAW/test.de") train / valid / test pairs, $(line_count "$DATA_BIN/dict.en.txt") dictionary entries"
