"""The scripting API (gr.api): /train, /job_status, /stop, /predict, /explain, /add_dataset, /evaluate; /runs,
/run_metrics and /delete_run (components/runs_api.py); /export (a run's model and model card); the
teacher's /class_board, /set_locks, … and /set_nickname (components/class_api.py).

Everything that arrives here is untrusted: hyperparameters are validated by lab.hparams,
files are decoded by lab.images, and each failure is a gr.Error with a plain message.

Identity: one gradio_client `Client` is one student (its session), for the life of that Client.
Every job, run and dataset id is checked against it: another caller's gets the same answer as
one that does not exist.
"""

from __future__ import annotations

import gradio as gr
from gradio.data_classes import FileData

from lab import evaluation, explain, inference
from lab.archive import ArchiveError
from lab.datasets import DatasetError
from lab.hparams import HParamsError, validate
from lab.images import ImageError
from lab.jobs import JobError
from lab.evaluation import EvaluationError
from lab.export import ExportError
from lab.runs import RunNotFound

from components.evaluate_panel import api_answer, api_image
from components.class_api import register_class_api
from components.downloads import EXPORT_LIMIT, EXPORT_POOL, hand_out
from components.runs_api import register_runs_api
from components.services import PREDICT_LIMIT, PREDICT_POOL, Services, refused


