"""CLIP text embeddings of captions, with the text encoder kept loaded for the whole run.

The engine's :class:`~desktop_sr.engine.sd21.prompt.PromptEmbeddings` loads the encoder per new prompt and frees it
again, which is right for an app (a user types a prompt now and then) and wrong for training (every batch brings new
captions). Here the encoder stays on the CPU (or the training device when asked) and embeddings are memoised by
caption, so a caption is encoded once per run.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch

from desktop_sr.engine.errors import ModelError


class CaptionEncoder:
    """Gives ``(N, 77, D)`` embeddings for a list of captions on ``device`` / ``dtype``."""

    def __init__(
        self, base_dir: Path, device: torch.device, dtype: torch.dtype, *, encoder_device: str = "cpu",
        memo_size: int = 4096,
    ) -> None:  # fmt: skip
        from transformers import CLIPTextModel, CLIPTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        tok_dir, enc_dir = Path(base_dir) / "tokenizer", Path(base_dir) / "text_encoder"
        for folder in (tok_dir, enc_dir):
            if not folder.is_dir():
                raise ModelError(folder, "missing; the trainer needs the tokenizer and text encoder for captions")
        try:
            self.tokenizer = CLIPTokenizer.from_pretrained(str(tok_dir))
            self.encoder = CLIPTextModel.from_pretrained(str(enc_dir), torch_dtype=torch.float32)
        except (OSError, ValueError, TypeError) as exc:
            raise ModelError(enc_dir, f"cannot load the text encoder ({exc})") from exc
        self.encoder_device = torch.device(encoder_device)
        self.encoder.requires_grad_(False).eval().to(self.encoder_device)
        self.device = device
        self.dtype = dtype
        self.memo_size = memo_size
        self._memo: OrderedDict[str, torch.Tensor] = OrderedDict()

    @torch.no_grad()
    def _encode(self, prompts: list[str]) -> torch.Tensor:
        ids = self.tokenizer(
            prompts, max_length=self.tokenizer.model_max_length, padding="max_length", truncation=True,
            return_tensors="pt",
        ).input_ids.to(self.encoder_device)  # fmt: skip
        return self.encoder(ids)[0].to("cpu", torch.float32)

    def __call__(self, prompts: list[str]) -> torch.Tensor:
        prompts = [p.strip() for p in prompts]
        missing = sorted({p for p in prompts if p not in self._memo})
        if missing:
            for prompt, emb in zip(missing, self._encode(missing), strict=True):
                self._memo[prompt] = emb
        for p in prompts:
            self._memo.move_to_end(p)
        out = torch.stack([self._memo[p] for p in prompts]).to(self.device, self.dtype)
        while len(self._memo) > self.memo_size:
            self._memo.popitem(last=False)
        return out
