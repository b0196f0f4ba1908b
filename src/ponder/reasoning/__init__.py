"""Reasoning strategies, answer extraction and voting."""
