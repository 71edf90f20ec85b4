# taskplane — `make dev` runs the local runtime, `make test` runs every test.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: install lock dev test test-fast lint format synth bench clean

install: $(STAMP)

# Every dependency (and the build backend) comes from the lock, with PyPI's hashes; then the project
# itself, editable, without resolving anything again. requirements/README.md says why and how.
LOCK := requirements/dev.lock
$(STAMP): pyproject.toml $(LOCK)
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Re-resolve both locks from pyproject.toml against PyPI (uv; needs the network); commit the result.
UV_COMPILE := $(BIN)/uv pip compile --no-config --index-url https://pypi.org/simple --generate-hashes \
	--quiet --custom-compile-command 'make lock'
lock: install
	JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 $(BIN)/python -c \
		'from infra.capabilities.layers import write_lambda_in; write_lambda_in()'
	$(UV_COMPILE) --universal --python-version 3.11 --all-extras --no-emit-package taskplane \
		-o requirements/dev.lock pyproject.toml requirements/build.in
	$(UV_COMPILE) --python-version 3.12 --python-platform aarch64-manylinux_2_28 --only-binary :all: \
		-o requirements/lambda.lock requirements/lambda.in

dev: install
	$(BIN)/taskplane dev $(ARGS)

# Two workers; tests marked with one xdist_group share a worker (and its session fixtures: the moto
# dev server of tests/e2e/test_dev_moto.py starts once). The whole suite records every boto3 call (tests/aws_calls.py); then tests/iam checks each against
# its function's synthesized role (skipped when ARGS picks a part of the suite).
AWS_CALLS := $(CURDIR)/.pytest-aws-calls
test: install
	rm -rf $(AWS_CALLS)
	TASKPLANE_RECORD_AWS_CALLS=$(AWS_CALLS) $(BIN)/pytest -n 2 --dist loadgroup $(ARGS)
	@if [ -z "$(ARGS)" ]; then \
		TASKPLANE_IAM_CHECK=1 TASKPLANE_RECORD_AWS_CALLS=$(AWS_CALLS) $(BIN)/pytest -q tests/iam; \
	fi

test-fast: install
	$(BIN)/pytest -m "unit" $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The CDK CLI, pinned to its major version, in the repository's git-ignored node_modules/.
CDK := node_modules/.bin/cdk
$(CDK):
	npm install --no-save --no-package-lock --no-audit --no-fund --loglevel=error aws-cdk@2

# Offline (no AWS account or credentials): every environment of cdk.json into cdk.out/, cdk-nag
# inside the synth (a finding fails it), then cfn-lint. One environment: make synth ARGS="-c env=dev".
synth: install $(CDK)
	rm -rf cdk.out
	AWS_EC2_METADATA_DISABLED=true CDK_DISABLE_VERSION_CHECK=1 JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 \
		$(CDK) synth --no-notices --no-lookups --quiet --app '$(BIN)/python -m infra.app' --output cdk.out $(ARGS)
	$(BIN)/cfn-lint --ignore-checks W3005 -- cdk.out/*.template.json

bench: install
	$(BIN)/python bench/run.py $(ARGS)

clean:
	rm -rf $(VENV) cdk.out node_modules .pytest_cache .mypy_cache .ruff_cache .pytest-aws-calls
