"""What a download holds and what its model card says: the formats, the card (Markdown) and the
standalone snippet that classifies a picture exactly as the Try tab does (lab.images.prepare, written
out with numpy and Pillow only). Pure text: no model is touched here; lab.export builds the files.

Part of the engine: no gradio, no keras.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

import numpy as np

from lab import datasets
from lab.images import MAX_SIDE, MIN_INK_CONTRAST, MIN_INK_FRACTION, PIXEL_MAX, ImageLook
from lab.runs import RunInfo

CARD = "MODEL_CARD.md"
SCRIPT = "classify.py"  # the card's snippet, also as a file in each download
EXAMPLE = "example.png"  # one of the run's validation pictures, for the snippet to classify


@dataclass(frozen=True)
class Format:
    name: str
    label: str  # what the page's menu says
    model_file: str  # the file (or folder) the model is in, inside the download ("" for the card alone)
    needs: str  # what the snippet needs installed
    about: str  # one sentence for the card


FORMATS: dict[str, Format] = {
    "keras": Format("keras", "Keras (.keras)", "model.keras", "keras tensorflow",
                    "The Keras 3 model file: `keras.saving.load_model` reads it (weights and architecture)."),
    "savedmodel": Format("savedmodel", "TensorFlow SavedModel (folder, zipped)", "saved_model", "tensorflow",
                         "A TensorFlow SavedModel for inference (TF Serving, TensorFlow.js converter): its `serve` "
                         "function takes a batch of pictures and returns probabilities."),
    "tflite": Format("tflite", "TFLite, float32 (phones, Raspberry Pi)", "model.tflite", "tensorflow (or ai-edge-litert)",
                     "A TensorFlow Lite (LiteRT) model with float32 weights, for phones and small computers."),
    "tflite_int8": Format("tflite_int8", "TFLite, int8 quantized (microcontrollers, Coral)", "model_int8.tflite",
                          "tensorflow (or ai-edge-litert)",
                          "A TensorFlow Lite (LiteRT) model quantized to 8-bit integers (post-training quantization, "
                          "calibrated on this run's own training pictures): about 4x smaller and faster on small devices, "
                          "usually as accurate within a point or two."),
    "card": Format("card", "Model card only (Markdown)", "", "keras tensorflow",
                   "The model card alone; its snippet is for the Keras file (download it too)."),
}
FORMAT_NAMES = tuple(FORMATS)


# --- the model card and its snippet ------------------------------------------------------------

READ = '''
def read(path):
    """The picture as the lab reads it: first frame, at most MAX_SIDE pixels a side, upright,
    transparency over white, RGB or grayscale."""
    im = Image.open(path)
    im.seek(0)
    if im.format == "JPEG" and max(im.size) > MAX_SIDE:
        im.draft(None, (MAX_SIDE, MAX_SIDE))  # a big JPEG decodes straight to a smaller size
    im.load()
    if max(im.size) > MAX_SIDE:
        if im.mode not in ("RGB", "L", "RGBA", "LA"):
            im = flat(im)
        s = MAX_SIDE / max(im.size)
        size = (max(1, min(MAX_SIDE, round(im.width * s))), max(1, min(MAX_SIDE, round(im.height * s))))
        im = im.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)
    return flat(ImageOps.exif_transpose(im))


def flat(im):
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        gray = im.mode in ("LA", "La", "L", "1")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, im.convert("RGBA")).convert("L" if gray else "RGB")
    return im if im.mode in ("RGB", "L") else im.convert("L" if im.mode == "1" else "RGB")


def border(g):
    return np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])


def prepare(im):
    """The model's input: float32 (HEIGHT, WIDTH, CHANNELS), 0..1 (pixel / 255)."""
    im = im.convert("L" if CHANNELS == 1 else "RGB")
    px = np.asarray(im, dtype=np.float32).reshape(im.height, im.width, -1)
    gray = px.mean(axis=-1) if CHANNELS == 3 else px[..., 0]
    if LIGHT_ON_DARK and np.median(border(gray)) > 127.5:  # dark ink on light paper: invert
        px, gray = 255.0 - px, 255.0 - gray
'''
RESIZE = '''    u8 = np.rint(px).astype(np.uint8)
    small = Image.fromarray(u8[..., 0] if CHANNELS == 1 else u8)
    out = np.asarray(small.resize((WIDTH, HEIGHT), Image.Resampling.LANCZOS))
    return out.reshape(HEIGHT, WIDTH, CHANNELS).astype(np.float32) / 255.0
'''
FIT = '''    out = fit_to_content(px, gray)
    return out.reshape(HEIGHT, WIDTH, CHANNELS).astype(np.float32) / 255.0


