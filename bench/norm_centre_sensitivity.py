"""How fast a small perturbation grows through random-weight layers, by norm-weight centre.

Builds the first N decoder layers of a recipe's text architecture at full width (fp32, a small
vocabulary: the embedding table is not the point), fills it with mobq's random weights twice —
norm weights centred where the model's own init centres them (`random_weights.norm_centres`),
then every norm weight centred on 1 — and feeds each the same embeddings with and without a
60 dB perturbation. A well-conditioned random network keeps the SQNR of its hidden states near
the input's; a chaotic one loses it layer by layer, and then no quantized export of it can
agree with its eager model. Used for the Gemma-3 finding in docs/performance.md.

    PYTHONPATH=toolchain python bench/norm_centre_sensitivity.py gemma-3-4b --layers 6
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from mobq import hostinfo, random_weights
from mobq.recipes import get_recipe

INPUT_SQNR_DB = 60.0
VOCAB = 4096


def sqnr_db(reference: torch.Tensor, other: torch.Tensor) -> float:
    noise = (reference - other).pow(2).sum()
    return float(10 * torch.log10(reference.pow(2).sum() / noise))


def text_config(recipe_name: str, layers: int):
    from transformers import AutoConfig

    architecture = get_recipe(recipe_name).architecture
    text = dict(architecture.get("text_config", architecture))
    text.pop("layer_types", None)  # re-derived for the shorter stack
    text.update(num_hidden_layers=layers, vocab_size=VOCAB, tie_word_embeddings=False)
    return AutoConfig.for_model(**text)


def fill_random(model: torch.nn.Module, centres: dict[str, float], seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            shape = tuple(param.shape)
            param.copy_(random_weights.random_tensor(name, shape, generator, centres[name]))


def hidden_sqnr_by_layer(model: torch.nn.Module, tokens: int, seed: int) -> list[float]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (1, tokens), generator=generator)
    with torch.no_grad():
        embeddings = model.get_input_embeddings()(ids)
        scale = embeddings.std() * 10 ** (-INPUT_SQNR_DB / 20)
        noisy = embeddings + torch.randn(embeddings.shape, generator=generator) * scale
        clean = model(inputs_embeds=embeddings, output_hidden_states=True).hidden_states
        perturbed = model(inputs_embeds=noisy, output_hidden_states=True).hidden_states
    return [round(sqnr_db(a, b), 1) for a, b in zip(clean, perturbed, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--tokens", type=int, default=280)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from transformers import AutoModelForCausalLM

    from mobq.errors import MobqError

    try:
        config = text_config(args.recipe, args.layers)
    except MobqError as exc:
        raise SystemExit(f"Error: {exc}") from None
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    derived = random_weights.norm_centres(model)
    variants = {
        "model's own init": {n: derived.get(n, 1.0) for n, _ in model.named_parameters()},
        "all norms on 1": {n: 1.0 for n, _ in model.named_parameters()},
    }
    result = {
        "host": hostinfo.host(),
        "recipe": args.recipe,
        "layers": args.layers,
        "tokens": args.tokens,
        "input_sqnr_db": INPUT_SQNR_DB,
        "variants": {},
    }
    for label, centres in variants.items():
        started = time.perf_counter()
        fill_random(model, centres, args.seed)
        by_layer = hidden_sqnr_by_layer(model, args.tokens, args.seed)
        result["variants"][label] = {
            "norm_centres": sorted({round(v, 3) for n, v in centres.items() if n in derived}),
            "hidden_sqnr_db_by_layer": by_layer,
            "seconds": round(time.perf_counter() - started, 1),
        }
        print(f"{label:>18}: hidden-state SQNR by layer {by_layer} dB", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
