"""Ray: connecting to a cluster and the per-segment task.

Ray is optional (``pip install "ray[default]"``) and imported only here, only when used. One Ray
task per segment asks for what it needs (``num_cpus``; ``num_gpus=1`` when the engine runs on CUDA),
is retried by Ray when its worker process or node dies (``max_retries``), and runs
:func:`.worker.compute_segment`, which keeps the loaded engine in the worker process for the next task.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, PerVFIError
from .worker import CRASH_ENV, EngineSpec, SegmentTask, compute_segment

logger = logging.getLogger(__name__)

INSTALL = 'pip install "ray[default]"'
# Ray picks a reachable interface address for a cluster's nodes; with this set to 0 it uses the
# loopback address instead: a cluster started for one run on one machine listens on 127.0.0.1 only.
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
DEFAULT_MAX_RETRIES = 3
_PORT = 6379  # Ray's default head port


class DistributedError(PerVFIError):
    """A segment could not be made (its cause says why); finished segments are kept for a re-run."""


def import_ray(*, loopback: bool = False):
    """The ``ray`` module, or InputError with the install command. ``loopback``: a cluster this process
    starts listens on 127.0.0.1 only (must be decided before Ray is first imported)."""
    if loopback:
        os.environ.setdefault(LOOPBACK_ENV, "0")
    try:
        import ray
    except ImportError:
        raise InputError(f"--ray needs Ray, which is not installed here: {INSTALL} (on every machine of the "
                         "cluster too), or run without --ray") from None
    return ray


@dataclass
class Cluster:
    """A connection to a Ray cluster; ``owned``: made by this run, so :meth:`close` ends it (a cluster
    started for the run stops; one joined is only left)."""

    ray: object
    owned: bool
    address: str

    def resources(self) -> dict:
        return dict(self.ray.cluster_resources())

    def close(self) -> None:
        if self.owned and self.ray.is_initialized():
            self.ray.shutdown()


def connect(address: str | None = "auto", *, num_cpus: int | None = None) -> Cluster:
    """Join or start a Ray cluster.

    ``auto``: the cluster in ``$RAY_ADDRESS``, else the one ``ray start`` started on this machine, else
    a new one on this machine for this run (loopback only, ``num_cpus`` CPUs). ``local``: always a new
    one. Anything else is an address (``host:port`` or ``ray://host:port``) that must answer, or an
    InputError says what to check. A process already connected (``ray.init`` done) keeps its cluster.
    """
    address = address or "auto"
    env_address = os.environ.get("RAY_ADDRESS")
    found = address == "auto" and (env_address or _started_here())
    loopback = address == "local" or (address == "auto" and not found)
    ray = import_ray(loopback=loopback)
    target = env_address if address == "auto" and env_address else address
    if not loopback and target != "auto":
        _check_reachable(target)
    if ray.is_initialized():
        return Cluster(ray, owned=False, address="(this process's cluster)")
    main = threading.current_thread() is threading.main_thread()
    sigterm = signal.getsignal(signal.SIGTERM) if main else None
    try:
        if loopback:
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        else:
            ray.init(address="auto" if target == "auto" else target, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError) as err:
        raise InputError(f"cannot connect to the Ray cluster at {target}: {err}. Start it with `ray start --head`, "
                         "check the address, or use --ray local for a cluster on this machine") from None
    finally:
        if main and sigterm is not None:  # ray.init makes SIGTERM a bare exit; the host's clean stop stays
            signal.signal(signal.SIGTERM, sigterm)
    return Cluster(ray, owned=True, address="local (127.0.0.1)" if loopback else target)


def _started_here() -> bool:
    """Whether ``ray start`` left the address of a running cluster on this machine (Ray's own record)."""
    import tempfile

    record = Path(os.environ.get("RAY_TMPDIR", tempfile.gettempdir())) / "ray" / "ray_current_cluster"
    return record.is_file()


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """A TCP connection to the head's port, so a wrong address fails in seconds, not after Ray's retries."""
    rest = address.split("://", 1)[-1]
    host, _, port = rest.rpartition(":")
    if not host:
        host, port = rest, str(_PORT if "://" not in address else 10001)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except (OSError, ValueError) as err:
        raise InputError(f"cannot reach the Ray cluster at {address} ({getattr(err, 'strerror', None) or err}): "
                         f"check the address and port (the head prints it at `ray start --head`; default port "
                         f"{_PORT}), or use --ray local for a cluster on this machine") from None


def resolve_engine(cluster: Cluster, engine: EngineSpec) -> tuple[EngineSpec, int]:
    """The engine as the workers will run it, and the GPUs per task: ``auto`` becomes ``cuda`` when the
    cluster has GPUs (one per task), else ``cpu``; the decision is recorded, so a resume matches it."""
    gpus = cluster.resources().get("GPU", 0)
    device = engine.device
    if device == "auto":
        device = "cuda" if gpus else "cpu"
    if device.startswith("cuda"):
        if not gpus:
            raise InputError(f"--device {engine.device}: the Ray cluster has no GPU; use --device cpu")
        device = "cuda"  # Ray hands each task its own GPU as device 0 (CUDA_VISIBLE_DEVICES)
    return EngineSpec(engine.model, engine.flow, device, engine.dtype, engine.threads), 1 if device == "cuda" else 0


def slots(cluster: Cluster, engine: EngineSpec, gpus_per_task: int) -> int:
    """How many segment tasks the cluster runs at once."""
    res = cluster.resources()
    by_cpu = int(res.get("CPU", 1) // max(engine.threads, 1))
    return max(1, min(by_cpu, int(res.get("GPU", 0))) if gpus_per_task else by_cpu)


def _segment_task(task: SegmentTask, scan):
    return compute_segment(task, scan)


def segment_remote(cluster: Cluster, engine: EngineSpec, gpus_per_task: int, *, max_retries: int = DEFAULT_MAX_RETRIES):
    """The Ray remote function for segments: resources per task, retries on a lost worker, and
    max_calls=0 so a GPU worker is not replaced after each task (it keeps its loaded engine)."""
    ray = cluster.ray
    options = dict(num_cpus=engine.threads, num_gpus=gpus_per_task, max_retries=max_retries, max_calls=0,
                   retry_exceptions=False)
    options["runtime_env"] = {"env_vars": worker_env()}
    return ray.remote(**options)(_segment_task)


def worker_env() -> dict[str, str]:
    """Environment of the segment workers: this package's folder first on their import path (a checkout
    that is not installed works on this machine, and on nodes that mount it at the same path; elsewhere
    the package must be installed), and the tests' fault injection when set."""
    import pervfi_core

    root = str(Path(pervfi_core.__file__).resolve().parents[1])
    env = {"PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    if os.environ.get(CRASH_ENV):
        env[CRASH_ENV] = os.environ[CRASH_ENV]
    return env


def explain_failure(ray, err: BaseException) -> tuple[BaseException, bool]:
    """``(cause, lost)`` of an exception from ``ray.get``: the task's own exception (``lost`` False) or
    Ray's worker/node loss after the retries ran out (``lost`` True)."""
    exc = ray.exceptions
    if isinstance(err, exc.RayTaskError):
        cause = getattr(err, "cause", None)
        return (cause if cause is not None else err), False
    return err, isinstance(err, (exc.WorkerCrashedError, getattr(exc, "NodeDiedError", ()), exc.RayError))
