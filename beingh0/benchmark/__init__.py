"""Benchmarks behind ``beingh0 bench <op>`` and ``bench/`` (records: ENGINEERING.md section 5)."""
