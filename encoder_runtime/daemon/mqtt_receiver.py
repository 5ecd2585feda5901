"""``sensor-receive --mqtt``: take segments from an MQTT 5 shared subscription into the store.

``mqtt[s]://[user[:password]@]HOST[:PORT]/PREFIX?group=NAME&client_id=ID`` subscribes
``$share/NAME/PREFIX/#`` at QoS 1, so N receivers with the same group split a fleet's segments
(each message goes to one member). Every message is one sealed spool segment as
``sensor-encode --sink mqtt://HOST:PORT/PREFIX/<stream_id>`` publishes it. It is verified exactly
like a TCP segment (:class:`~.wire.SegmentAssembler`: structure, record and segment size, GAP
span; :func:`~.receiver.check_seqs`: seq plausibility), the last topic level must be the stream
id (broker ACLs on topics are the credentials, so a publisher may only write the streams its
topics name), and it is stored with :func:`~.receiver.store_segment` — de-duplication on
(stream id, seq) and fsync — before its PUBACK is sent (``manual_ack``). Messages are handled
one at a time in arrival order, so PUBACKs go out in order as MQTT requires.

The session is persistent (``clean_start`` false, ``session_expiry`` seconds, default one day)
and its identity is the client id: a replica that dies (``kill -9``) before its PUBACK gets the
message again when it (or a replacement with the same ``client_id``, on any host that sees the
store) reconnects, and the store drops what was already stored. Malformed or forbidden messages
are acknowledged (else the broker would redeliver them forever), logged, counted and kept in
``STORE/_rejected/`` (bounded). A store that cannot write (disk full) is retried with backoff,
never acknowledged. Needs ``paho-mqtt`` >= 2 (imported lazily).
"""

from __future__ import annotations

import logging
import queue
import re
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

from ..container import PREAMBLE, preamble, scan_records
from . import wire
from .config import STREAM_ID_RE, ConfigError
from .mqtt import import_paho, parse_mqtt_url
from .receiver import Decoder, store_segment
from .store import Store
from .wire import ProtocolError

log = logging.getLogger("sensorcodec.mqtt_receiver")

_GROUP_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_QUERY_KEYS = ("group", "client_id", "session_expiry", "ca")


def parse_subscribe_url(url: str) -> dict:
    """``mqtt[s]://[user[:pass]@]HOST[:PORT]/PREFIX?group=G&client_id=ID&session_expiry=S&ca=PATH``.

    Returns the connection parameters of :func:`~.mqtt.parse_mqtt_url` plus ``prefix``,
    ``group`` (default ``sensor-receive``), ``client_id`` (default ``<hostname>-<group>``; give
    each replica on one host its own), ``session_expiry`` (seconds, default 86400) and ``ca``
    (CA bundle for ``mqtts://``; default the system's). Raises ConfigError naming the part.
    """
    try:
        p = parse_mqtt_url(url)
    except ConfigError as exc:
        raise ConfigError(f"mqtt: {str(exc).removeprefix('sink: ')} "
                          "(--mqtt mqtt://HOST:PORT/TOPIC-PREFIX?group=NAME&client_id=ID)") from None
    if "#" in url or "+" in urllib.parse.urlsplit(url).path:
        raise ConfigError(f"mqtt: {url!r}: give the topic prefix without wildcards (it subscribes PREFIX/#)")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query, keep_blank_values=True)
    unknown = sorted(set(query) - set(_QUERY_KEYS))
    if unknown:
        raise ConfigError(f"mqtt: unknown URL parameter {unknown[0]!r} (known: {', '.join(_QUERY_KEYS)})")
    one = {k: v[-1] for k, v in query.items()}
    group = one.get("group", "sensor-receive")
    if not _GROUP_RE.fullmatch(group):
        raise ConfigError(f"mqtt: group {group!r} must match {_GROUP_RE.pattern}")
    client_id = one.get("client_id") or f"{socket.gethostname()}-{group}"[:64]
    if not _GROUP_RE.fullmatch(client_id):
        raise ConfigError(f"mqtt: client_id {client_id!r} must match {_GROUP_RE.pattern}")
    try:
        expiry = int(one.get("session_expiry", "86400"))
    except ValueError:
        raise ConfigError(f"mqtt: session_expiry must be whole seconds, got {one['session_expiry']!r}") from None
    if not 1 <= expiry <= 0xFFFFFFFF:
        raise ConfigError(f"mqtt: session_expiry must be 1..4294967295 seconds, got {expiry}")
    ca = one.get("ca", "")
    if ca and not Path(ca).is_file():
        raise ConfigError(f"mqtt: ca {ca} does not exist")
    p.update(prefix=p.pop("topic").rstrip("/"), group=group, client_id=client_id,
             session_expiry=expiry, ca=ca)
    return p


