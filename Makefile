# srlearn: every target sets up .venv on first use.
#   make lab        JupyterLab on notebooks/ (the main job)
#   make test       the whole test suite, notebooks and browser test included (what CI runs)
#   make replicate  every registered replication, headless, in the mode that fits this machine
#   make slides     a reveal.js review deck per notebook (its deck-tagged cells) in build/slides/
#   make student    student copies (exercises as stubs, checks with ✅/❌) in build/student/
#   make site       a static site of the executed notebooks, docs/ and the README in build/site/
#
# Which PyTorch goes into .venv:
#   - no NVIDIA GPU: torch==2.13.0, the CPU build (on the project's machines a local wheel; nothing
#     multi-GB is downloaded). Elsewhere, on Linux without a GPU, add the CPU index:
#       make test TORCH_INDEX="--index-url https://download.pytorch.org/whl/cpu"
#   - an NVIDIA GPU (nvidia-smi works): torch>=2.2 from PyPI, whose Linux wheels are CUDA builds.
#     For a particular CUDA version: make lab TORCH_SPEC="torch>=2.2" TORCH_INDEX="--index-url https://download.pytorch.org/whl/cu126"
#   - a torch you already have: make test VENV_FLAGS=--system-site-packages TORCH_SPEC="torch"
PYTHON      ?= python3
VENV        ?= .venv
VENV_FLAGS  ?=
HAS_GPU     := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1)
TORCH_SPEC  ?= $(if $(HAS_GPU),torch>=2.2,torch==2.13.0)
TORCH_INDEX ?=
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.srlearn-installed
LAB_PORT    ?= 8888
LAB_FLAGS   ?= $(if $(filter 0,$(shell id -u)),--allow-root,)
PYTEST_ARGS ?=
# mkdocs for `make site` (and its test) lives in its own venv, apart from .venv (see the site target)
SITE_VENV   ?= .venv-site
SITE_PY     := $(SITE_VENV)/bin/python
SITE_STAMP  := $(SITE_VENV)/.srlearn-site-installed

.PHONY: lab test replicate slides student site venv clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)" $(TORCH_INDEX)
	$(PY) -m pip install --quiet -e ".[test]"
	@$(PY) -c "import torch, srlearn; print('srlearn', srlearn.__version__, '| torch', torch.__version__, '| cuda', torch.cuda.is_available())"
	@touch $@

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks --port=$(LAB_PORT) $(LAB_FLAGS)

# Each notebook runs once: in the browser test when Chromium can be had, headless otherwise.
# On CI (CI=true) a browser that cannot be installed is a failure, not a skip.
test: export SRLEARN_NB_HEADLESS ?= auto
test: export SRLEARN_REQUIRE_BROWSER ?= $(if $(CI),1,)
test: export SRLEARN_EXECUTED_DIR ?= $(CURDIR)/build/executed
test: export SRLEARN_SITE_PYTHON ?= $(CURDIR)/$(SITE_PY)
test: $(STAMP) $(SITE_STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

replicate: $(STAMP)
	$(VENV)/bin/srlearn replicate all --mode auto --out runs

# The study-group kit (tools/kit.py). slides and site first run every notebook in quick mode into
# build/executed/ (about 4 min on a 2-core CPU; a copy whose notebook is unchanged is reused, and
# `make test` leaves fresh copies there), so the decks and pages show the figures. The site is built by
# mkdocs + mkdocs-jupyter (pyproject's [site] extra) from a separate venv, .venv-site, so that their
# Jupyter extensions (jupytext) never enter the JupyterLab of `make lab` and the browser test.

slides: $(STAMP)
	$(PY) tools/kit.py slides

student: $(STAMP)
	$(PY) tools/kit.py student

$(SITE_STAMP): $(STAMP) pyproject.toml
	@test -x $(SITE_PY) || $(PYTHON) -m venv $(SITE_VENV)
	$(SITE_PY) -m pip install --quiet --upgrade pip
	$(SITE_PY) -m pip install --quiet $$($(PY) tools/kit.py site-requirements)
	@touch $@

site: $(STAMP) $(SITE_STAMP)
	$(PY) tools/kit.py execute
	$(SITE_PY) tools/kit.py site --no-execute

clean-venv:
	rm -rf $(VENV) $(SITE_VENV)
