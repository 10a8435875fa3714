"""``desktop-sr-train CONFIG``: train, resume after a crash, export; errors as one readable line, not a traceback."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .config import Config, ConfigError, load_config, to_toml

DEFAULTS_HEADER = """desktop-sr-train: every setting with its default. The defaults are PiSA-SR's published recipe
(csslc/PiSA-SR train_pisasr.sh, training_utils.py and src/datasets/params.yml); docs/training.md lists what differs.
Save it as a file, set model.base, data.folders and the two loss.lpips_*_weights files; keys left at their
default may be deleted."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="desktop-sr-train",
        description="Train PiSA-SR pixel + semantic LoRA adapters on your own photos and export them for desktop-sr.",
    )
    p.add_argument("config", nargs="?", type=Path, help="TOML config file (see docs/training.md)")
    p.add_argument("--fresh", action="store_true", help="ignore existing checkpoints in the output folder")
    p.add_argument("--device", help="override train.device (auto, cuda, cuda:1, mps, cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to log.jsonl)")
    p.add_argument("--no-export", action="store_true", help="train only; do not write the exported adapters")
    p.add_argument("--export-only", action="store_true", help="export the latest checkpoint without training")
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the full effective config (CONFIG with every default filled in) as TOML and exit",
    )
    p.add_argument(
        "--show-defaults",
        action="store_true",
        help="print every setting with its default (PiSA-SR's published recipe) as TOML and exit",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.show_defaults:
        print(to_toml(Config(), header=DEFAULTS_HEADER))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config) if args.config else Config()
    except ConfigError as exc:
        print(f"desktop-sr-train: {exc}", file=sys.stderr)
        return 2
    if args.device:
        cfg.train.device = args.device
    if args.print_config:
        print(to_toml(cfg))
        return 0
    if args.config is None:
        print("desktop-sr-train: a config file is required (try --show-defaults for a template)", file=sys.stderr)
        return 2

    from desktop_sr.engine.errors import EngineError

    from .data import DataError
    from .loop import Trainer, TrainingError

    try:
        trainer = Trainer(cfg, progress=not args.no_progress)
        if args.export_only:
            if trainer.resume() is None:
                print(f"desktop-sr-train: no checkpoint in {trainer.checkpoint_root}", file=sys.stderr)
                return 1
            paths = trainer.export()
        else:
            paths = trainer.run(fresh=args.fresh, export=not args.no_export)
    except (TrainingError, DataError, EngineError, ValueError) as exc:
        print(f"desktop-sr-train: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("desktop-sr-train: interrupted; run the same command again to resume from the last checkpoint",
              file=sys.stderr)  # fmt: skip
        return 130
    for path in paths:
        print(path)
    return 0
