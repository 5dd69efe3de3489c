# make demo: set up a virtualenv, install, run the demo on the built-in sample.
# make test: set up and run the test suite (what CI runs). make test-all: also the slow tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.headsplat-installed
ASSETS := .test-assets/insightface/Tom_Hanks_54745.png

.PHONY: demo test test-all bench install clean browser lint docs

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# Pinned: this resolves to a local CPU build here; an unpinned torch pulls GBs of CUDA wheels.
	$(PY) -m pip install -q torch==2.13.0
	# The face models only: mediapipe's declared dependencies (jax, jaxlib, sounddevice, opencv-contrib)
	# are never used by them; what they do use is in headsplat's own dependencies.
	$(PY) -m pip install -q --no-deps "mediapipe==0.10.14"
	$(PY) -m pip install -q -e ".[test,eval]"
	touch $(STAMP)

# Real test images without the network: the samples inside the insightface wheel (extracted, never imported).
$(ASSETS): | $(STAMP)
	rm -rf .test-assets/wheel && mkdir -p .test-assets/wheel .test-assets/insightface
	$(PY) -m pip download -q --no-deps -d .test-assets/wheel "insightface==2.1"
	$(PY) -c "import zipfile,glob,os; z=zipfile.ZipFile(glob.glob('.test-assets/wheel/insightface-*.whl')[0]); \
	[open(os.path.join('.test-assets/insightface', os.path.basename(n)),'wb').write(z.read(n)) \
	 for n in z.namelist() if n.startswith('insightface/data/images/')]"

# The viewer's browser tests load the page in Debian's chromium (never a downloaded browser). Installing it
# needs root and apt; without them the browser tests skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "chromium is not installed (needs root and apt-get): the browser tests will be skipped"

demo: $(STAMP)
	$(VENV)/bin/headsplat demo -o out/demo

lint: $(STAMP)
	$(VENV)/bin/ruff check headsplat tests benchmarks tools

test: $(STAMP) $(ASSETS) browser lint
	$(PY) -m pytest -q

test-all: $(STAMP) $(ASSETS) browser
	$(PY) -m pytest -q -m "slow or not slow"

bench: $(STAMP) $(ASSETS)
	$(PY) benchmarks/track.py
	$(PY) benchmarks/render.py
	$(PY) benchmarks/avatar.py
	$(PY) benchmarks/wild.py
	$(PY) benchmarks/gagavatar.py

# The documentation site (MkDocs, API pages from the docstrings) into site/; any warning fails the build.
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict -d site

clean:
	rm -rf $(VENV) .test-assets out
