"""Prefect flows and the ``ehl`` command line: orchestration only; the logic lives in the libraries."""

from flows.offline import apply_offline_defaults

apply_offline_defaults()
