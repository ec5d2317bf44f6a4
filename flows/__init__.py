"""Prefect flows: recipes that compose the tasks in ``tasks/``."""
