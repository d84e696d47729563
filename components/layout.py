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


# The runs board's table (components/runs_board.py); here so lab_app can read it without importing the engine.
BOARD_CSS = """
.runs-scroll { overflow-x: auto; }
.runs-scroll:focus-visible { outline: 2px solid var(--color-accent); outline-offset: 2px; }
.runs-scroll table { border-collapse: collapse; width: 100%; font-size: 0.9em; color: var(--body-text-color); }
.runs-scroll th, .runs-scroll td { border: 1px solid var(--border-color-primary); padding: 6px 8px; text-align: left;
                                   vertical-align: top; }
.runs-scroll th { background: var(--background-fill-secondary); font-weight: 600; }
.runs-scroll td:nth-child(1) { min-width: 11em; }  /* a phone scrolls the table sideways, never squeezes names */
.runs-scroll td:nth-child(5) { min-width: 10em; }
.runs-scroll td:not(:nth-child(1)):not(:nth-child(5)) { white-space: nowrap; }
.runs-scroll caption { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
"""

# The teacher's Class tab (components/class_tab.py): the board's table, and the projector over the whole page.
CLASS_CSS = """
#student-bar { flex-wrap: nowrap; align-items: center; }  /* the nickname bar: one line, on a phone too */
#class-board table { border-collapse: collapse; width: 100%; color: var(--body-text-color); }
#class-board th, #class-board td { border: 1px solid var(--border-color-primary); padding: 4px 8px; text-align: left; }
#class-board th { background: var(--background-fill-secondary); }
#class-board caption { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
#projector { position: fixed; inset: 0; z-index: 1000; overflow: auto; padding: 1.5rem 2rem;
             background: var(--body-background-fill); }
#projector-title, #projector-title * { font-size: 2.2rem !important; line-height: 1.3; }
"""
