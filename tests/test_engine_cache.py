"""The latent cache: slider changes cost no UNet pass, realism changes cost exactly the new passes, no stale data."""

from __future__ import annotations

import numpy as np
import pytest
from device_target import TARGET

from desktop_sr.engine.api import RenderParams
from desktop_sr.engine.backends.pisa.model import PisaModel
from desktop_sr.engine.backends.pisa.session import PisaSession, needed_branches
from desktop_sr.engine.cache import LRUCache


@pytest.fixture(scope="module")
def model(tiny_model):
    return PisaModel(tiny_model["base"], tiny_model["pkl"], device=TARGET.device)


class UNetCounter:
    """Counts the branch passes the UNet really runs, with a hook independent of the session's own counter: one per
    sample of each forward (both branches run as one batch of two count two)."""

    def __init__(self, unet) -> None:
        self.calls = 0
        self.handle = unet.register_forward_hook(self._hook)

    def _hook(self, _module: object, args: tuple, _out: object) -> None:
        self.calls += int(args[0].shape[0])


def test_default_takes_one_unet_pass(model, photo):
    session = PisaSession(model)
    session.set_photo(photo)
    counter = UNetCounter(model.unet)
    session.render(RenderParams())
    counter.handle.remove()
    assert counter.calls == 1


def test_lambda_changes_make_zero_unet_calls(model, photo):
    session = PisaSession(model)
    session.set_photo(photo)
    counter = UNetCounter(model.unet)
    first = session.render(RenderParams(pix=0.5, sem=1.5))
    assert counter.calls == 2
    results = [session.render(RenderParams(pix=p, sem=s)) for p, s in [(1, 1), (0, 0), (2, 0.3), (0.05, 1.95)]]
    assert counter.calls == 2
    assert all(np.abs(r - first).mean() > 1e-4 for r in results)  # the sliders really changed the picture
    counter.handle.remove()


def test_realism_change_costs_exactly_the_new_passes(model, photo):
    session = PisaSession(model)
    session.set_photo(photo)
    session.render(RenderParams(pix=0.7, sem=1.2))
    counter = UNetCounter(model.unet)
    t250 = session.render(RenderParams(pix=0.7, sem=1.2, realism=250))
    assert counter.calls == 2
    session.render(RenderParams(pix=1.5, sem=0.2, realism=250))
    session.render(RenderParams(pix=0.7, sem=1.2, realism=1))
    assert counter.calls == 2  # both levels are cached now
    assert np.abs(t250 - session.render(RenderParams(pix=0.7, sem=1.2))).mean() > 1e-4
    counter.handle.remove()


def test_needed_branches():
    assert needed_branches(0, 0) == ()
    assert needed_branches(1, 1) == ("full",)
    assert needed_branches(0.4, 0) == ("pix",)
    assert needed_branches(0.5, 1.5) == ("pix", "full")


def test_new_photo_invalidates(model, photo):
    session = PisaSession(model)
    session.set_photo(photo)
    a = session.render(RenderParams())
    session.set_photo(np.ascontiguousarray(photo[::-1]))
    counter = UNetCounter(model.unet)
    b = session.render(RenderParams())
    counter.handle.remove()
    assert counter.calls == 1
    assert np.abs(a[::-1] - b).mean() > 1e-3


def test_other_model_never_reuses_cached_work(tiny_model, model, photo):
    """Two sessions sharing one cache (as the app does across model switches) never serve each other's data."""
    from desktop_sr.engine.backends.pisa.model import load_unet
    from desktop_sr.engine.backends.pisa.synthetic import random_lora

    other = PisaModel(tiny_model["base"], random_lora(load_unet(tiny_model["base"]), seed=7), device=TARGET.device)
    assert other.model_id != model.model_id
    s1, s2 = PisaSession(model), PisaSession(other)
    s2.cache = s1.cache
    for s in (s1, s2):
        s.set_photo(photo)
    a = s1.render(RenderParams())
    passes = s2.unet_passes
    b = s2.render(RenderParams())
    assert s2.unet_passes == passes + 1
    assert np.abs(a - b).mean() > 1e-3


