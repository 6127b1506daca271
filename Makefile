# The two commands: `make demo` and `make test`. Each sets itself up from nothing. For reading the notebooks
# alone, `make lab` installs less. (CONTRIBUTING.md says what each target does.)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check
SUDO   := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: setup test test-lib test-nb test-browser demo demo-smoke lab notebooks clean-notebooks readme bench gpu-check clean

## one recipe, two set-ups of .venv, told apart by pyproject.toml's extras: everything (the tests, the browser
## driver, Ray: `dev` and `cluster`), or only what the notebooks need (`lab`: JupyterLab and its kernel)
STAMP     := $(VENV)/.installed
LAB_STAMP := $(VENV)/.installed-lab
$(STAMP):     EXTRAS := dev,cluster
$(LAB_STAMP): EXTRAS := lab

setup: $(STAMP)

$(STAMP) $(LAB_STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --progress-bar off --upgrade pip
	$(PIP) install --progress-bar off -e '.[$(EXTRAS)]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (fkd)" >/dev/null
	@touch $@

## all tests: the library's, the notebooks under nbval at smoke size, then notebooks 00 and 01 in a real browser
test: test-lib test-nb test-browser

test-lib: $(STAMP)
	FKD_SCALE=smoke MPLBACKEND=Agg $(BIN)/python -m pytest tests/ --ignore=tests/browser -q

## what `pytest --nbval notebooks/` does by itself (notebooks/conftest.py): smoke size, this venv's kernel, a 300 s
## cell timeout, figures and results in a temporary folder, outputs compared through notebooks/nbval_sanitize.cfg
test-nb: $(STAMP)
	$(BIN)/python -m pytest --nbval notebooks/ -q -p no:cacheprovider

## JupyterLab in headless Chromium (Debian's, installed here if missing); screenshots in build/screenshots/
test-browser: $(STAMP)
	@test -x /usr/bin/chromium || { echo "installing Debian's chromium for the browser test"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; } \
		|| echo "could not install chromium: the browser test says so (and fails on CI)"
	FKD_SCREENSHOTS_DIR=build/screenshots $(BIN)/python -m pytest tests/browser -q -p no:cacheprovider

## the main job on built-in data, in a few minutes of a laptop CPU: notebook 00 (FKD in one page) and 02 (the theory
## you can run) at lite scale, executed into build/demo/ with their figures and records, then what they showed
demo: $(STAMP)
	@rm -rf build/demo && mkdir -p build/demo
	FKD_SCALE=$${SCALE:-lite} FKD_PROGRESS=0 FKD_FIGURES_DIR=$(CURDIR)/build/demo/figures \
		FKD_RESULTS_DIR=$(CURDIR)/build/demo/results $(BIN)/jupyter nbconvert --to notebook --execute \
		--ExecutePreprocessor.timeout=1800 --ExecutePreprocessor.kernel_name=python3 --output-dir build/demo \
		notebooks/00_quickstart.ipynb notebooks/02_multiview_theory.ipynb
	@$(BIN)/python -c "from fkdlib.experiments.report import demo_summary; print(demo_summary('build/demo', '$${SCALE:-lite}'))"

## the same at smoke size, in seconds (what CI can afford; claims nothing)
demo-smoke:
	$(MAKE) demo SCALE=smoke

## re-execute the notebooks in place at SCALE (default lite) to commit their outputs, figures and results
notebooks: $(STAMP)
	FKD_SCALE=$${SCALE:-lite} FKD_PROGRESS=0 $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.timeout=3600 --ExecutePreprocessor.kernel_name=python3 notebooks/[0-9]*.ipynb
	$(MAKE) clean-notebooks

## normalise the notebooks for committing: outputs kept, volatile metadata and widget state dropped (tools/notebook_hygiene.py)
clean-notebooks: $(STAMP)
	$(BIN)/python tools/notebook_hygiene.py notebooks/[0-9]*.ipynb

## rebuild the README's results section from the committed summaries under results/
readme: $(STAMP)
	$(BIN)/python -c "from fkdlib.experiments.report import update_readme; update_readme()"

## on a GPU, at most 9 minutes: the engine's benchmark, a timed paper-recipe run, runs packed per GPU, the full
## comparison's estimate (benchmarks/gpu_check.py; BENCHMARKS.md). No set-up: it needs only torch and torchvision
gpu-check:
	$$(test -x $(BIN)/python && echo $(BIN)/python || echo python3) benchmarks/gpu_check.py --size $${SIZE:-gpu}

## the engine vs a RepDistiller-style loop, side by side (SIZE=cpu|gpu|tiny), then a distilled step with and without
## the teacher's outputs cached; writes results/benchmarks/, see BENCHMARKS.md
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_engine.py --size $${SIZE:-cpu}
	$(BIN)/python benchmarks/bench_teacher_sharing.py --size $$(test "$${SIZE:-cpu}" = tiny && echo tiny || echo cpu)

## JupyterLab on notebooks/: loopback only, a token (printed in the URL), this venv's kernel. The first time it
## installs only the `lab` extra; after `make setup` (or any target that needs it) it uses the full set-up
lab: $(if $(wildcard $(STAMP)),$(STAMP),$(LAB_STAMP))
	JUPYTER_PREFER_ENV_PATH=1 $(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.root_dir=notebooks \
		$(if $(filter 0,$(shell id -u)),--allow-root)

clean:
	rm -rf $(VENV) build figures/smoke results/smoke .pytest_cache
