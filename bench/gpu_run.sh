#!/usr/bin/env bash
# Drives the GPU benchmarks on a lent device machine (see bench/README.md, "GPU figures").
# That machine has Python 3.12 with JAX+CUDA but no TensorFlow, Keras or network, so the
# wheels travel in the git-ignored .whl/ folder (built by bench/gpu_wheels.sh), in chunks of < 60 MiB (one per call):
#   bash bench/gpu_run.sh recv DIR     copy one carried chunk folder into /tmp/w (same warm machine)
#   bash bench/gpu_run.sh install      join the chunks, install into /tmp/site, check the imports
#   bash bench/gpu_run.sh benchA|benchB  run the benchmarks, logs into $OUT
#   bash bench/gpu_run.sh concurrent     bench/concurrent_jobs.py: several jobs at once on the GPU (issue 17)
#   bash bench/gpu_run.sh feed-quick / augment   issue 19: device-resident input; augmentation on the device
# Every step is bounded by `timeout` so one hang does not cost the whole call.
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /tmp/w
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2 VISION_LAB_PRETRAINED=0 PY=python3
[ -d /tmp/site ] && export PYTHONPATH=/tmp/site

step() {  # step LOG SECONDS CMD...: run, tee into $OUT/LOG, say how long it took
  local log=$1 secs=$2; shift 2
  echo "### $(date +%T) $*" | tee -a "$OUT/$log"
  local t0=$SECONDS
  timeout "$secs" "$@" 2>&1 | grep -v -e '^I0000' -e '^WARNING: All log messages' -e '^E0000' | tee -a "$OUT/$log"
  echo "### rc=${PIPESTATUS[0]} in $((SECONDS - t0)) s" | tee -a "$OUT/$log"
}

case "$1" in
recv)
  cp "$2"/* /tmp/w/ && ls -la /tmp/w
  ;;
info)
  nvidia-smi -L; $PY --version; $PY -m pip list 2>/dev/null | grep -iE '^(numpy|ml.dtypes|protobuf|h5py|jax|jaxlib|jax-cuda13|optree|rich|absl|keras|tensorflow|flatbuffers|wrapt|opt.einsum|typing.ext) '
  ;;
install)
  cd /tmp/w && cat blob.part* > blob.tar && sha256sum -c blob.sha256 && tar xf blob.tar && cd - >/dev/null || exit 1
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site /tmp/w/small/*.whl || exit 1
  $PY -c "import tarfile; tarfile.open('/tmp/w/tf.tar.xz').extractall('/tmp/site')" || exit 1
  export PYTHONPATH=/tmp/site
  check="import tensorflow as tf, keras, jax; print('tf', tf.__version__, 'keras', keras.__version__, keras.backend.backend(), 'jax', jax.__version__, jax.devices())"
  if ! KERAS_BACKEND=jax $PY -c "$check" 2>&1 | tail -5; then echo FAILED; fi
  if ! KERAS_BACKEND=jax $PY -c "$check" >/dev/null 2>&1; then
    echo "== retry with the carried numpy and ml_dtypes"
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site /tmp/w/extra/*.whl
    KERAS_BACKEND=jax $PY -c "$check" 2>&1 | tail -20
  fi
  $PY -c "import numpy, ml_dtypes, google.protobuf as p; print('numpy', numpy.__version__, 'ml_dtypes', ml_dtypes.__version__, 'protobuf', p.__version__)"
  KERAS_BACKEND=jax $PY -c "$check" >/dev/null 2>&1  # the exit status says whether the lab can run
  ;;
benchA)
  step describe.log 90 $PY bench/gpu_bench.py describe
  step describe.log 90 env -u KERAS_BACKEND $PY -c "from lab import backend; backend.configure('auto'); import json; print('AUTO', json.dumps(backend.runtime().describe()))"
  step fit.log 120 $PY bench/gpu_bench.py fit --models mlp small_cnn --epochs 8
  step overhead_mlp.log 180 $PY bench/train_overhead.py --backend jax
  step fit.log 180 $PY bench/gpu_bench.py fit --models mlp small_cnn resnet tiny_vit --epochs 6 --synthetic 20000 --batch-size 128
  for p in mixed_float16 mixed_bfloat16; do
    step fit.log 120 env VISION_LAB_PRECISION=$p $PY bench/gpu_bench.py fit --models small_cnn resnet tiny_vit --epochs 6 --synthetic 20000 --batch-size 128
  done
  ;;
benchB)
  step overhead_cnn.log 200 $PY bench/train_overhead.py --backend jax --model small_cnn --epochs 8 --diagnose
  step overhead_resnet.log 200 $PY bench/gpu_bench.py overhead --synthetic 20000 -- --backend jax --model resnet --batch-size 128 --epochs 6 --rounds 3
  step predict.log 120 $PY bench/predict_latency.py --backend jax --iters 500
  step throughput_cpu.log 200 $PY bench/backend_throughput.py
  ;;
feed)  # issue 19 and 17 on one GPU: device-resident input vs streamed vs bare, then jobs at once (~7 min)
  O="--synthetic 20000 -- --backend jax --warmup-rounds 0 --rounds 2 --streamed"
  step feed.log 100 $PY bench/gpu_bench.py overhead $O --model small_cnn --batch-size 128 --epochs 5
  step feed.log 100 $PY bench/gpu_bench.py overhead $O --model small_cnn --batch-size 512 --epochs 6 --bare-input arrays --bare-no-validation
  step feed.log 100 $PY bench/gpu_bench.py overhead $O --model resnet --batch-size 512 --epochs 4
  step concurrent.log 120 $PY bench/concurrent_jobs.py --gpu --at-once 1 2 3 1
  ;;
feed-quick)  # the feed step's three overhead runs alone (~2.5 min)
  O="--synthetic 20000 -- --backend jax --warmup-rounds 0 --rounds 2 --streamed"
  step feed.log 100 $PY bench/gpu_bench.py overhead $O --model small_cnn --batch-size 512 --epochs 6 --bare-input arrays --bare-no-validation
  step feed.log 100 $PY bench/gpu_bench.py overhead $O --model small_cnn --batch-size 128 --epochs 5
  step feed.log 100 $PY bench/gpu_bench.py overhead $O --model resnet --batch-size 512 --epochs 4
  step augment.log 100 $PY bench/device_augment.py --backend jax --synthetic 20000 --batch-size 128 --epochs 4 --rounds 2
  ;;
augment)  # augmentation on the device vs tf.data on the host, CIFAR-sized (~1.5 min)
  step augment.log 100 $PY bench/device_augment.py --backend jax --synthetic 20000 --batch-size 128 --epochs 4 --rounds 2
  ;;
bare)
  step bare.log 300 $PY bench/gpu_bench.py bare-arrays --models mlp small_cnn --epochs 8
  ;;
concurrent)  # issue 17 alone: 1, 2, 3 small jobs at once on the one GPU (CIFAR-sized, then digits), jobs per minute
  step concurrent.log 150 $PY bench/concurrent_jobs.py --gpu --at-once 1 2 3 1
  step concurrent.log 150 $PY bench/concurrent_jobs.py --backend jax --at-once 1 2 3 1
  ;;
esac
