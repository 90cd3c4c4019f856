"""Results a node hands back again when only inputs that cannot change them changed.

ComfyUI's cache key holds every widget value, so a new seed or τ re-runs a node even when its engine
is deterministic and ignores both. Each node keeps its last result here with a key made of what does
decide its output (:func:`sampling_key` drops τ, the seed and the noise mode for a deterministic
engine) and of the upstream objects it read (the frames, the models), compared by identity: ComfyUI
hands the same objects again while their own nodes are cached. Nothing is kept alive here: the
upstream objects and the result's tensors are held by weak reference, so once ComfyUI's cache drops
them the entry simply misses.
"""
from __future__ import annotations

import logging
import threading
import weakref

log = logging.getLogger(__name__)

_last: dict = {}
_lock = threading.Lock()


def sampling_key(engine, tau, seed, noise) -> tuple:
    """What of (τ, seed, noise) decides the frames of ``engine``: all three for a stochastic engine,
    nothing for a deterministic one (they are ignored there)."""
    return (float(tau), int(seed), str(noise)) if getattr(engine, "stochastic", True) else ()


def _ref(obj):
    try:
        return weakref.ref(obj)
    except TypeError:  # plain values (floats, strings) are kept as they are
        return lambda obj=obj: obj


def lookup(node, key, upstream: tuple):
    """The result stored for ``node`` when ``key`` and the identities of ``upstream`` match, else None."""
    with _lock:
        entry = _last.get(node)
    if entry is None or entry[0] != key:
        return None
    ups = [r() for r in entry[1]]
    if len(ups) != len(upstream) or any(a is not b for a, b in zip(ups, upstream)):
        return None
    values = [r() for r in entry[2]]
    if any(v is None for v in values):
        return None
    log.info("PerVFI: node %s reused its last result (only inputs its engine ignores changed)", node)
    return tuple(values)


def store(node, key, upstream: tuple, result: tuple) -> tuple:
    """Remember ``result`` of ``node`` for :func:`lookup`; returns ``result``."""
    if any(u is None for u in upstream):
        return result
    with _lock:
        _last[node] = (key, [_ref(u) for u in upstream], [_ref(v) for v in result])
    return result


def forget(node=None) -> None:
    """Drop the entry of ``node`` (all entries when None)."""
    with _lock:
        if node is None:
            _last.clear()
        else:
            _last.pop(node, None)
