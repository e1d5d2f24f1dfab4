# The two commands of the README. Both create and fill .venv when it is missing.
VENV ?= .venv
PY = $(VENV)/bin/python

.PHONY: demo test lint bench setup

setup:
	@VENV=$(VENV) ./scripts/bootstrap.sh

demo: setup   ## the main job: audit of the heart-disease model → examples/heart_disease/output/report/report.pdf
	$(VENV)/bin/auditkit run examples/heart_disease/audit.yaml --out examples/heart_disease/output/report; \
	  status=$$?; [ $$status -le 1 ] || exit $$status   # 1 = a policy rule failed: the report is still the product

test: setup   ## the test suite
	$(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check .

bench: setup  ## accuracy of every method against actual retraining (writes benchmarks/results/)
	$(PY) benchmarks/loo_accuracy.py
