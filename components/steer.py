"""What a student's page takes from the teacher: the preset, the locks, and their nickname.

A light timer (STEER_SECONDS) reads only the class's version number; when the teacher pushed a
preset or changed the locks, the Train tab's controls take them (precedence, highest first: locks,
the preset, a settings link, the student's last settings: lab.classroom) and a locked control
offers only the allowed values and says the teacher set them. The server refuses anything else
anyway (lab.classroom.check, the queue's rule). Handlers answer {component: update}.
"""

from __future__ import annotations

import dataclasses

from dataclasses import dataclass

import gradio as gr

from lab.classroom import ClassroomError, Lock
from lab.hparams import FIELDS, HParams, HParamsError, number_text

from components.services import Services, dataset_choices, ensure_client
from components.train_tab import TrainTab, ladder_choices, values_to_hparams

STEER_SECONDS = 3  # how soon a pushed preset or a new lock reaches every open page
TEACHER_SET = "🔒 Set by your teacher:"


@dataclass
class StudentBar:
    nickname: gr.Textbox
    save: gr.Button
    said: gr.Markdown  # "You appear on the class board as …"
    note: gr.Markdown  # the teacher's locks and preset, in words; hidden when there are none
    seen: gr.State  # {"version", "preset"}: the class's steering this page shows
    due: gr.State  # set by the timer when the class's version moved: its change applies it
    timer: gr.Timer


def create_student_bar() -> StudentBar:
    """The nickname field and the teacher's note (above the tabs)."""
    # One slim line, even on a phone, where the Train button and the charts must stay on the first screen:
    # the label is read out (aria-label) but not shown; the placeholder says what the field is for.
    with gr.Row(equal_height=True, elem_id="student-bar"):
        nickname = gr.Textbox(label="Your name on the class board (optional)", show_label=False, max_length=24,
                              scale=3, min_width=120, lines=1, elem_id="nickname",
                              placeholder="Your nickname (optional)")
        save = gr.Button("Save name", scale=0, min_width=110, size="sm", elem_id="nickname-save")
    said = gr.Markdown(elem_id="nickname-said")
    note = gr.Markdown(visible=False, elem_id="teacher-note")
    return StudentBar(nickname, save, said, note, gr.State({"version": -1, "preset": -1}), gr.State(0),
                      gr.Timer(STEER_SECONDS))


def lock_words(lock: Lock) -> str:
    """`only mlp, small_cnn` or `1 to 20`, as a control's note says it."""
    return lock.describe().split(": ", 1)[1] if lock.allowed is None else f"only {lock.describe().split(': ', 1)[1]}"


def control_update(f, value, lock: Lock | None, own: list | None, missing: dict):
    """One control's update showing `value`, offering only what `lock` allows (or everything again).

    Args:
        own: the dataset dropdown's (label, value) choices, the student's own datasets included.
        missing: field -> why it cannot be used here (lab.augment.unavailable): such a control stays greyed.
    """
    info = f"{f.help} {missing.get(f.name, '')}".strip()
    if lock is not None:
        info = f"{info} {TEACHER_SET} {lock_words(lock)}."
    interactive = f.name not in missing and not (lock is not None and lock.allowed is not None and len(lock.allowed) == 1)
    if f.ladder:
        choices = [c for c in ladder_choices(f, value) if lock is None or lock.permits(c[1])]
        return gr.Dropdown(choices=choices, value=value, info=info, interactive=interactive)
    if f.choices is not None:
        choices = own if f.name == "dataset" and own is not None else [(c, c) for c in f.choices()]
        choices = [c for c in choices if lock is None or lock.permits(c[1])]
        return gr.Dropdown(choices=choices, value=value, info=info, interactive=interactive)
    if f.kind is bool:
        return gr.Checkbox(value=value, info=info, interactive=interactive)
    low, high = f.low, f.high
    if lock is not None:
        numbers = lock.allowed or ()
        low = min(numbers) if numbers else lock.low if lock.low is not None else f.low
        high = max(numbers) if numbers else lock.high if lock.high is not None else f.high
    if f.name == "seed":
        return gr.Number(value=value, minimum=low, maximum=high, info=info, interactive=interactive)
    return gr.Slider(minimum=low, maximum=high, value=value, info=info, interactive=interactive)


CLEARED = ("🗑 **Your teacher cleared the class:** every run, own dataset and webcam picture was deleted. "
           "Pick a dataset and press Train to start again.")


