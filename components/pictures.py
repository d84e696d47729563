"""Pictures the lab shows (sample grid, augmentation preview, the Try tab's images) as gr.HTML.

Not gr.Image: Gradio 6 wraps a shown image in a <button> with no name and an <img alt="">
(Gradio 6.24 has no alt_text at all), and an empty gr.Image is a <div aria-label="Empty value">,
which ARIA forbids on a plain div. Here each picture is an <img> with alt text inside a
<figure> with a visible caption, and no picture is no markup at all.
"""

from __future__ import annotations

import base64
import html
import io

import gradio as gr
import numpy as np
from PIL import Image

FIGURE_CSS = "margin: 0; text-align: center;"
# Drawn like Gradio's own block labels (the theme's colours, light and dark).
CAPTION_CSS = ("display: table; margin: 0 0 var(--spacing-md); padding: var(--block-label-padding); "
               "border-radius: var(--block-label-radius); background: var(--block-label-background-fill); "
               "color: var(--block-label-text-color); font-size: var(--block-label-text-size); "
               "font-weight: var(--block-label-text-weight); line-height: var(--line-sm);")


def picture_box(caption: str, elem_id: str | None = None) -> gr.HTML:
    """An empty place for a picture; fill it with picture_html()."""
    return gr.HTML("", elem_id=elem_id, elem_classes=["lab-picture"], padding=False, container=False,
                   label=caption, show_label=False)


def picture_html(image: np.ndarray | None, alt: str, caption: str = "", height: int | None = None,
                 pixelated: bool = False) -> str:
    """`image` (uint8, H x W or H x W x 3/4) as a captioned <img> with alt text; "" for no image.

    Args:
        height: CSS pixels it is drawn tall, enlarged or shrunk (never wider than its box); by default
            its own size, shrunk to fit the box.
        pixelated: keep hard pixel edges when enlarged (small images: digits, the model's view).
    """
    if image is None:
        return ""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    picture = Image.fromarray(arr)
    if height and picture.height > 2 * height:  # a big photo: no more pixels than a sharp screen shows
        picture.thumbnail((10 * 2 * height, 2 * height))
    buf = io.BytesIO()
    picture.save(buf, format="PNG", optimize=False)
    src = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    style = "max-width: 100%; display: inline-block; object-fit: contain;"
    style += f" height: {int(height)}px; width: auto;" if height else " height: auto;"
    if pixelated:
        style += " image-rendering: pixelated;"
    cap = f'<figcaption style="{CAPTION_CSS}">{html.escape(caption)}</figcaption>' if caption else ""
    return (f'<figure style="{FIGURE_CSS}">{cap}<img src="{src}" alt="{html.escape(alt, quote=True)}" '
            f'style="{style}"></figure>')
