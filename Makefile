# envforge: the two commands are `make demo` and `make test`; both install what they need.
SHELL := /bin/bash
VENV := .venv/bin

.PHONY: install demo test test-fast lint stop bench clean

install:  ## Debian packages (once) and the .venv with envforge
	bash scripts/bootstrap.sh

demo: install  ## the main job on embedded defaults (Prefect server, worker, local GitOps repo)
	bash scripts/demo.sh

test: install lint  ## lint, then the whole suite in parallel workers (ENVFORGE_TEST_WORKERS, default 3): unit, integration (real Kubernetes, Git, Prefect, PostgreSQL, buildah)
	bash scripts/run-tests.sh

test-fast: install lint  ## lint, then everything but the tests marked slow
	bash scripts/run-tests.sh -m "not slow"

lint: install  ## ruff, strict mypy (envforge, flows, blocks, bench) and the import contracts
	$(VENV)/ruff check envforge flows blocks tests bench
	$(VENV)/mypy
	$(VENV)/lint-imports --no-cache

stop:  ## stop everything `make demo` started (Prefect server and worker, services, Argo CD, OpenBao)
	bash scripts/prefect-local.sh stop
	bash scripts/demo-services.sh stop

bench: install  ## every benchmark with the arguments its figures in docs/benchmarks.md came from
	$(VENV)/python bench/gitops.py --reps 25 --write-docs
	$(VENV)/python bench/image_build.py --runs 5 --write
	$(VENV)/python bench/secrets_redaction.py --reps 5 --records 20000 --write-docs
	$(VENV)/python bench/cluster.py --pods 200 --reps 15
	$(VENV)/python bench/webhooks.py --reps 50 --write-docs
	$(VENV)/python bench/db_clone.py --scale 1 --reps 5 --memory-scale 0.33 --write-docs

clean: stop
	rm -rf .envforge
