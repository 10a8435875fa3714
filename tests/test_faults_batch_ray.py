"""The 200-photo batch with 20 hostile files (``test_faults_batch.py``) on a local Ray cluster (bound to 127.0.0.1,
shut down at the end of the module) with one worker SIGKILLed mid-run: every good photo written, every failure named,
none of them twice. Slow (Ray's start and two workers' model loads): ``-m slow``."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest
from test_faults_batch import GOOD, SIZE, hostile, one_thread, weights  # noqa: F401 - fixtures used by name

from desktop_sr.batch import BatchListener, BatchSettings, make_plan
from desktop_sr.batch.cluster import WORKING, ClusterRunner
from desktop_sr.batch.cluster_setup import ClusterOptions, import_ray
from desktop_sr.batch.cluster_worker import WorkerLoad
from desktop_sr.batch.results import Status
from desktop_sr.engine.api import RenderParams
from desktop_sr.engine.backends.spandrel.family import community_spec

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def ray_local():  # type: ignore[no-untyped-def]
    ray = import_ray(local=True)
    ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=False, num_cpus=2, log_to_driver=False)
    yield ray
    ray.shutdown()


class Hostile(BatchListener):
    """Deletes the photos to be deleted once 100 are done, and SIGKILLs a busy worker once 20 are done."""

    def __init__(self, deleted: list[Path]) -> None:
        self.deleted, self.finished, self.killed = deleted, 0, None

    def file_finished(self, result, progress) -> None:  # type: ignore[no-untyped-def]
        self.finished += 1
        if self.finished == 100:
            for p in self.deleted:
                p.unlink()

    def workers_changed(self, workers) -> None:  # type: ignore[no-untyped-def]
        if self.killed is None and self.finished >= 20:
            busy = [w for w in workers if w.state == WORKING and w.pid]
            if busy:
                self.killed = busy[0].pid
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.killed, signal.SIGKILL)


def test_the_hostile_batch_on_ray_with_a_worker_killed(ray_local, tmp_path, weights):  # noqa: F811
    import numpy as np
    from PIL import Image

    src, out = tmp_path / "shoot", tmp_path / "out"
    src.mkdir()
    for i in range(GOOD):
        pixels = np.random.default_rng(i).integers(0, 255, (SIZE, SIZE + 4, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(src / f"g{i:03d}.jpg", quality=90)
    bad = {f"{kind} #{i}": path for i in range(2) for kind, path in hostile(src, i).items()}
    try:
        listener = Hostile([p for k, p in bad.items() if k.startswith("deleted")])
        plan = make_plan([src], BatchSettings(out, RenderParams(scale=2)))
        load = WorkerLoad(community_spec(weights), device="cpu", threads=1)
        runner = ClusterRunner(plan, load, ClusterOptions(workers=2, start_timeout=300), listener=listener)
        summary = runner.run()
        assert listener.killed is not None, "no worker was killed: the test did not test anything"
        fails = {k for k in bad if k.split(" #")[0] in ("zero bytes", "truncated", "text", "bomb", "deleted")}
        fails |= {k for k in bad if k.startswith("unreadable") and not os.access(bad[k], os.R_OK)}
        assert {p.name for p, _ in summary.failures} == {bad[k].name for k in fails}
        assert all(reason for _, reason in summary.failures)
        written = {r.source.name for r in summary.results if r.status == Status.WRITTEN}
        taken = {bad[k].name for k in bad if k not in fails and not k.startswith("animated")}
        assert written == {f"g{i:03d}.jpg" for i in range(GOOD)} | taken
        assert len(list(out.glob("*.png"))) == len(written) and not list(out.glob(".*.part"))
        print(f"\non Ray, a worker killed: {summary.describe()}")
    finally:
        for p in bad.values():
            if p.exists():
                os.chmod(p, 0o644)
