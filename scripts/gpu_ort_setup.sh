#!/usr/bin/env bash
# onnxruntime-gpu on the lent GPU machine, which reaches no registry and takes at most 64 MiB per call.
#
# The wheel (onnxruntime-gpu 1.31.1, CUDA 13, cp312, ~256 MB) is downloaded HERE, split into pieces
# under 60 MiB, carried one piece per device call in consecutive calls (the machine keeps /tmp while it
# stays warm: ~30 s idle), joined THERE, checked against the sha256 in scripts/gpu_ort_wheel.sha256,
# and installed with pip --no-deps --target into /tmp/site, which goes first on PYTHONPATH (so it
# shadows the machine's CPU onnxruntime; the runtime accepts that: see providers.installed_runtimes).
# The machine already has what the wheel needs (nvidia-cuda-runtime 13, nvrtc, cufft, curand,
# cudnn-cu13 9 beside torch; numpy, protobuf, flatbuffers, packaging); onnxruntime.preload_dlls(),
# which the runtime calls before a CUDA session, finds the nvidia-* libraries. onnxsim and
# onnxconverter-common (bm-export, fp16) travel with the first piece.
#
#   here:    bash scripts/gpu_ort_setup.sh prepare          # download, checksum, split into .whl/parts/
#   device:  bash scripts/gpu_ort_setup.sh receive          # each call: keep the pieces it carried
#   device:  bash scripts/gpu_ort_setup.sh install          # join, sha256-check, pip install --target
#   device:  export PYTHONPATH=/tmp/site                    # then onnxruntime is the GPU wheel
#   here:    bash scripts/gpu_ort_setup.sh rehearse         # receive + install + import, on this machine
#
# The device sequence (run(...) calls back to back, nothing else in between; docs/gpu.md has it whole):
#   1-4. carry [".whl/parts/ort.part-aa"], then -ab, -ac, -ad    command: bash scripts/gpu_ort_setup.sh receive
#   5.   carry [".whl/parts/ort.part-ae", ".whl/aux"]             command: bash scripts/gpu_ort_setup.sh receive &&
#        bash scripts/gpu_ort_setup.sh install && export PYTHONPATH=/tmp/site && bash scripts/gpu_smoke.sh --ort
#   (a piece of 60 MiB and the 9.4 MB of .whl/aux do not fit one call's 64 MiB together)
# Variables: PIECE (split size, default 60m), ORTGPU_DIR (device-side store, /tmp/ortgpu),
# SITE (install target, /tmp/site), PYTHON (python3).
set -euo pipefail
VERSION=1.31.1
WHEEL=onnxruntime_gpu-${VERSION}-cp312-cp312-manylinux_2_28_x86_64.whl
AUX=("onnxsim==0.8.1" "onnxconverter-common==1.16.0")
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
whl="$root/.whl"
sums="$root/scripts/gpu_ort_wheel.sha256"
say() { echo "gpu_ort_setup: $*"; }

prepare() {
    local py=${PYTHON:-python3}
    git -C "$root" check-ignore -q .whl/x || { say ".whl/ is not ignored by git: refusing to fill it"; exit 1; }
    mkdir -p "$whl/aux" "$whl/parts"
    if [ ! -f "$whl/$WHEEL" ]; then
        "$py" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 "onnxruntime-gpu==$VERSION" -d "$whl"
    fi
    "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$whl/aux" "${AUX[@]}"
    (cd "$whl" && grep " $WHEEL\$" "$sums" | sha256sum -c --quiet) || { say "the wheel's sha256 is not the one in $sums"; exit 1; }
    rm -f "$whl/parts/ort.part-"*
    split -b "${PIECE:-60m}" -a 2 "$whl/$WHEEL" "$whl/parts/ort.part-"
    say "pieces (each one device call, in this order):"
    ls -l "$whl/parts" | awk 'NR > 1 {print "  " $NF, $5}'
    du -sh "$whl/aux" | awk '{print "  .whl/aux (with the first piece): " $1}'
}

receive() {  # keep every piece (and aux wheel) this call carried; say how much of the wheel is there
    local store=${ORTGPU_DIR:-/tmp/ortgpu} have bytes
    mkdir -p "$store/parts" "$store/aux"
    cp -f "$root"/.whl/parts/ort.part-* "$store/parts/" 2>/dev/null || true
    cp -f "$root"/.whl/aux/*.whl "$store/aux/" 2>/dev/null || true
    have=$(cd "$store/parts" && ls ort.part-* 2>/dev/null | tr '\n' ' ')
    bytes=$(cat "$store"/parts/ort.part-* 2>/dev/null | wc -c)
    say "have: ${have:-none}($bytes of $(awk '/^# bytes/ {print $3}' "$sums") bytes); aux: $(ls "$store/aux" | wc -l) wheel(s)"
}

install() {
    local store=${ORTGPU_DIR:-/tmp/ortgpu} site=${SITE:-/tmp/site} py=${PYTHON:-python3}
    cat "$store"/parts/ort.part-* > "$store/$WHEEL"
    (cd "$store" && grep " $WHEEL\$" "$sums" | sha256sum -c --quiet) || {
        say "the joined wheel's sha256 is not the one in scripts/gpu_ort_wheel.sha256: a piece is missing or damaged"
        receive; exit 1; }
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
        "$store/$WHEEL" "$store"/aux/*.whl
    PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" "$py" - <<'PY'
import onnxruntime as ort
print(f"gpu_ort_setup: onnxruntime {ort.__version__} from {ort.__file__}")
print(f"gpu_ort_setup: providers {ort.get_available_providers()}")
assert "CUDAExecutionProvider" in ort.get_available_providers(), "no CUDA provider in this build"
PY
}

rehearse() {  # this machine: the device steps into scratch folders, then import the wheel with a Python 3.12
    local py312=${PYTHON312:-$(ls /root/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null | head -1)}
    [ -n "$py312" ] || py312=$(command -v python3.12 || true)
    [ -n "$py312" ] || { say "rehearse needs a Python 3.12 (PYTHON312=...)"; exit 1; }
    local scratch py=${PYTHON:-python3}
    scratch=$(mktemp -d)
    say "rehearsing in $scratch with $py312"
    "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$scratch/deps" numpy
    "$py312" -m pip install -q --no-index --no-deps --target "$scratch/deps-site" "$scratch"/deps/*.whl
    ORTGPU_DIR="$scratch/store" receive
    ORTGPU_DIR="$scratch/store" SITE="$scratch/site" PYTHON="$py312" PYTHONPATH="$scratch/deps-site" install
    say "rehearsal passed (CUDA itself cannot start here: no GPU)"
    echo "$scratch"
}

case "${1:-}" in
    prepare) prepare ;;
    receive) receive ;;
    install) install ;;
    rehearse) rehearse ;;
    *) sed -n '2,30p' "${BASH_SOURCE[0]}"; exit 2 ;;
esac
