"""Gradio UI: one create_*_tab() per file, each returning a small dataclass of its components.

Nothing here trains or decodes images itself: handlers call the engine in `lab/`.
"""
