"""Benchmarks of sparselmm against lme4 and the Python peers (issue 8, "Measure").

Run ``python -m benchmarks --help`` from the repository root; see
``benchmarks/README.md`` for what each column means and the measured tables.
"""
