# Two commands on a fresh clone: `make demo` and `make test`. Both create .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
# Apt packages that Qt's xcb platform plugin and Xvfb need for the widget tests.
XPKGS  := xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-image0 \
          libxcb-render-util0 libxcb-randr0 libxcb-shape0 libxcb-cursor0 libxkbcommon-x11-0 \
          libgl1 libegl1 libglib2.0-0 libfontconfig1 libdbus-1-3
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: venv demo test lint imports typecheck bench screenshots xvfb clean prior prior3d gpu-pack gpu-dry-run

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt "torch==2.13.0"
	$(PIP) install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m napari_selfsup_denoise._demo demo-output

# Installs Xvfb and the xcb libraries Qt needs when they are missing (Debian/Ubuntu).
xvfb:
	@command -v Xvfb >/dev/null 2>&1 && [ -n "$$(ldconfig -p | grep libxcb-cursor)" ] || \
	  { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    $(SUDO) apt-get install -y -qq --no-install-recommends $(XPKGS) >/dev/null; } || \
	  echo "WARNING: could not install Xvfb/xcb libraries ($(XPKGS)); the napari widget tests will be skipped"

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy src/napari_selfsup_denoise/engine

# The import contracts in pyproject.toml: layers, no cycles, Qt only in _widgets.
imports: $(STAMP)
	$(VENV)/bin/lint-imports

# pytest exits 5 when it collects no tests; that is not a failure of the suite.
# The suite runs in one worker per core (TEST_JOBS=1 runs it serially), whole files per worker.
TEST_JOBS ?= auto
test: $(STAMP) xvfb lint imports typecheck
	$(PY) -m pytest -q -n $(TEST_JOBS) --dist loadfile tests; rc=$$?; [ $$rc -eq 5 ] && exit 0 || exit $$rc

bench: $(STAMP)
	$(PY) benchmarks/run_all.py --out bench-output

screenshots: $(STAMP) xvfb
	xvfb-run -a -s "-screen 0 1600x1000x24" $(PY) benchmarks/screenshots.py docs/images

# The built-in prior (docs/benchmarks.md, "Built-in prior"): pre-trains the blind-spot network on generated
# images and writes the shipped weights (the shipped run: 1 CPU thread, bf16, 4200 s); on a GPU add --device cuda.
PRIOR_ARGS ?= --seconds 4200 --precision bf16
prior: $(STAMP)
	$(PY) tools/pretrain.py --seed 0 $(PRIOR_ARGS) --out src/napari_selfsup_denoise/prior/weights/blindspot_2d.sdmodel

# The 3D prior (blindspot_3d.sdmodel; the shipped run: 1 CPU thread, bf16, 4800 s, 64^3 generated volumes).
PRIOR3D_ARGS ?= --seconds 4800 --precision bf16
prior3d: $(STAMP)
	$(PY) tools/pretrain.py --ndim 3 --seed 0 $(PRIOR3D_ARGS) --out src/napari_selfsup_denoise/prior/weights/blindspot_3d.sdmodel

# The prepared GPU check (docs/gpu.md). gpu-pack fills the ignored folders a device call carries: .whl (zarr and
# what it needs, as Python 3.12 wheels: the device image has no zarr) and .gpu (the benchmark data, the commit).
# Run it in the checkout the session was started in: that checkout is what travels.
GPU_WHEELS := zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 google-crc32c==1.9.0
GPU_DATA   ?= ../shared/data
gpu-pack:
	mkdir -p .whl .gpu/data
	$(PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	  -d .whl $(GPU_WHEELS)
	install -m 644 $(GPU_DATA)/nuclei2d_stardist.tif .gpu/data/
	git rev-parse --short HEAD > .gpu/commit.txt
	du -sh .whl .gpu

# The same script on this machine's CPU at small sizes: catches a typo before a GPU session spends its minutes.
gpu-dry-run: $(STAMP)
	rm -rf gpu-check-out && OUT=$(CURDIR)/gpu-check-out PY=$(CURDIR)/$(PY) SELFSUP_DENOISE_THREADS=1 \
	  bash benchmarks/gpu_check.sh --quick --device cpu

clean:
	rm -rf $(VENV) demo-output bench-output gpu-check-out
