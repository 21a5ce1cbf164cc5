#!/usr/bin/env bash
# Rebuild HARPNET's bundled default models with the project's own commands only:
# prepare -> train -> evaluate -> bundle. Every step is skipped when its output exists, so an
# interrupted rebuild continues where it stopped (delete runs/default/ to start over).
#
#   bash tools/train_default.sh            # about 3 hours on a quiet 2-core CPU
#   SHARED=/path/to/shared bash tools/train_default.sh
#
# Two models share one recipe and ship together:
#   * the deterministic default (model.pt): the best point estimate, period-aware (1 to 24 hours);
#   * the stochastic default (stochastic.pt): the same network fine-tuned with noise inputs and the
#     fair CRPS of 4 members, for `downscale --samples N` (members, probabilities, percentiles).
#
# Needs ../shared/data/train: 72 MRMS hours of 20-22 September 2016, the PRISM 1991-2020 normal,
# DWD RADOLAN (RW hours of 18 October 2022, 24-hour SF sums of 2013 and 2014) and the NWRFC 6-hour
# QPE of 11-12 December 2022. Outputs: runs/default/ (stores, runs, evaluate JSON, variants table)
# and, last, harpnet_cli/assets/default/{model.pt,stochastic.pt,card.json}.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
T=$SHARED/data/train
R=runs/default
PERIODS=1,3,6,12,24
MRMS=$R/mrms.zarr              # scored at 3 h as before: tiles overlap by 16 fine cells, whole tiles
MULTI=$R/mrms_multi.zarr       # scored at every length: 1, 3, 6, 12 and 24 h (24 h every 3 h)
TRAIN=$R/mrms_multi_train.zarr # trained on: the same windows, partly observed tiles kept
SYN=$R/synthetic_multi.zarr
RADOLAN=$R/radolan_train.zarr  # DWD 2022 hours and the 2013 flood's 24-hour sums: trained on
RADOLAN_VAL=$R/radolan_val.zarr # DWD 2014 hours and 24-hour sums: held out
NWRFC=$R/nwrfc.zarr            # Cascades and northern Rockies, 4 winter 6-hour windows: held out
PRISM=$T/prism-normal/PRISM_ppt_30yr_normal_4kmD1_0301_bil.zip
RW=$T/radolan-rw-2022-10-18
WEST=31,49,-125,-102
GERMANY=47.25,55,5.75,15
SEED=${SEED:-1}
DERIVED=(--derived-inputs precip_nearest --derived-inputs terrain_anomaly)
mkdir -p "$R/eval"

step() { # step OUTPUT COMMAND...: run COMMAND unless OUTPUT exists
    local out=$1; shift
    if [[ -e $out ]]; then echo "skip: $out exists"; else echo "+ $*"; "$@"; fi
}

