"""`--mqtt`: decisions, availability and Home Assistant discovery on a real Mosquitto (Debian's,
started here on a free loopback port), through a broker restart, bad URLs, refused credentials,
no broker at all, and TLS."""

from __future__ import annotations

import getpass
import itertools
import json
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from .support import SAMPLE_VIDEO, edge_cifar_process, wait_for_url

mqtt = pytest.importorskip("paho.mqtt.client", reason="the mqtt extra is not installed")
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402 (after the skip)

MOSQUITTO = Path("/usr/sbin/mosquitto")
if not MOSQUITTO.exists():
    pytest.skip(
        "no Mosquitto: tests/runtime/system-packages.sh installs it", allow_module_level=True
    )

DEADLINE_S = 60  # generous: a busy machine is slow, never wrong
TOPIC = "edge-cifar/test"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition, what: str, timeout: float = DEADLINE_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Broker:
    """A Mosquitto on 127.0.0.1:port with its own config; restartable on the same port."""

    def __init__(self, folder: Path, config: str = "allow_anonymous true\n") -> None:
        self.port = free_port()
        self.folder = folder
        self.config = folder / "mosquitto.conf"
        self.config.write_text(
            # `user`: as root, Mosquitto would drop to its own user, who cannot read tmp_path.
            f"listener {self.port} 127.0.0.1\npersistence false\nuser {getpass.getuser()}\n"
            f"log_dest file {folder / 'mosquitto.log'}\n{config}"
        )
        self.process: subprocess.Popen | None = None

    def start(self) -> Broker:
        self.process = subprocess.Popen([MOSQUITTO, "-c", self.config])

        def listening() -> bool:
            assert self.process.poll() is None, (self.folder / "mosquitto.log").read_text()
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", self.port)) == 0

        wait_until(listening, f"mosquitto on port {self.port}")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=DEADLINE_S)


@pytest.fixture
def broker(tmp_path):
    broker = Broker(tmp_path).start()
    yield broker
    broker.stop()


@dataclass
class Message:
    topic: str
    payload: str
    retain: bool
    at: float

    def json(self):
        return json.loads(self.payload)


class Subscriber:
    """Everything published under `#`, in order; resubscribes after a broker restart."""

    def __init__(self, port: int, username: str | None = None, password: str | None = None):
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        client = mqtt.Client(CallbackAPIVersion.VERSION2)
        if username:
            client.username_pw_set(username, password)
        client.on_connect = lambda c, *_: c.subscribe("#", qos=1)
        client.on_message = self._on_message
        client.reconnect_delay_set(0.1, 1)
        client.connect("127.0.0.1", port)
        client.loop_start()
        self.client = client

    def _on_message(self, client, userdata, message):
        with self._lock:
            self.messages.append(
                Message(message.topic, message.payload.decode(), message.retain, time.monotonic())
            )

    def on(self, topic: str) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def wait_for(self, topic: str, condition=lambda m: True, what: str = "") -> Message:
        return wait_until(
            lambda: next((m for m in self.on(topic) if condition(m)), None),
            what or f"a message on {topic}",
        )

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscriber(broker):
    subscriber = Subscriber(broker.port)
    wait_until(lambda: subscriber.client.is_connected(), "the test's subscriber")
    yield subscriber
    subscriber.close()


def test_camera_publishes_changes_availability_and_retained_discovery(cli, broker, subscriber):
    url = f"mqtt://127.0.0.1:{broker.port}/{TOPIC}"
    result = cli("camera", "-d", SAMPLE_VIDEO, "--headless", "--mqtt", url)
    assert result.exit_code == 0, result.stderr
    frames = {line["frame"]: line for line in result.json_lines()}
    subscriber.wait_for(f"{TOPIC}/availability", lambda m: m.payload == "offline")

    states = [m.json() for m in subscriber.on(f"{TOPIC}/state")]
    assert len(states) >= 2
    for state in states:  # each is one of the loop's decisions, with the loop's FPS and time
        decision = {k: v for k, v in state.items() if k not in ("fps", "time")}
        assert decision == frames[state["frame"]] and state["fps"] >= 0 and state["time"]
    # Published on change: no two in a row say the same (the heartbeat is 30 s away).
    assert all(a["label"] != b["label"] for a, b in itertools.pairwise(states))
    assert states[-1]["label"] == frames[max(frames)]["label"]  # the last change is not lost
    assert [m.payload for m in subscriber.on(f"{TOPIC}/availability")] == ["online", "offline"]

    # A subscriber that comes later (Home Assistant after a reboot) gets the retained messages.
    late = Subscriber(broker.port)
    try:
        node = "edge_cifar_edge-cifar_test"
        config = late.wait_for(f"homeassistant/sensor/{node}/label/config").json()
        assert late.on(f"homeassistant/sensor/{node}/label/config")[0].retain
        assert config["state_topic"] == f"{TOPIC}/state"
        assert config["availability_topic"] == f"{TOPIC}/availability"
        assert config["value_template"] == "{{ value_json.label }}"
        assert "cat" in config["options"] and "uncertain" in config["options"]
        assert config["device"]["identifiers"] == [node]
        score = late.wait_for(f"homeassistant/sensor/{node}/score/config").json()
        assert score["unique_id"] != config["unique_id"]
        assert late.wait_for(f"{TOPIC}/availability").payload == "offline"
        assert late.wait_for(f"{TOPIC}/state").json() == states[-1]
    finally:
        late.close()


