# The two commands of the README. Both create and fill .venv when it is missing.
VENV ?= .venv
PY = $(VENV)/bin/python

.PHONY: demo test lint bench setup examples

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

examples: setup  ## every example's audit (heart disease, German credit, Adult, spam) → examples/*/output/report/
	@for ex in heart_disease german_credit adult_income spam; do \
	  $(VENV)/bin/auditkit run examples/$$ex/audit.yaml --out examples/$$ex/output/report --quiet; \
	  status=$$?; echo "examples/$$ex: exit $$status (0 pass, 1 a rule failed)"; [ $$status -le 1 ] || exit $$status; \
	done
