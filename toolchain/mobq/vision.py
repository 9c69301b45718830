"""Image input of multimodal exports: what the processor does to a picture, as data.

The .pte's `vision_encoder` takes pixels already resized and normalized, as ExecuTorch's
MultimodalRunner hands them over; the parameters (size, rescale, mean, std) come from the
checkpoint's `preprocessor_config.json` (SigLIP's defaults where it has none) and travel in the
manifest, so `mobq run --image` and the apps prepare pictures exactly as transformers does.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from mobq.errors import InputError

# SigLIP's processor defaults (Gemma-3's tower): mean and std 0.5, pixels scaled by 1/255.
SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class ImageSpec:
    size: int  # square input, pixels per side
    rescale_factor: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    tokens_per_image: int  # soft tokens the projector makes of one image
    image_token_id: int
    boi_token_id: int | None  # <start_of_image>, which the text before the image ends with
    eoi_token_id: int | None  # <end_of_image>, which the text after it starts with
    resample: str = "bilinear"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mean"], data["std"] = list(self.mean), list(self.std)  # as JSON will hold them
        return data


def image_spec(model_dir: Path, config: Any) -> ImageSpec:
    """The preprocessing the checkpoint's processor applies, and its image token layout."""
    processor = _read_preprocessor(Path(model_dir))
    size = processor.get("size") or {}
    side = int(size.get("height") or config.vision_config.image_size)
    return ImageSpec(
        size=side,
        rescale_factor=float(processor.get("rescale_factor", 1 / 255)),
        mean=tuple(float(v) for v in processor.get("image_mean", SIGLIP_MEAN)),  # type: ignore[arg-type]
        std=tuple(float(v) for v in processor.get("image_std", SIGLIP_STD)),  # type: ignore[arg-type]
        tokens_per_image=int(config.mm_tokens_per_image),
        image_token_id=int(config.image_token_index),
        boi_token_id=getattr(config, "boi_token_index", None),
        eoi_token_id=getattr(config, "eoi_token_index", None),
    )


def spelled_token(tokenizer_json: Path, token_id: int | None) -> str | None:
    """The text that the tokenizer turns into exactly this one token, if there is one.

    Real Gemma-3 tokenizers spell <start_of_image> so; a toy vocabulary's id may be a
    subword that does not round-trip, and then the runner's prompt leaves it out.
    """
    from tokenizers import Tokenizer

    if token_id is None:
        return None
    tokenizer = Tokenizer.from_file(str(tokenizer_json))
    text = tokenizer.id_to_token(token_id)
    if text is None or tokenizer.encode(text, add_special_tokens=False).ids != [token_id]:
        return None
    return text


def _read_preprocessor(directory: Path) -> dict[str, Any]:
    path = directory / "preprocessor_config.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from exc


def load_image(path: Path) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError as exc:
        raise InputError(f"no such image: {path}") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"{path} is not an image Pillow can read: {exc}") from exc


def preprocess(image: Any, spec: ImageSpec) -> torch.Tensor:
    """An RGB PIL image -> [1, 3, size, size] float32, resized and normalized."""
    import numpy as np
    from PIL import Image

    resized = image.resize((spec.size, spec.size), Image.Resampling.BILINEAR)
    pixels = torch.from_numpy(np.asarray(resized, dtype=np.float32).copy()).permute(2, 0, 1)
    mean = torch.tensor(spec.mean).view(3, 1, 1)
    std = torch.tensor(spec.std).view(3, 1, 1)
    return ((pixels * spec.rescale_factor - mean) / std).unsqueeze(0).contiguous()


def synthetic_image(side: int = 64) -> Any:
    """A deterministic picture (colour gradients and a square) for verification."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:side, 0:side]
    rgb = np.stack([x * 255 // side, y * 255 // side, (x + y) * 127 // side], axis=-1)
    rgb[side // 4 : side // 2, side // 4 : side // 2] = (250, 30, 30)
    return Image.fromarray(rgb.astype(np.uint8), "RGB")
