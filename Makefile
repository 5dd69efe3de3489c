# make demo: set up a virtualenv, install, run the demo on the built-in sample.
# make test: set up and run the test suite (what CI runs). make test-all: also the slow tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.headsplat-installed
REFERENCE := $(VENV)/.mediapipe-reference
ASSETS := .test-assets/insightface/Tom_Hanks_54745.png
CLIP := .test-assets/opencv-doc/Megamind.avi

.PHONY: demo test test-all bench install clean browser lint docs reference install-check

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# Pinned: this resolves to a local CPU build here; an unpinned torch pulls GBs of CUDA wheels.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test,eval]"
	touch $(STAMP)

# The reference headsplat's face front end is compared with (tests/face/test_frontend.py, test_nets.py):
# MediaPipe 0.10.14 itself, with only what its face solutions import (its declared jax, jaxlib, sounddevice and
# opencv-contrib are never used). Tests only; wheels exist for Python 3.9-3.12, so it is skipped elsewhere and
# the tests compare with the recorded reference (tests/face/data) instead.
reference: $(REFERENCE)

$(REFERENCE): $(STAMP)
	@if $(PY) -c "import sys; sys.exit(sys.version_info >= (3, 13))"; then \
	  $(PY) -m pip install -q --no-deps "mediapipe==0.10.14" "protobuf>=4.25,<5" absl-py attrs flatbuffers; \
	else echo "mediapipe 0.10.14 has no wheel for this Python: the face tests use the recorded reference"; fi
	touch $(REFERENCE)

# Real test images without the network: the samples inside the insightface wheel (extracted, never imported).
$(ASSETS): | $(STAMP)
	rm -rf .test-assets/wheel && mkdir -p .test-assets/wheel .test-assets/insightface
	$(PY) -m pip download -q --no-deps -d .test-assets/wheel "insightface==2.1"
	$(PY) -c "import zipfile,glob,os; z=zipfile.ZipFile(glob.glob('.test-assets/wheel/insightface-*.whl')[0]); \
	[open(os.path.join('.test-assets/insightface', os.path.basename(n)),'wb').write(z.read(n)) \
	 for n in z.namelist() if n.startswith('insightface/data/images/')]"

# A real in-the-wild film clip (720x528, 270 frames, four shots): Megamind.avi from Debian's opencv-doc package,
# taken from the .deb (apt-get download needs no root). Tests that use it skip when it could not be fetched.
$(CLIP):
	@mkdir -p .test-assets/opencv-doc && cd .test-assets/opencv-doc && rm -rf deb && mkdir deb && \
	  (cd deb && apt-get download -q opencv-doc >/dev/null 2>&1 && dpkg-deb -x opencv-doc_*.deb x && \
	   cp x/usr/share/doc/opencv-doc/examples/data/Megamind.avi ..) || \
	  echo "opencv-doc could not be fetched with apt-get: the tests on the film clip will be skipped"; \
	  rm -rf deb

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

test: $(STAMP) $(ASSETS) $(CLIP) $(REFERENCE) browser lint install-check
	$(PY) -m pytest -q

test-all: $(STAMP) $(ASSETS) $(CLIP) $(REFERENCE) browser
	$(PY) -m pytest -q -m "slow or not slow"

bench: $(STAMP) $(ASSETS) $(REFERENCE)
	$(PY) benchmarks/face.py
	$(PY) benchmarks/track.py
	$(PY) benchmarks/render.py
	$(PY) benchmarks/avatar.py
	$(PY) benchmarks/wild.py
	$(PY) benchmarks/gagavatar.py
	$(PY) benchmarks/portrait4d.py
	$(PY) benchmarks/omniavatar.py

# A new user's install, checked: every runtime dependency has a wheel for Python 3.10-3.14 (pip's resolver for
# each version, nothing installed), and a fresh venv takes `pip install <checkout>` after torch as the one
# command and runs `headsplat track` on the built-in portrait, with no mediapipe or protobuf and no log lines.
install-check: $(STAMP)
	$(PY) tools/check_install.py resolve
	$(PY) tools/check_install.py fresh --venv .test-assets/fresh-venv

# The documentation site (MkDocs, API pages from the docstrings) into site/; any warning fails the build.
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict -d site

clean:
	rm -rf $(VENV) .test-assets out
