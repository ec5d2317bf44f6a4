"""Prefect tasks: each wraps one core call and owns retries, caching and logging."""
