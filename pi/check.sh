#!/usr/bin/env bash
# make pi-check: the device runtime on an emulated Raspberry Pi (arm64 Debian under qemu user-mode
# emulation) must predict what it predicts on x86, on the same images and video frames, on each
# Raspberry Pi OS userland: bookworm (Python 3.11) and trixie (Python 3.13, current since 2025).
#   HOST_VENV    the x86 runtime venv whose predictions are the reference (default .venv-litert)
#   PI_MODELS    the models both run, named as a user names them (default: every shipped
#                firmware_models/<name>_int8.tflite, so each must travel in the wheel); serve
#                and bench run the first of them, the tests `default` (tests/runtime/support.py)
#   PI_CPUS      emulated cores (default "cortex-a72 cortex-a76": a Raspberry Pi 4 and a Pi 5)
#   PI_RELEASES  userlands (default "bookworm trixie")
set -euo pipefail
cd "$(dirname "$0")/.."
host_venv=${HOST_VENV:-.venv-litert}
if [ -n "${PI_MODELS:-}" ]; then
  read -ra models <<<"$PI_MODELS"
else
  models=()
  for file in firmware_models/*_int8.tflite; do
    name=${file##*/}
    models+=("${name%_int8.tflite}")
  done
fi
cpus=${PI_CPUS:-cortex-a72 cortex-a76}
releases=${PI_RELEASES:-bookworm trixie}
export PI_DIR=${PI_DIR:-.pi}
out=$PI_DIR/out
start=$SECONDS
current="setup"
ran=()  # "release: Python X, runtime ..." per userland, for the last line
# An EXIT trap, not ERR: set -e leaves from inside a function before an ERR trap would run.
trap 'status=$?; [ "$status" = 0 ] || echo "pi-check: FAILED at: $current ($((SECONDS - start)) s)" >&2' EXIT
step() {
  current=$*
  printf '\n== %s  [%d s]\n' "$current" $((SECONDS - start))
}

