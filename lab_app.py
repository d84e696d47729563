"""Vision Lab: train an image classifier with live charts, then try it on a webcam or a drawing.

    python lab_app.py                      # http://127.0.0.1:7860 on the bundled digits
    python lab_app.py --share              # a public link for a class
    python lab_app.py --teacher-key KEY    # the Class tab's key (else a random one is printed)

From a notebook cell:

    import lab_app; lab_app.launch(share=True)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of class
# Gradio keeps its last N events (default 10,000) for its monitoring page and rebuilds a pandas table of all
# of them after every event (every status poll and chart tick): that fragments the heap (+54 MB over a 300-job
# soak, bench/soak.py, against +5 MB at 500) and costs ~7 ms of CPU an event. 500 is plenty for that page.
os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "500")
# and it recomputes that table's summary (pandas) after every event unless told otherwise: ~1.4 ms of CPU, under the GIL,
# of every status poll (py-spy with 30 students polling: a third of the server's time per request). Only the
# monitoring page reads it (not enabled here): every 100 events is fresh enough.
os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "100")

import gradio as gr  # noqa: E402  (gradio does not import keras)

from components.layout import BOARD_CSS, CLASS_CSS, CSS as PHONE_CSS  # noqa: E402  (gradio only: keras is not imported yet)
from components.webcam import CSS as WEBCAM_CSS  # noqa: E402
from lab import backend, process  # noqa: E402  (must run before anything imports keras)

HERE = Path(__file__).resolve().parent
TITLE = "Vision Lab"
CSS = """
#train-status { min-height: 2.5em; font-size: 1.05em; }
#prediction-time { text-align: center; }
"""
CSS += WEBCAM_CSS  # the webcams' mirrored preview
CSS += PHONE_CSS + BOARD_CSS  # the Train tab on a phone: Train and the charts first; the runs table scrolls
CSS += CLASS_CSS  # the teacher's board and the projector


def build_app(runs_dir: str | os.PathLike | None = None, runtime=None, max_queue: int | None = None,
              new_students_per_address: int | None = None, teacher_key: str | None = None):
    """The whole lab as a gr.Blocks (not launched).

    Args:
        runs_dir: where runs are saved (created if missing); by default /data on a Space that
            has persistent storage, else ./runs.
        runtime: a lab.backend.Runtime; by default the devices are initialised here.
        max_queue: jobs that may wait at once for the whole class (default lab.jobs.MAX_QUEUE).
        new_students_per_address: new student identities one network address may bring in an
            hour (default lab.admission.NEW_PER_ADDRESS; behind a school NAT, a Colab share link
            or a Space every student has the same address).
        teacher_key: the key the Class tab (and every teacher endpoint) asks for; by default a random
            one nobody is told (launch() makes one and prints it).
    """
    from components.api import register_api
    from components.capture_tab import create_capture_tab, wire_capture_tab
    from components.class_tab import create_class_tab, wire_class_tab
    from components.steer import create_student_bar, wire_student_bar
    from components.data_tab import create_data_tab, describe, wire_data_tab
    from components.evaluate_panel import wire_evaluate_panel
    from components.runs_board import load_board, wire_runs_board
    from components.services import Services, browser_state, dataset_dropdown, ensure_client
    from components.train_tab import create_train_tab, describe_model, reattach, wire_train_tab
    from components.try_tab import create_try_tab, run_choices, wire_try_tab
    from lab.admission import NEW_PER_ADDRESS, Admission
    from lab.classroom import Classroom
    from lab.captures import CaptureStore
    from lab.hparams import HParams
    from lab.jobs import MAX_QUEUE, JobManager
    from lab.runs import RunStore
    from lab.slots import job_slots
    from lab.storage import DELETE_CACHE, DiskBudget, choose_runs_dir, persistent_secret
    from lab.user_datasets import Catalog, UserDatasets

    rt = runtime or backend.runtime()
    runs_path, storage_note = choose_runs_dir(runs_dir)
    runs = RunStore(runs_path)
    # The class's disk (VISION_LAB_DISK_BUDGET_GB): each save removes the oldest runs and datasets beyond it.
    runs.budget = DiskBudget().add_area("run", runs.root, forget=runs.forget)
    # Students' own datasets live beside the runs, in a folder of their own (kept or lost with them).
    user_datasets = UserDatasets(runs_path.parent / (runs_path.name + "-datasets"), budget=runs.budget)
    jobs = JobManager(runs, lambda: rt, catalog=Catalog(user_datasets), max_queue=max_queue or MAX_QUEUE,
                      slots=job_slots(rt))
    # Compiled programs are kept beside the runs (JAX), and the default job's are compiled now, in the
    # background, so the first Train of the lesson draws its first point as fast as a repeated one.
    cache_note = process.use_compile_cache(runs_path.parent / (runs_path.name + "-compiled"))
    if os.environ.get("VISION_LAB_WARM_UP", "1") != "0":
        jobs.warm_up(HParams())
    admission = Admission(NEW_PER_ADDRESS if new_students_per_address is None else new_students_per_address)
    captures = CaptureStore()  # every student's webcam captures, in memory until they become a dataset
    services = Services(jobs=jobs, runs=runs, accelerator=rt.summary(), datasets=user_datasets,
                        storage_note=storage_note, admission=admission,
                        classroom=Classroom(jobs, runs, user_datasets, key=teacher_key, captures=captures))

    with gr.Blocks(title=TITLE, delete_cache=DELETE_CACHE) as demo:  # uploads are not kept for ever
        # The key is kept beside the runs, so after a restart each browser's id still reads: students
        # find their runs and datasets again.
        session = browser_state(persistent_secret(runs_path))
        gr.Markdown(f"# 🔬 {TITLE}\nTrain an image classifier, watch it learn, then try it on your own drawings and webcam.")
        accelerator = gr.Markdown(accelerator_line(services.accelerator, jobs.warmth), elem_id="accelerator")
        warming = gr.Timer(1.0, active=jobs.warmth.startswith("warming"))  # until the warm-up has compiled
        for warning in [*rt.hints, storage_note]:
            if warning:
                gr.Markdown(f"⚠️ {warning}", elem_classes=["lab-warning"])
        with gr.Accordion("Accelerator details", open=False):
            gr.Markdown(accelerator_details(rt) + (f"\n- {cache_note[0].upper()}{cache_note[1:]}." if cache_note else ""))
        student_bar = create_student_bar()  # the nickname for the class board, the teacher's locks and preset
        with gr.Tab("Train"):
            train_tab = create_train_tab()
        with gr.Tab("Try"):
            try_tab = create_try_tab()
        with gr.Tab("Data"):
            data_tab = create_data_tab()
        with gr.Tab("Capture"):
            capture_tab = create_capture_tab()
        class_tab = create_class_tab()  # the teacher's console: shown on the ?teacher link, opened by the key

        register_api(services)  # first, so the public endpoints keep their plain names (/train, /stop)

        def accelerator_info() -> dict:
            """What trains (devices, Keras backend and why, precision) and whether the warm-up has compiled
            the default job's programs yet ("warm_up")."""
            return {**rt.describe(), "summary": rt.summary(), "warm_up": jobs.warmth}

        gr.api(accelerator_info, api_name="accelerator", concurrency_limit=None)
        wire_train_tab(train_tab, services, session, try_tab.run_dropdown, lambda s: run_choices(services, s))
        wire_try_tab(try_tab, services, session)
        wire_evaluate_panel(train_tab.evaluation, services, session, train_tab.new_run, demo)  # under the charts
        wire_runs_board(train_tab.board, services, session, train_tab.new_run, try_tab.run_dropdown,
                        lambda s: run_choices(services, s))
        wire_data_tab(data_tab, services, session, train_tab.control("dataset"))
        wire_capture_tab(capture_tab, services, session, captures, [train_tab.control("dataset"), data_tab.dataset],
                         demo)

        train_dataset = train_tab.control("dataset")

        def on_load(state, request: gr.Request):
            update = reattach(train_tab, services, session, state, dict(request.query_params) if request else None)
            state = update[session]
            # The dataset dropdowns list the student's own datasets too; a job's may be one of them.
            chosen = update.get(train_dataset)
            update[train_dataset] = dataset_dropdown(services, state, chosen if isinstance(chosen, str) else None)
            linked = request is not None and "dataset" in request.query_params
            if linked and isinstance(chosen, str) and chosen not in [v for _, v in update[train_dataset].choices]:
                # A link to a classmate's own dataset (private) or a deleted one: say so, or the student
                # trains on another dataset thinking it is the link's experiment.
                update[train_tab.status] += (f"\n\n⚠️ The link names a dataset that is not yours ({chosen.split('@')[0]}): "
                                             "own datasets are private. The other settings are the link's; pick a dataset.")
            # The Data tab's dropdown: the same choices (listing them reads every dataset's metadata).
            update[data_tab.dataset] = gr.Dropdown(choices=update[train_dataset].choices)
            update[try_tab.run_dropdown] = run_choices(services, state)
            return update

        main_load = demo.load(on_load, session,
                              [session, train_tab.status, train_tab.loss_plot, train_tab.accuracy_plot, train_tab.timer,
                               train_tab.seen, *train_tab.controls, train_tab.share_link, try_tab.run_dropdown,
                               data_tab.dataset],
                              api_visibility="private")
        # then the teacher's preset and locks over the link's or the last run's settings (components/steer.py)
        settled = wire_student_bar(student_bar, train_tab, services, session, main_load)
        settled.then(lambda: gr.Button(interactive=True), None, train_tab.train_button, api_visibility="private",
                     show_progress="hidden")  # Train, once the controls hold the link's and the teacher's settings
        wire_class_tab(class_tab, services, session, demo)
        def warm_tick():
            return {accelerator: accelerator_line(services.accelerator, jobs.warmth),
                    warming: gr.Timer(active=jobs.warmth.startswith("warming"))}

        warming.tick(warm_tick, None, [accelerator, warming], api_visibility="private", show_progress="hidden")
        demo.load(warm_tick, None, [accelerator, warming], api_visibility="private", show_progress="hidden")
        board_load, board_outputs = load_board(train_tab.board, services)
        demo.load(board_load, session, board_outputs, api_visibility="private")  # the runs board, latest two ticked
        if services.classroom is not None:  # the teacher cleared the class: an open page drops what was deleted
            def after_clear(seen, state):
                if not isinstance(seen, dict) or not seen.get("clears"):  # (then any steering change re-reads it)
                    return gr.skip()
                return {**board_load(state), try_tab.run_dropdown: run_choices(services, state)}

            student_bar.seen.change(after_clear, [student_bar.seen, session], [*board_outputs, try_tab.run_dropdown],
                                    api_visibility="private", show_progress="hidden")
        demo.load(lambda name, s: describe(data_tab, services, name, ensure_client(s)["client"]), [data_tab.dataset, session],
                  [data_tab.summary, data_tab.counts, data_tab.counts_plot, data_tab.grid], api_visibility="private")
        demo.load(lambda m, d, s: describe_model(services, m, d, s),
                  [train_tab.control("model"), train_tab.control("dataset"), session],
                  [train_tab.model_info, train_tab.model_layers], api_visibility="private")
    demo.queue(default_concurrency_limit=4)
    return demo