def test_tiling_settings_key_the_cache(model, photo):
    from desktop_sr.engine.kernels.tiling import TileSettings

    s1 = PisaSession(model)
    s1.set_photo(photo)
    s1.render(RenderParams())
    s2 = PisaSession(model, tiles=TileSettings(unet_tile=16, unet_overlap=8))
    s2.cache = s1.cache
    s2.set_photo(photo)
    assert not s2.is_cached(RenderParams())


def test_cache_is_bounded_by_its_budget():
    import torch

    cache = LRUCache(max_bytes=3 * 4096)
    for i in range(10):
        cache.put(i, torch.zeros(1024))  # 4 KiB each
    assert cache.bytes <= 3 * 4096 and len(cache) == 3
    assert cache.get(0) is None and cache.get(9) is not None
    cache.put("huge", torch.zeros(10_000))
    assert "huge" not in cache and len(cache) == 3


def test_small_budget_still_renders_correctly(model, photo):
    tiny = PisaSession(model, cache_mb=0)
    tiny.set_photo(photo)
    big = PisaSession(model)
    big.set_photo(photo)
    p = RenderParams(pix=0.3, sem=1.1)
    assert np.abs(tiny.render(p) - big.render(p)).max() < 1e-5


def test_prompt_loads_the_text_encoder_only_when_needed_and_keys_the_cache(model, photo):
    session = PisaSession(model)
    session.set_photo(photo)
    loads = model.prompts.encoder_loads
    plain = session.render(RenderParams())
    assert model.prompts.encoder_loads == loads  # the empty prompt comes from the stored embedding
    described = session.render(RenderParams(prompt="an astronaut in front of a flag"))
    assert model.prompts.encoder_loads == loads + 1
    assert np.abs(plain - described).mean() > 1e-4
    session.render(RenderParams(prompt="an astronaut in front of a flag", pix=0.2))
    assert model.prompts.encoder_loads == loads + 1


def test_empty_prompt_embedding_lives_in_the_cache_folder_never_the_model_folder(tiny_model, tmp_path):
    import torch

    from desktop_sr.engine.sd21.prompt import PromptEmbeddings

    before = sorted(p.relative_to(tiny_model["base"]) for p in tiny_model["base"].rglob("*"))
    first = PromptEmbeddings(tiny_model["base"], torch.device("cpu"), torch.float32, cache_dir=tmp_path / "prompts")
    emb = first.get("")
    assert first.encoder_loads == 1
    assert [p.suffix for p in (tmp_path / "prompts").iterdir()] == [".safetensors"]
    assert sorted(p.relative_to(tiny_model["base"]) for p in tiny_model["base"].rglob("*")) == before
    again = PromptEmbeddings(tiny_model["base"], torch.device("cpu"), torch.float32, cache_dir=tmp_path / "prompts")
    assert torch.equal(again.get(""), emb)
    assert again.encoder_loads == 0  # read back without loading the text encoder
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would go")
    unwritable = PromptEmbeddings(tiny_model["base"], torch.device("cpu"), torch.float32, cache_dir=blocked)
    assert torch.equal(unwritable.get(""), emb)  # cannot store it: still works, only encodes again next time


def test_corners_blend_is_exact_at_the_corners(model, photo):
    session = PisaSession(model)
    session.set_photo(photo)
    p = RenderParams(color_fix="none")
    corners = session.corners(p)
    assert np.abs(corners.blend(1, 1) - session.render(p)).max() < 1e-5
    assert np.abs(corners.blend(0, 0) - session.render(p.with_(pix=0.0, sem=0.0))).max() < 1e-5
    detail = session.detail_map(p)
    assert detail.shape == (192, 256) and detail.min() >= 0 and detail.max() <= 1 and detail.std() > 0
