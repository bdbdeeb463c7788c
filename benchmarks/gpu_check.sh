#!/usr/bin/env bash
# One prepared check on a CUDA machine (about 5 minutes): the core tests on the GPU, then
# the augmentation, trainer and prediction tables with bf16 autocast and channels_last,
# and the DSB command-line run when the data is reachable.
#   bash benchmarks/gpu_check.sh            (NAPARI_UNET_DATA=/path/to/data for DSB)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
$PY - <<'PY'
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))
PY
echo "== core and command-line tests with device auto (CUDA)"
$PY -m pytest -q -p no:xvfb -p no:cacheprovider tests/core tests/cli -x 2>&1 | tail -3
echo "== augmentation"
$PY benchmarks/speed/augment.py --device cuda --batch 512
echo "== trainer, base 32"
$PY benchmarks/speed/trainer.py --device cuda --base 32 --batch 16 --patch 256 --iterations 60
echo "== trainer, base 64"
$PY benchmarks/speed/trainer.py --device cuda --base 64 --batch 16 --patch 256 --iterations 60
echo "== prediction"
$PY benchmarks/speed/predict.py --device cuda --base 32 --size 2048 --stack 64 --side 1024
if [ -d "${NAPARI_UNET_DATA:-../shared/data}/dsb2018" ]; then
  echo "== DSB 2018 through the command line, 60 s on the GPU"
  $PY benchmarks/quality/dsb_cli.py --seconds 60
fi
