#!/usr/bin/env bash
# Rebuild HARPNET's bundled default model with the project's own commands only:
# prepare -> train -> ensemble -> evaluate -> bundle. Every step is skipped when its output
# exists, so an interrupted rebuild continues where it stopped (delete runs/default/ to start over).
#
#   bash tools/train_default.sh            # about 2 hours on a 2-core CPU
#   SHARED=/path/to/shared bash tools/train_default.sh
#
# Needs ../shared/data/train (72 MRMS hours of 20-22 September 2016 and the PRISM 1991-2020
# normal). Outputs: runs/default/ (stores, runs, evaluate JSON, variants table) and, last,
# harpnet_cli/assets/default/{model.pt,card.json}.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
R=runs/default
MRMS=$R/mrms.zarr          # scored: tiles overlap by 16 fine cells, as downscale cuts them; whole tiles
TRAIN=$R/mrms_train.zarr   # trained on: the same hours cut with overlap 32, partly observed tiles kept
SYN=$R/synthetic.zarr
PRISM=$SHARED/data/train/prism-normal/PRISM_ppt_30yr_normal_4kmD1_0301_bil.zip
WEST=31,49,-125,-102
SEEDS=${SEEDS:-"1 2 3"}
DERIVED=(--derived-inputs precip_nearest --derived-inputs terrain_anomaly)
mkdir -p "$R/eval"

step() { # step OUTPUT COMMAND...: run COMMAND unless OUTPUT exists
    local out=$1; shift
    if [[ -e $out ]]; then echo "skip: $out exists"; else echo "+ $*"; "$@"; fi
}

# 1. Corpora. Real: 72 hourly MRMS files -> 3-hour windows, QC, 22 September held out. The training
# copy has about twice the tiles (overlap 32) and keeps tiles up to half outside MRMS coverage
# (their unobserved cells are left out of the loss); its validation tiles are not used.
step "$MRMS" harpnet --quiet prepare "$SHARED"/data/train/mrms-gaugecorr-2016-09-20/*.grib2 -o "$MRMS" \
    --validation-start 2016-09-22 --workers 2
step "$TRAIN" harpnet --quiet prepare "$SHARED"/data/train/mrms-gaugecorr-2016-09-20/*.grib2 -o "$TRAIN" \
    --validation-start 2016-09-22 --workers 2 --overlap 32 --max-missing 0.5
# Synthetic: 240 full-CONUS fields of the calibrated orographic world over ETOPO5.
step "$SYN" harpnet --quiet prepare synthetic --samples 240 -o "$SYN" --workers 2

# 2. Variants. Synthetic only (also the pre-training of the fine-tuned variants).
step "$R/syn/checkpoints/epoch_016.pt" harpnet --quiet train "$SYN" -o "$R/syn" --preset lite --loss mae \
    --epochs 16 --batch-size 64 --seed 1 "${DERIVED[@]}"
INIT=$R/syn/checkpoints/epoch_016.pt
for s in $SEEDS; do
    # Real only (the real tiles are few: each is turned by a random flip/transpose, --augment).
    step "$R/real_s$s/checkpoints/epoch_020.pt" harpnet --quiet train "$TRAIN" -o "$R/real_s$s" --preset lite \
        --augment --loss mae --epochs 20 --batch-size 32 --lr-schedule cosine --seed "$s" "${DERIVED[@]}"
    # Synthetic pre-training, then real fine-tuning.
    step "$R/ft_s$s/checkpoints/epoch_020.pt" harpnet --quiet train "$TRAIN" -o "$R/ft_s$s" --init "$INIT" \
        --augment --loss mae --epochs 20 --batch-size 32 --lr-schedule cosine --seed "$s"
    # Synthetic pre-training, then real fine-tuning with as many synthetic tiles mixed in (twice the
    # batches per epoch, so half the epochs for as many steps).
    step "$R/mix_s$s/checkpoints/epoch_010.pt" harpnet --quiet train "$TRAIN" -o "$R/mix_s$s" --init "$INIT" \
        --mix "$SYN" --mix-ratio 1 --augment --loss mae --epochs 10 --batch-size 32 --lr-schedule cosine \
        --seed "$s"
done

# 3. Seed soups: the fine-tuned seeds share their start, so their weights average into one model.
for v in ft mix; do
    runs=(); for s in $SEEDS; do runs+=("$R/${v}_s$s"); done
    step "$R/${v}_soup.pt" harpnet --quiet ensemble "${runs[@]}" --data "$MRMS" --epochs last --select all \
        --mode soup -o "$R/${v}_soup.pt"
done

# 4. Scores on the held-out real day (whole CONUS and the West) and on the synthetic validation split.
score() { # score NAME CHECKPOINT
    step "$R/eval/$1.conus.json" harpnet --quiet evaluate "$2" --data "$MRMS" --split validation \
        --climatology "$PRISM" --json "$R/eval/$1.conus.json"
    step "$R/eval/$1.west.json" harpnet --quiet evaluate "$2" --data "$MRMS" --split validation \
        --climatology "$PRISM" --bbox "$WEST" --json "$R/eval/$1.west.json"
    step "$R/eval/$1.synthetic.json" harpnet --quiet evaluate "$2" --data "$SYN" --split validation \
        --max-samples 2048 --json "$R/eval/$1.synthetic.json"
}
score syn "$INIT"
for s in $SEEDS; do
    score "real_s$s" "$R/real_s$s/checkpoints/epoch_020.pt"
    score "ft_s$s" "$R/ft_s$s/checkpoints/epoch_020.pt"
    score "mix_s$s" "$R/mix_s$s/checkpoints/epoch_010.pt"
done
score ft_soup "$R/ft_soup.pt"
score mix_soup "$R/mix_soup.pt"
python tools/compare_variants.py "$R/eval" -o "$R/variants.json" --markdown "$R/variants.md"

# 5. Bundle the variant best on the held-out real day (BEST: the plain fine-tuning soup) as fp16.
BEST=${BEST:-ft_soup}
python tools/bundle_default.py "$R/$BEST.pt" \
    --eval "held-out real day 2016-09-22, CONUS=$R/eval/$BEST.conus.json" \
    --eval "held-out real day 2016-09-22, West (31-49N, 125-102W)=$R/eval/$BEST.west.json" \
    --eval "synthetic validation split=$R/eval/$BEST.synthetic.json" \
    --variants "$R/variants.json" -o harpnet_cli/assets/default
