"""Batch planning without a model: templates, source discovery, collision policies and the resume journal."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from desktop_sr.batch import BatchSettings, Manifest, ManifestError, TemplateError, make_plan, parse_template
from desktop_sr.batch.manifest import MANIFEST_NAME, State
from desktop_sr.batch.naming import NameValues
from desktop_sr.batch.plan import ON_CONFLICT, Action, OnConflict, PlanError
from desktop_sr.batch.results import Status
from desktop_sr.engine.api import RenderParams


def photo(path: Path, size: tuple[int, int] = (8, 8), value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)
    return path


def settings(out: Path, **kw) -> BatchSettings:
    kw.setdefault("params", RenderParams(scale=2))
    return BatchSettings(output_dir=out, date=dt.date(2024, 5, 6), **kw)


# -- templates ---------------------------------------------------------------------------------------------------


def test_every_field_fills_in():
    t = parse_template("{stem}-{ext}-x{scale}-p{pix}-s{sem}-r{realism}-{model}-{date}-{date:%Y%m%d}")
    values = NameValues.for_source("IMG_1", ".JPG", RenderParams(pix=0.8, sem=1.25, realism=250, scale=3), "pisa",
                                   dt.date(2024, 5, 6))  # fmt: skip
    assert t.render(values) == "IMG_1-jpg-x3-p0.8-s1.25-r250-pisa-2024-05-06-20240506"


@pytest.mark.parametrize(
    ("template", "says"),
    [
        ("{stem}_{width}", "unknown field {width}"),  # ({size} is a field: the target size)
        ("{stem}/{scale}", "path separator"),
        ("out\\{stem}", "path separator"),
        ("{stem}:{scale}", "':'"),
        ("{}", "empty {} field"),
        ("{stem", "unbalanced braces"),
        ("{stem!r}", "conversion"),
        ("{scale:%Y}", "format spec"),
        ("   ", "is empty"),
        ("", "is empty"),
        ("{stem.upper}", "unknown field"),
    ],
)
def test_bad_templates_are_refused_with_a_reason(template, says):
    with pytest.raises(TemplateError) as info:
        parse_template(template)
    assert says in str(info.value)


def test_a_template_that_renders_empty_is_refused_up_front():
    with pytest.raises(TemplateError, match="empty file name"):
        parse_template("{stem:.0}")


def test_field_values_cannot_smuggle_separators():
    t = parse_template("{model}_{stem}")
    values = NameValues.for_source("a", "png", RenderParams(), "team/v2:final", dt.date(2024, 1, 1))
    assert t.render(values) == "team_v2_final_a"


def test_invalid_template_fails_make_plan_before_scanning(tmp_path, monkeypatch):
    import desktop_sr.batch.plan as plan_mod

    def scan(*a, **k):
        raise AssertionError("scanned the folder despite a bad template")

    monkeypatch.setattr(plan_mod, "find_sources", scan)
    with pytest.raises(TemplateError, match="unknown field"):
        make_plan([tmp_path], settings(tmp_path / "out", template="{stme}"))
    assert not (tmp_path / "out").exists()


def test_bad_policy_and_output_file_are_plan_errors(tmp_path):
    with pytest.raises(PlanError, match="collision policy"):
        make_plan([tmp_path], settings(tmp_path / "out", on_conflict="merge"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(PlanError, match="is a file"):
        make_plan([tmp_path], settings(tmp_path / "file"))


# -- sources -----------------------------------------------------------------------------------------------------


def test_folders_mirror_their_tree_and_skip_hidden_system_and_non_images(tmp_path):
    src = tmp_path / "shoot"
    photo(src / "b.jpg")
    photo(src / "A.png")
    photo(src / "day1" / "c.tif")
    photo(src / "day1" / "deep" / "d.webp")
    photo(src / ".hidden.jpg")
    photo(src / ".cache" / "e.jpg")
    photo(src / "@eaDir" / "f.jpg")
    photo(src / "__MACOSX" / "g.jpg")
    (src / "Thumbs.db").write_bytes(b"x")
    (src / "notes.txt").write_text("not a photo")
    (src / "day1" / "clip.mov").write_bytes(b"x")  # (camera RAW files are photos now: test_imaging_raw.py)
    out = tmp_path / "out"
    plan = make_plan([src], settings(out, recursive=True))
    got = [(i.source.relative_to(src).as_posix(), i.target.relative_to(out).as_posix()) for i in plan.items]
    assert got == [
        ("A.png", "A_x2.png"),
        ("b.jpg", "b_x2.png"),
        ("day1/c.tif", "day1/c_x2.png"),
        ("day1/deep/d.webp", "day1/deep/d_x2.png"),
    ]
    assert plan.ignored >= 7 and not plan.refused
    flat = make_plan([src], settings(out, recursive=False))
    assert [i.source.name for i in flat.items] == ["A.png", "b.jpg"]


def test_output_folder_inside_the_input_is_never_scanned(tmp_path):
    photo(tmp_path / "a.jpg")
    photo(tmp_path / "upscaled" / "a_x2.png")  # results of an earlier run
    plan = make_plan([tmp_path], settings(tmp_path / "upscaled", recursive=True))
    assert [i.source.name for i in plan.items] == ["a.jpg"]


def test_explicit_inputs_missing_or_not_photos_are_refused_and_duplicates_dropped(tmp_path):
    a = photo(tmp_path / "a.jpg")
    (tmp_path / "doc.pdf").write_bytes(b"%PDF")
    plan = make_plan([a, tmp_path / "nope.jpg", tmp_path / "doc.pdf", tmp_path, a], settings(tmp_path / "out"))
    assert [i.source.name for i in plan.items] == ["a.jpg"]
    reasons = {r.path.name: r.reason for r in plan.refused}
    assert reasons["nope.jpg"] == "file not found" and "not a supported photo type" in reasons["doc.pdf"]


@pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")
def test_a_link_loop_does_not_hang(tmp_path):
    photo(tmp_path / "in" / "a.jpg")
    (tmp_path / "in" / "loop").symlink_to(tmp_path / "in", target_is_directory=True)
    plan = make_plan([tmp_path / "in"], settings(tmp_path / "out", recursive=True))
    assert [i.source.name for i in plan.items] == ["a.jpg"]


# -- collisions --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "style", "action", "name"),
    [
        ("skip", "paren", Action.SKIP, "a_x2.png"),
        ("overwrite", "paren", Action.OVERWRITE, "a_x2.png"),
        ("rename", "paren", Action.RENAME, "a_x2 (2).png"),
        ("rename", "underscore", Action.RENAME, "a_x2_1.png"),
    ],
)
def test_collision_policies_in_the_plan(tmp_path, policy, style, action, name):
    photo(tmp_path / "in" / "a.jpg")
    photo(tmp_path / "in" / "b.jpg")
    out = tmp_path / "out"
    photo(out / "a_x2.png")
    photo(out / "a_x2 (1).png")
    plan = make_plan([tmp_path / "in"], settings(out, on_conflict=policy, rename_style=style))
    a, b = plan.items
    assert (a.action, a.target.name, a.conflict) == (action, name, "exists")
    assert (b.action, b.target.name, b.conflict) == (Action.WRITE, "b_x2.png", "")
    assert plan.conflicts == [a]


@pytest.mark.parametrize("policy", ["skip", "overwrite", "rename"])
def test_two_sources_meeting_on_one_name_are_renamed_whatever_the_policy(tmp_path, policy):
    photo(tmp_path / "in" / "a.jpg")
    photo(tmp_path / "in" / "a.png")
    plan = make_plan([tmp_path / "in"], settings(tmp_path / "out", on_conflict=policy))
    assert [(i.target.name, i.action) for i in plan.items] == [("a_x2.png", Action.WRITE),
                                                               ("a_x2 (1).png", Action.RENAME)]  # fmt: skip
    assert "another photo of this batch" in plan.items[1].conflict


@pytest.mark.parametrize("policy", ["skip", "overwrite"])
def test_a_result_never_replaces_its_own_source(tmp_path, policy):
    src = photo(tmp_path / "a.png")
    plan = make_plan([src], settings(tmp_path, template="{stem}", on_conflict=policy))
    (item,) = plan.items
    assert item.action == Action.RENAME and item.target.name == "a (1).png" and "own source" in item.conflict


def test_same_format_keeps_the_source_type(tmp_path):
    from desktop_sr.imaging import SaveOptions

    for name in ("a.jpg", "b.tiff", "c.bmp"):
        photo(tmp_path / "in" / name)
    plan = make_plan([tmp_path / "in"], settings(tmp_path / "out", save=SaveOptions(format=None)))
    assert [i.target.name for i in plan.items] == ["a_x2.jpg", "b_x2.tif", "c_x2.png"]


# -- the journal -------------------------------------------------------------------------------------------------


def finish(manifest: Manifest, src: Path, target: Path, sig: str, data: bytes = b"result") -> None:
    manifest.writing(src, sig, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    manifest.done(src, sig, target, 1.0)


def test_journal_marks_finished_files_done_and_verifies_them(tmp_path):
    src_dir, out = tmp_path / "in", tmp_path / "out"
    a, b, c = (photo(src_dir / n) for n in ("a.jpg", "b.jpg", "c.jpg"))
    s = settings(out, on_conflict="overwrite")
    with Manifest(out) as m:
        m.open()
        finish(m, a, out / "a_x2.png", s.signature())
        finish(m, b, out / "b_x2.png", s.signature())
        finish(m, c, out / "c_x2.png", s.signature())
    (out / "b_x2.png").write_bytes(b"short")  # damaged after the run: size differs
    os.utime(c, ns=(1, 1))  # the source changed since: redo
    plan = make_plan([src_dir], s, Manifest(out))
    assert [(i.source.name, i.action) for i in plan.items] == [("a.jpg", Action.DONE), ("b.jpg", Action.OVERWRITE),
                                                               ("c.jpg", Action.OVERWRITE)]  # fmt: skip
    other = settings(out, params=RenderParams(scale=2, pix=0.5))
    assert all(i.action != Action.DONE for i in make_plan([src_dir], other, Manifest(out)).items)


def test_a_kill_between_rename_and_done_line_still_counts_as_finished(tmp_path):
    """The 'writing' line records what was at the target; a changed target there means the atomic write landed."""
    out = tmp_path / "out"
    a = photo(tmp_path / "in" / "a.jpg")
    old = photo(out / "a_x2.png", value=1)
    s = settings(out, on_conflict="overwrite")
    with Manifest(out) as m:
        m.open()
        m.writing(a, s.signature(), old)
    assert make_plan([a], s, Manifest(out)).items[0].action == Action.OVERWRITE  # nothing was written yet
    photo(out / "a_x2.png", size=(16, 16), value=2)  # the rename happened, then SIGKILL
    assert make_plan([a], s, Manifest(out)).items[0].action == Action.DONE


def test_journal_survives_a_torn_last_line_and_compacts(tmp_path):
    out = tmp_path / "out"
    srcs = [photo(tmp_path / "in" / f"{i}.jpg") for i in range(3)]
    s = settings(out)
    with Manifest(out) as m:
        m.open()
        for _ in range(10):
            for src in srcs:
                finish(m, src, out / f"{src.stem}_x2.png", s.signature())
    journal = out / MANIFEST_NAME
    with open(journal, "a", encoding="utf-8") as fh:
        fh.write('{"v": 1, "source": "/x", "sta')  # torn by a kill
    m = Manifest(out)
    assert len(m.entries) == 3
    m.open()
    m.failed(srcs[0], s.signature(), out / "0_x2.png", "boom")
    m.close()
    lines = journal.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4 and all(json.loads(line) for line in lines)
    assert Manifest(out).last_error(srcs[0]) == "boom"


def test_a_journal_written_before_the_state_enum_still_resumes(tmp_path):
    """Lines as earlier versions wrote them (bare strings) load, and new lines spell their states the same way."""
    out = tmp_path / "out"
    a, b = photo(tmp_path / "in" / "a.jpg"), photo(tmp_path / "in" / "b.jpg")
    s = settings(out)
    target = photo(out / "a_x2.png")
    lines = [
        {"v": 1, "source": str(a.resolve()), "sig": s.signature(), "target": "a_x2.png", "src_size": a.stat().st_size,
         "src_mtime": a.stat().st_mtime_ns, "state": "done", "size": target.stat().st_size, "seconds": 1.0},
        {"v": 1, "source": str(b.resolve()), "sig": s.signature(), "target": "b_x2.png", "src_size": b.stat().st_size,
         "src_mtime": b.stat().st_mtime_ns, "state": "failed", "error": "boom"},
    ]  # fmt: skip
    (out / MANIFEST_NAME).write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    plan = make_plan([a, b], s, Manifest(out))
    assert [i.action for i in plan.items] == [Action.DONE, Action.WRITE] == ["done", "write"]
    assert Manifest(out).last_error(b) == "boom"
    with Manifest(out) as m:
        m.open()
        m.failed(a, s.signature(), target, "again")
    last = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8").splitlines()[-1])
    assert last["state"] == "failed" and type(last["state"]) is str


def test_the_batch_words_are_the_strings_they_replaced():
    """Manifests, the dry run's listing and the summary show these values: they must not change."""
    assert [a.value for a in Action] == ["write", "overwrite", "rename", "skip", "done", "cannot read"]
    assert [p.value for p in OnConflict] == list(ON_CONFLICT) == ["skip", "overwrite", "rename"]
    assert [s.value for s in Status] == ["written", "skipped", "done before", "failed", "cancelled"]
    assert [s.value for s in State] == ["writing", "done", "failed"]
    assert f"{Action.DONE} {Status.DONE_BEFORE} {State.WRITING}" == "done done before writing"
    assert Action.SKIP == "skip" and Status.FAILED == "failed" and State.DONE == "done"


def test_two_batches_cannot_write_into_one_folder(tmp_path):
    first = Manifest(tmp_path)
    first.open()
    try:
        with pytest.raises(ManifestError, match="another batch"):
            Manifest(tmp_path).open()
    finally:
        first.close()
    second = Manifest(tmp_path)
    second.open()
    second.close()


def test_eta_learns_seconds_per_megapixel():
    from desktop_sr.batch.progress import EtaEstimator, format_eta

    eta = EtaEstimator(to_render=4)
    assert eta.eta() is None
    eta.file_started(megapixels=1.0)
    eta._file_start -= 2.0  # a 1 MP file that took 2 s
    eta.file_rendered()
    eta.file_started(megapixels=4.0)
    eta._file_start -= 1.0
    # current: 4 MP at 2 s/MP, a quarter done -> 6 s; then two more of the average size seen (1 MP) -> 4 s.
    assert eta.eta(current_fraction=0.25) == pytest.approx(10.0, abs=0.05)
    assert format_eta(16.2) == "16 s" and format_eta(3725) == "1 h 02 min" and format_eta(None) == "estimating…"
