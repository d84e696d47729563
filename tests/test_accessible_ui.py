"""The lab's accessibility choices that need no browser: the theme's contrast, pictures with alt text.

tests/test_browser_a11y.py audits the running lab with axe-core; these catch the same regressions
in a second, where no browser (or axe-core) is installed.
"""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

gr = pytest.importorskip("gradio")

from components.pictures import picture_html  # noqa: E402
from components.theme import lab_theme  # noqa: E402


def resolve(theme, name: str) -> str:
    """A theme variable's colour, following its `*other_variable` references."""
    value = getattr(theme, name)
    while isinstance(value, str) and value.startswith("*"):
        value = getattr(theme, value[1:])
    return value


def luminance(hex_colour: str) -> float:
    if hex_colour == "white":
        hex_colour = "#ffffff"
    rgb = [int(hex_colour.lstrip("#")[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("text, background", [
    ("body_text_color_subdued", "block_background_fill"),  # help text under a control
    ("body_text_color_subdued", "background_fill_primary"),  # slider ends, the footer
    ("block_info_text_color", "block_background_fill"),
    ("block_label_text_color", "block_label_background_fill"),  # the tinted labels
    ("block_title_text_color", "block_title_background_fill"),
    ("block_label_text_color", "block_background_fill"),  # "Drop File Here", "Click to Access Webcam"
    ("button_primary_text_color", "button_primary_background_fill"),  # Train
    ("button_primary_text_color", "button_primary_background_fill_hover"),
    ("checkbox_label_text_color_selected", "checkbox_label_background_fill_selected"),
    ("color_accent", "block_background_fill"),  # the selected tab
    ("color_accent", "background_fill_primary"),
])
def test_theme_text_has_aa_contrast(text, background):
    theme = lab_theme()
    fg, bg = resolve(theme, text), resolve(theme, background)
    assert contrast(fg, bg) >= 4.5, f"{text} {fg} on {background} {bg}: {contrast(fg, bg):.2f}:1"


def test_picture_html_is_an_img_with_alt_text_and_a_caption():
    grid = np.zeros((30, 40), np.uint8)
    html = picture_html(grid, 'Rows: "cats" & <dogs>', "Samples")
    assert re.search(r'<img src="data:image/png;base64,[^"]+" alt="Rows: &quot;cats&quot; &amp; &lt;dogs&gt;"', html)
    assert "<figcaption" in html and ">Samples</figcaption>" in html
    png = base64.b64decode(re.search(r"base64,([^\"]+)", html).group(1))
    assert Image.open(io.BytesIO(png)).size == (40, 30)


def test_picture_html_of_nothing_is_nothing_and_big_photos_shrink():
    assert picture_html(None, "alt") == ""
    photo = np.full((1000, 1500, 3), 200, np.uint8)
    html = picture_html(photo, "a photo", height=220)
    png = base64.b64decode(re.search(r"base64,([^\"]+)", html).group(1))
    assert Image.open(io.BytesIO(png)).size == (660, 440)  # twice the drawn height, same shape
    assert "height: 220px" in html


def test_counts_table_is_markdown_with_every_name_as_plain_text():
    import pandas as pd

    from components.data_tab import table_markdown

    md = table_markdown(pd.DataFrame({"class": ["cats", "a|b *c*"], "images": [1200, 3]}), "Images per class")
    assert md.splitlines() == ["**Images per class**", "", "| class | images |", "|---|---:|",
                               "| cats | 1,200 |", "| a\\|b \\*c\\* | 3 |"]
