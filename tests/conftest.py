"""Fixtures shared by the whole suite."""
import pytest


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    """One model cache per test session: SmolLM2's tokenizer is converted from the packaged GGUF once
    (seconds each time), and vision features are kept per encoder fingerprint, so tests can share it."""
    return tmp_path_factory.mktemp("model-cache")