# 1. Corpora. Real: 72 hourly MRMS files -> windows of 1 to 24 hours (longer ones every 3 hours),
# QC, 22 September held out for every length (no training window reaches into it).
step "$MRMS" harpnet --quiet prepare "$T"/mrms-gaugecorr-2016-09-20/*.grib2 -o "$MRMS" \
    --validation-start 2016-09-22 --workers 2
step "$MULTI" harpnet --quiet prepare "$T"/mrms-gaugecorr-2016-09-20/*.grib2 -o "$MULTI" \
    --validation-start 2016-09-22 --periods $PERIODS --window-step 3 --workers 2
step "$TRAIN" harpnet --quiet prepare "$T"/mrms-gaugecorr-2016-09-20/*.grib2 -o "$TRAIN" \
    --validation-start 2016-09-22 --periods $PERIODS --window-step 3 --max-missing 0.5 --workers 2
step "$RADOLAN" harpnet --quiet prepare "$RW"/RW-20221018.tar.gz "$RW"/raa01-sf_10000-13052?0050-dwd---bin.gz \
    -o "$RADOLAN" --bbox $GERMANY --periods $PERIODS --window-step 3 --validation-start 2030-01-01 --max-missing 0.5
step "$RADOLAN_VAL" harpnet --quiet prepare "$RW"/raa01-rw_10000-1408*-dwd---bin.gz "$RW"/raa01-sf_10000-14*-dwd---bin.gz \
    -o "$RADOLAN_VAL" --bbox $GERMANY --periods 1,24 --validation-start 2014-01-01
step "$NWRFC" harpnet --quiet prepare "$T"/nwrfc-qpe-2022-12-12/QPE.2022121212.nc.gz -o "$NWRFC" \
    --bbox 40,54,-125.5,-109 --accumulation 6h --periods 6 --validation-start 2022-12-01
# Synthetic: full-CONUS windows of 3 to 24 hours (longer ones sum 3-hour states under a turning flow).
step "$SYN" harpnet --quiet prepare synthetic --samples 240 --periods 3,6,12,24 -o "$SYN" --workers 2

# 2. The deterministic model: synthetic pre-training, then real fine-tuning (MRMS, RADOLAN mixed in).
step "$R/syn/checkpoints/epoch_008.pt" harpnet --quiet train "$SYN" -o "$R/syn" --preset lite --loss mae \
    --epochs 8 --batch-size 64 --seed "$SEED" --extra-inputs period "${DERIVED[@]}"
INIT=$R/syn/checkpoints/epoch_008.pt
step "$R/ft/checkpoints/epoch_012.pt" harpnet --quiet train "$TRAIN" -o "$R/ft" --init "$INIT" \
    --extra-inputs period --mix "$RADOLAN" --mix-ratio 0.25 --augment --loss mae --epochs 12 --batch-size 32 \
    --lr-schedule cosine --seed "$SEED"
DET=$R/ft/checkpoints/epoch_012.pt

# 3. The stochastic model: the deterministic one's weights, noise at three scales, fair CRPS of 4 members.
step "$R/sto/checkpoints/epoch_006.pt" harpnet --quiet train "$TRAIN" -o "$R/sto" --init "$DET" \
    --extra-inputs period --noise-scales 0,1,4 --loss crps --members 4 --mix "$RADOLAN" --mix-ratio 0.25 \
    --augment --epochs 6 --batch-size 32 --lr 3e-4 --lr-schedule cosine --seed "$SEED"
STO=$R/sto/checkpoints/epoch_006.pt

# 4. Scores: held-out 22 September at every length (CONUS and the West), the 3-hour store as before,
# the NWRFC winter windows and the DWD 2014 days.
score() { # score NAME CHECKPOINT [evaluate options]
    local name=$1 ckpt=$2; shift 2
    step "$R/eval/$name.conus3.json" harpnet --quiet evaluate "$ckpt" --data "$MRMS" --split validation \
        --climatology "$PRISM" --json "$R/eval/$name.conus3.json" "$@"
    for h in 1 3 6 12 24; do
        step "$R/eval/$name.conus_${h}h.json" harpnet --quiet evaluate "$ckpt" --data "$MULTI" --split validation \
            --period $h --json "$R/eval/$name.conus_${h}h.json" "$@"
    done
    step "$R/eval/$name.west_24h.json" harpnet --quiet evaluate "$ckpt" --data "$MULTI" --split validation \
        --period 24 --bbox $WEST --json "$R/eval/$name.west_24h.json" "$@"
    step "$R/eval/$name.nwrfc.json" harpnet --quiet evaluate "$ckpt" --data "$NWRFC" --split validation \
        --json "$R/eval/$name.nwrfc.json" "$@"
    step "$R/eval/$name.radolan.json" harpnet --quiet evaluate "$ckpt" --data "$RADOLAN_VAL" --split validation \
        --json "$R/eval/$name.radolan.json" "$@"
}
score det "$DET"
score sto "$STO" --samples 10
score syn "$INIT"
python tools/compare_variants.py "$R/eval" -o "$R/variants.json" --markdown "$R/variants.md"

# 5. Bundle both as fp16 with one card.
python tools/bundle_default.py "$DET" --stochastic "$STO" \
    --eval "held-out real day 2016-09-22, CONUS, 3 h=$R/eval/det.conus3.json" \
    --eval "held-out real day 2016-09-22, CONUS, 24 h=$R/eval/det.conus_24h.json" \
    --eval "held-out real day 2016-09-22, West (31-49N, 125-102W), 24 h=$R/eval/det.west_24h.json" \
    --eval "NWRFC winter 6-hour windows, 11-12 Dec 2022 (held out)=$R/eval/det.nwrfc.json" \
    --stochastic-eval "held-out real day 2016-09-22, CONUS, 3 h=$R/eval/sto.conus3.json" \
    --stochastic-eval "held-out real day 2016-09-22, CONUS, 24 h=$R/eval/sto.conus_24h.json" \
    --variants "$R/variants.json" -o harpnet_cli/assets/default
