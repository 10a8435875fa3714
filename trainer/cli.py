"""``desktop-sr-train CONFIG``: train, resume after a crash, export; errors as one readable line, not a traceback."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .config import Config, ConfigError, load_config, to_toml


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
    p.add_argument("--print-config", action="store_true", help="print the full config with defaults and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
        print("desktop-sr-train: a config file is required (try --print-config for a template)", file=sys.stderr)
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
