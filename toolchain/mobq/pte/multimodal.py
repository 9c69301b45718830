"""The multimodal builder: one .pte with the three methods of a VLM.

ExecuTorch's MultimodalRunner calls them by name: `vision_encoder` (pixels -> the projector's
image embeddings), `token_embedding` (token ids -> embeddings, Gemma's sqrt(hidden) scale
included) and `text_decoder` (embeddings + start position -> last logits, with the static KV
cache of the `hf` builder). The runner embeds text and images in prompt order and feeds each chunk
to the decoder. Attention is causal, except within an image: Gemma-3 lets one image's soft
tokens attend to each other, and `text_decoder` finds image chunks itself (see TextDecoder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mobq import progress
from mobq.errors import CheckpointError
from mobq.families import family_for_config
from mobq.hfmodel import load_config
from mobq.pte.lowering import ExportOptions, Method, Program, runner_constants, token_dim
from mobq.pte.static_cache import (
    cached_logits,
    prepare_for_tracing,
    set_cache_offset,
    static_cache_step,
)
from mobq.vision import ImageSpec, image_spec

METHODS = ("vision_encoder", "token_embedding", "text_decoder")


class VisionEncoder(torch.nn.Module):
    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        features = self.model.model.get_image_features(pixel_values)
        return getattr(features, "pooler_output", features)


class TokenEmbedding(torch.nn.Module):
    def __init__(self, model: Any) -> None:
        super().__init__()
        self.embedding = model.model.get_input_embeddings()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.embedding(tokens)


def _text_decoder_class() -> type[torch.nn.Module]:
    from transformers.integrations.executorch import TorchExportableModuleWithStaticCache
    from transformers.masking_utils import create_masks_for_generate

    class TextDecoder(TorchExportableModuleWithStaticCache):
        """Embeddings in, last logits out; the cache offset comes from `input_pos`.

        The runner calls this method alike for text and image chunks and passes no token
        types, but an image is always one whole chunk that follows a text chunk ending with
        <start_of_image> (the processor's layout, which `mobq run` keeps). So the decoder
        remembers, in a one-element buffer, whether its last input ended with that token's
        embedding; if it did, this chunk is an image and its tokens attend to each other, as
        transformers' token_type_ids mask does. Everything else stays causal.
        """

        def __init__(self, model: Any, max_cache_len: int, image_start: torch.Tensor | None):
            super().__init__(model, batch_size=1, max_cache_len=max_cache_len)
            self.bidirectional_images = image_start is not None
            start = image_start if image_start is not None else torch.zeros(1)
            self.register_buffer("image_start_embedding", start.detach().clone(), persistent=False)
            self.register_buffer(
                "image_follows", torch.zeros(1, dtype=torch.bool), persistent=False
            )
            self.register_buffer("cache_slots", torch.arange(max_cache_len), persistent=False)

        def forward(  # type: ignore[override]
            self, embeddings: torch.Tensor, input_pos: torch.Tensor
        ) -> torch.Tensor:
            if not self.bidirectional_images:
                return static_cache_step(self, input_pos, inputs_embeds=embeddings)
            set_cache_offset(self, input_pos)
            masks = create_masks_for_generate(
                config=self.model.config,
                inputs_embeds=embeddings,
                attention_mask=None,
                past_key_values=self.static_cache,
                block_sequence_ids=self._image_block(input_pos[0], embeddings.shape[1]),
            )
            logits = cached_logits(self, masks, inputs_embeds=embeddings)
            self.image_follows.copy_(self._is_image_start(embeddings[0, -1]).reshape(1))
            return logits

        def _image_block(self, start: torch.Tensor, length: int) -> torch.Tensor:
            """Per cache slot: 0 where this chunk is an image, -1 (causal) elsewhere."""
            is_image = self.image_follows[0] & (start > 0)  # a new conversation starts at 0
            in_chunk = (self.cache_slots >= start) & (self.cache_slots < start + length)
            return torch.where(in_chunk & is_image, 0, -1).unsqueeze(0)

        def _is_image_start(self, embedding: torch.Tensor) -> torch.Tensor:
            reference = self.image_start_embedding
            tolerance = IMAGE_START_TOLERANCE * reference.abs().amax()
            return (embedding - reference).abs().amax() <= tolerance

    return TextDecoder


# The token_embedding method and the eager table differ by float rounding only; any other
# embedding differs from <start_of_image>'s by far more than this share of its largest value.
IMAGE_START_TOLERANCE = 1e-3


def image_start_embedding(model: Any, spec: ImageSpec) -> torch.Tensor | None:
    """<start_of_image>'s embedding as `token_embedding` computes it (None: no such token)."""
    if spec.boi_token_id is None:
        return None
    with torch.no_grad():
        return TokenEmbedding(model)(torch.tensor([[spec.boi_token_id]]))[0, 0].float()


def text_decoder(model: Any, spec: ImageSpec, ctx: int) -> torch.nn.Module:
    """The `text_decoder` method's module: a static cache of `ctx`, images attended within."""
    return _text_decoder_class()(model, ctx, image_start_embedding(model, spec))


def load_model(model_dir: Path) -> Any:
    """The multimodal model as transformers loads it, ready for tracing."""
    from transformers import AutoModelForImageTextToText

    from mobq.hfmodel import restore_scalar_buffers

    try:
        model = AutoModelForImageTextToText.from_pretrained(
            str(model_dir), dtype=torch.float32, attn_implementation="sdpa"
        )
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{model_dir}: transformers cannot load it: {exc}") from exc
    restore_scalar_buffers(model)
    return prepare_for_tracing(model).eval()


def methods(model: Any, spec: ImageSpec, options: ExportOptions) -> dict[str, Method]:
    """The three methods; prefill chunks are dynamic up to the chunk size."""
    hidden = model.config.text_config.hidden_size
    chunk = token_dim(options)
    pixels = torch.zeros(1, 3, spec.size, spec.size)
    return {
        "vision_encoder": Method(VisionEncoder(model), (pixels,), strict=True),
        "token_embedding": Method(
            TokenEmbedding(model),
            (torch.tensor([[2, 3, 4]]),),
            dynamic_shapes=({1: chunk},),
            strict=True,
        ),
        "text_decoder": Method(
            text_decoder(model, spec, options.ctx),
            (torch.zeros(1, 3, hidden), torch.tensor([0])),
            dynamic_shapes=({1: chunk}, None),
            strict=True,
        ),
    }


def build(model_dir: Path, options: ExportOptions, runtime_methods: dict[str, Any]) -> Program:
    config = load_config(model_dir)
    params = family_for_config(config).model_args(config)
    spec = image_spec(model_dir, config)
    constants = {
        **runner_constants(params, options, runtime_methods),
        "use_sdpa_with_kv_cache": False,
    }
    with progress.task("loading the multimodal model with a static KV cache"):
        model = load_model(Path(model_dir))
    # The vision tower's convolutions and norms want XNNPACK's general partitioner.
    return Program(methods(model, spec, options), constants, extended_ops=True)
