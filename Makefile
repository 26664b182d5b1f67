# edge-cifar: every job is one target. `make demo` and `make test` set up what they need.
PYTHON ?= python3
MODEL ?= default
QUICK ?=
# The data set: $CIFAR10_DIR, else the shared copy beside the checkout, else the download cache.
CIFAR10_DIR ?= $(if $(wildcard ../shared/cifar10/test_batch.bin),../shared/cifar10,)
export CIFAR10_DIR

TRAIN_VENV := .venv
LITERT_VENV := .venv-litert
TFLITE_VENV := .venv-tflite
PIP_FLAGS := --quiet --disable-pip-version-check
# The runtime venvs install the package as a device would (not editable): rebuild on a code or model change.
RUNTIME_FILES := pyproject.toml $(wildcard edge_cifar/*.py edge_cifar/serve/*) $(wildcard firmware_models/*)

.PHONY: setup demo quantize report samples test lint test-train test-runtime bench clean

# --- environments -------------------------------------------------------------------------------
# Training + development: TensorFlow, tf_keras, tfmot, LiteRT, the linters.
$(TRAIN_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(TRAIN_VENV)
	$(TRAIN_VENV)/bin/pip install $(PIP_FLAGS) -e '.[train,dev,serve]'
	touch $@

# The device's view: the runtime with LiteRT and no TensorFlow; OpenCV with its GUI (the window).
$(LITERT_VENV)/.installed: $(RUNTIME_FILES)
	$(PYTHON) -m venv $(LITERT_VENV)
	$(LITERT_VENV)/bin/pip install $(PIP_FLAGS) '.[litert,gui,serve,test]'
	touch $@

# The design card's tflite-runtime (2.14, built against NumPy 1.x), no TensorFlow; headless OpenCV.
$(TFLITE_VENV)/.installed: $(RUNTIME_FILES)
	$(PYTHON) -m venv $(TFLITE_VENV)
	$(TFLITE_VENV)/bin/pip install $(PIP_FLAGS) '.[tflite,headless,serve,test]'
	touch $@

setup: $(TRAIN_VENV)/.installed

# --- jobs ---------------------------------------------------------------------------------------
demo: $(LITERT_VENV)/.installed
	$(LITERT_VENV)/bin/edge-cifar camera --device samples/cifar_test.avi --headless --max-frames 60
	$(LITERT_VENV)/bin/edge-cifar classify samples/images

quantize: $(TRAIN_VENV)/.installed
	$(TRAIN_VENV)/bin/python -m train quantize --model $(MODEL) $(if $(QUICK),--quick) $(if $(DEVICES),--devices $(DEVICES))
	# A new card lacks the TFLite Micro figures and the C sources are stale: regenerate both.
	$(if $(QUICK),,$(TRAIN_VENV)/bin/python -m train.firmware)

report: $(TRAIN_VENV)/.installed
	$(TRAIN_VENV)/bin/python -m train report --model $(MODEL)

# The sample video and images `make demo` uses, cut from the CIFAR-10 test set.
samples: $(TRAIN_VENV)/.installed
	$(TRAIN_VENV)/bin/python -m train.samples

# The frontier table of every shipped model, also kept in reports/bench.txt.
bench: $(LITERT_VENV)/.installed
	mkdir -p reports
	$(LITERT_VENV)/bin/edge-cifar bench firmware_models/*.tflite --threads 1 > reports/.bench.txt
	mv reports/.bench.txt reports/bench.txt && cat reports/bench.txt

.PHONY: firmware pi-check serve-load
# Each INT8 model as C++ for TFLite Micro (<model>_int8.h/.cc), after running it in TFLite Micro
# against LiteRT's reference kernels on CIFAR-10 test images; arena and ops go into its card.
firmware: $(TRAIN_VENV)/.installed
	$(TRAIN_VENV)/bin/python -m train.firmware

# --- checks -------------------------------------------------------------------------------------
lint: $(TRAIN_VENV)/.installed
	$(TRAIN_VENV)/bin/ruff check .
	$(TRAIN_VENV)/bin/ruff format --check .
	$(TRAIN_VENV)/bin/mypy

test-train: $(TRAIN_VENV)/.installed
	$(TRAIN_VENV)/bin/pytest tests/training

# The runtime's tests run where the device's packages are, and TensorFlow is not. Debian's chromium
# (serve's page, through Playwright) and Xvfb (the camera window) are installed when missing.
test-runtime: $(LITERT_VENV)/.installed $(TFLITE_VENV)/.installed
	bash tests/runtime/system-packages.sh
	EDGE_CIFAR_EXPECT_RUNTIME=litert EDGE_CIFAR_EXPECT_GUI=1 $(LITERT_VENV)/bin/pytest tests/runtime
	EDGE_CIFAR_EXPECT_RUNTIME=tflite-runtime $(TFLITE_VENV)/bin/pytest tests/runtime

# `serve` under load, once, for the figures (not part of `make test`: it runs for a minute).
serve-load: $(LITERT_VENV)/.installed
	$(LITERT_VENV)/bin/python tests/runtime/serve_load.py --rounds 2

# The runtime on an emulated Raspberry Pi 4 and 5 (arm64 bookworm under qemu user mode, cached in
# .pi/): classify, camera, bench and the runtime's tests; its labels must equal the x86 run's.
PI_MODEL ?= firmware_models/$(MODEL)_int8.tflite
pi-check: $(LITERT_VENV)/.installed
	HOST_VENV=$(LITERT_VENV) PI_MODEL=$(PI_MODEL) bash pi/check.sh

test: lint test-train test-runtime pi-check

clean:
	rm -rf $(TRAIN_VENV) $(LITERT_VENV) $(TFLITE_VENV) build dist .mypy_cache .ruff_cache .pytest_cache
