.PHONY: install test test-full lint demo table1 quality baselines hallmark clean

GEMDIFF_DATA_DIR ?= ../shared/data
export GEMDIFF_DATA_DIR

install:
	pip install torch==2.13.0 -e ".[dev]"

test:
	python -m pytest

test-full:
	python -m pytest -m "slow or not slow"

lint:
	ruff check src tests experiments benchmarks

demo:
	python -m gemdiff.train

table1:
	python experiments/table1/run.py

quality:
	python experiments/quality/run.py breast
	python experiments/quality/run.py drivers

baselines:
	python experiments/baselines/run.py

hallmark:
	python experiments/hallmark_kidney/run.py

clean:
	rm -rf outputs multirun lightning_logs .pytest_cache .hypothesis
