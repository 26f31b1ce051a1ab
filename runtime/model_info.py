"""What a model file says about itself: kind, vocabulary, context size, config, losses."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from makemore.data import UserError, Vocab

FORMAT_VERSION = 1
METADATA_PREFIX = "makemore."
REQUIRED_KEYS = ("format_version", "kind", "vocab", "block_size", "config", "metrics", "data_sha256")


class ModelFileError(UserError):
    """A model file that cannot be used; the message is one line meant for the user."""


@dataclass(frozen=True)
class ModelInfo:
    """Everything sampling needs besides the forward pass (same fields as the checkpoint)."""

    kind: str
    vocab: Vocab
    block_size: int
    config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    data_sha256: str = ""

    @property
    def max_len(self) -> int:
        """The longest training word: the default bound on a sampled name."""
        return int(self.config.get("max_len", 32))

    def to_metadata(self) -> dict[str, str]:
        """The ONNX `metadata_props` entries (all strings)."""
        values = {
            "format_version": str(FORMAT_VERSION),
            "kind": self.kind,
            "vocab": self.vocab.chars,
            "block_size": str(self.block_size),
            "config": json.dumps(self.config, sort_keys=True),
            "metrics": json.dumps(self.metrics, sort_keys=True),
            "data_sha256": self.data_sha256,
        }
        return {METADATA_PREFIX + key: value for key, value in values.items()}

    @classmethod
    def from_metadata(cls, props: dict[str, str], source: str = "model") -> ModelInfo:
        """Parse `metadata_props`; raise ModelFileError on anything missing or unknown."""
        values = {k[len(METADATA_PREFIX) :]: v for k, v in props.items() if k.startswith(METADATA_PREFIX)}
        if not values:
            raise ModelFileError(f"{source} is not a makemore model: it has no makemore.* metadata")
        if values.get("format_version") != str(FORMAT_VERSION):
            raise ModelFileError(
                f"{source} has makemore format version {values.get('format_version')!r};"
                f" this runtime reads version {FORMAT_VERSION}"
            )
        missing = [k for k in REQUIRED_KEYS if k not in values]
        if missing:
            raise ModelFileError(f"{source} lacks metadata: {', '.join(METADATA_PREFIX + k for k in missing)}")
        try:
            info = cls(
                kind=values["kind"],
                vocab=Vocab(values["vocab"]),
                block_size=int(values["block_size"]),
                config=json.loads(values["config"]),
                metrics=json.loads(values["metrics"]),
                data_sha256=values["data_sha256"],
            )
        except (ValueError, TypeError) as err:
            raise ModelFileError(f"{source} has malformed makemore metadata: {err}") from None
        if info.block_size < 1 or not isinstance(info.config, dict) or not isinstance(info.metrics, dict):
            raise ModelFileError(f"{source} has malformed makemore metadata")
        return info