def register_api(services: Services) -> None:
    """Declare the API endpoints inside the current gr.Blocks."""

    def owner_of(request: gr.Request | None) -> str:
        session = getattr(request, "session_hash", None)
        if not session:
            raise refused("no session: call the API through gradio_client (one Client is one student)")
        return "api-" + session

    def latest_run(owner: str) -> str:
        """The id of `owner`'s newest run (what an empty run_id means)."""
        latest = services.runs.latest(owner)
        if latest is None:
            raise refused("you have no trained run yet: call /train first")
        return latest.run_id

    def train(hparams: dict, request: gr.Request = None) -> dict:
        """Queue a training job. Keys are HParams field names; a missing key takes its default."""
        if not isinstance(hparams, dict):
            raise refused('hparams must be an object of name: value, for example {"model": "small_cnn", "epochs": 5}')
        owner = owner_of(request)
        try:
            hp = validate(hparams)
            services.admit(owner, request)
            job = services.jobs.submit(owner, hp)
        except (HParamsError, JobError) as e:
            raise refused(str(e)) from None
        view = services.jobs.view(job.job_id, owner)
        return {"job_id": job.job_id, "state": view.state, "position": view.position, "eta_s": view.eta_s,
                "hparams": hp.to_dict()}

    def job_status(job_id: str, since: int = 0, request: gr.Request = None) -> dict:
        """State (queued, running, done, stopped, failed), position in the queue and eta_s (seconds until it
        starts, or while running until it ends), metrics so far, message and run_id (your jobs only).

        `since`: how many metric rows you already have; only the rows after them come back in "metrics",
        and "metrics_total" counts them all, so a poll passes the previous answer's metrics_total (0: all)."""
        since = 0 if since is None else since
        if isinstance(since, bool) or not isinstance(since, (int, float)) or since != int(since) or since < 0:
            raise refused("since must be a whole number of metric rows, 0 or more")
        try:
            answer = services.jobs.view(job_id, owner_of(request)).to_json()
        except JobError as e:
            raise refused(str(e)) from None
        answer["metrics_total"] = len(answer["metrics"])
        answer["metrics"] = answer["metrics"][int(since):]
        return answer

    def stop(job_id: str, request: gr.Request = None) -> dict:
        """Stop one of your queued or running jobs; a partial run is kept."""
        try:
            job = services.jobs.stop(job_id, owner_of(request))
        except JobError as e:
            raise refused(str(e)) from None
        return {"job_id": job.job_id, "state": job.state, "message": job.message}

    def picture_and_run(image: FileData, run_id: str, request: gr.Request | None):
        """(the uploaded picture's path, the caller's run_id, the loaded run): /predict's and /explain's
        shared start (an empty run_id means the caller's latest run; another's run is RunNotFound)."""
        path = image.get("path") if isinstance(image, dict) else getattr(image, "path", None)
        if not path:
            raise refused("send an image file (gradio_client.handle_file(path))")
        owner = owner_of(request)
        run_id = run_id or latest_run(owner)
        try:
            return path, run_id, services.runs.load(run_id, owner)
        except RunNotFound as e:
            raise refused(str(e)) from None

    def predict(image: FileData, run_id: str = "", request: gr.Request = None) -> dict:
        """Classify an image file with one of your runs (an empty run_id means your latest run)."""
        path, run_id, run = picture_and_run(image, run_id, request)
        try:
            result = inference.predict(run, path)
        except ImageError as e:
            raise refused(str(e)) from None
        return {**result.as_dict(), "run_id": run_id}

    def add_dataset(archive: FileData, name: str = "", request: gr.Request = None) -> dict:
        """Add a dataset from a zip of class folders (cats/..., dogs/...); train on it by passing the
        returned `dataset` to /train. Returns dataset, classes, counts (pictures per class) and
        skipped (reason -> files left out)."""
        path = archive.get("path") if isinstance(archive, dict) else getattr(archive, "path", None)
        if not path:
            raise refused("send a zip file (gradio_client.handle_file(path))")
        if name is not None and not isinstance(name, str):
            raise refused("name must be text")
        owner = owner_of(request)
        services.admit(owner, request)
        try:
            info, imported = services.datasets.add_zip(owner, path, name or "")
        except (ArchiveError, DatasetError) as e:
            raise refused(str(e)) from None
        return {"dataset": info.dataset_id, "name": info.name, "classes": list(info.class_names),
                "counts": info.counts, "skipped": imported.skipped, "notes": imported.notes()}

    for fn in (train, job_status, stop):
        gr.api(fn, api_name=fn.__name__, concurrency_limit=None)

    def explain_image(image: FileData, run_id: str = "", request: gr.Request = None) -> dict:
        """Classify an image file with one of your runs and show where the model looks (an empty run_id means
        your latest run): label, confidences, method (grad-cam or saliency), ms, and heatmap: an image file,
        the picture as the model sees it with the heat over it, at the size the Try tab shows it."""
        path, run_id, run = picture_and_run(image, run_id, request)
        try:
            result = explain.explain(run, path)
        except (ImageError, explain.ExplainError) as e:
            raise refused(str(e)) from None
        return {**result.as_dict(), "run_id": run_id, "heatmap": api_image(result.overlay, "heatmap.png")}

    # each decodes a picture of up to 16 MP: one bounded pool with the Try tab's predictions
    gr.api(predict, api_name="predict", concurrency_id=PREDICT_POOL, concurrency_limit=PREDICT_LIMIT)
    gr.api(explain_image, api_name="explain", concurrency_id=PREDICT_POOL, concurrency_limit=PREDICT_LIMIT)
    gr.api(add_dataset, api_name="add_dataset", concurrency_limit=2)  # decoding pictures is CPU work

    def evaluate(run_id: str = "", request: gr.Request = None) -> dict:
        """Where one of your runs goes wrong on its validation images (an empty run_id means your latest
        run): classes, confusion (rows true class, columns predicted), per_class {class: {precision, recall,
        support}}, accuracy, and mistakes [{index, true, predicted, confidence, image}], most confident
        first, at most 50. A run saved before evaluations were kept is evaluated now, once."""
        owner = owner_of(request)
        run_id = run_id or latest_run(owner)
        try:
            found = evaluation.of_run(services.runs, services.jobs.catalog, run_id, owner)
        except (RunNotFound, EvaluationError) as e:
            raise refused(str(e)) from None
        return api_answer(found, run_id)

    gr.api(evaluate, api_name="evaluate", concurrency_limit=2)  # an old run is evaluated on demand: model work

    def export(run_id: str, format: str = "keras", request: gr.Request = None) -> FileData:
        """Download one of your runs: format keras (.keras), savedmodel (a TensorFlow SavedModel), tflite (float32),
        tflite_int8 (quantized, calibrated on the run's training pictures) or card (the model card alone, Markdown).
        Each model comes zipped with its model card (MODEL_CARD.md: data, figures, the exact input it expects, a
        Python snippet), that snippet as classify.py and an example picture. Built once (seconds), then kept."""
        owner = owner_of(request)
        try:
            path = services.exports.export(run_id, format, owner)
        except (ExportError, RunNotFound) as e:
            raise refused(str(e)) from None
        return FileData(path=hand_out(path), orig_name=path.name)

    # TFLite conversion is CPU work of seconds: one at a time, shared with the page's downloads
    gr.api(export, api_name="export", concurrency_id=EXPORT_POOL, concurrency_limit=EXPORT_LIMIT)
    register_runs_api(services, owner_of)
    register_class_api(services, owner_of)  # the teacher's endpoints (key first) and /set_nickname