def test_a_broker_restart_mid_run_costs_only_the_outage(broker, subscriber, slow_video):
    """The loop runs on at its pace while the broker is gone, says so once, reconnects and
    publishes again; SIGTERM still ends it cleanly."""
    url = f"mqtt://127.0.0.1:{broker.port}/{TOPIC}"
    process = edge_cifar_process(
        "camera", "-d", slow_video, "--headless", "--realtime", "--mqtt", url
    )
    arrivals: list[tuple[float, int]] = []  # (when, frame) of each JSON line on stdout

    def read_stdout():
        for line in process.stdout:
            arrivals.append((time.monotonic(), json.loads(line)["frame"]))

    reader = threading.Thread(target=read_stdout, daemon=True)
    reader.start()
    try:
        subscriber.wait_for(f"{TOPIC}/state", what="a first decision")
        wait_until(lambda: len(arrivals) >= 4, "four frames before the outage")
        broker.stop()
        down_at, down_frames = time.monotonic(), len(arrivals)
        wait_until(lambda: len(arrivals) >= down_frames + 8, "eight frames during the outage")
        outage_s = time.monotonic() - down_at
        before = subscriber.messages[-1].at
        broker.start()
        back = subscriber.wait_for(
            f"{TOPIC}/state", lambda m: m.at > before, "a decision after the restart"
        ).json()
        # Decisions of the outage were dropped, not queued: everything after it is of now.
        after = [m.json()["frame"] for m in subscriber.on(f"{TOPIC}/state") if m.at > before]
        assert back["frame"] >= down_frames + 8 and min(after) >= down_frames + 8
        assert subscriber.wait_for(f"{TOPIC}/availability", lambda m: m.at > before).payload == (
            "online"
        )
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=DEADLINE_S)
    assert process.returncode == 0, stderr
    assert stderr.count("warning: MQTT: lost the broker") == 1, stderr
    assert stderr.count("note: MQTT: connected again") == 1, stderr
    # The loop kept the video's 2 FPS through the outage (the frames' pace, not the broker's).
    assert 8 / outage_s > 2 * 0.7, (outage_s, stderr)


def test_an_unchanged_decision_is_repeated_at_each_heartbeat(broker, subscriber):
    import numpy as np

    from edge_cifar.camera import FrameResult
    from edge_cifar.classifier import decide
    from edge_cifar.mqtt import MqttSink, parse_mqtt_url

    said: list[str] = []
    target = parse_mqtt_url(f"mqtt://127.0.0.1:{broker.port}/{TOPIC}")
    sink = MqttSink(target, "test", ("cat", "dog"), said.append, heartbeat_s=0.2)
    frame = np.zeros((8, 8, 3), np.uint8)
    try:
        decision = decide(np.array([0.9, 0.1], np.float32), ("cat", "dog"), 2, 0.0, {})
        for index in range(3):  # the same label three times: one change, then heartbeats only
            sink.write(frame, FrameResult(index, decision), 10.0)
        wait_until(lambda: len(subscriber.on(f"{TOPIC}/state")) >= 3, "three heartbeats")
    finally:
        sink.close()
    assert {m.json()["label"] for m in subscriber.on(f"{TOPIC}/state")} == {"cat"}
    assert said == []  # a broker that answers: nothing to say