[ -x "$host_venv/bin/edge-cifar" ] || { echo "error: no $host_venv/bin/edge-cifar (make $host_venv/.installed)" >&2; exit 2; }
[ ${#models[@]} -gt 0 ] || { echo "error: no shipped model in firmware_models/ (make quantize ships one)" >&2; exit 2; }
for model in "${models[@]}"; do  # before the slow userlands: a missing model is edge-cifar's one line
  "$host_venv/bin/edge-cifar" info "$model" >/dev/null
done

for release in $releases; do
  step "arm64 $release userland and aarch64 wheels (cached in $PI_DIR/$release)"
  pi/build.sh "$host_venv/bin/python" "$release"
done

step "edge-cifar from the working tree, installed as a wheel (pure Python)"
rm -rf "$PI_DIR/app"
"$host_venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
  --target "$PI_DIR/app" .
rm -rf "$out" && mkdir -p "$out"

# The camera runs read the sample video's first 60 frames re-encoded losslessly (PNG in AVI) by
# the host: each OpenCV build decodes the MJPEG sample with its own FFmpeg, and the emulated Pi's
# frames differed from x86's by 0.6% of their pixel sum, enough to move a frame across `pi`'s
# uncertain threshold. Decoded from PNG both see the same pixels, so labels must be equal.
clip=$out/clip.avi
frames=60
"$host_venv/bin/python" - samples/cifar_test.avi "$clip" "$frames" <<'PY'
import sys

import cv2

source, target, frames = sys.argv[1], sys.argv[2], int(sys.argv[3])
capture = cv2.VideoCapture(source)
size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
writer = cv2.VideoWriter(target, cv2.VideoWriter_fourcc(*"MPNG"), capture.get(cv2.CAP_PROP_FPS), size)
for _ in range(frames):
    ok, frame = capture.read()
    if not ok:
        sys.exit(f"error: {source} has fewer than {frames} frames")
    writer.write(frame)
writer.release()
PY

for model in "${models[@]}"; do
  step "the x86 reference run ($host_venv): $model"
  "$host_venv/bin/edge-cifar" classify samples/images --json --model "$model" \
    >"$out/classify-x86-$model.jsonl"
  "$host_venv/bin/edge-cifar" camera --device "$clip" --headless --max-frames "$frames" \
    --model "$model" >"$out/camera-x86-$model.jsonl" 2>"$out/camera-x86-$model.log"
done

# -P: import the installed wheel, not the checkout's edge_cifar/ in the current directory.
emulated() { pi/python -P -m edge_cifar "$@"; }

for release in $releases; do
  export PI_RELEASE=$release
  for cpu in $cpus; do
    export PI_CPU=$cpu
    run="$release-$cpu"
    step "$release, $cpu: what the emulated Pi runs"
    versions=$(pi/python -P - <<'PY'
import platform
from importlib.metadata import version

import cv2
import numpy

from edge_cifar.interpreter import load_backend

print(
    f"Python {platform.python_version()} ({platform.machine()}, glibc {platform.libc_ver()[1]}), "
    f"{load_backend().name} {version('ai-edge-litert')}, NumPy {numpy.__version__}, "
    f"OpenCV {cv2.__version__}"
)
PY
    )
    echo "$versions"

    for model in "${models[@]}"; do
      step "$release, $cpu: edge-cifar classify samples/images --json --model $model"
      emulated classify samples/images --json --model "$model" >"$out/classify-$run-$model.jsonl"
      "$host_venv/bin/python" pi/compare.py classify "$out/classify-x86-$model.jsonl" \
        "$out/classify-$run-$model.jsonl"

      step "$release, $cpu: edge-cifar camera --device $clip --headless --max-frames $frames --model $model"
      emulated camera --device "$clip" --headless --max-frames "$frames" --model "$model" \
        >"$out/camera-$run-$model.jsonl" 2>"$out/camera-$run-$model.log"
      cat "$out/camera-$run-$model.log"
      "$host_venv/bin/python" pi/compare.py camera "$out/camera-x86-$model.jsonl" \
        "$out/camera-$run-$model.jsonl"
    done
  done
  ran+=("$release: $versions")

  export PI_CPU=cortex-a72
  if [ "$release" = bookworm ]; then
    # The README's venv for the camera module: bookworm's apt picamera2 needs NumPy 1.x, so pip
    # picks NumPy 1.26 and OpenCV 4.11 there: those must classify alike too, and so must
    # tflite-runtime 2.14, whose last wheels are for Python <= 3.11 (none for trixie's 3.13).
    for model in "${models[@]}"; do
      step "bookworm, cortex-a72, NumPy 1.x (the picamera2 venv): edge-cifar classify samples/images --json --model $model"
      PI_SITE=site-numpy1 emulated classify samples/images --json --model "$model" \
        >"$out/classify-numpy1-$model.jsonl"
      "$host_venv/bin/python" pi/compare.py classify "$out/classify-x86-$model.jsonl" \
        "$out/classify-numpy1-$model.jsonl"

      step "bookworm, cortex-a72, tflite-runtime 2.14: edge-cifar classify samples/images --json --model $model"
      PI_SITE=site-numpy1 emulated classify samples/images --json --model "$model" \
        --runtime tflite-runtime >"$out/classify-tflite-$model.jsonl"
      "$host_venv/bin/python" pi/compare.py classify "$out/classify-x86-$model.jsonl" \
        "$out/classify-tflite-$model.jsonl"
    done

    step "bookworm, cortex-a72: edge-cifar bench ${models[0]} --runs 20 (emulated: the figures are qemu's, not a Pi's)"
    emulated bench "${models[0]}" --runs 20
  fi

  # serve, started by this script itself (qemu cannot follow a test's child process, but a
  # background job of the script is qemu itself): /healthz and one POST /classify answered from
  # the host, the label equal to x86's `classify` of the same image, then SIGTERM: exit 0, a
  # summary.
  step "$release, cortex-a72: edge-cifar serve --device samples/cifar_test.avi: /healthz, POST /classify, SIGTERM"
  serve_log=$out/serve-$release.log
  pi/python -P -m edge_cifar serve --device samples/cifar_test.avi --port 0 --model "${models[0]}" \
    2>"$serve_log" &
  serve_pid=$!
  "$host_venv/bin/python" pi/compare.py serve "$serve_log" samples/images/0000_cat.png \
    "$out/classify-x86-${models[0]}.jsonl"
  kill -TERM "$serve_pid"
  serve_status=0
  wait "$serve_pid" || serve_status=$?
  cat "$serve_log"
  [ "$serve_status" = 0 ] || { echo "error: serve exited $serve_status after SIGTERM" >&2; exit 1; }
  grep -q "stopped by SIGTERM" "$serve_log"

  # The runtime's tests, less those that start `python -m edge_cifar` as a child process: qemu
  # user mode does not follow an exec, and without binfmt_misc (root, a mount) the host kernel
  # cannot start an aarch64 program. test_cli_errors.py and test_cli_endings.py are all such.
  step "$release, cortex-a72: the runtime's tests (a named subset)"
  tmp=$(realpath -m "$PI_DIR/tmp/$release")  # PI_DIR may be relative or absolute
  mkdir -p "$tmp"
  EDGE_CIFAR_EXPECT_RUNTIME=litert TMPDIR=$tmp pi/python -m pytest -q \
    -p no:cacheprovider --basetemp "$tmp/pytest" \
    tests/runtime/test_preprocess.py tests/runtime/test_sources.py \
    tests/runtime/test_camera_loop.py tests/runtime/test_camera_video.py \
    tests/runtime/test_classify.py tests/runtime/test_bench.py tests/runtime/test_model_files.py \
    tests/runtime/test_backend.py tests/runtime/test_score_threshold.py \
    --deselect tests/runtime/test_backend.py::test_the_runtime_and_its_cli_never_import_tensorflow \
    -k "not serve_takes and not no_probability"
done

current="done"
echo
echo "pi-check: passed in $((SECONDS - start)) s: the emulated Pi ($cpus) predicts x86's labels on"
printf '  %s\n' "${ran[@]}"
