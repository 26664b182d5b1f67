"""A `WebService`: the web server beside one camera loop, wired to it.

Built (and its port bound) before the loop starts; the loop gets its sink, and a live source is
wrapped to be reopened when it goes away; the server closes after the loop ends.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from edge_cifar import MAX_IMAGE_PIXELS
from edge_cifar.classifier import Classifier
from edge_cifar.model_files import card_accuracy, read_card
from edge_cifar.serve.app import ServeConfig, UploadClassifier, build_app
from edge_cifar.serve.feed import LiveFeed, Metrics, ServeSink
from edge_cifar.serve.server import WebServer, host_names, is_loopback
from edge_cifar.sources import FrameSource, ReopeningSource


def model_facts(classifier: Classifier) -> dict[str, object]:
    """What the page says of the device and its model: names, size, runtime, the card's
    accuracy and data, and below which score a decision is uncertain (and who said so)."""
    model, meaning = classifier.model, classifier.meaning
    metadata = model.metadata
    card = read_card(model.path)
    data = card.get("data")
    return {
        "device": socket.gethostname(),
        "model": metadata.name if metadata and metadata.name else model.path.stem,
        "file": model.path.name,
        "description": metadata.description if metadata else None,
        "size_kib": round(model.path.stat().st_size / 1024, 1),
        "runtime": model.backend.name,
        "quantized": model.quantized,
        "input": list(model.input.shape[1:3]),
        "labels": list(meaning.labels),
        "accuracy": card_accuracy(model.path, model.quantized),
        "trained_on": data.get("name") if isinstance(data, dict) else None,
        "test_images": card.get("test_images"),
        "min_score": meaning.min_score,
        "min_score_from": meaning.min_score_from,
    }


class WebService:
    def __init__(
        self,
        classifier: Classifier,
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
        config = ServeConfig(
            model_facts(classifier), token, allowed_hosts=host_names(host, allow_hosts)
        )
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
