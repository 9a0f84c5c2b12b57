"""pytest-benchmark set-up: ``pytest bench`` runs each benchmark once, as a test; timing needs
``--benchmark-enable`` (README). Kept out of pyproject's addopts so that pytest starts where the
plugin is not installed."""
import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    if hasattr(config.option, "benchmark_disable"):  # pytest-benchmark is installed
        config.option.benchmark_disable = True
