"""Freeing a thread's OpenMP workers once it stops decoding.

llama.cpp's CPU backend, when built with OpenMP (llama-cpp-python links libgomp wherever it
is found), runs each ``llama_decode`` as an OpenMP parallel region and separates the graph's
operations with OpenMP barriers. libgomp keeps one pool of worker threads for every thread
that has started a region, for as long as that thread lives. Once the pools together hold
more threads than the machine has CPUs, libgomp spins only briefly at each barrier before
sleeping, and a decode's hundreds of barriers each pay for a wake-up. On this project's
2-core machine that cost a third or more of the decode speed, in every thread, from the
moment a second thread (another model's engine, the raw loop of ``bench/throughput.py``, the
reference path) had decoded once: a single path of the 0.5B model ran at 13 to 14 tokens/s
instead of 22 (``bench/openmp_pools.py``).

A thread that goes idle therefore hands its pool back (``omp_pause_resource_all``, OpenMP
5.0, which libgomp implements by freeing the calling thread's pool); the pool is made again,
in about a tenth of a millisecond, by that thread's next decode. Where llama.cpp was built
without OpenMP, libgomp is not loaded and there is nothing to free.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable

_OMP_PAUSE_SOFT = 1  # omp_pause_soft: free the threads, keep what can be rebuilt


def worker_releaser() -> Callable[[], None] | None:
    """A function that frees the calling thread's OpenMP worker pool, or None where libgomp
    is not loaded in this process. Call it after llama.cpp has been loaded."""
    # RTLD_NOLOAD: only the libgomp llama.cpp already uses, never a second copy.
    no_load = getattr(os, "RTLD_NOLOAD", None)  # absent where there is no dlopen (Windows)
    if no_load is None:
        return None
    try:
        lib = ctypes.CDLL("libgomp.so.1", mode=no_load)
    except OSError:
        return None
    pause = getattr(lib, "omp_pause_resource_all", None)
    if pause is None:  # a libgomp older than OpenMP 5.0
        return None
    pause.argtypes = [ctypes.c_int]
    pause.restype = ctypes.c_int

    def release() -> None:
        # Non-zero only when called from inside a parallel region, which never happens here.
        pause(_OMP_PAUSE_SOFT)

    return release
