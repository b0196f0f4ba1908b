"""Fuzzing the live server: schemathesis against its own OpenAPI document
(``test_openapi.py``) and Hypothesis-built hostile chat requests aimed at Ponder's own
extensions (``test_extensions.py``), both through :mod:`tests.fuzz.harness`. The suite runs a
short fixed-seed pass; ``bench/fuzz.py`` runs the long one."""
