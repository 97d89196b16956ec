"""The test tiers, one folder of tests/ each (see tests/conftest.py)."""

TIERS = ("unit", "jobs", "serve", "clients", "reliability", "cluster", "gpu")
