"""The unit of data: one instruction sample as the pool stores it."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

IMAGE_TOKEN = "<image>"
ROLES = ("system", "user", "assistant")


@dataclass
class Sample:
    """One image-text (or text-only) instruction sample.

    ``conversation`` is a list of ``{"role": "user"|"assistant"|"system",
    "content": str}`` turns; each image appears as one ``<image>`` token inside a
    user turn, in the order of ``images``. ``images`` holds content hashes
    (sha256 hex of the image file bytes) into the pool's blob store; empty for a
    text-only sample. Response tokens (the loss targets) are the assistant turns.
    """

    id: str
    dataset: str
    task: str
    split: str
    conversation: list[dict]
    images: list[str] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)

    @property
    def image(self) -> str | None:
        """The first image hash, or None for a text-only sample."""
        return self.images[0] if self.images else None

    def content_key(self) -> str:
        """Hash of what the sample *is* (dataset, split, turns, images).

        Ingestion is idempotent on this key: the same content arriving twice is
        stored once, and a pruned sample's key keeps it from coming back.
        """
        payload = json.dumps(
            [self.dataset, self.split, self.conversation, self.images],
            ensure_ascii=False,
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def prompt_and_answer(self) -> tuple[str, str]:
        """(text of the user turns before the last assistant turn, last assistant turn)."""
        last = max(i for i, t in enumerate(self.conversation) if t["role"] == "assistant")
        prompt = "\n".join(t["content"] for t in self.conversation[:last] if t["role"] == "user")
        return prompt, self.conversation[last]["content"]