def parse_segment(payload: bytes, *, max_record_bytes: int, max_segment_bytes: int,
                  max_gap_frames: int, on_header=None) -> wire.Segment:
    """One MQTT payload (preamble + HEADER, FRAME/GAP..., END) → a checked :class:`~.wire.Segment`.

    Raises ProtocolError (``too_large``, ``malformed``, ``protocol``, ``implausible_gap``, ... or
    whatever ``on_header`` raises) — the same checks a TCP session applies.
    """
    if len(payload) > max_segment_bytes + PREAMBLE.size:
        raise ProtocolError("too_large", f"segment of {len(payload)} bytes exceeds {max_segment_bytes}")
    if payload[:PREAMBLE.size] != preamble():
        raise ProtocolError("malformed", "payload does not start with the container preamble")
    res = scan_records(payload, offset=PREAMBLE.size, max_payload=max_record_bytes)
    if res.errors:
        raise ProtocolError("malformed", f"byte {res.good_bytes}: {res.errors[0]}")
    asm = wire.SegmentAssembler(max_segment_bytes, max_gap_frames, on_header=on_header)
    seg = None
    for rec in res.records:
        if seg is not None:
            raise ProtocolError("protocol", "records after the segment's END")
        seg = asm.feed(rec)
    if seg is None:
        raise ProtocolError("protocol", "payload ends before the segment's END record")
    return seg


