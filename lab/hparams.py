"""Every hyperparameter, declared once: type, range, default and help.

`HParams` is the one declaration: each field's type and default, and through `setting(...)` its
label, help and allowed range. `FIELDS` is read off it, in the same order: the Train tab builds its
controls from `FIELDS`, the server validates whatever arrives (a Gradio API caller can send values
no slider allows), and every run saves its `HParams`. Choices that come from a registry (datasets,
models, optimizers) are looked up lazily, so importing this module imports no framework.
"""

from __future__ import annotations

import dataclasses
import decimal
import math
import typing
import urllib.parse
from dataclasses import asdict, dataclass
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
    # Exact values the control offers (the learning rate's ladder, as in TF Playground): the value
    # shown is the value trained, and a link round-trips exactly. Other values in range stay valid.
    ladder: tuple[float, ...] | None = None
    choices: Callable[[], list[str]] | None = None
    # Values accepted beyond `choices` (a student's own dataset id); checked for existence later.
    also_valid: Callable[[str], bool] | None = None
    group: str = "main"  # where the Train tab shows it: main, augment or transfer


def setting(default: Any, label: str, help: str, low: float | None = None, high: float | None = None,
            step: float | None = None, **more: Any) -> Any:
    """One HParams field: its default, and (kept for `FIELDS`) how it is shown and checked.

    `more` takes Field's other options: ladder, choices, also_valid, group.
    """
    return dataclasses.field(default=default, metadata={"setting": dict(label=label, help=help, low=low, high=high,
                                                                        step=step, **more)})


