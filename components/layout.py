"""The Train tab on a phone: Train, the status, the charts and the runs board first, the knobs a tap away.

On a wide screen the knobs sit left of the charts. On a narrow one Gradio stacks the columns, which
put Train two and a half screens down, after every knob; here the chart column comes first instead,
a "Settings" link under Train jumps to the knobs, and a link there jumps back. Both links exist only
on narrow screens. tests/test_browser_runs.py checks it in a phone's viewport.
"""

from __future__ import annotations

import html

import gradio as gr

PHONE_WIDTH = 768  # CSS pixels: phones, and tablets held upright, get the stacked layout
MAIN_ID, KNOBS_ID = "train-main", "train-knobs"
CSS = f"""
.phone-only {{ display: none !important; }}
@media (max-width: {PHONE_WIDTH}px) {{
  .phone-only {{ display: block !important; }}
  #{MAIN_ID} {{ order: -1; }}
  #{KNOBS_ID}, #{MAIN_ID} {{ scroll-margin-top: 8px; }}
  .phone-link {{ text-align: left; }}
  .phone-link a {{ display: inline-block; padding: 10px 4px; font-weight: 600; }}
  /* Train and Stop side by side: one row less before the charts */
  #train-button, #stop-button {{ min-width: 0 !important; flex: 1 1 0 !important; }}
  #train-button {{ flex-grow: 2 !important; }}
  #{MAIN_ID} > .row:first-child {{ flex-wrap: nowrap !important; }}
  h1 {{ font-size: 1.5em !important; margin: 0 !important; }}
}}
"""


def phone_link(text: str, target: str, elem_id: str) -> gr.HTML:
    """A link to another place on the page, shown on narrow screens only (a finger-sized target)."""
    return gr.HTML(f'<a href="#{target}">{html.escape(text)}</a>', elem_id=elem_id,
                   elem_classes=["phone-only", "phone-link"], container=False, padding=False)
