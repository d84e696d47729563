"""A light stand-in for gradio_client's Client, for load benchmarks: the same requests, less client CPU.

Each call is what the page and gradio_client send for a queued event (protocol sse_v3): POST
/gradio_api/queue/join with the session hash, then GET /gradio_api/queue/data?session_hash=… read until
the event's process_completed (the server closes the stream when the session has nothing pending); a
file goes up first through /gradio_api/upload. What differs is only on the client's side: one
keep-alive httpx.Client per student (a browser keeps its connections too), and no helper threads.
gradio_client 2.7 opens a new connection and SSL context for every POST and every stream, starts
helper threads per call and waits on them in 1 ms and 50 ms sleep loops: with 30 students in one process
on 2 cores that costs more CPU than the server (bench/README.md, classroom_load).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx


class AppError(Exception):
    """The app raised (gr.Error): its message."""


class LightClient:
    def __init__(self, url: str, timeout: float = 120.0):
        self.http = httpx.Client(base_url=url, timeout=timeout)
        config = self.http.get("/config").raise_for_status().json()
        self.prefix = config.get("api_prefix", "/gradio_api")
        self.fn_index = {d["api_name"]: d["id"] for d in config["dependencies"] if d.get("api_name")}
        self.session_hash = str(uuid.uuid4())  # one Client is one student, as with gradio_client

    def upload(self, path: str | Path) -> dict:
        """A file input's value (gradio FileData), uploaded as the page does."""
        path = Path(path)
        with path.open("rb") as f:
            r = self.http.post(f"{self.prefix}/upload", files={"files": (path.name, f)}).raise_for_status()
        return {"path": r.json()[0], "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}

    def predict(self, *data, api_name: str):
        """One queued call: its output (the first output component's value), or AppError."""
        name = api_name.lstrip("/")
        body = {"data": list(data), "fn_index": self.fn_index[name], "session_hash": self.session_hash,
                "event_data": None, "trigger_id": None}
        join = self.http.post(f"{self.prefix}/queue/join", json=body).raise_for_status().json()
        event_id = join["event_id"]
        with self.http.stream("GET", f"{self.prefix}/queue/data", params={"session_hash": self.session_hash}) as r:
            r.raise_for_status()
            for line in r.iter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed" and msg.get("event_id") == event_id:
                    output = msg.get("output") or {}
                    if not msg.get("success"):
                        raise AppError(output.get("error") or output)
                    return output["data"][0]
                if msg.get("msg") in ("close_stream", "unexpected_error"):
                    raise AppError(f"stream ended before the result: {msg}")
        raise AppError("stream ended before the result")

    def close(self) -> None:
        self.http.close()
