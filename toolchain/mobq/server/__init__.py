"""The GPU server target: int4-hqq checkpoints for transformers and vLLM, apart from the phones.

`gpu_bench` measures peak GPU memory and batch-1 latency against bf16 (`mobq bench-gpu`),
`int4_gpu` holds the plain int4 kernels' helpers, and `modelcard` renders the checkpoint's card.
`mobq quantize --scheme int4-hqq` writes these checkpoints and `mobq publish` uploads them.
"""
