"""Every hyperparameter, declared once: type, range, default and help.

The Train tab builds its controls from `FIELDS`, the server validates whatever arrives (a
Gradio API caller can send values no slider allows), and every run saves its `HParams`.
Choices that come from a registry (datasets, models, optimizers) are looked up lazily, so
importing this module imports no framework.
"""

from __future__ import annotations

import math
import urllib.parse
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable


class HParamsError(ValueError):
    """Raised with one readable line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class Field:
    name: str
    kind: type  # str, int, float or bool
    default: Any
    label: str
    help: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False  # shown on a log scale (learning rate)
    choices: Callable[[], list[str]] | None = None


def _datasets() -> list[str]:
    from lab.datasets import DATASETS

    return list(DATASETS)


def _models() -> list[str]:
    from models import MODELS

    return list(MODELS)


def _optimizers() -> list[str]:
    from lab.training import OPTIMIZERS

    return list(OPTIMIZERS)


FIELDS: tuple[Field, ...] = (
    Field("dataset", str, "digits", "Dataset", "The images to learn from.", choices=_datasets),
    Field("model", str, "mlp", "Model", "The network architecture.", choices=_models),
    Field("optimizer", str, "adam", "Optimizer", "How the weights are updated from the gradient.", choices=_optimizers),
    Field("learning_rate", float, 3e-3, "Learning rate", "Size of each update step. Too high and the loss diverges; too low and nothing happens.", 1e-5, 1.0, log=True),
    Field("batch_size", int, 32, "Batch size", "Images per update step (per device).", 1, 1024, 1),
    Field("epochs", int, 15, "Epochs", "Passes over the training images.", 1, 200, 1),
    Field("validation_split", float, 0.2, "Validation fraction", "Share of images held out to measure accuracy on unseen data.", 0.05, 0.5, 0.05),
    Field("seed", int, 42, "Seed", "Same seed, same shuffle and starting weights: a repeatable experiment.", 0, 2**31 - 1, 1),
    Field("augment_flip", bool, False, "Flip", "Mirror images left-right at random (bad for digits: a mirrored 3 is not a 3)."),
    Field("augment_rotation", float, 0.0, "Rotation", "Random rotation, as a fraction of a full turn (0 = off).", 0.0, 0.25, 0.01),
    Field("augment_zoom", float, 0.0, "Zoom", "Random zoom in or out by up to this fraction (0 = off).", 0.0, 0.5, 0.05),
)
FIELD_BY_NAME = {f.name: f for f in FIELDS}


@dataclass(frozen=True)
class HParams:
    dataset: str = "digits"
    model: str = "mlp"
    optimizer: str = "adam"
    learning_rate: float = 3e-3
    batch_size: int = 32
    epochs: int = 15
    validation_split: float = 0.2
    seed: int = 42
    augment_flip: bool = False
    augment_rotation: float = 0.0
    augment_zoom: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_query(self) -> str:
        """The whole experiment as a URL query string (share a link, get the same knobs)."""
        return urllib.parse.urlencode({k: _fmt(v) for k, v in self.to_dict().items()})

    @classmethod
    def from_query(cls, query: str | dict) -> "HParams":
        """Parse a query string or a dict of strings; unknown keys are ignored."""
        pairs = dict(urllib.parse.parse_qsl(query.lstrip("?"))) if isinstance(query, str) else dict(query)
        return validate({k: v for k, v in pairs.items() if k in FIELD_BY_NAME})


assert [f.name for f in fields(HParams)] == [f.name for f in FIELDS], "HParams and FIELDS must match"


def _fmt(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _coerce(f: Field, value: Any) -> Any:
    """Turn one raw value into the field's type, or raise ValueError with a reason."""
    if f.kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "on", "off", "yes", "no"):
            return value.strip().lower() in ("true", "1", "on", "yes")
        raise ValueError("must be true or false")
    if f.kind is str:
        if not isinstance(value, str):
            raise ValueError("must be text")
        return value.strip()
    if isinstance(value, bool):
        raise ValueError("must be a number")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError("must be a number") from None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError("must be a finite number")
    if f.kind is int:
        if float(value) != int(value):
            raise ValueError(f"must be a whole number, not {value}")
        return int(value)
    return float(value)


def validate(raw: dict[str, Any] | None = None, **overrides: Any) -> HParams:
    """Build HParams from untrusted input: missing keys take defaults, anything else is checked.

    Raises:
        HParamsError: listing every problem at once, each naming the field and the allowed range.
    """
    raw = {**(raw or {}), **overrides}
    if not isinstance(raw, dict):
        raise HParamsError(["hyperparameters must be a dictionary of name: value"])
    problems = [f"unknown setting {k!r} (known: {', '.join(FIELD_BY_NAME)})" for k in raw if k not in FIELD_BY_NAME]
    values = {}
    for f in FIELDS:
        if f.name not in raw or raw[f.name] is None:
            values[f.name] = f.default
            continue
        try:
            v = _coerce(f, raw[f.name])
        except ValueError as e:
            problems.append(f"{f.label} ({f.name}) {e}")
            continue
        if f.choices is not None:
            options = f.choices()
            if v not in options:
                problems.append(f"{f.label} ({f.name}) must be one of {', '.join(options)}, not {v!r}")
                continue
        if f.low is not None and not (f.low <= v <= f.high):
            problems.append(f"{f.label} ({f.name}) must be between {_fmt(f.low)} and {_fmt(f.high)}, not {_fmt(v)}")
            continue
        values[f.name] = v
    if problems:
        raise HParamsError(problems)
    return HParams(**values)
