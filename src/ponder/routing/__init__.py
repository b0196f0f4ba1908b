"""Routing and governance: what a model name means (the catalog of deployments), which
deployment serves a call (routing strategies, retries, cooldowns, fallbacks), and what a
request may reach (policy, evaluated on the resolved deployment at every hop)."""
