#!/usr/bin/env bash
# Builds .whl/c0 .whl/c1 .whl/c2: the wheels the lent GPU machine lacks (tensorflow-cpu for
# tf.data, keras and their small deps) for Python 3.12, in chunks that fit one device call
# (64 MiB per call, working tree included). tensorflow-cpu's 274 MB wheel is cut down first:
# headers removed, symbol tables stripped (dynamic symbols kept), then xz: about 130 MB.
# Takes ~15 min on 2 busy cores (xz). Run from the repo root; see bench/README.md "GPU figures".
set -euo pipefail
PY=${PY:-.venv/bin/python}
grep -qx '/.whl/' .git/info/exclude || echo /.whl/ >> .git/info/exclude
rm -rf .whl /tmp/tfx && mkdir -p .whl/stage/small .whl/stage/extra /tmp/tfx
plat=""; for n in 2_17 2_24 2_27 2_28 2_31 2_34 2_35; do plat="$plat --platform manylinux_${n}_x86_64"; done
dl() { $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $plat -d "$@"; }
# the versions the dev venv runs (TF 2.21 needs protobuf>=6.31.1, which the device may lack)
dl .whl/stage/small keras==3.15.1 namex==0.1.0 optree==0.20.0 gast==0.7.0 astunparse==1.6.3 \
  google-pasta==0.2.0 termcolor==3.3.0 protobuf==7.36.2
dl .whl/stage/extra numpy==2.4.6 ml_dtypes==0.6.0   # used only if the device's own ones fail
dl /tmp/tfx tensorflow-cpu==2.21.0
root=$PWD
cd /tmp/tfx
unzip -q tensorflow_cpu-*.whl && rm tensorflow_cpu-*.whl
rm -rf tensorflow/include tensorflow/xla_aot_runtime_src
find tensorflow -name '*.so*' -type f -exec strip --strip-unneeded {} + 2>/dev/null || true
tar cf - tensorflow tensorflow_cpu-*.dist-info | xz -T0 -6 > "$root/.whl/stage/tf.tar.xz"
cd "$root"
(cd .whl/stage && tar cf ../blob.tar tf.tar.xz small extra)
(cd .whl && split -b 52M -d blob.tar blob.part && sha256sum blob.tar > blob.sha256 && rm blob.tar \
  && for p in blob.part*; do d=c${p#blob.part0}; mkdir -p "$d" && mv "$p" "$d/"; done && mv blob.sha256 c0/)
rm -rf /tmp/tfx .whl/stage
ls -la .whl/c*
