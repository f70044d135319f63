"""Benchmarks (``shopstream bench``) and the support code they share with the tests and the demo: starting
processes, servers and topics, scraping metrics. Nothing in the worker, the collector or the client imports it."""
