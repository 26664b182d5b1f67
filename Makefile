# edge-cifar: every job is one target. `make demo` and `make test` set up what they need.
PYTHON ?= python3
MODEL ?= default
QUICK ?=
# Your own images instead of CIFAR-10: DATA is a folder with one subfolder of images per class
# (a `_background` one: "none of these"), NAME the shipped model's name, TEST_DATA an optional test
# folder, SKIP_BAD=1 leaves unreadable files out. By default EfficientNet-Lite0's ImageNet features
# under a new head (SIZE 96..224, default 224); BACKBONE=cifar trains MODEL's CIFAR-10 net
# instead, microcontroller-sized (SIZE 32, 64 or 96, default 64; INIT auto|pretrained|scratch).
DATA ?=
NAME ?=
SIZE ?=
TEST_DATA ?=
SKIP_BAD ?=
INIT ?= auto
BACKBONE ?= lite0
FOLDER_OPTIONS := $(if $(DATA),--images $(DATA) --backbone $(BACKBONE) --init $(INIT) \
	$(if $(SIZE),--size $(SIZE)) $(if $(NAME),--name $(NAME)) \
	$(if $(TEST_DATA),--test-images $(TEST_DATA)) $(if $(SKIP_BAD),--skip-bad))
# The data set: $CIFAR10_DIR, else the shared copy beside the checkout, else the download cache.
CIFAR10_DIR ?= $(if $(wildcard ../shared/cifar10/test_batch.bin),../shared/cifar10,)
export CIFAR10_DIR

