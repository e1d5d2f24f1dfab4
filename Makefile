# The two commands of the README. Both create and fill .venv when it is missing.
VENV ?= .venv
PY = $(VENV)/bin/python

.PHONY: demo test lint bench setup

setup:
	@VENV=$(VENV) ./scripts/bootstrap.sh

demo: setup   ## the main job: influence explanations of misclassified heart-disease patients
	$(PY) examples/heart_disease/explain.py

test: setup   ## the test suite
	$(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check .

bench: setup  ## accuracy of every method against actual retraining (writes benchmarks/results/)
	$(PY) benchmarks/loo_accuracy.py
