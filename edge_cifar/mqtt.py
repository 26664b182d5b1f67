"""`--mqtt URL`: the loop's decisions on an MQTT broker (the `mqtt` extra: paho-mqtt), for Home
Assistant, Node-RED or a fleet's dashboard.

    mqtt://[user[:password]@]host[:port][/base/topic]     (mqtts:// for TLS, port 8883)

Under the base topic (default `edge-cifar/<hostname>`): `state`, the decision as JSON (the shape
`camera` writes, plus FPS and time), published when the label changes and at a heartbeat, retained;
`availability`, `online` or `offline` (the broker's last will: it says `offline` for a Pi that
vanished). Home Assistant's MQTT discovery configs (`homeassistant/sensor/<node>/.../config`,
retained) make the camera a device with a label and a score sensor, by itself.

The camera loop never waits on the network: its `write` only leaves the newest decision for a
publisher thread. Published at QoS 0 while the broker is away, decisions are dropped, never
queued; paho reconnects with backoff, and each (re)connection re-announces availability,
discovery and the latest decision, since a broker restarted without persistence forgot them.
A broker that refuses the credentials (or the client) at start is an error; one that cannot be
reached at start or is lost later is one warning line, and the loop goes on.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge_cifar.camera import FrameResult
from edge_cifar.classifier import UNCERTAIN
from edge_cifar.sources import Frame, SourceError

PASSWORD_VARIABLE = "EDGE_CIFAR_MQTT_PASSWORD"  # keeps the password out of `ps` and shell history
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
DISCOVERY_PREFIX = "homeassistant"  # Home Assistant's default discovery prefix
HEARTBEAT_S = 30.0  # an unchanged decision is re-sent this often: a dashboard sees the Pi alive
CONNECT_WAIT_S = 10.0  # at start, for the broker's answer: refused credentials end the command
KEEPALIVE_S = 30  # the broker declares the Pi offline (its last will) after 1.5 x this silence
RECONNECT_DELAY_S = (1, 60)  # paho's backoff doubles from the first to the second
CLOSE_WAIT_S = 2.0  # for `offline` to reach the broker when the loop ends


def mqtt_url_help() -> str:
    return "mqtt://[user[:password]@]host[:port][/topic] or mqtts://... (TLS)"


@dataclass(frozen=True)
class MqttTarget:
    """Where to publish: parsed from the URL, the password perhaps from the environment."""

    host: str
    port: int
    tls: bool
    topic: str  # the base topic: state and availability go under it
    username: str | None = None
    password: str | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def node_id(self) -> str:
        """The topic as a Home Assistant node id (letters, digits, _ and - only)."""
        return re.sub(r"[^A-Za-z0-9_-]", "_", self.topic)


def parse_mqtt_url(url: str, environ: dict[str, str] | None = None) -> MqttTarget:
    """An `MqttTarget`, or a SourceError that says what is wrong with the URL."""
    environ = dict(os.environ) if environ is None else environ
    parts = urllib.parse.urlsplit(url)
    problem = f"--mqtt {url!r}: expected {mqtt_url_help()}"
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise SourceError(problem)
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise SourceError(f"{problem} (bad port)") from None
    topic = urllib.parse.unquote(parts.path).strip("/") or f"edge-cifar/{socket.gethostname()}"
    if any(wildcard in topic for wildcard in "+#") or parts.query or parts.fragment:
        raise SourceError(f"{problem} (a topic has no wildcards, query or fragment)")
    username = urllib.parse.unquote(parts.username) if parts.username else None
    password = urllib.parse.unquote(parts.password) if parts.password is not None else None
    if username is not None and password is None:
        password = environ.get(PASSWORD_VARIABLE)
    return MqttTarget(parts.hostname, port, parts.scheme == "mqtts", topic, username, password)


def state_json(result: FrameResult, fps: float, at: float) -> dict[str, object]:
    """The decision as `camera` writes it, with the loop's FPS and the time (UTC, ISO 8601)."""
    stamp = datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="milliseconds")
    return {**result.as_json(), "fps": round(fps, 2), "time": stamp}


def discovery_configs(
    target: MqttTarget, model_name: str, labels: tuple[str, ...]
) -> dict[str, dict[str, object]]:
    """Home Assistant MQTT discovery: topic -> config of the label and score sensors."""
    try:
        software = version("edge-cifar")
    except PackageNotFoundError:  # a source checkout run without installing
        software = "source"
    common = {
        "state_topic": f"{target.topic}/state",
        "availability_topic": f"{target.topic}/availability",
        "json_attributes_topic": f"{target.topic}/state",
        "device": {
            "identifiers": [f"edge_cifar_{target.node_id}"],
            "name": f"edge-cifar {target.topic}",
            "model": model_name,
            "manufacturer": "edge-cifar",
            "sw_version": software,
        },
    }
    sensors: dict[str, dict[str, object]] = {
        "label": {
            "name": "Label",
            "value_template": "{{ value_json.label }}",
            "device_class": "enum",
            "options": [*labels, UNCERTAIN],
            "icon": "mdi:cctv",
        },
        "score": {
            "name": "Score",
            "value_template": "{{ value_json.score }}",
            "state_class": "measurement",
            "icon": "mdi:gauge",
        },
    }
    return {
        f"{DISCOVERY_PREFIX}/sensor/edge_cifar_{target.node_id}/{key}/config": {
            **common,
            **sensor,
            "unique_id": f"edge_cifar_{target.node_id}_{key}",
        }
        for key, sensor in sensors.items()
    }


