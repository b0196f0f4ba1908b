"""Fuzzing the live server (:mod:`tests.fuzz.server`): schemathesis against its own OpenAPI
document (:mod:`tests.fuzz.openapi_fuzzer`, run by ``test_openapi.py``) and Hypothesis-built
hostile chat requests aimed at Ponder's own extensions (:mod:`tests.fuzz.chat_fields` and
:mod:`tests.fuzz.chat_requests` build them, :mod:`tests.fuzz.chat_fuzzer` sends them, run by
``test_extensions.py``). Both keep a census of what they found (:mod:`tests.fuzz.findings`)
and shrink each server-side problem to a minimal reproduction (:mod:`tests.fuzz.census`).
The suite runs a short fixed-seed pass; ``bench/fuzz.py`` runs the long one."""
