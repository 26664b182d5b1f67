"""A `WebService`: the web server beside one camera loop, wired to it.

Built (and its port bound) before the loop starts; the loop gets its sink, and a live source is
wrapped to be reopened when it goes away; the server closes after the loop ends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from edge_cifar import MAX_IMAGE_PIXELS
from edge_cifar.classifier import Classifier
from edge_cifar.interpreter import Model
from edge_cifar.model_files import card_accuracy
from edge_cifar.serve.app import ServeConfig, UploadClassifier, build_app
from edge_cifar.serve.feed import LiveFeed, Metrics, ServeSink
from edge_cifar.serve.server import WebServer, host_names, is_loopback
from edge_cifar.sources import FrameSource, ReopeningSource


def model_facts(model: Model) -> dict[str, object]:
    """The page's model panel: file name, size, runtime and the card's accuracy figures."""
    facts: dict[str, object] = {
        "model": model.path.name,
        "size_kib": round(model.path.stat().st_size / 1024, 1),
        "runtime": model.backend.name,
    }
    for variant, quantized in (("int8", True), ("float", False)):
        accuracy = card_accuracy(model.path, quantized)
        if accuracy is not None:
            facts[f"card_{variant}_accuracy"] = accuracy
    return facts


class WebService:
    def __init__(
        self,
        model: Model,
        uploads: Classifier,
        host: str,
        port: int,
        token: str | None,
        allow_hosts: Sequence[str] = (),
    ) -> None:
        """`uploads` is POST /classify's classifier, on its own interpreter: the loop's never
        changes thread."""
        self.feed = LiveFeed(Metrics())
        self.sink = ServeSink(self.feed)
        upload_classifier = UploadClassifier(uploads, MAX_IMAGE_PIXELS)
        config = ServeConfig(model_facts(model), token, allowed_hosts=host_names(host, allow_hosts))
        app = build_app(self.feed, upload_classifier, config)
        self.server = WebServer(app, host, port)
        self.warning = (
            None
            if is_loopback(host)
            else f"warning: listening on {host}, not loopback: anyone who reaches this machine "
            f"sees the camera{'' if token else ' (no --token set)'}"
        )

    def watch(
        self, source: FrameSource, reopen: Callable[[], FrameSource], stop: threading.Event
    ) -> FrameSource:
        """A live source, reopened with backoff when it goes away (the page says so meanwhile)."""
        if not source.live:
            return source
        return ReopeningSource(source, reopen, stop, on_state=self.sink.source_state)

    @contextmanager
    def running(self) -> Iterator[str]:
        """The server up for the block (its URL given), closed after it."""
        self.server.start()
        try:
            yield self.server.url
        finally:
            self.server.stop()