# Overridable: a worktree can share another checkout's training venv.
TRAIN_VENV ?= .venv
LITERT_VENV := .venv-litert
TFLITE_VENV := .venv-tflite
PIP_FLAGS := --quiet --disable-pip-version-check
# The runtime venvs install the package as a device would (not editable): rebuild on a code or model change.
RUNTIME_FILES := pyproject.toml $(wildcard edge_cifar/*.py edge_cifar/serve/*) $(wildcard firmware_models/*)

.PHONY: setup demo quantize report samples test lint test-train test-runtime bench clean

# --- environments -------------------------------------------------------------------------------
# The `metadata` extra (tflite-support's metadata writer; MediaPipe Tasks for the test that loads our
# models in it) pins protobuf < 4 and absl-py 2, which TensorFlow 2.21 and tfmot cannot share: it is
# installed without dependencies (the parts used need none of those), and the writer's native
# library needs Debian's libusb-1.0-0 (installed when missing, as pi/build.sh does its tools).
METADATA_PACKAGES = $(shell $(PYTHON) -c "import tomllib; print(' '.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['metadata']))")

# Training + development: TensorFlow, tf_keras, tfmot, LiteRT, the metadata writer, the linters.
$(TRAIN_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(TRAIN_VENV)
	$(TRAIN_VENV)/bin/pip install $(PIP_FLAGS) -e '.[train,dev,serve,mqtt]'
	$(TRAIN_VENV)/bin/pip install $(PIP_FLAGS) --no-deps $(METADATA_PACKAGES)
	ldconfig -p | grep -q 'libusb-1.0.so.0 ' || bash .ci/apt-install.sh libusb-1.0-0
	touch $@

# The device's view: a plain `pip install .` (it brings LiteRT and headless OpenCV) with the serve
# and mqtt extras, no TensorFlow; `make demo` runs here.
$(LITERT_VENV)/.installed: $(RUNTIME_FILES)
	$(PYTHON) -m venv $(LITERT_VENV)
	$(LITERT_VENV)/bin/pip install $(PIP_FLAGS) '.[serve,mqtt]'
	touch $@

# The runtime tests' tools (pytest, Playwright, FlatBuffers) added to it for `make test-runtime`.
$(LITERT_VENV)/.tested: $(LITERT_VENV)/.installed
	$(LITERT_VENV)/bin/pip install $(PIP_FLAGS) '.[serve,mqtt,test]'
	touch $@

# The design card's tflite-runtime (2.14, built against NumPy 1.x), no TensorFlow; then the README's
# window install: OpenCV's GUI build swapped in for the headless one, same version, one `cv2`.
$(TFLITE_VENV)/.installed: $(RUNTIME_FILES)
	$(PYTHON) -m venv $(TFLITE_VENV)
	$(TFLITE_VENV)/bin/pip install $(PIP_FLAGS) '.[tflite,serve,mqtt,test]'
	version=$$($(TFLITE_VENV)/bin/python -c "from importlib.metadata import version; print(version('opencv-python-headless'))") && \
	  $(TFLITE_VENV)/bin/pip uninstall $(PIP_FLAGS) -y opencv-python-headless && \
	  $(TFLITE_VENV)/bin/pip install $(PIP_FLAGS) "opencv-python==$$version"
	touch $@

setup: $(TRAIN_VENV)/.installed

# --- jobs ---------------------------------------------------------------------------------------
demo: $(LITERT_VENV)/.installed
	$(LITERT_VENV)/bin/edge-cifar camera --device samples/cifar_test.avi --headless --max-frames 60
	$(LITERT_VENV)/bin/edge-cifar classify samples/images

# The MLPerf Tiny references (raw 0..255 pixels), where a shared copy lies beside the checkout: the
# robustness benchmark runs them beside our models, never ships them.
REFERENCES ?= $(wildcard ../shared/references/*.tflite)
REFERENCE_FLAGS = $(foreach r,$(REFERENCES),--reference $(r))
# Photos of none of CIFAR-10's classes: with the validation split they choose the uncertain
# threshold a model carries (train/calibration.py).
OUT_OF_CLASS ?= $(wildcard ../shared/photos)
# The robustness benchmark on this many test images instead of all (the card says how many).
ROBUSTNESS_IMAGES ?=
# They are CIFAR-10 classifiers: an image-folder model (DATA=) is benchmarked without them.

# Every step in one command (train/pipeline.py): training, QAT, conversion, the accuracy gate, the
# TFLite Micro check, shipping (card, models, C++) and the report.
quantize: $(TRAIN_VENV)/.installed
	$(TRAIN_VENV)/bin/python -m train $(FOLDER_OPTIONS) quantize --model $(MODEL) $(if $(QUICK),--quick) $(if $(DEVICES),--devices $(DEVICES)) $(if $(DATA),,$(REFERENCE_FLAGS) $(if $(OUT_OF_CLASS),--out-of-class $(OUT_OF_CLASS))) $(if $(ROBUSTNESS_IMAGES),--robustness-images $(ROBUSTNESS_IMAGES))

report: $(TRAIN_VENV)/.installed
	$(TRAIN_VENV)/bin/python -m train $(FOLDER_OPTIONS) report --model $(MODEL)

# The sample video and images `make demo` uses, cut from the CIFAR-10 test set.
samples: $(TRAIN_VENV)/.installed
	$(TRAIN_VENV)/bin/python -m train.samples

# The frontier table of every shipped model and the MLPerf references (when here), in one run;
# also kept in reports/bench.txt.
bench: $(LITERT_VENV)/.installed
	mkdir -p reports
	$(LITERT_VENV)/bin/edge-cifar bench firmware_models/*.tflite $(REFERENCES) --threads 1 > reports/.bench.txt
	mv reports/.bench.txt reports/bench.txt && cat reports/bench.txt

.PHONY: sketch
# Each config's untrained net as full INT8, benchmarked beside the references in one run: an
# architecture's size, multiply-adds and latency before any training (train/sketch.py).
SKETCH ?= default tiny
sketch: $(TRAIN_VENV)/.installed $(LITERT_VENV)/.installed
	$(TRAIN_VENV)/bin/python -m train sketch $(SKETCH) --out-dir runs/sketch
	$(LITERT_VENV)/bin/edge-cifar bench $(foreach m,$(SKETCH),runs/sketch/$(m)_sketch_int8.tflite) $(REFERENCES) --threads 1

.PHONY: photo-check
# The photo-folder figure (README, train/NOTES.md): of each class of ../shared/photos the first 100
# photos by name train and the next 200 test (symlinks), through the whole `make quantize DATA=`
# pipeline; everything under runs/photo-check/ and reports/photo-check/, the card there too.
PHOTOS ?= ../shared/photos
photo-check: $(TRAIN_VENV)/.installed
	$(TRAIN_VENV)/bin/python -m train.experiments.photo_subsets $(PHOTOS) runs/photo-check/data
	$(TRAIN_VENV)/bin/python -m train --images runs/photo-check/data/train \
	  --test-images runs/photo-check/data/test --name photo-check quantize \
	  --runs-dir runs/photo-check --firmware-dir runs/photo-check/firmware

.PHONY: robustness
# Every shipped INT8 model and the references under the 14 corruptions x 5 severities, all 10,000
# test images (reports/robustness/: table, JSON, plot); IMAGES=2000 for a shorter run.
IMAGES ?= 10000
robustness: $(TRAIN_VENV)/.installed
	$(TRAIN_VENV)/bin/python -m train robustness firmware_models/*_int8.tflite $(REFERENCES) --input-range 0..255 --images $(IMAGES)

.PHONY: stamp
# TFLite metadata into every shipped model (graph and weights checked unchanged), its uint8-interface
# file, the cards' SHA-256s; then the C sources, which embed the INT8 files' bytes.
stamp: $(TRAIN_VENV)/.installed
	$(TRAIN_VENV)/bin/python -m train stamp
	$(TRAIN_VENV)/bin/python -m train firmware

.PHONY: firmware pi-check serve-load
# Each INT8 model as C++ for TFLite Micro (<model>_int8.h/.cc), after running it in TFLite Micro
# against LiteRT's reference kernels on CIFAR-10 test images; arena and ops go into its card.
firmware: $(TRAIN_VENV)/.installed
	$(TRAIN_VENV)/bin/python -m train firmware

# --- checks -------------------------------------------------------------------------------------
lint: $(TRAIN_VENV)/.installed
	$(TRAIN_VENV)/bin/ruff check .
	$(TRAIN_VENV)/bin/ruff format --check .
	$(TRAIN_VENV)/bin/mypy

test-train: $(TRAIN_VENV)/.installed
	$(TRAIN_VENV)/bin/pytest tests/training

# The runtime's tests run where the device's packages are, and TensorFlow is not. Debian's chromium
# (serve's page, through Playwright) and Xvfb (the camera window) are installed when missing.
test-runtime: $(LITERT_VENV)/.tested $(TFLITE_VENV)/.installed
	bash tests/runtime/system-packages.sh
	EDGE_CIFAR_EXPECT_RUNTIME=litert $(LITERT_VENV)/bin/pytest tests/runtime
	# `[tflite]` adds tflite-runtime beside the default LiteRT (both work with NumPy 1.26): pick it.
	EDGE_CIFAR_RUNTIME=tflite-runtime EDGE_CIFAR_EXPECT_RUNTIME=tflite-runtime EDGE_CIFAR_EXPECT_GUI=1 \
	  $(TFLITE_VENV)/bin/pytest tests/runtime

# `serve` under load, once, for the figures (not part of `make test`: it runs for a minute).
serve-load: $(LITERT_VENV)/.installed
	$(LITERT_VENV)/bin/python tests/runtime/serve_load.py --rounds 2

# The runtime on an emulated Raspberry Pi 4 and 5 (arm64 bookworm/Python 3.11 and trixie/3.13 under
# qemu user mode, cached in .pi/): classify, camera, serve, bench and the runtime's tests; its labels
# must equal the x86 run's.
# PI_MODELS: the models it compares, by name (default: every shipped one, from the installed wheel).
PI_MODELS ?=
pi-check: $(LITERT_VENV)/.installed
	HOST_VENV=$(LITERT_VENV) PI_MODELS="$(PI_MODELS)" bash pi/check.sh

test: lint test-train test-runtime pi-check

clean:
	rm -rf $(TRAIN_VENV) $(LITERT_VENV) $(TFLITE_VENV) build dist .mypy_cache .ruff_cache .pytest_cache
