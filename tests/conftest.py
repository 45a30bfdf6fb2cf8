"""Fixtures shared by the whole suite."""
import pytest


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    """One model cache per test session: SmolLM2's tokenizer is converted from the packaged GGUF once
    (seconds each time), and vision features are kept per encoder fingerprint, so tests can share it."""
    from lifelong.models.weights import smollm2_tokenizer_dir

    cache = tmp_path_factory.mktemp("model-cache")
    smollm2_tokenizer_dir(cache)  # converted here, not inside a subprocess test's time limit
    return cache