LEARNING_RATES = (0.00001, 0.00003, 0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


def number_text(value: float) -> str:
    """A number as a student reads it: 0.00001, not 1e-05 (and as exact as the float itself)."""
    text = format(decimal.Decimal(repr(float(value))), "f")  # repr: the shortest text that reads back exactly
    return text.rstrip("0").rstrip(".") if "." in text else text


def _datasets() -> list[str]:
    from lab.datasets import DATASETS

    return list(DATASETS)


def _is_user_dataset(name: str) -> bool:
    from lab.user_datasets import is_dataset_id

    return is_dataset_id(name)


def _models() -> list[str]:
    from models import MODELS

    return list(MODELS)


def _optimizers() -> list[str]:
    from lab.optimizers import OPTIMIZERS

    return list(OPTIMIZERS)


@dataclass(frozen=True)
class HParams:
    """One experiment's settings (validated: build it with `validate` from anything untrusted)."""

    dataset: str = setting("digits", "Dataset", "The images to learn from.", choices=_datasets, also_valid=_is_user_dataset)
    model: str = setting("mlp", "Model", "The network architecture.", choices=_models)
    optimizer: str = setting("adam", "Optimizer", "How the weights are updated from the gradient.", choices=_optimizers)
    learning_rate: float = setting(3e-3, "Learning rate", "Size of each update step. Too high and the loss diverges; too low and nothing happens.", 1e-5, 1.0, ladder=LEARNING_RATES)
    batch_size: int = setting(32, "Batch size", "Images per update step (per device).", 1, 1024, 1)
    epochs: int = setting(15, "Epochs", "Passes over the training images.", 1, 200, 1)
    validation_split: float = setting(0.2, "Validation fraction", "Share of images held out to measure accuracy on unseen data.", 0.05, 0.5, 0.05)
    seed: int = setting(42, "Seed", "Same seed, same shuffle and starting weights: a repeatable experiment.", 0, 2**31 - 1, 1)
    # Augmentation: random changes to the training images (never to validation images); 0 = off.
    augment_flip: bool = setting(False, "Flip", "Mirror images left-right at random (bad for digits: a mirrored 3 is not a 3).", group="augment")
    augment_rotation: float = setting(0.0, "Rotation", "Random rotation, as a fraction of a full turn (0 = off).", 0.0, 0.25, 0.01, group="augment")
    augment_zoom: float = setting(0.0, "Zoom", "Random zoom in or out by up to this fraction (0 = off).", 0.0, 0.5, 0.05, group="augment")
    augment_translate: float = setting(0.0, "Shift", "Random shift up/down and left/right by up to this fraction of the image (0 = off).", 0.0, 0.3, 0.05, group="augment")
    augment_contrast: float = setting(0.0, "Contrast", "Random contrast change by up to this fraction (0 = off).", 0.0, 0.9, 0.1, group="augment")
    augment_brightness: float = setting(0.0, "Brightness", "Random brightening or darkening by up to this fraction (0 = off).", 0.0, 0.9, 0.1, group="augment")
    augment_color: float = setting(0.0, "Colour jitter", "Random changes of saturation and hue (colour images only; 0 = off).", 0.0, 1.0, 0.1, group="augment")
    augment_randaugment: float = setting(0.0, "RandAugment", "Two random operations per image from a list of many, at this strength (0 = off).", 0.0, 1.0, 0.1, group="augment")
    augment_erasing: float = setting(0.0, "Random erasing", "Chance of blanking out a random rectangle of each image (0 = off).", 0.0, 1.0, 0.1, group="augment")
    augment_mixup: float = setting(0.0, "MixUp", "Blend pairs of images and their labels; the strength shapes how much (0 = off).", 0.0, 1.0, 0.1, group="augment")
    augment_cutmix: float = setting(0.0, "CutMix", "Paste a patch of one image into another and mix the labels by area (0 = off).", 0.0, 1.0, 0.1, group="augment")
    augment_gridmask: float = setting(0.0, "GridMask (keras-cv)", "Hide a grid of squares, at this ratio (needs keras-cv; 0 = off).", 0.0, 0.9, 0.1, group="augment")
    augment_channel_shuffle: bool = setting(False, "Channel shuffle (keras-cv)", "Swap the red, green and blue channels at random (needs keras-cv).", group="augment")
    augment_cutout: float = setting(0.0, "Cutout (keras-cv)", "Cut out one random square up to this fraction of the image (needs keras-cv; 0 = off).", 0.0, 0.5, 0.05, group="augment")
    # Transfer learning: only for the models with a pretrained backbone.
    fine_tune_epochs: int = setting(0, "Fine-tune epochs", "Transfer models: after the new head has trained, unfreeze the backbone's top layers and train this many more epochs at a tenth of the learning rate (0 = off).", 0, 50, 1, group="transfer")
    fine_tune_layers: int = setting(20, "Layers to unfreeze", "Transfer models: how many of the backbone's top layers fine-tuning trains (batch-norm layers stay frozen).", 1, 200, 1, group="transfer")

    @property
    def total_epochs(self) -> int:
        """Epochs of the whole job: the head's, then fine-tuning's (charts span both)."""
        return self.epochs + self.fine_tune_epochs

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


def _fields_of(cls) -> tuple[Field, ...]:
    kinds = typing.get_type_hints(cls)  # the annotations are text here (from __future__ import annotations)
    return tuple(Field(f.name, kinds[f.name], f.default, **f.metadata["setting"]) for f in dataclasses.fields(cls))


FIELDS: tuple[Field, ...] = _fields_of(HParams)
FIELD_BY_NAME = {f.name: f for f in FIELDS}


MAX_NAMED = 3  # unknown keys named in a refusal
MAX_SHOWN = 40  # characters of a caller's text echoed back


def _shown(text: Any) -> str:
    """A caller's key or value as quoted in a message, cut short: the answer must stay small."""
    text = str(text)
    return repr(text) if len(text) <= MAX_SHOWN else repr(text[:MAX_SHOWN]) + f"… ({len(text):,} characters)"


def _bound(value: Any) -> str:
    """A range's end (or the value refused) as the controls show numbers: 0.00001, not 1e-05."""
    return number_text(value) if isinstance(value, float) else _fmt(value)


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
    if isinstance(value, int) and abs(value) > 2**53:  # beyond any range here; float() would overflow
        digits = int(value.bit_length() * math.log10(2)) + 1  # str() refuses over 4,300 digits
        within = f" between {_bound(f.low)} and {_bound(f.high)}" if f.low is not None else ""
        raise ValueError(f"must be a number{within}, not one with about {digits:,} digits")
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
    if raw is not None and not isinstance(raw, dict):
        raise HParamsError(["hyperparameters must be a dictionary of name: value"])
    raw = {**(raw or {}), **overrides}
    unknown = [k for k in raw if k not in FIELD_BY_NAME]
    problems = []
    if unknown:
        # Name a few, never all: an API caller can send 200,000 keys, and the answer must stay short.
        named = ", ".join(_shown(k) for k in unknown[:MAX_NAMED])
        more = f" and {len(unknown) - MAX_NAMED:,} more" if len(unknown) > MAX_NAMED else ""
        problems.append(f"unknown setting{'s' if len(unknown) > 1 else ''} {named}{more} "
                        f"(known: {', '.join(FIELD_BY_NAME)})")
    values = {}
    for f in FIELDS:
        if f.name not in raw or raw[f.name] is None:
            values[f.name] = f.default
            continue
        try:
            v = _coerce(f, raw[f.name])
        except (ValueError, OverflowError) as e:
            problems.append(f"{f.label} ({f.name}) {e}")
            continue
        if f.choices is not None and not (f.also_valid and f.also_valid(v)):
            options = f.choices()
            if v not in options:
                problems.append(f"{f.label} ({f.name}) must be one of {', '.join(options)}, not {_shown(v)}")
                continue
        if f.low is not None and not (f.low <= v <= f.high):
            problems.append(f"{f.label} ({f.name}) must be between {_bound(f.low)} and {_bound(f.high)}, not {_bound(v)}")
            continue
        values[f.name] = v
    if not problems and values.get("fine_tune_epochs", 0) > 0 and not _is_transfer(values["model"]):
        problems.append(f"Fine-tune epochs (fine_tune_epochs) only apply to the transfer models "
                        f"({', '.join(_transfer_models())}); set it to 0 for {values['model']}")
    if problems:
        raise HParamsError(problems)
    return HParams(**values)


def _transfer_models() -> list[str]:
    from models import MODELS

    return [name for name, spec in MODELS.items() if spec.transfer]


def _is_transfer(model: str) -> bool:
    return model in _transfer_models()
