"""Backends: the embedded engine, remote endpoints, and the protocol they share."""