class MqttSink:
    """A camera-loop sink that publishes decisions to an MQTT broker from a thread of its own."""

    def __init__(
        self,
        target: MqttTarget,
        model_name: str,
        labels: tuple[str, ...],
        say: Callable[[str], None],
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        """Connects (TLS for mqtts://) and waits up to CONNECT_WAIT_S for the broker's answer:
        SourceError if it refuses us; `say` gets a warning if it cannot be reached."""
        self.target, self.heartbeat_s, self._say = target, heartbeat_s, say
        self.state_topic = f"{target.topic}/state"
        self.availability_topic = f"{target.topic}/availability"
        self._discovery = discovery_configs(target, model_name, labels)
        self._lock = threading.Lock()
        self._latest: tuple[FrameResult, float, float] | None = None
        self._wake = threading.Event()
        self._closing = False
        self._announce = False  # set at each connection: availability, discovery, latest state
        self._connected: bool | None = None  # None until the first answer or failure
        self._answered = threading.Event()
        self._refused: str | None = None
        self._lost_said = False

        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"edge-cifar-{target.node_id}"[:64],
            protocol=mqtt.MQTTv311,
        )
        if target.username is not None:
            client.username_pw_set(target.username, target.password)
        if target.tls:
            try:
                client.tls_set()  # the system's CAs (or $SSL_CERT_FILE)
            except (OSError, ValueError) as error:
                raise SourceError(f"--mqtt: cannot set up TLS: {error}") from None
        client.will_set(self.availability_topic, "offline", qos=1, retain=True)
        client.reconnect_delay_set(*RECONNECT_DELAY_S)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        self._client = client
        client.connect_async(target.host, target.port, keepalive=KEEPALIVE_S)
        client.loop_start()
        self._answered.wait(CONNECT_WAIT_S)
        if self._refused is not None:
            self._stop_client()
            raise SourceError(
                f"--mqtt: the broker at {target.address} refused the connection: {self._refused}"
            )
        if not self._connected:
            self._lost_said = True
            say(
                f"warning: MQTT: no broker answers at {target.address}; retrying in the "
                "background (decisions are dropped until one does)"
            )
        self._publisher = threading.Thread(target=self._publish_loop, name="mqtt", daemon=True)
        self._publisher.start()

    # --- paho's network thread --------------------------------------------------------------------
    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            if self._connected is None:
                self._refused = str(reason)
                self._answered.set()
            elif not self._lost_said:
                self._lost_said = True
                self._say(f"warning: MQTT: the broker at {self.target.address} refused: {reason}")
            return
        if self._lost_said and self._connected is not None:
            self._say(f"note: MQTT: connected again to {self.target.address}")
        self._connected, self._lost_said, self._announce = True, False, True
        self._answered.set()
        self._wake.set()

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        self._answered.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        was_connected, self._connected = self._connected, False
        if was_connected and not self._closing and not self._lost_said:
            self._lost_said = True
            self._say(
                f"warning: MQTT: lost the broker at {self.target.address} ({reason}); "
                "reconnecting with backoff, decisions dropped meanwhile"
            )

    # --- the publisher thread -------------------------------------------------------------------
    def _publish_loop(self) -> None:
        """Until close: the decision when its label changes and at each heartbeat; at close, the
        last one if it changed."""
        sent_label: str | None = None
        sent_at = 0.0
        while True:
            self._wake.wait(max(0.0, sent_at + self.heartbeat_s - time.monotonic()))
            self._wake.clear()
            if self._announce:
                self._announce = False
                self._client.publish(self.availability_topic, "online", qos=1, retain=True)
                for topic, config in self._discovery.items():
                    self._client.publish(topic, json.dumps(config), qos=1, retain=True)
                sent_label = None  # the latest decision goes out again, whatever it is
            with self._lock:
                latest = self._latest
            heartbeat_due = time.monotonic() - sent_at >= self.heartbeat_s
            if latest is not None and (latest[0].decision.label != sent_label or heartbeat_due):
                result, fps, at = latest
                # QoS 0: while the broker is away paho drops it (MQTT_ERR_NO_CONN), never queues.
                self._client.publish(
                    self.state_topic, json.dumps(state_json(result, fps, at)), retain=True
                )
                sent_label, sent_at = result.decision.label, time.monotonic()
            if self._closing:
                return

    # --- the camera loop's side -------------------------------------------------------------------
    def write(self, frame: Frame, result: FrameResult, fps: float) -> str | None:
        with self._lock:
            self._latest = (result, fps, time.time())
        self._wake.set()
        return None

    def close(self) -> None:
        """`offline` to the broker (a clean disconnect does not fire the last will), then stop."""
        self._closing = True
        self._wake.set()
        self._publisher.join(timeout=CLOSE_WAIT_S)
        if self._connected:
            info = self._client.publish(self.availability_topic, "offline", qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):  # the connection went meanwhile
                info.wait_for_publish(CLOSE_WAIT_S)
        self._stop_client()

    def _stop_client(self) -> None:
        self._closing = True
        self._client.disconnect()
        self._client.loop_stop()
