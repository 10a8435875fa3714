"""``desktop-sr models list|import|verify|remove|default|download|get-pisa``: the model manager without the GUI.

Exit codes: 0 success; 1 the operation failed (a verify found changed files, a download failed, get-pisa still
misses a part: what to do is printed); 2 bad usage (unknown model id, malformed checksum); 3 the model files are not
a usable model (wrong folder layout, unreadable adapter or weights); 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..engine.control import Control
from ..engine.errors import ModelError
from ..engine.families import families, family, family_for
from ..exit_codes import ExitCode
from ..models.errors import DownloadError, OperationCancelled, StoreError, UnknownModel
from ..models.files import human_size
from ..models.paths import ENV_MODELS_DIR
from ..models.registry import BUILTIN_ID, ModelStore, bundled_available
from .help_text import plain


def add_models_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list, import, verify, remove and download models; choose the default",
        description=plain(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--dir", type=Path, metavar="DIR",
        help=f"models folder (default: ${ENV_MODELS_DIR}, else the app's setting, else the user data folder)",
    )  # fmt: skip
    p.set_defaults(func=lambda args: _no_action(p))
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")

    q = _action(msub, "list", "the models, their size, location and status (no hashing: instant)")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=cmd_list)

    q = _action(msub, "import", "add a model: an upscaler file (.pth, .pt, .ckpt, .safetensors; its architecture is "
                "detected), or a PiSA-SR model (an SD-2.1-base folder plus an adapter file)")  # fmt: skip
    q.add_argument("files", type=Path, nargs="+", metavar="FILE",
                   help="UPSCALER_FILE, or SD21_FOLDER ADAPTER (official .pkl, or .safetensors + .json)")  # fmt: skip
    q.add_argument("--kind", metavar="KIND", help="the model family, when the files alone do not say (see --help)")
    q.add_argument("--name", default="", help="display name (default: the file's name)")
    q.add_argument("--reference", action="store_true",
                   help="use the files where they are instead of copying them (they must stay there)")  # fmt: skip
    q.add_argument("--reference-base", action="store_true",
                   help="reference the base folder, copy the adapter (SD-2.1 is 5 GB; adapters are small)")  # fmt: skip
    q.add_argument("--default", action="store_true", help="make it the default model")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_import)

    q = _action(msub, "verify", "re-hash files and compare with the sha256 recorded at import")
    q.add_argument("ids", nargs="*", metavar="ID", help="models to check (default: all)")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_verify)

    q = _action(msub, "remove", "unregister a model; deletes copied files, never referenced originals")
    q.add_argument("id", metavar="ID")
    q.set_defaults(func=cmd_remove)

    q = _action(msub, "default", "show or set the default model (used when no --model is given)")
    q.add_argument("id", nargs="?", metavar="ID", help=f"model id or name, or {BUILTIN_ID!r}")
    q.add_argument("--clear", action="store_true", help="no default: the app falls back to the bundled model")
    q.set_defaults(func=cmd_default)

    from ..models.download import BASE_REPO

    q = _action(msub, "download", "download SD-2.1-base from the Hub and the adapter from a URL, then import")
    q.add_argument("--adapter-url", required=True, metavar="URL", help="address of the .pkl or .safetensors adapter")
    q.add_argument("--sha256", metavar="HEX", help="expected sha256 of the adapter file (strongly recommended)")
    q.add_argument("--adapter-name", default="", metavar="FILE", help="file name, if the URL does not end in one")
    q.add_argument(
        "--repo", default=BASE_REPO, metavar="REPO_ID", help=f"Hub repository of the base (default {BASE_REPO})"
    )
    q.add_argument("--revision", metavar="REV", help="branch, tag or commit of the base repository")
    q.add_argument("--base", type=Path, metavar="SD21_FOLDER", help="use this local base instead of downloading it")
    q.add_argument("--reference-base", action="store_true", help="with --base: reference it instead of copying it")
    q.add_argument("--name", default="", help="display name (default: the adapter's file name)")
    q.add_argument("--default", action="store_true", help="make it the default model")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_download)

    q = _action(msub, "get", "download a model its authors publish (face models: GFPGAN, RestoreFormer, CodeFormer) "
                "after showing its licence; without KEY: list them")  # fmt: skip
    q.add_argument("key", nargs="?", metavar="KEY", help="the published model (see the list)")
    q.add_argument("--accept-licence", action="store_true",
                   help="accept a non-commercial licence (required for those: it is shown first)")  # fmt: skip
    q.add_argument("--url", metavar="URL", help="download from this address instead (a mirror of the same file)")
    q.add_argument("--name", default="", help="display name (default: the model's name)")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_get)

    q = _action(msub, "get-pisa", "get PiSA-SR: download SD-2.1-base, show where the adapter is published, import it")
    q.add_argument("--adapter", type=Path, metavar="FILE", help="the pisa_sr.pkl you saved from the authors' page")
    q.add_argument("--base", type=Path, metavar="SD21_FOLDER", help="an SD-2.1-base folder you have (no download)")
    q.add_argument("--offline", action="store_true", help="do not contact the Hub; say what to copy where")
    q.add_argument("--name", default="PiSA-SR", help="display name (default PiSA-SR)")
    q.add_argument("--default", action="store_true", help="make it the default model")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_get_pisa)


def _action(sub: argparse._SubParsersAction, name: str, text: str) -> argparse.ArgumentParser:
    """An action whose one-line summary is also its --help description (so no action's help is bare)."""
    return sub.add_parser(name, help=text, description=text[:1].upper() + text[1:] + ".")


def _no_action(parser: argparse.ArgumentParser) -> int:
    parser.print_usage(sys.stderr)
    _err("choose an action: list, import, verify, remove, default, download or get-pisa")
    return ExitCode.USAGE


def _err(message: str) -> None:
    print(f"desktop-sr models: {message}", file=sys.stderr)


def _store(args: argparse.Namespace) -> ModelStore:
    return ModelStore(args.dir)


def _code(exc: ModelError) -> int:
    """Exit code for an error: usage mistakes, unusable model files, or a failed operation."""
    if isinstance(exc, UnknownModel):
        return ExitCode.USAGE
    if isinstance(exc, OperationCancelled | DownloadError | StoreError):
        return ExitCode.FAILED
    return ExitCode.MODEL


@contextmanager
def _bar(enabled: bool, desc: str) -> Iterator[Control]:
    """A byte progress bar on stderr fed by the store's ``report(done, total, label)`` calls."""
    from tqdm import tqdm

    # delay: a bar appears only for work that lasts (a verify or an offline answer never shows "0.00B [00:00, ?B/s]")
    bar = tqdm(total=0, desc=desc, unit="B", unit_scale=True, disable=not enabled, file=sys.stderr, leave=False,
               delay=1.0)  # fmt: skip

    def progress(done: int, total: int, label: str) -> None:
        if total and bar.total != total:
            bar.reset(total=total)
        bar.set_postfix_str(label[-50:], refresh=False)
        bar.update(done - bar.n)

    try:
        yield Control(progress)
    finally:
        bar.close()


def _guard(run: Callable[[], int], interrupted: str) -> int:
    """Run a command; errors become one line on stderr and an exit code, Ctrl-C a plain message."""
    try:
        return run()
    except KeyboardInterrupt:
        _err(interrupted)
        return ExitCode.INTERRUPTED
    except ModelError as exc:
        _err(str(exc))
        return _code(exc)


def cmd_list(args: argparse.Namespace) -> int:
    def run() -> int:
        store = _store(args)
        if store.root.is_dir():
            store.cleanup()  # stale staging folders of imports killed earlier
        rows = store.rows()
        if args.json:
            print(json.dumps({"models_dir": str(store.root), "models": [r.__dict__ for r in rows]}, indent=2))
            return ExitCode.OK
        print(f"models folder: {store.root}")
        if not rows:
            print("no models (import one with 'desktop-sr models import FILE')")
            return ExitCode.OK
        width = max(len("ID"), *(len(r.id) for r in rows))
        print(f"  {'ID':<{width}}  {'STATUS':<10} {'SIZE':>9}  {'KIND':<9} NAME (the name the app shows)")
        for r in rows:
            mark = "*" if r.is_default else " "
            print(f"{mark} {r.id:<{width}}  {r.status:<10} {human_size(r.size):>9}  {r.kind:<9} {r.name}")
            if r.about:
                print(f"  {'':<{width}}  {r.about}")
            print(f"  {'':<{width}}  {r.location} ({r.storage})")
            if r.detail and r.status not in ("ok", "built-in"):
                print(f"  {'':<{width}}  {r.detail}")
        print("(* = the model the app uses by default)")
        return ExitCode.OK

    return _guard(run, "interrupted")


def cmd_import(args: argparse.Namespace) -> int:
    def run() -> int:
        store = _store(args)
        paths = [Path(p).expanduser() for p in args.files]
        fam = family(args.kind) if args.kind else family_for(paths)
        roles = None if fam is None else fam.take(paths) if args.kind else fam.claims(paths)
        if fam is None or roles is None:
            kinds = "; ".join(f"{f.kind}: {', '.join(r.label for r in f.roles)}" for f in families() if f.roles)
            raise ModelError(paths[0], f"not a model this app can import (it takes {kinds})")
        # --reference: every role where it is; --reference-base: a folder role (SD-2.1, 5 GB) referenced, files copied
        mode = {r.key: "reference" if args.reference or (args.reference_base and r.folder) else "copy"
                for r in fam.roles}  # fmt: skip
        with _bar(not args.quiet, "import") as control:
            entry = store.import_model(fam.kind, roles, name=args.name, mode=mode, make_default=args.default,
                                       control=control)  # fmt: skip
        how = entry.storage_label
        print(f"imported {entry.id} ({entry.name}): {len(entry.files)} files, {human_size(entry.size)}, {how}")
        if entry.details:
            print("  " + ", ".join(f"{k} {v}" for k, v in entry.details.items()))
        print(f"  location: {store.location(entry)}")
        if args.default:
            print(f"  {entry.id} is now the default model")
        return ExitCode.OK

    return _guard(run, "interrupted: nothing was imported")


def cmd_verify(args: argparse.Namespace) -> int:
    def run() -> int:
        store = _store(args)
        builtin = [BUILTIN_ID] if bundled_available(store.root) else []
        ids = args.ids or [*builtin, *(e.id for e in store.entries())]
        if not ids:
            print("no models to verify")
            return ExitCode.OK
        worst = ExitCode.OK
        for key in ids:
            try:
                with _bar(not args.quiet, f"verify {key}") as control:
                    report = store.verify(key, control=control)
            except UnknownModel as exc:
                _err(str(exc))
                worst = max(worst, ExitCode.USAGE)
                continue
            print(report.summary(), file=sys.stdout if report.ok else sys.stderr)
            if not report.ok:
                worst = max(worst, ExitCode.FAILED)
        return worst

    return _guard(run, "interrupted")


def cmd_remove(args: argparse.Namespace) -> int:
    def run() -> int:
        result = _store(args).remove(args.id)
        if result.deleted is not None:
            print(f"removed {result.id}: deleted {result.deleted} ({human_size(result.freed)})")
        else:
            print(f"removed {result.id} from the list")
        for path in result.kept:
            print(f"  left untouched (referenced, not copied): {path}")
        return ExitCode.OK

    return _guard(run, "interrupted")


def cmd_default(args: argparse.Namespace) -> int:
    def run() -> int:
        store = _store(args)
        if args.clear:
            store.set_default(None)
            print("no default model: the app uses the bundled model")
            return ExitCode.OK
        if args.id is None:
            current = store.default_id()
            print(current if current else "no default model set (the app uses the bundled model)")
            return ExitCode.OK
        ident = store.set_default(args.id)
        print(f"default model: {ident}")
        return ExitCode.OK

    return _guard(run, "interrupted")


def cmd_download(args: argparse.Namespace) -> int:
    from ..models.download import download_model, normalise_sha256

    def run() -> int:
        store = _store(args)
        if args.reference_base and args.base is None:
            _err("--reference-base needs --base")
            return ExitCode.USAGE
        if not args.sha256:
            print("warning: no --sha256 given; the adapter file cannot be checked", file=sys.stderr)
        with _bar(not args.quiet, "download") as control:
            entry = download_model(
                store, args.adapter_url, adapter_sha256=args.sha256, adapter_name=args.adapter_name,
                repo_id=args.repo, revision=args.revision, base_dir=args.base,
                base_mode="reference" if args.reference_base else "copy", name=args.name,
                make_default=args.default, control=control,
            )  # fmt: skip
        print(f"downloaded and imported {entry.id} ({entry.name}): {human_size(entry.size)} in {store.location(entry)}")
        if args.default:
            print(f"  {entry.id} is now the default model")
        return ExitCode.OK

    try:
        normalise_sha256(args.sha256)
    except DownloadError as exc:
        _err(str(exc))
        return ExitCode.USAGE
    return _guard(run, "interrupted: run the same command again to resume the download")


def cmd_get(args: argparse.Namespace) -> int:
    from ..models.published import LicenceNotAccepted, download_published, find, licence_text, published

    if not args.key:
        for fam, pub in published():
            terms = "non-commercial" if pub.non_commercial else "commercial use allowed"
            print(f"{pub.key:14s} {pub.name} ({fam.label.split(' (')[0].lower()}; {terms})\n  {pub.licence}")
        return ExitCode.OK

    def run() -> int:
        store = _store(args)
        _fam, pub = find(args.key)
        print(f"licence: {licence_text(pub)}", file=sys.stderr)
        try:
            with _bar(not args.quiet, "download") as control:
                entry = download_published(store, args.key, accept_licence=args.accept_licence, url=args.url,
                                           name=args.name, control=control)  # fmt: skip
        except LicenceNotAccepted:
            _err(f"{pub.name} is for non-commercial use only: run again with --accept-licence to download it")
            return ExitCode.USAGE
        print(f"downloaded and imported {entry.id} ({entry.name}): {human_size(entry.size)} in {store.location(entry)}")
        return ExitCode.OK

    return _guard(run, "interrupted: run the same command again to resume the download")


def cmd_get_pisa(args: argparse.Namespace) -> int:
    """Exit 0 imported; 1 a part is still missing (what to do is printed); 3 the adapter or base is unusable."""
    from ..models.download import download_base
    from ..models.get_pisa import BASE_URL, adapter_hint, import_model, offline, offline_instructions, staging

    def run() -> int:
        store = _store(args)
        stage = staging(store.root)
        base = args.base or (stage.base if stage.has_base() else None)
        adapter = args.adapter or (stage.adapter if stage.has_adapter() else None)
        if adapter is not None and not adapter.is_file():
            _err(f"{adapter}: file not found")
            return ExitCode.USAGE
        if base is None:
            if args.offline or offline():
                print(offline_instructions(stage, adapter=adapter), file=sys.stderr)
                return ExitCode.FAILED
            print(f"downloading Stable Diffusion 2.1-base from {BASE_URL}\n  to {stage.base} "
                  "(about 5 GB; resumable: run the same command again after an interruption)")  # fmt: skip
            try:
                with _bar(not args.quiet, "SD-2.1-base") as progress:
                    base = download_base(stage.base, control=progress)
            except DownloadError as exc:
                _err(str(exc))
                print(offline_instructions(stage, adapter=adapter), file=sys.stderr)
                return ExitCode.FAILED
        if adapter is None:
            print(f"SD-2.1-base is ready: {base}")
            print(adapter_hint(stage))
            return ExitCode.FAILED
        with _bar(not args.quiet, "import") as progress:
            done = import_model(store, base, adapter, name=args.name, make_default=args.default, control=progress)
        entry, sha = done.entry, done.adapter_sha256
        print(f"imported {entry.id} ({entry.name}): {human_size(entry.size)} in {store.location(entry)}")
        print(f"  adapter {adapter.name} sha256 {sha}")
        if args.default:
            print(f"  {entry.id} is now the default model")
        return ExitCode.OK

    return _guard(run, "interrupted: run the same command again to go on")
