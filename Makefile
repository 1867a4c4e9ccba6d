# The documented entry points. `make run` and `make test` install what they need first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
LOADTEST_ARGS ?=

.PHONY: install run test test-fast loadtest bench bench-smoke bench-live bench-shards bench-failover chaos chaos-smoke image-tour lint luacheck format clean

$(VENV)/.installed: pyproject.toml scripts/bootstrap scripts/ensure-packages
	PYTHON=$(PYTHON) VENV=$(VENV) ./scripts/bootstrap
	touch $@

install: $(VENV)/.installed

## run: the engine on 127.0.0.1:8080 with its own Redis and data under var/
run: install
	./scripts/ensure-packages redis
	$(BIN)/flashsale serve

## test: every test tier (unit, integration, end-to-end), slow fault injection included
test: install
	./scripts/ensure-packages redis postgresql chromium promtool
	$(BIN)/pytest $(PYTEST_ARGS)

## test-fast: everything but the slow fault-injection tests
test-fast: install
	./scripts/ensure-packages redis postgresql chromium promtool
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

## loadtest: rehearse launch day twice on the same traffic - waiting room off, then on
## (locust, ~3 minutes) - audit each, summary, HTML reports and a chart of both
loadtest: install
	./scripts/ensure-packages redis wrk
	$(BIN)/python loadtest/launch_day.py $(LOADTEST_ARGS)

## bench: the throughput benchmark (docs/performance.md); prints a table, asserts nothing
bench: install
	./scripts/ensure-packages redis wrk
	$(BIN)/python loadtest/bench.py --duration 10

## bench-smoke: the same with one-second scenarios, to keep it working (and the shards and
## live-watchers ones)
bench-smoke: install
	./scripts/ensure-packages redis wrk
	$(BIN)/python loadtest/bench.py --duration 1
	$(BIN)/python loadtest/shards.py --duration 1
	$(BIN)/python loadtest/live_watchers.py --duration 1 --rounds 1 --watchers 50

## bench-live: purchases/s with and without 300 console watchers on the sale's live stream
bench-live: install
	./scripts/ensure-packages redis wrk
	$(BIN)/python loadtest/live_watchers.py --duration 10 --rounds 3 --watchers 300

## bench-shards: one hot sale's purchases/s over 1, 2 and 3 shards on a private Redis Cluster
bench-shards: install
	./scripts/ensure-packages redis wrk
	$(BIN)/python loadtest/shards.py --duration 10

## bench-failover: the loss window and WAIT's cost - SIGKILL of a sale's primary, 5 times in
## each mode, on a private Redis Cluster (docs/scaling.md; ~5 minutes)
bench-failover: install
	./scripts/ensure-packages redis
	$(BIN)/python loadtest/failover.py --runs 5

## chaos: ~4 minutes of faults (Redis, app processes, worker, PostgreSQL, lost replies) under
## steady load against serve --workers 2, then the history checker and the audit (docs/reliability.md)
chaos: install
	./scripts/ensure-packages redis postgresql
	$(BIN)/python loadtest/chaos.py --duration 200

## chaos-smoke: the same in 30 seconds, every fault once (CI)
chaos-smoke: install
	./scripts/ensure-packages redis postgresql
	$(BIN)/python loadtest/chaos.py --duration 30 --calm 1.5

## image-tour: build the Dockerfile's image (podman; its base made with debootstrap where it
## cannot be pulled) and run the README's tour inside it
image-tour:
	./scripts/image-tour

## lint: ruff, mypy --strict, the import contracts and luacheck, as CI runs them
lint: install luacheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## luacheck: the Lua scripts in lua/ (.luacheckrc names Redis' globals)
luacheck:
	./scripts/ensure-packages luacheck
	luacheck lua/

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache dist build *.egg-info