def accelerator_line(accelerator: str, warmth: str) -> str:
    """The line over the tabs: what trains, and whether the first job's programs are compiled yet."""
    return f"**Training on:** {accelerator}" + (f" · {warmth}" if warmth else "")


def accelerator_details(rt) -> str:
    """What was found and why, for the teacher checking a Colab runtime."""
    d = rt.describe()
    lines = [f"- **Devices:** {d['device_count']} × {d['device_kind']} ({d['replicas']} replica(s); the global batch is "
             f"the batch size × {d['replicas']})",
             f"- **Keras backend:** {d['backend']} — {d['reason']}",
             "- **Precision policy:** " + next((n for n in d["notes"] if n.startswith(d["policy"])), d["policy"])]
    lines += [f"- {n}" for n in d["notes"] if not n.startswith(d["policy"])]
    lines += [f"- ⚠️ {h}" for h in d["hints"]]
    return "\n".join(lines)


def launch(share: bool = False, host: str | None = None, port: int | None = None, runs_dir: str | None = None,
           backend_name: str | None = None, max_queue: int | None = None, new_students_per_address: int | None = None,
           teacher_key: str | None = None, **kwargs):
    """Start the lab (also from a notebook cell: shows it inline and prints the share link).

    `teacher_key` opens the Class tab (the teacher's console); by default $VISION_LAB_TEACHER_KEY,
    else a random key, printed here with the teacher's link.

    Extra keyword arguments go to gr.Blocks.launch, e.g. ssl_certfile and ssl_keyfile for https on a
    classroom LAN (browsers give the webcam only to https pages and localhost).
    """
    if kwargs.get("ssl_certfile"):
        kwargs.setdefault("ssl_verify", False)  # a classroom's certificate is usually self-signed
    choice = backend.configure(backend_name or os.environ.get(backend.BACKEND_ENV) or "auto")
    from components.theme import lab_theme

    print(f"Vision Lab: Keras backend {choice.backend} ({choice.reason})", flush=True)
    import secrets

    teacher_key = teacher_key or os.environ.get("VISION_LAB_TEACHER_KEY") or secrets.token_urlsafe(12)
    demo = build_app(runs_dir, max_queue=max_queue, new_students_per_address=new_students_per_address,
                     teacher_key=teacher_key)
    local = f"http://{host or '127.0.0.1'}:{port or 7860}/?teacher"
    print(f"Vision Lab: the teacher's console is the Class tab of {local} (or the share link + ?teacher); "
          f"teacher key: {teacher_key}", flush=True)
    from lab.storage import upload_limit

    kwargs.setdefault("max_file_size", upload_limit())  # VISION_LAB_MAX_UPLOAD_MB; launch() is Gradio's only place for it
    settle_heap()
    return demo.launch(share=share, server_name=host, server_port=port, theme=lab_theme(), css=CSS,
                       show_error=True, **kwargs)


