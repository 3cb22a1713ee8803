"""Benchmark harness for asgi_worker (see benchmarks/README.md)."""
