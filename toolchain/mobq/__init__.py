"""mobq: a Hugging Face LLM to a verified ExecuTorch .pte for phones, one stage at a time."""

__version__ = "0.1.0"