def note_markdown(locks: dict[str, Lock], preset: dict) -> str:
    """The teacher's note over the tabs: what is locked, what was pushed."""
    lines = []
    if locks:
        lines.append("🔒 **Your teacher set limits:** " + "; ".join(lock.describe() for lock in locks.values()) + ".")
    if preset:
        shown = ", ".join(f"{k} {number_text(v) if isinstance(v, float) else v}" for k, v in preset.items())
        lines.append(f"📌 **Your teacher's starting point:** {shown} (your Train tab took it; you may change what is not locked).")
    return "\n\n".join(lines)


def wire_student_bar(bar: StudentBar, tab: TrainTab, services: Services, session: gr.BrowserState, load_event):
    """Connect the nickname and the steering; `load_event` is the page's main load (the steering runs after it).
    Returns the event after which the controls are settled (the steering's, or `load_event` without a class)."""
    room = services.classroom
    if room is None:
        return load_event
    from lab import augment

    missing = augment.unavailable()

    def save(state, text):
        state = ensure_client(state)
        try:
            name = room.set_nickname(state["client"], text)
        except ClassroomError as e:
            return {bar.said: f"⚠️ {e}"}
        state["name"] = text.strip() if isinstance(text, str) else ""
        return {session: state, bar.said: f"You appear on the class board as **{name}**.", bar.nickname: gr.skip()}

    def apply(request: gr.Request, state, seen, *values):
        """Bring the controls in line with the class's preset and locks (on load, and when they change)."""
        state = ensure_client(state)
        owner = state["client"]
        update = {}
        teacher_page = request is not None and "teacher" in request.query_params
        if (not seen or seen.get("version", -1) < 0) and not teacher_page:  # a student's page just loaded: they join
            room.join(owner)
            if isinstance(state.get("name"), str) and state["name"]:
                try:
                    update[bar.said] = f"You appear on the class board as **{room.set_nickname(owner, state['name'])}**."
                    update[bar.nickname] = state["name"]
                except ClassroomError:
                    pass
        version, preset_version, locks, preset = room.steering()
        seen = seen if isinstance(seen, dict) else {}
        if seen.get("version") == version:
            return update or gr.skip()
        if not locks and not preset and seen.get("version", -1) < 0:  # a fresh page and nothing steered: as it is
            return {**update, bar.seen: {"version": version, "preset": preset_version, "clears": room.clears}}
        try:
            current = values_to_hparams(values)
        except HParamsError:
            current = HParams()
        # a preset is applied once each time it is pushed; locks apply every time
        fresh_preset = seen.get("preset") != preset_version and bool(preset)
        shown = room.settings_for(current) if fresh_preset else room.settings_for(current, preset=False)
        own = dataset_choices(services, owner)
        if shown.dataset not in [value for _, value in own]:  # deleted (the class was cleared): back to the default
            shown = room.settings_for(dataclasses.replace(shown, dataset=HParams().dataset), preset=False)
        for f, control in zip(FIELDS, tab.controls):
            update[control] = control_update(f, getattr(shown, f.name), locks.get(f.name), own, missing)
        note = note_markdown(locks, preset)
        if seen.get("version", -1) >= 0 and seen.get("clears", room.clears) != room.clears:
            note = (CLEARED + "\n\n" + note).strip()  # an open page learns why its runs and datasets went
        update[bar.note] = gr.Markdown(note, visible=bool(note))
        update[bar.seen] = {"version": version, "preset": preset_version, "clears": room.clears}
        return update

    def check(seen):
        version = room.steering()[0]
        return gr.skip() if isinstance(seen, dict) and seen.get("version") == version else version

    private = dict(api_visibility="private")
    outputs = [session, bar.seen, bar.note, bar.said, bar.nickname, *tab.controls]
    settled = load_event.then(apply, [session, bar.seen, *tab.controls], outputs, **private)
    bar.timer.tick(check, bar.seen, bar.due, **private, show_progress="hidden", concurrency_limit=None)
    bar.due.change(apply, [session, bar.seen, *tab.controls], outputs, **private, show_progress="hidden")
    bar.save.click(save, [session, bar.nickname], [session, bar.said, bar.nickname], **private)
    bar.nickname.submit(save, [session, bar.nickname], [session, bar.said, bar.nickname], **private)
    return settled
