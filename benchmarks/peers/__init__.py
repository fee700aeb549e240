"""Adapters that run other notebook-pipeline tools on the benchmark's notebooks."""