class MqttReceiver:
    """Subscribes, verifies, stores (fsync), then acknowledges; ``start()`` / ``stop()``."""

    def __init__(self, url: str, store: Store, *, max_record_bytes: int = 16 * 1024**2,
                 max_segment_bytes: int = 64 * 1024**2, max_gap_frames: int = 1 << 24,
                 max_seq_jump: int = 1 << 24, max_buffer_bytes: int = 256 * 1024**2, token: str = "",
                 metrics=None, decoder: Decoder | None = None, max_rejected_bytes: int = 64 * 1024**2,
                 keepalive: int = 30) -> None:
        self._paho = import_paho("--mqtt")
        self.params = parse_subscribe_url(url)
        self.topic = f"$share/{self.params['group']}/{self.params['prefix']}/#"
        self.store, self.metrics, self.decoder, self.token = store, metrics, decoder, token
        self.max_record_bytes, self.max_segment_bytes = max_record_bytes, max_segment_bytes
        self.max_gap_frames, self.max_seq_jump = max_gap_frames, max_seq_jump
        # The broker may not send more than this many unacknowledged messages, nor any larger
        # than max_segment_bytes (plus topic/properties), so memory stays within max_buffer_bytes.
        self.receive_maximum = max(1, min(64, max_buffer_bytes // max(1, max_segment_bytes)))
        self.max_rejected_bytes, self.keepalive = max_rejected_bytes, keepalive
        self.subscribed = threading.Event()
        self.counts = {"stored": 0, "duplicates": 0, "rejected": 0, "messages": 0}
        self._q: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._gen = 0  # connection generation: PUBACKs only go to the connection that delivered
        self._client = None
        self._worker = threading.Thread(target=self._work, name="mqtt-store", daemon=True)

    # -- verification and storage (no network) -----------------------------------------------
    def handle(self, topic: str, payload: bytes) -> str:
        """Verify and store one message; returns ``"stored"``, ``"duplicate"`` or ``"rejected"``.

        Raises OSError when the store cannot write (the message must not be acknowledged).
        """
        stream = topic.rsplit("/", 1)[-1] if topic.startswith(self.params["prefix"] + "/") else ""

        def bound_to_topic(header: dict) -> None:
            if header["stream_id"] != stream:
                raise ProtocolError("forbidden", f"topic {topic!r} may not carry stream "
                                    f"{header['stream_id']!r} (publish to {self.params['prefix']}/<stream_id>)")

        self.counts["messages"] += 1
        try:
            if not STREAM_ID_RE.fullmatch(stream):
                raise ProtocolError("bad_stream_id", f"topic {topic!r}: last level must be a stream id "
                                    f"matching {STREAM_ID_RE.pattern}")
            seg = parse_segment(payload, max_record_bytes=self.max_record_bytes,
                                max_segment_bytes=self.max_segment_bytes,
                                max_gap_frames=self.max_gap_frames, on_header=bound_to_topic)
            stored, dups, _gaps = store_segment(self.store, seg, self.max_seq_jump, self.metrics, self.decoder)
        except ProtocolError as exc:
            self._reject(topic, payload, exc)
            return "rejected"
        self.counts["stored"] += stored
        self.counts["duplicates"] += dups
        log.debug("stream %s segment %d: %d frames stored, %d duplicates", seg.stream_id, seg.segno, stored, dups)
        if dups:
            log.info("stream %s segment %d: %d duplicate frames ignored (redelivery)", seg.stream_id,
                     seg.segno, dups)
        return "stored" if stored or not dups else "duplicate"

    @property
    def rejected_dir(self) -> Path:
        """Where rejected messages are kept (not a stream folder: the name is no stream id)."""
        return self.store.root / "_rejected"

    def _reject(self, topic: str, payload: bytes, exc: ProtocolError) -> None:
        self.counts["rejected"] += 1
        if self.metrics:
            self.metrics.rejected.inc(1, exc.code)
        d = self.rejected_dir
        d.mkdir(exist_ok=True)
        used = sum(f.stat().st_size for f in d.iterdir() if f.is_file())
        where = "not kept: _rejected/ is full"
        if used + len(payload) <= self.max_rejected_bytes:
            dest = d / f"{time.strftime('%Y%m%dT%H%M%S')}-{exc.code}-{uuid.uuid4().hex[:8]}.seg"
            dest.write_bytes(payload)
            where = f"kept in {dest}"
        log.warning("mqtt: rejected a %d-byte message on topic %r: %s (%s); acknowledged so the broker "
                    "does not redeliver it", len(payload), topic, exc, where)

    # -- MQTT session --------------------------------------------------------------------------
    def start(self) -> None:
        """Connect (asynchronously; reconnects forever) and start storing."""
        paho, p = self._paho, self.params
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=p["client_id"],
                        protocol=paho.MQTTv5, manual_ack=True)
        if p["username"] or p["password"] or self.token:
            c.username_pw_set(p["username"] or "sensor-receive", p["password"] or self.token)
        if p["tls"]:
            ctx = ssl.create_default_context(cafile=p["ca"] or None)
            c.tls_set_context(ctx)
        c.reconnect_delay_set(0.5, 30)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = p["session_expiry"]
        props.ReceiveMaximum = self.receive_maximum
        props.MaximumPacketSize = self.max_segment_bytes + PREAMBLE.size + 65536
        c.on_connect, c.on_disconnect = self._on_connect, self._on_disconnect
        c.on_subscribe, c.on_message = self._on_subscribe, self._on_message
        c.on_connect_fail = self._on_connect_fail
        self._client = c
        self._worker.start()
        c.connect_async(p["host"], p["port"], keepalive=self.keepalive, clean_start=False, properties=props)
        c.loop_start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the message being stored, then disconnect (the session stays for ``session_expiry``)."""
        self._stop.set()
        self._q.put(None)
        if self._worker.is_alive():
            self._worker.join(timeout)
        if self._client is not None:
            try:
                self._client.disconnect()
            finally:
                self._client.loop_stop()

    def _on_connect(self, client, _u, flags, reason, _props) -> None:
        p = self.params
        if reason.is_failure:
            log.error("mqtt://%s:%d refused the connection: %s", p["host"], p["port"], reason)
            return
        self._gen += 1
        log.info("connected to mqtt://%s:%d as %s (session present: %s); subscribing %s", p["host"], p["port"],
                 p["client_id"], flags.session_present, self.topic)
        client.subscribe(self.topic, options=self._paho.SubscribeOptions(qos=1))

    def _on_connect_fail(self, _c, _u) -> None:
        p = self.params
        why = sys.exc_info()[1]  # paho calls this inside its ``except OSError`` (refused, DNS, TLS)
        log.warning("cannot connect to mqtt%s://%s:%d: %s; retrying", "s" if p["tls"] else "", p["host"],
                    p["port"], why or "connection failed")

    def _on_disconnect(self, _c, _u, _flags, reason, _props) -> None:
        self.subscribed.clear()
        if not self._stop.is_set():
            log.warning("mqtt connection lost (%s); reconnecting, unacknowledged messages will be redelivered",
                        reason)

    def _on_subscribe(self, _c, _u, _mid, reason_codes, _props) -> None:
        bad = [rc for rc in reason_codes if rc.is_failure]
        if bad:
            log.error("broker refused the subscription %s: %s (does it support MQTT 5 shared "
                      "subscriptions, and may this user read the topic?)", self.topic, bad[0])
            return
        log.info("subscribed %s (group %s, QoS 1)", self.topic, self.params["group"])
        self.subscribed.set()

    def _on_message(self, _c, _u, msg) -> None:
        if msg.dup:
            log.debug("redelivered message on %s (not acknowledged before a disconnect)", msg.topic)
        self._q.put((self._gen, msg))

    def _work(self) -> None:
        while not self._stop.is_set():
            item = self._q.get()
            if item is None:
                break
            gen, msg = item
            delay = 0.5
            while True:
                try:
                    self.handle(msg.topic, msg.payload)
                    break
                except OSError as exc:  # the store cannot write: never acknowledge, retry
                    log.error("store cannot write (%s); retrying in %.1fs, message not acknowledged", exc, delay)
                    if self._stop.wait(delay):
                        return
                    delay = min(30.0, delay * 2)
                except Exception as exc:  # a bug must not wedge the session: keep the message, go on
                    log.exception("mqtt: unexpected error storing a message on %r", msg.topic)
                    self._reject(msg.topic, msg.payload, ProtocolError("internal", repr(exc)))
                    break
            if msg.qos > 0 and gen == self._gen:  # after a reconnect the broker redelivers instead
                self._client.ack(msg.mid, msg.qos)


__all__ = ["MqttReceiver", "parse_subscribe_url", "parse_segment"]
