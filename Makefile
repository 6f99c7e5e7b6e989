# napari-wss — two commands on a fresh machine: `make demo` and `make test`.
# Each creates .venv when missing and installs what it needs; apt packages are installed only
# when missing and when running as root (elsewhere they are listed for you to install).

PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
# The exact torch wheel first: a bare `torch` would pull a multi-GB CUDA build here.
TORCH   ?= torch==2.13.0
APT_PKGS := xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 \
            libxcb-randr0 libxcb-shape0 libxcb-xinerama0 libxcb-cursor0 libxkbcommon-x11-0 \
            libgl1 libegl1 libdbus-1-3 libfontconfig1
PYTEST_ARGS ?=

.PHONY: demo test lint bench clean apt venv-test venv-demo samples

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.stamp-torch: | $(VENV)/bin/python
	$(PIP) install -q "$(TORCH)"
	touch $@

$(VENV)/.stamp-test: pyproject.toml $(VENV)/.stamp-torch
	$(PIP) install -q -e ".[test]"
	touch $@

$(VENV)/.stamp-demo: pyproject.toml $(VENV)/.stamp-torch
	$(PIP) install -q -e ".[demo]"
	touch $@

venv-test: $(VENV)/.stamp-test
venv-demo: $(VENV)/.stamp-demo

apt:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null; }; \
	  else echo "note: missing system packages (install them for the GUI):$$missing"; fi; \
	fi

# The GUI tests need an X server with OpenGL (napari's Image layer crashes offscreen):
# pytest-xvfb starts Xvfb for the session, Mesa's llvmpipe renders.
test: apt venv-test
	QT_QPA_PLATFORM=xcb OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest $(PYTEST_ARGS)

# With a display: napari with the widget docked and the cardiac phantom loaded.
# Without one: the headless train-and-predict on the phantom, an overlay PNG and Dice.
demo: apt venv-demo
	$(VENV)/bin/napari-wss demo

samples: venv-test
	$(VENV)/bin/napari-wss make-samples sample_data

lint: venv-test
	$(VENV)/bin/ruff check napari_wss tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
