"""Batch throughput: photos per minute for a local batch and for `batch --ray` with 1 and 2 workers, same run.

Each configuration processes the same folder of photos into its own output folder with the same settings: a local
batch with torch's default threads (the baseline), a local batch with 1 thread (what one Ray worker holding 1 CPU
runs with), then Ray. For each it prints the wall time (model loading included), the model-load time (for Ray: until
the first worker is ready), photos/min over the wall time and photos/min once the model is loaded (steady), and the
steady rate as a ratio of the baseline's. A local Ray instance (bound to 127.0.0.1) is started for the Ray rows
and shut down at the end.

    python bench/batch_throughput.py                         # bundled Real-ESRGAN x4, 8 photos of 64 px
    python bench/batch_throughput.py --model tiny --photos 40 # tiny random PiSA-SR: per-photo overheads show
    python bench/batch_throughput.py --workers 1 2 4 --cpus-per-worker 2

Needs the cluster extra (pip install "desktop-sr[cluster]"). On a machine with few cores the Ray rows share the
same cores as each other, so N workers cannot beat 1 worker by more than the cores they add; see docs/cluster.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from desktop_sr.batch import BatchRunner, BatchSettings, BatchSummary, make_plan
from desktop_sr.batch.cluster import ClusterRunner
from desktop_sr.batch.cluster_setup import ClusterOptions, ray_connection
from desktop_sr.batch.cluster_worker import WorkerLoad
from desktop_sr.engine.api import RenderParams
from desktop_sr.engine.backends.bundled import bundled_spec
from desktop_sr.engine.backends.pisa import pisa_spec
from desktop_sr.engine.loader import ModelSpec, open_session


def make_photos(folder: Path, count: int, size: int) -> None:
    """Smooth random photos (low-frequency noise plus grain) as JPEGs, like small scans."""
    folder.mkdir(parents=True)
    for i in range(count):
        rng = np.random.default_rng(i)
        small = rng.random((size // 8 + 1, size // 8 + 1, 3))
        img = Image.fromarray((small * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC)
        arr = np.clip(np.asarray(img, np.float32) + rng.normal(0, 6, (size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(folder / f"photo{i:03d}.jpg", quality=92)


def tiny_spec(root: Path) -> ModelSpec:
    from desktop_sr.engine.backends.pisa.model import load_unet
    from desktop_sr.engine.backends.pisa.synthetic import build_random_sd, random_lora, write_official_pkl

    base = build_random_sd(root / "tiny_sd")
    pkl = write_official_pkl(random_lora(load_unet(base), seed=1), root / "tiny_lora.pkl")
    return pisa_spec(base, pkl)


def rates(summary: BatchSummary) -> tuple[float, float]:
    written = summary.count("written")
    wall = written * 60 / summary.seconds if summary.seconds else 0.0
    busy = summary.seconds - summary.load_seconds
    return wall, (written * 60 / busy if busy > 0 else 0.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("bundled", "tiny"), default="bundled")
    ap.add_argument("--photos", type=int, default=8)
    ap.add_argument("--size", type=int, default=64, help="photo side in pixels (default 64)")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--cpus-per-worker", type=float, default=1.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--local-threads", type=int, nargs="*", default=[1],
                    help="torch threads of extra local rows (the first local row uses torch's default)")  # fmt: skip
    args = ap.parse_args()

    import torch

    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        root = Path(tmp)
        make_photos(root / "in", args.photos, args.size)
        spec = bundled_spec() if args.model == "bundled" else tiny_spec(root)
        params = RenderParams(scale=args.scale)
        print(f"{args.photos} photos of {args.size} px, x{args.scale}, model {spec.name}, device {args.device}, "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", file=sys.stderr)  # fmt: skip
        rows: list[tuple[str, int, int, BatchSummary]] = []

        default_threads = torch.get_num_threads()
        for threads in dict.fromkeys([default_threads, *args.local_threads]):
            torch.set_num_threads(threads)
            settings = BatchSettings(root / f"out-local{threads}", params)
            summary = BatchRunner(make_plan([root / "in"], settings),
                                  lambda: open_session(spec, device=args.device)).run()  # fmt: skip
            label = f"local {threads} thr"
            rows.append((label, 1, threads, summary))
            print(f"{label}: {summary.describe()}", file=sys.stderr)
        torch.set_num_threads(default_threads)

        with ray_connection(ClusterOptions(address=None)):
            for n in args.workers:
                settings = BatchSettings(root / f"out-ray{n}", params)
                options = ClusterOptions(workers=n, cpus_per_worker=args.cpus_per_worker, gpus_per_worker=0)
                load = WorkerLoad(spec, device=args.device)
                summary = ClusterRunner(make_plan([root / "in"], settings), load, options).run()
                label = f"ray {n} worker{'s' if n > 1 else ''}"
                rows.append((label, n, max(1, int(args.cpus_per_worker)), summary))
                print(f"{label}: {summary.describe()}", file=sys.stderr)

        base = rates(rows[0][3])[1]  # the local batch as a user runs it (torch's default threads)
        print(f"\n{'configuration':<16}{'workers':>8}{'threads/w':>10}{'load s':>8}{'wall s':>8}"
              f"{'photos/min':>12}{'steady/min':>12}{'vs local':>10}")  # fmt: skip
        for label, n, threads, s in rows:
            wall, steady = rates(s)
            ratio = steady / base if base else float("nan")
            print(f"{label:<16}{n:>8}{threads:>10}{s.load_seconds:>8.1f}{s.seconds:>8.1f}{wall:>12.1f}{steady:>12.1f}"
                  f"{ratio:>10.2f}")  # fmt: skip
        print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
