"""Benchmarks that measure speed and scale (not tests): `make bench`, or `make bench BENCH=name`.

One module per benchmark, each with a `run()` that prints its own report. They run in a
throwaway database (bench.harness), never on real data. Add a new module's name here.
"""

BENCHMARKS = ("api_read", "ledger", "renewals")