def settle_heap() -> None:
    """Move everything alive at start-up (TensorFlow, JAX, Keras, Gradio, pandas: ~620,000 objects) out of
    the cyclic garbage collector's sight (gc.freeze).

    After each job lab.job_memory.job_memory runs a full gc.collect(), and Python runs one itself now and then;
    each walked all of those objects while holding the GIL: ~0.3 s on an idle 2-core machine, 0.5 s while
    training, during which no request was answered (py-spy --gil: 39% of the server's GIL time with 30
    students). Frozen objects are still freed by reference counting; only cycles among them are never
    collected, and what is alive at start-up is the program itself. Jobs' objects are created later and
    collected as before."""
    import gc

    gc.collect()
    gc.freeze()


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                   help="address to listen on (0.0.0.0 for a LAN or a Space)")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    p.add_argument("--share", action="store_true", help="create a public share link (needs internet)")
    p.add_argument("--runs-dir", default=None,
                   help="where trained runs are kept (default: /data/vision-lab/runs on a Space with persistent storage, else ./runs)")
    p.add_argument("--backend", default=os.environ.get(backend.BACKEND_ENV) or "auto", choices=backend.BACKENDS,
                   help="Keras backend (default auto, or $VISION_LAB_BACKEND): auto picks the framework that sees the "
                        "GPU or TPU, and JAX on a CPU where it is installed (faster there)"),
    p.add_argument("--max-queue", type=int, default=None,
                   help="jobs that may wait at once for the whole class (default 100)")
    p.add_argument("--new-students-per-address", type=int, default=None,
                   help="new students one network address may bring in an hour (default 200; 0 = no limit). "
                        "Behind a school NAT, a share link or a Space every student has the same address")
    p.add_argument("--teacher-key", default=None,
                   help="the key that opens the teacher's Class tab (default: $VISION_LAB_TEACHER_KEY, else a random "
                        "one, printed at start-up); students never need it")
    p.add_argument("--ssl-certfile", default=None,
                   help="certificate file (PEM) to serve https: browsers give the webcam only to https pages and "
                        "localhost, so use it with --host 0.0.0.0 on a classroom LAN (with --ssl-keyfile)")
    p.add_argument("--ssl-keyfile", default=None, help="the certificate's private key file (PEM)")
    args = p.parse_args(argv)
    if bool(args.ssl_certfile) != bool(args.ssl_keyfile):
        p.error("--ssl-certfile and --ssl-keyfile go together")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    try:
        launch(share=args.share, host=args.host, port=args.port, runs_dir=args.runs_dir, backend_name=args.backend,
               max_queue=args.max_queue, new_students_per_address=args.new_students_per_address,
               teacher_key=args.teacher_key,
               ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile)
    except (RuntimeError, ValueError) as e:
        sys.exit(f"Vision Lab could not start: {e}")


if __name__ == "__main__":
    main()
