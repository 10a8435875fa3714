"""Reaching Ray for a batch: the options, joining a cluster or starting Ray on this machine, sizing the pool.

Ray is imported only here and only when a batch runs on it (``pip install "desktop-sr[cluster]"``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOCAL = "local"  # the address that starts a Ray instance on this machine


class ClusterError(RuntimeError):
    """Ray is missing, the cluster cannot be reached, or no worker could start. The message says what to do."""


class RayMissing(ClusterError):
    """Ray is not installed here: a usage problem, fixed with the ``cluster`` extra."""


@dataclass(frozen=True)
class ClusterOptions:
    """How the batch uses the cluster. ``None`` sizes come from the cluster's resources when the batch starts."""

    address: str | None = None  # None or "local": start Ray here, bound to 127.0.0.1; "auto", "ray://host:10001"
    workers: int | None = None  # default: one per GPU (gpus_per_worker each), else 1
    gpus_per_worker: float | None = None  # default: 1 when the cluster has GPUs, else 0
    cpus_per_worker: float = 1.0
    max_attempts: int = 3  # times one photo is sent out before it counts as failed (workers dying under it)
    max_replacements: int | None = None  # dead workers replaced over the batch; default 2 per worker
    start_timeout: float = 900.0  # seconds for the first worker to load its model (a cold node pulls an image)
    cancel_timeout: float = 300.0  # seconds a cancelled worker gets to reach its next tile before it is killed
    local_cpus: int | None = None  # num_cpus of a Ray started here (default: all)
    worker_logs: bool = False  # show the workers' own log lines (Ray's log_to_driver)


def import_ray(local: bool) -> Any:
    """Import Ray; for a local instance first make it bind to 127.0.0.1 only.

    Ray replaces a loopback node address by the machine's routable one (and listens on every interface) unless
    its cluster mode is off, which must be decided before ``ray`` is imported; joining a cluster needs it on."""
    if local:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError as exc:
        raise RayMissing(f'Ray is not installed ({exc}); install it with: pip install "desktop-sr[cluster]"') from exc
    return ray


def cluster_endpoint(address: str | None) -> tuple[str, int] | None:
    """The host and port a Ray address points at: ``auto`` reads the record ``ray start`` leaves on this machine
    (``/tmp/ray/ray_current_cluster``), ``ray://host:port`` is Ray Client, ``host:port`` the GCS. None when it
    cannot be told (Ray then decides)."""
    text = (address or "").strip()
    if text == "auto":
        record = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
        try:
            text = record.read_text(encoding="utf-8").strip()
        except OSError:
            return None
    text = text.removeprefix("ray://")
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def unreachable(address: str | None, timeout: float = 3.0) -> str | None:
    """Why the cluster at ``address`` cannot be reached (nothing listens there: it was stopped, or a typo), or None
    when something answers or the address cannot be told; a plain sentence instead of Ray's minute of retries."""
    if (address or "").strip() == "auto" and cluster_endpoint(address) is None:
        return (
            "no Ray cluster was started on this machine (--ray auto): start one with 'ray start --head', "
            "or use --ray local"
        )
    endpoint = cluster_endpoint(address)
    if endpoint is None:
        return None
    try:
        with socket.create_connection(endpoint, timeout=timeout):
            return None
    except OSError as exc:
        host, port = endpoint
        was = " (the one 'ray start' last recorded here)" if (address or "").strip() == "auto" else ""
        return (f"no Ray cluster answers at {host}:{port}{was}: {exc.strerror or exc}; start it again "
                "(ray start --head), check the address, or use --ray local")  # fmt: skip


@contextlib.contextmanager
def ray_connection(options: ClusterOptions) -> Iterator[Any]:
    """Join the cluster at ``options.address`` or start a local Ray; shut down only what was started here.

    A Ray already initialised in this process (a test's, an application's) is used as it is."""
    local = options.address in (None, LOCAL)
    ray = import_ray(local)
    if ray.is_initialized():
        yield ray
        return
    if not local and (problem := unreachable(options.address)) is not None:
        raise ClusterError(problem)  # said in a second, rather than Ray's traceback after a minute of retries
    try:
        if local:
            # address="local": a new instance even when `ray start` left one (or its record) on this machine
            ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=False,
                     num_cpus=options.local_cpus, log_to_driver=options.worker_logs,
                     logging_level=logging.ERROR)  # fmt: skip
        else:
            # ERROR: Ray's own start-up warnings (token authentication, ...) would land inside the progress bars
            ray.init(address=options.address, log_to_driver=options.worker_logs, logging_level=logging.ERROR)
    except Exception as exc:  # noqa: BLE001 - Ray raises bare Exceptions too (e.g. a node that timed out starting)
        where = "a local Ray instance" if local else f"the Ray cluster at {options.address}"
        hint = " (a heavily loaded machine can make Ray's start-up time out: try again)" if local else ""
        # What a failed local start spawned is fate-shared with this process: it goes when the command exits.
        raise ClusterError(f"cannot start or reach {where}: {exc}{hint}") from exc
    try:
        yield ray
    finally:
        ray.shutdown()


def pool_size(options: ClusterOptions, resources: dict[str, float]) -> tuple[int, float, float, list[str]]:
    """(workers, GPUs per worker, CPUs per worker, notes) for this cluster.

    Defaults: one worker per GPU when there are GPUs, else a single CPU worker (a diffusion model per core would
    only share the same memory bandwidth). A pool larger than the cluster is kept (an autoscaler may add nodes)
    but noted, since the surplus workers wait for resources."""
    gpus_total = float(resources.get("GPU", 0.0))
    cpus_total = float(resources.get("CPU", 0.0))
    gpus = options.gpus_per_worker if options.gpus_per_worker is not None else (1.0 if gpus_total >= 1 else 0.0)
    cpus = options.cpus_per_worker
    if options.workers is not None:
        workers = options.workers
    elif gpus > 0:
        workers = max(1, int(gpus_total // gpus))
    else:
        workers = 1
    notes = []
    if gpus > 0 and workers * gpus > gpus_total:
        notes.append(f"{workers} workers x {gpus:g} GPU need {workers * gpus:g} GPUs; the cluster has {gpus_total:g} "
                     "now, so some workers wait until GPUs free up or nodes join")  # fmt: skip
    if workers * cpus > cpus_total:
        notes.append(f"{workers} workers x {cpus:g} CPU need {workers * cpus:g} CPUs; the cluster has {cpus_total:g} "
                     "now, so some workers wait until CPUs free up or nodes join")  # fmt: skip
    return workers, gpus, cpus, notes
