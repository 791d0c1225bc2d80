# The README's two commands are `make run` and `make test`; the rest are their parts.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test demo venv infra migrate seed bench clean unit docs

$(STAMP): requirements.txt
	@command -v $(PY) >/dev/null || { echo "Python 3.11 is required: install python3.11 (apt-get install python3.11 python3.11-venv) or set PY=/path/to/python3.11"; exit 1; }
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	@touch $(STAMP)

venv: $(STAMP)

infra:
	@bash scripts/ensure_infra.sh

migrate: venv infra
	$(BIN)/python -m services.common.migrate

seed: migrate
	$(BIN)/python -m scripts.seed_demo

# Starts every service, the gateway and the SMTP sink (one Procfile), seeds the demo organization
# once they answer, and prints the URL and the login. Ctrl-C stops everything.
run: migrate
	@bash scripts/run.sh

# Drives the main job over HTTP against the stack `make run` started.
demo: venv
	$(BIN)/python -m scripts.demo

# The whole suite: unit tests, then integration and end-to-end tests against real RabbitMQ,
# PostgreSQL and SMTP, each run in its own database and vhost.
test: venv infra
	$(BIN)/python -m pytest -q tests

unit: venv
	$(BIN)/python -m pytest -q tests -m "not stack"

bench: venv infra
	$(BIN)/python -m bench.run_all

# Regenerates the documentation that is derived from code (docs/roles.md).
docs: venv
	$(BIN)/python -m scripts.roles_doc

clean:
	rm -rf $(VENV) var
