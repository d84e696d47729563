"""The lab's look: Gradio's Soft theme with text dark enough to read (WCAG 2 AA, 4.5:1).

Soft draws help text, slider ends and the footer in gray-400 (2.5:1 on white), labels in
indigo-500 on indigo-100 (3.6:1) and white on indigo-500/400 buttons (4.5:1, 3:1 when hovered).
tests/test_browser_a11y.py audits every tab with axe-core and fails below 4.5:1.
"""

from __future__ import annotations

import gradio as gr


def lab_theme() -> gr.themes.Base:
    """Soft, with secondary text, labels and primary buttons a shade or two darker."""
    return gr.themes.Soft().set(
        # help text under controls, slider min/max, "- or -" in uploads, the footer: gray-600 (7.6:1 on white)
        body_text_color_subdued="*neutral_600",
        block_info_text_color="*body_text_color_subdued",
        # the tinted labels of blocks and controls, and upload/webcam prompts: indigo-700 on indigo-100 (6.3:1)
        block_label_text_color="*primary_700",
        block_title_text_color="*primary_700",
        # primary buttons (Train, Add dataset…): white on indigo-600 (6.3:1), indigo-700 when hovered
        button_primary_background_fill="*primary_600",
        button_primary_background_fill_hover="*primary_700",
        # a chosen radio or checkbox label (the Capture tab's classes): white on indigo-600
        checkbox_label_background_fill_selected="*primary_600",
        # the selected tab's text and other accents: indigo-600 (6.3:1 on white)
        color_accent="*primary_600",
        # links in dark mode: indigo-400 on the page's near-black (6.2:1; Soft's indigo-500 is 4.3:1)
        link_text_color_dark="*primary_400",
        link_text_color_visited_dark="*primary_400",
        link_text_color_active_dark="*primary_300",
        link_text_color_hover_dark="*primary_300",
    )
