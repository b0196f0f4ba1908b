"""The benchmark harness: tasks, runs, reports."""