def otsu(values):
    hist, edges = np.histogram(values, bins=256, range=(0.0, 256.0))
    p = hist / max(hist.sum(), 1)
    omega, mu = np.cumsum(p), np.cumsum(p * edges[:-1])
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu[-1] * omega - mu) ** 2 / (omega * (1.0 - omega))
    return float(edges[int(np.nanargmax(between))]) if np.isfinite(between).any() else 0.0


def fit_to_content(px, gray):
    """Crop to the drawn object, centre it with MARGIN around it, area-average down, stretch to 255."""
    paper = np.median(np.stack([border(px[..., c]) for c in range(px.shape[-1])], -1), axis=0)
    ink = np.abs(px - paper)
    ink_gray = np.abs(gray - float(np.median(border(gray))))
    blank = np.zeros((HEIGHT, WIDTH, CHANNELS), np.uint8)
    if float(ink_gray.max()) < MIN_INK_CONTRAST:  # nothing drawn
        return blank
    mask = ink_gray > max(otsu(ink_gray), MIN_INK_FRACTION * float(ink_gray.max()))
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    crop = np.where(mask[..., None], ink, 0.0)[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = crop.shape[:2]
    out_h = max(1, round(max(h, w / (WIDTH / HEIGHT)) * (1 + 2 * MARGIN)))
    out_w = max(1, round(out_h * (WIDTH / HEIGHT)))
    canvas = np.zeros((out_h, out_w, crop.shape[2]), np.float32)
    y0, x0 = (out_h - h) // 2, (out_w - w) // 2
    canvas[y0:y0 + h, x0:x0 + w] = crop
    small = np.stack([np.asarray(Image.fromarray(canvas[..., c]).resize((WIDTH, HEIGHT), Image.Resampling.BOX))
                      for c in range(canvas.shape[2])], axis=-1)
    if float(small.max()) <= 0:
        return blank
    out = np.clip(np.rint(small * (255.0 / float(small.max()))), 0, 255)
    if not LIGHT_ON_DARK and np.median(border(gray)) > 127.5:
        out = 255.0 - out  # back to dark ink on light paper
    return out.astype(np.uint8)
'''
RUN = {
    "keras": '''
import keras  # Keras 3 (any backend)
{custom}model = keras.saving.load_model("model.keras", compile=False)
probs = np.asarray(model.predict(x[None], verbose=0))[0]
''',
    "savedmodel": '''
import tensorflow as tf

model = tf.saved_model.load("saved_model")
probs = model.serve(tf.constant(x[None])).numpy()[0]
''',
    "tflite": '''
try:
    from ai_edge_litert.interpreter import Interpreter  # pip install ai-edge-litert
except ImportError:
    import tensorflow as tf
    Interpreter = tf.lite.Interpreter

interpreter = Interpreter(model_path="{file}")
interpreter.allocate_tensors()
inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
batch = x[None]
if inp["dtype"] != np.float32:  # an integer input: quantize (q = x / scale + zero point)
    scale, zero = inp["quantization"]
    limits = np.iinfo(inp["dtype"])
    batch = np.clip(np.round(batch / scale + zero), limits.min, limits.max).astype(inp["dtype"])
interpreter.set_tensor(inp["index"], batch)
interpreter.invoke()
probs = interpreter.get_tensor(out["index"])[0]
if out["dtype"] != np.float32:  # an integer output: back to probabilities ((q - zero point) * scale)
    scale, zero = out["quantization"]
    probs = (probs.astype(np.float32) - zero) * scale
''',
}


def snippet(info: RunInfo, fmt: str) -> str:
    """A standalone Python script (numpy, Pillow and the format's runtime; not the lab) that
    classifies a picture with the download's model exactly as the Try tab does (lab.images.prepare
    for the run's look). `python classify.py picture.png`; without an argument, example.png."""
    look = info.look
    fmt = "keras" if fmt == "card" else fmt
    spec = FORMATS[fmt]
    custom = ""
    if info.hparams.model == "tiny_vit":
        custom = ("import models  # this model uses Vision Lab's own layers: run this from the lab's folder\n"
                  "\n")
    run = RUN["tflite" if fmt.startswith("tflite") else fmt].format(file=spec.model_file, custom=custom)
    head = (f'"""Classify a picture with the Vision Lab run {info.run_id} ({info.title()}), as the lab\'s Try tab does.\n\n'
            f"Needs: pip install numpy pillow {spec.needs}\n"
            f"Use:   python {SCRIPT} picture.png   (without a picture: {EXAMPLE}, one of the run's validation pictures)\n"
            '"""\n'
            "import sys\n\nimport numpy as np\nfrom PIL import Image, ImageOps\n\n"
            f"CLASSES = {list(info.class_names)!r}\n"
            f"HEIGHT, WIDTH, CHANNELS = {look.height}, {look.width}, {look.channels}  # "
            f"{'grayscale' if look.channels == 1 else 'RGB colour'}\n"
            f"LIGHT_ON_DARK = {look.light_on_dark}  # {'the model saw light strokes on a dark background' if look.light_on_dark else 'pictures are used as they are'}\n"
            f"MAX_SIDE = {MAX_SIDE}  # pictures are shrunk to this many pixels a side first\n")
    if look.fit_to_content:
        head += (f"MARGIN = {look.margin!r}  # empty border around the cropped object, per side, as a fraction of its size\n"
                 f"MIN_INK_CONTRAST, MIN_INK_FRACTION = {MIN_INK_CONTRAST!r}, {MIN_INK_FRACTION!r}  # what counts as drawn\n")
    body = "\n" + READ + (FIT if look.fit_to_content else RESIZE)
    tail = ("\n\nx = prepare(read(sys.argv[1] if len(sys.argv) > 1 else " + repr(EXAMPLE) + "))\n" + run +
            "best = int(np.argmax(probs))\n"
            'print(f"{CLASSES[best]} ({probs[best]:.1%})")\n')
    return head + body + tail


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _md(text) -> str:
    """A student's text (dataset and class names) as plain Markdown text."""
    text = str(text).replace("\\", "\\\\").replace("\n", " ")
    for ch in "`*[]<>#!|":
        text = text.replace(ch, "\\" + ch)
    # an underscore inside a word (small_cnn) is plain text; at a word's edge it could start emphasis
    return re.sub(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])", r"\\_", text)


def input_description(look: ImageLook, quantization: dict | None = None) -> list[str]:
    """The card's bullet points on the exact input (and the int8 model's integer scales)."""
    colour = "grayscale, 1 channel" if look.channels == 1 else "RGB colour, 3 channels"
    lines = [
        f"- **Shape:** a batch of pictures, `(batch, {look.height}, {look.width}, {look.channels})` "
        f"(height, width, channels; {colour}), float32.",
        f"- **Scaling:** pixel value / {PIXEL_MAX:g}, so 0 is black and 1 is white (no mean subtraction: "
        "the model does any other normalisation itself).",
        "- **Reading the picture:** the first frame, turned upright (EXIF), transparency over white, shrunk to at "
        f"most {MAX_SIDE} pixels a side.",
    ]
    if look.light_on_dark:
        lines.append("- **Light on dark:** the model was trained on light strokes on a dark background; a picture "
                     "whose border is mostly light (median over 127.5) is inverted first (255 - pixel).")
    else:
        lines.append("- **Colours as they are:** no inversion.")
    if look.fit_to_content:
        lines.append(f"- **Crop:** the object is found (pixels that differ from the border's colour by more than {MIN_INK_CONTRAST} "
                     f"and by more than Otsu's threshold and {MIN_INK_FRACTION:.0%} of the strongest), cropped, centred on a canvas of the "
                     f"model's shape with " + (f"{look.margin:g} of its size as an empty margin per side" if look.margin else "no margin")
                     + ", area-averaged "
                     f"down to {look.width}×{look.height} (Pillow's BOX filter) and stretched so its brightest pixel is "
                     "255. A picture with nothing drawn becomes all zeros.")
    else:
        lines.append(f"- **Resize:** the whole picture is resized to {look.width}×{look.height} with Pillow's LANCZOS "
                     "filter, without keeping its shape (no crop).")
    lines.append("- **Output:** one probability per class, in the order of the class table above (softmax).")
    if quantization:
        (idt, isc, izp), (odt, osc, ozp) = quantization["input"], quantization["output"]
        lines.append(f"- **int8 model's input:** {idt}, scale {isc:.6g}, zero point {izp:g}: q = round(x / {isc:.6g}) + {izp:g}"
                     + (" — that is, the prepared pixels 0..255 themselves." if idt == "uint8" and abs(isc * 255 - 1) < 1e-3 and izp == 0 else "."))
        lines.append(f"- **int8 model's output:** {odt}, scale {osc:.6g}, zero point {ozp:g}: probability = (q - {ozp:g}) × {osc:.6g}.")
        if quantization.get("batch"):
            lines.append(f"- **int8 model's batch:** {quantization['batch']} picture at a time (its input shape is "
                         f"`({quantization['batch']}, {look.height}, {look.width}, {look.channels})`).")
    return lines


def model_card(info: RunInfo, fmt: str, data, figures, script: str, quantization: dict | None,
               params: int | None, has_example: bool) -> str:
    """The Markdown model card of one download."""
    spec = FORMATS[fmt]
    hp = info.hparams
    k = len(info.class_names)
    out = [f"# Model card: {_md(info.title())}", "",
           f"Exported from Vision Lab on {datetime.date.today().isoformat()}: run `{info.run_id}`, "
           f"trained {datetime.datetime.fromtimestamp(info.created).strftime('%Y-%m-%d %H:%M')} ({info.state}).", "",
           "## This download", "", spec.about, ""]
    if fmt != "card":
        out += [f"- `{spec.model_file}`: the model", f"- `{CARD}`: this card", f"- `{SCRIPT}`: the snippet below"]
        if has_example:
            out.append(f"- `{EXAMPLE}`: one of the run's validation pictures, for trying the snippet")
        out.append("")
    dataset = info.dataset_title or hp.dataset
    out += ["## Data", "", f"- **Dataset:** {_md(dataset)}" + ("" if info.dataset_title else " (one of Vision Lab's built-in datasets)"),
            f"- **Classes:** {k}; pictures split once into training and validation "
            f"({_pct(hp.validation_split)} held out for validation, seed {hp.seed}).", ""]
    if data is not None:
        train, val = datasets.split(data, hp.validation_split, hp.seed)
        n_train, n_val = np.bincount(data.y[train], minlength=k), np.bincount(data.y[val], minlength=k)
        out += ["| # | Class | Training pictures | Validation pictures |", "|---|---|---|---|"]
        out += [f"| {i} | {_md(name)} | {n_train[i]} | {n_val[i]} |" for i, name in enumerate(info.class_names)]
        out += [f"| | **total** | {int(n_train.sum())} | {int(n_val.sum())} |", ""]
    else:
        out += ["The dataset is no longer on the lab, so its counts are not known here. Classes, in output order: "
                + ", ".join(f"{i}: {_md(n)}" for i, n in enumerate(info.class_names)), ""]
    out += ["## Training", "", f"- **Model:** `{hp.model}`" + (f", {params:,} parameters" if params else ""),
            f"- **State:** {info.state}" + (f", trained in {info.train_seconds:.0f} s" if info.train_seconds else ""), "",
            "| Hyperparameter | Value |", "|---|---|"]
    settings = hp.to_dict()
    # augmentations that were off say nothing; the others are the run's exact settings (lab.hparams)
    shown = {n: v for n, v in settings.items() if not (n.startswith("augment_") and not v)}
    out += [f"| `{name}` | `{value}` |" for name, value in shown.items()]
    if len(shown) < len(settings):
        out += ["| augmentation | " + ("none |" if not any(n.startswith("augment_") for n in shown) else "the others off |")]
    out += ["", "## How well it does", ""]
    if figures is not None:
        out += [f"- **Validation accuracy:** {_pct(figures.accuracy)} on {figures.total} validation pictures "
                f"(guessing would score {_pct(figures.chance)}).", "",
                "| Class | Precision | Recall | Validation pictures |", "|---|---|---|---|"]
        out += [f"| {_md(name)} | {_pct(s.precision)} | {_pct(s.recall)} | {s.support} |"
                for name, s in figures.per_class().items()]
        note = figures.weights_note()
        out += [""] + ([note, ""] if note else []) + [f"⚠️ {v}" for v in figures.verdicts()]
        out += [""] if figures.verdicts() else []
    else:
        out += [f"- **Validation accuracy:** {_pct(info.val_accuracy)} (the last epoch's; per-class figures need the "
                "run's dataset, which is gone).", ""]
    if fmt == "tflite_int8":
        out += ["The int8 model's own figures can differ from these by a point or so (quantization rounds every "
                "weight and activation to 256 levels).", ""]
    out += ["## The input it expects", ""] + input_description(info.look, quantization) + [""]
    out += ["## Intended use and limits", "",
            "- Made in a classroom to learn how image classifiers behave: for experiments and demos, not for "
            "decisions about people, health, safety or money.",
            f"- It only knows these {k} classes: any other picture still gets one of them, often with high confidence.",
            "- The validation pictures come from the same collection as the training pictures; pictures taken "
            "elsewhere (other cameras, light, backgrounds, handwriting) are usually classified less well than the "
            "figures above say.",
            f"- It was trained on {data.x.shape[0] if data is not None else 'a few hundred or thousand'} small pictures "
            f"({info.look.width}×{info.look.height}); it inherits that dataset's gaps and biases.", "",
            "## Use it in Python", "",
            f"The same code is in `{SCRIPT}`" + (f"; it classifies `{EXAMPLE}` when given no picture." if has_example else ".")
            + " It does exactly what the lab's Try tab does to a picture, without the lab"
            + (" (except the import of the lab's own layers: this model needs them)." if "import models" in script else "."),
            "", "```python", script.rstrip(), "```", ""]
    return "\n".join(out)
