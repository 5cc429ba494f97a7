.PHONY: install test test-full lint demo clean

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

clean:
	rm -rf outputs multirun lightning_logs .pytest_cache
