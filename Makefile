# Two entry points for a fresh machine: `make run` and `make test` (see README).
# Both create .venv and install the project into it; the install step reruns only when
# pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TASK ?= What is 1234 * 5678? Answer with the number only.
GOLD ?= 7006652

export LANGGRAPH_CLI_NO_ANALYTICS := 1
export LANGGRAPH_NO_VERSION_CHECK := 1
export ORT_DISABLE_TELEMETRY := 1
export ANONYMIZED_TELEMETRY := False

.PHONY: run test lint install install-dev .mypy_tree

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[local]"
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev,local,evals,postgres]"
	touch $@ $(VENV)/.installed-run

install: $(VENV)/.installed-run
install-dev: $(VENV)/.installed-dev

# A wrong answer (exit 1: the offline smoke model often gives one) still means the loop ran end to
# end; any other failure (bad input 2, unreachable 3, ...) fails the target.
run: $(VENV)/.installed-run
	@$(BIN)/memento run "$(TASK)" $(if $(GOLD),--ground-truth "$(GOLD)"); code=$$?; \
	if [ $$code -eq 1 ]; then echo "make run: the loop ran end to end; the task's answer was wrong (exit 1)" >&2; \
	elif [ $$code -ne 0 ]; then exit $$code; fi

# mypy sees the installed layout (memento_skills.graph = graph/, ...) through a tree of symlinks.
.mypy_tree: $(wildcard memento_skills/*.py)
	rm -rf .mypy_tree && mkdir -p .mypy_tree/memento_skills
	for f in memento_skills/*.py; do ln -s ../../$$f .mypy_tree/memento_skills/; done
	for d in graph nodes stores evals; do ln -s ../../$$d .mypy_tree/memento_skills/$$d; done

lint: $(VENV)/.installed-dev .mypy_tree
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q
