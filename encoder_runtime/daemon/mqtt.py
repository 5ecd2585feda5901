"""MQTT sink: each sealed segment is one QoS 1 PUBLISH; PUBACK deletes it from the spool.

The spool stays the source of truth (paho keeps its session in memory only): on a lost
connection every unacknowledged segment goes back to the spool and is published again after
reconnecting, so a subscriber may see a segment twice and must de-duplicate on (stream id, seq)
— the records carry both. Needs ``paho-mqtt`` (imported lazily).
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.parse

from ..container import ContainerError
from .config import ConfigError
from .tcp import Refused, Uploader

log = logging.getLogger("sensorcodec.mqtt")


def parse_mqtt_url(url: str) -> dict:
    """``mqtt[s]://[user[:password]@]HOST[:PORT]/TOPIC`` → connection parameters."""
    u = urllib.parse.urlsplit(url)
    if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
        raise ConfigError(f"sink: expected mqtt://HOST:PORT/TOPIC, got {url!r}")
    topic = urllib.parse.unquote(u.path.lstrip("/"))
    if not topic or any(c in topic for c in "+#"):
        raise ConfigError(f"sink: {url!r} needs a topic without wildcards")
    return {"host": u.hostname, "port": u.port or (8883 if u.scheme == "mqtts" else 1883),
            "topic": topic, "username": urllib.parse.unquote(u.username or ""),
            "password": urllib.parse.unquote(u.password or ""), "tls": u.scheme == "mqtts"}


def import_paho(what: str = "sink mqtt://"):
    """``paho.mqtt.client``, or a ConfigError saying that ``what`` needs it and how to install it."""
    try:
        import paho.mqtt.client as paho
    except ImportError:
        raise ConfigError(f"{what} needs paho-mqtt >= 2 (pip install 'sensorcodec[mqtt]')") from None
    return paho


class MqttUploader(Uploader):
    """Publishes sealed segments with QoS 1 to a broker."""

    def __init__(self, spool, url: str, *, token: str = "", ssl_context=None, window: int = 4,
                 ack_timeout: float = 15.0, connect_timeout: float = 10.0, backoff_base: float = 0.5,
                 backoff_cap: float = 30.0, max_payload: int = 256 * 1024**2, client_id: str = "",
                 metrics=None, on_ack=None) -> None:
        super().__init__(spool, backoff_base=backoff_base, backoff_cap=backoff_cap, metrics=metrics,
                         on_ack=on_ack, name="uploader-mqtt")
        self._paho = import_paho()
        self.params = parse_mqtt_url(url)
        self.token, self.ssl_context = token, ssl_context
        self.window, self.ack_timeout, self.connect_timeout = window, ack_timeout, connect_timeout
        self.max_payload, self.client_id = max_payload, client_id

    def describe(self) -> str:
        """``mqtt://HOST:PORT/TOPIC``."""
        p = self.params
        return f"{'mqtts' if p['tls'] else 'mqtt'}://{p['host']}:{p['port']}/{p['topic']}"

    def session(self) -> None:
        paho, p = self._paho, self.params
        lost = threading.Event()
        up = threading.Event()
        acks: list[int] = []
        lock = threading.Lock()
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             clean_session=True)
        client.max_inflight_messages_set(self.window)
        client.max_queued_messages_set(self.window)
        if p["username"] or self.token:
            client.username_pw_set(p["username"] or "sensor-encode", p["password"] or self.token)
        if p["tls"] or self.ssl_context is not None:
            client.tls_set_context(self.ssl_context)

        refused: list = []

        def on_connect(_c, _u, _flags, reason, _props):
            if reason.is_failure:
                if getattr(reason, "value", None) in (0x86, 0x87):  # bad user name/password, not authorized
                    refused.append(str(reason))
                lost.set()
            else:
                up.set()

        def on_disconnect(_c, _u, _flags, _reason, _props):
            lost.set()

        def on_publish(_c, _u, mid, _reason, _props):
            with lock:
                acks.append(mid)
            self.wake()

        client.on_connect, client.on_disconnect, client.on_publish = on_connect, on_disconnect, on_publish
        inflight: dict[int, tuple] = {}
        client.connect(p["host"], p["port"], keepalive=max(5, int(self.ack_timeout)))
        client.loop_start()
        try:
            if not up.wait(self.connect_timeout) or lost.is_set():
                if refused:
                    raise Refused(f"MQTT broker {p['host']}:{p['port']} refused: {refused[0]}")
                raise ConnectionError(f"MQTT broker {p['host']}:{p['port']} did not accept the connection")
            # A broker cannot say what subscribers stored: provisional numbering becomes final.
            self.spool.settle_numbering(None)
            self.connected.set()
            if self.metrics:
                self.metrics.reconnects.inc()
            log.info("connected to mqtt://%s:%d topic %s", p["host"], p["port"], p["topic"])
            while not self.stop_event.is_set():
                if lost.is_set():
                    raise ConnectionError("MQTT connection lost")
                while len(inflight) < self.window and (nxt := self.next_segment()):
                    seg, data, info = nxt
                    if len(data) > self.max_payload:
                        self.spool.reject(seg, f"{len(data)} bytes exceed the MQTT payload limit "
                                               f"{self.max_payload}; lower segment_max_bytes")
                        continue
                    msg = client.publish(p["topic"], data, qos=1)
                    if msg.rc != paho.MQTT_ERR_SUCCESS:
                        self.spool.release(seg)
                        raise ConnectionError(f"MQTT publish failed: {paho.error_string(msg.rc)}")
                    inflight[msg.mid] = (seg, info, time.monotonic())
                    if self.metrics:
                        self.metrics.bytes_sent.inc(len(data))
                with lock:
                    done, acks[:] = list(acks), []
                for mid in done:
                    entry = inflight.pop(mid, None)
                    if entry is not None:
                        self.acked(*entry)
                if inflight and time.monotonic() - min(t for _s, _i, t in inflight.values()) > self.ack_timeout:
                    raise TimeoutError(f"no PUBACK within {self.ack_timeout:.1f}s")
                import select

                ready, _, _ = select.select([self._wake_r], [], [], 0.5)
                if ready:
                    self._drain_wake()
        except ContainerError:
            raise
        finally:
            for seg, _i, _t in inflight.values():
                self.spool.release(seg)
            client.loop_stop()
            try:
                client.disconnect()
            except Exception:
                pass
