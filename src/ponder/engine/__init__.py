"""The embedded llama.cpp engine: model registry, batched sampler."""
