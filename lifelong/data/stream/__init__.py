"""The built-in offline task stream: easy-vqa, digits and generated skills, in LLaVA JSON.

``prepare_stream(out, scale, seed)`` writes it; ``lifelong data prepare`` calls ``main``.
"""
from lifelong.data.stream.config import SplitSizes, StreamConfig
from lifelong.data.stream.generators import DATASETS, DatasetSpec, register
from lifelong.data.stream.files import DatasetInfo, read_manifest
from lifelong.data.stream.prepare import main, prepare_stream, stream_digest

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "DatasetSpec",
    "SplitSizes",
    "StreamConfig",
    "main",
    "prepare_stream",
    "read_manifest",
    "register",
    "stream_digest",
]