def test_serve_publishes_too(broker, subscriber, slow_video):
    process = edge_cifar_process(
        "serve", "-d", slow_video, "--port", 0, "--mqtt", f"mqtt://127.0.0.1:{broker.port}/{TOPIC}"
    )
    try:
        wait_for_url(process)
        assert subscriber.wait_for(f"{TOPIC}/state").json()["label"]
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=DEADLINE_S)
    assert process.returncode == 0, stderr
    assert subscriber.wait_for(f"{TOPIC}/availability", lambda m: m.payload == "offline")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.1/t", "expected mqtt://"),
        ("mqtt://", "expected mqtt://"),
        ("mqtt://127.0.0.1:99999/t", "bad port"),
        ("mqtt://127.0.0.1/a/+/b", "no wildcards"),
    ],
)
def test_a_wrong_mqtt_url_is_one_error_line(cli, url, says):
    cli("camera", "-d", SAMPLE_VIDEO, "--headless", "--mqtt", url).assert_one_error_line(2, says)


def test_refused_credentials_are_one_error_line_and_the_password_can_come_from_the_environment(
    cli, tmp_path, monkeypatch
):
    passwords = tmp_path / "passwords"
    subprocess.run(
        ["mosquitto_passwd", "-c", "-b", passwords, "edge", "s3cret"], check=True, timeout=30
    )
    broker = Broker(tmp_path, f"allow_anonymous false\npassword_file {passwords}\n").start()
    try:
        wrong = f"mqtt://edge:wrong@127.0.0.1:{broker.port}/{TOPIC}"
        result = cli("camera", "-d", SAMPLE_VIDEO, "--headless", "--mqtt", wrong)
        result.assert_one_error_line(2, "refused the connection", "Not authorized")
        assert result.stdout == ""

        subscriber = Subscriber(broker.port, "edge", "s3cret")
        monkeypatch.setenv("EDGE_CIFAR_MQTT_PASSWORD", "s3cret")
        url = f"mqtt://edge@127.0.0.1:{broker.port}/{TOPIC}"
        result = cli("camera", "-d", SAMPLE_VIDEO, "--headless", "--max-frames", 5, "--mqtt", url)
        assert result.exit_code == 0, result.stderr
        subscriber.wait_for(f"{TOPIC}/state")
        subscriber.close()
    finally:
        broker.stop()


def test_no_broker_at_start_is_one_warning_and_the_loop_runs(cli):
    url = f"mqtt://127.0.0.1:{free_port()}/{TOPIC}"
    result = cli("camera", "-d", SAMPLE_VIDEO, "--headless", "--max-frames", 20, "--mqtt", url)
    assert result.exit_code == 0 and len(result.json_lines()) == 20, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "no broker answers" in warnings[0], result.stderr


def test_mqtts_publishes_over_tls_to_a_broker_the_system_trusts(cli, tmp_path, monkeypatch):
    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    ca, ca_key = tmp_path / "ca.pem", tmp_path / "ca.key"
    cert, key, request = tmp_path / "server.pem", tmp_path / "server.key", tmp_path / "server.csr"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
            "-days", "2", "-subj", "/CN=edge-cifar test CA")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", request,
            "-subj", "/CN=127.0.0.1")  # fmt: skip
    extensions = tmp_path / "san.cnf"
    extensions.write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", request, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
            "-out", cert, "-days", "2", "-extfile", extensions)  # fmt: skip
    plain = Broker(tmp_path)  # a plain listener for the subscriber, a TLS one for the camera
    tls_port = free_port()
    plain.config.write_text(
        plain.config.read_text()
        + f"listener {tls_port} 127.0.0.1\ncertfile {cert}\nkeyfile {key}\ncafile {ca}\n"
        "allow_anonymous true\n"
    )
    broker = plain.start()
    try:
        subscriber = Subscriber(broker.port)
        monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # the "system" trust: our test CA
        url = f"mqtts://127.0.0.1:{tls_port}/{TOPIC}"
        result = cli("camera", "-d", SAMPLE_VIDEO, "--headless", "--max-frames", 5, "--mqtt", url)
        assert result.exit_code == 0, result.stderr
        assert subscriber.wait_for(f"{TOPIC}/state").json()["frame"] in range(5)
        subscriber.close()
        monkeypatch.delenv("SSL_CERT_FILE")  # an untrusted certificate: never published
        result = cli("camera", "-d", SAMPLE_VIDEO, "--headless", "--max-frames", 5, "--mqtt", url)
        assert "warning: MQTT: no broker answers" in result.stderr
    finally:
        broker.stop()
