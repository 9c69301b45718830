"""Stage `verify` for multimodal programs: the image encoder and the logits after an image.

The eager model it came from and the .pte see the same picture (a synthetic one, prepared by
`vision.preprocess` as `mobq run --image` prepares photos): the `vision_encoder` output is
compared with the model's image features, then a prompt of text, <start_of_image>, the image's
soft tokens, <end_of_image> and text is prefilled chunk by chunk as ExecuTorch's
MultimodalRunner does, and a few tokens decoded; every step's logits are compared. The runner
itself then generates from text + image. Where the model marks images with <start_of_image>,
the program attends bidirectionally within an image, so the reference is transformers with its
token_type_ids mask; the SQNR against a causal reference is reported beside, to show what the
image attention changes.
"""

from __future__ import annotations

import gc
import math
from pathlib import Path
from typing import Any

import torch

from mobq import progress, verify
from mobq.runtime import capture_runner_output, load_program, quiet_native_logs, runner_api
from mobq.verify import VerifyResult, sqnr_db
from mobq.vision import ImageSpec, preprocess, spelled_token, synthetic_image

TEXT_BEFORE = "Describe the picture in one sentence."
TEXT_AFTER = "It shows"


def prompt_parts(tokenizer_dir: Path, spec: ImageSpec, bos_id: int | None) -> tuple[list, list]:
    """Token ids before the image (ending with <start_of_image>) and after it."""
    from mobq.metadata import load_hf_tokenizer

    tokenizer = load_hf_tokenizer(tokenizer_dir)
    before = tokenizer.encode(TEXT_BEFORE, add_special_tokens=False).ids
    after = tokenizer.encode(TEXT_AFTER, add_special_tokens=False).ids
    if bos_id is not None:
        before = [bos_id, *before]
    if spec.boi_token_id is not None:
        before.append(spec.boi_token_id)
    if spec.eoi_token_id is not None:
        after = [spec.eoi_token_id, *after]
    return before, after


@torch.no_grad()
def _reference(model_dir: Path, pixels: torch.Tensor, ids: torch.Tensor, spec: ImageSpec) -> dict:
    from mobq.pte.multimodal import load_model

    model = load_model(model_dir)
    features = model.model.get_image_features(pixels)
    features = getattr(features, "pooler_output", features)
    causal = model(input_ids=ids, pixel_values=pixels).logits[0]
    token_types = (ids == spec.image_token_id).long()
    bidirectional = model(input_ids=ids, pixel_values=pixels, token_type_ids=token_types).logits[0]
    del model
    gc.collect()
    return {"features": features.clone(), "causal": causal, "bidirectional": bidirectional}


def run(
    pte: Path,
    reference_dir: Path,
    tokenizer_dir: Path,
    spec: ImageSpec,
    *,
    reference_name: str,
    threshold_db: float,
    bos_id: int | None,
    runner_tokenizer: Path,
    decode_steps: int = 4,
) -> tuple[VerifyResult, dict[str, float]]:
    pixels = preprocess(synthetic_image(), spec)
    before, after = prompt_parts(tokenizer_dir, spec, bos_id)
    decode = list(range(5, 5 + decode_steps))  # teacher-forced continuation tokens
    sequence = [*before, *[spec.image_token_id] * spec.tokens_per_image, *after, *decode]
    with progress.task(f"running the reference ({reference_name})"):
        ref = _reference(reference_dir, pixels, torch.tensor([sequence]), spec)
    first = len(before) + spec.tokens_per_image + len(after) - 1  # last prefilled position
    with quiet_native_logs(), progress.task("comparing with the eager model"):
        program = load_program(pte)
        image = program.load_method("vision_encoder").execute([pixels])[0]
        embed = program.load_method("token_embedding")
        decoder = program.load_method("text_decoder")
        got = _program_logits(embed, decoder, before, image, after, decode)
    image_sqnr = sqnr_db(ref["features"], image)
    attention, other_attention = _image_attentions(spec)
    expected, other = ref[attention], ref[other_attention]
    steps = [sqnr_db(expected[first + i], logits) for i, logits in enumerate(got)]
    top1 = [bool(expected[first + i].argmax() == g.argmax()) for i, g in enumerate(got)]
    other_sqnr = sqnr_db(other[first], got[0])
    del program, embed, decoder
    runner_tokens, runner_text = runner_smoke_test(pte, runner_tokenizer, pixels, spec)
    values = [image_sqnr, *steps]
    finite = [v for v in values if math.isfinite(v)] or [200.0]
    result = VerifyResult(
        reference=reference_name,
        prompts=1,
        steps=len(steps),
        sqnr_db_min=round(min(values), 2),
        sqnr_db_mean=round(sum(finite) / len(finite), 2),
        top1_agreement=round(sum(top1) / len(top1), 4),
        threshold_db=threshold_db,
        passed=min(values) >= threshold_db and runner_tokens > 0,
        runner_tokens=runner_tokens,
        runner_text=runner_text,
    )
    extra = {
        "image_encoder_sqnr_db": _rounded(image_sqnr),
        "first_logits_sqnr_db": _rounded(steps[0]),
        "image_attention": attention,
        f"first_logits_sqnr_db_vs_{other_attention}_image_attention": _rounded(other_sqnr),
    }
    return result, extra


def _bidirectional(spec: ImageSpec) -> bool:
    """The export attends within an image wherever <start_of_image> announces it."""
    return spec.boi_token_id is not None


def _image_attentions(spec: ImageSpec) -> tuple[str, str]:
    """(the program's image attention, the other one): the keys of `_reference`'s logits."""
    return ("bidirectional", "causal") if _bidirectional(spec) else ("causal", "bidirectional")


def _rounded(value: float) -> float:
    return round(value, 2) if math.isfinite(value) else 999.0


def _program_logits(
    embed: Any, decoder: Any, before: list, image: torch.Tensor, after: list, decode: list
) -> list[torch.Tensor]:
    """Prefill text, image, text as the MultimodalRunner does, then decode one by one."""
    position = 0
    for chunk in (embed.execute([torch.tensor([before])])[0], image):
        decoder.execute([chunk, torch.tensor([position])])
        position += chunk.shape[1]
    tail = embed.execute([torch.tensor([after])])[0]
    out = [decoder.execute([tail, torch.tensor([position])])[0].reshape(-1)]
    position += len(after)
    for token in decode:
        step = embed.execute([torch.tensor([[token]])])[0]
        out.append(decoder.execute([step, torch.tensor([position])])[0].reshape(-1))
        position += 1
    return out


def runner_smoke_test(
    pte: Path, tokenizer_json: Path, pixels: torch.Tensor, spec: ImageSpec, max_new_tokens: int = 8
) -> tuple[int, str]:
    """Generate from text + image with ExecuTorch's stock MultimodalRunner."""
    from mobq.runtime import multimodal_runner

    runners = runner_api()
    boi = spelled_token(tokenizer_json, spec.boi_token_id)
    eoi = spelled_token(tokenizer_json, spec.eoi_token_id)
    before, after = TEXT_BEFORE + (f"\n\n{boi}" if boi else ""), (f"{eoi}\n\n" if eoi else "")
    runner = multimodal_runner(pte, tokenizer_json)
    inputs = _runner_inputs(pixels, before, after + TEXT_AFTER)
    stats: list[Any] = []
    config = runners.GenerationConfig(max_new_tokens=max_new_tokens, temperature=0.0, echo=False)
    with capture_runner_output() as output:
        runner.generate(inputs, config, stats_callback=stats.append)
    return (stats[0].num_generated_tokens if stats else 0), output.text()


def _runner_inputs(
    pixels: torch.Tensor, before: str = TEXT_BEFORE, after: str = TEXT_AFTER
) -> list:
    runners = runner_api()
    return [
        runners.make_text_input(before),
        runners.make_image_input(pixels[0]),
        runners.make_text_input(after),
    ]


def require_pass(result: VerifyResult) -> None:
    compared = f"the image encoder and {result.steps} decoder steps"
    verify.require_pass(result, runner="MultimodalRunner", compared=compared)
