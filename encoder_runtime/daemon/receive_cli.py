"""``sensor-receive``: accept streams from ``sensor-encode`` and store them durably.

    sensor-receive --listen 127.0.0.1:7700 --store ./store [--token-file F | --tokens-file F]
                   [--tls-cert C --tls-key K [--tls-client-ca CA]] [--allow-anonymous]
                   [--mqtt mqtt://HOST:PORT/PREFIX?group=NAME&client_id=ID]   (or mqtt = "..." in [receiver])
    sensor-receive ls ./store [--json]
    sensor-receive check-config -c receiver.toml

Exit codes: 0 ok, 2 configuration error.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading

from . import sdnotify
from .config import LOOPBACK_HOSTS, ConfigError, ReceiveConfig, add_flags, describe, load_config, overrides_from_args, parse_hostport
from .logs import setup_logging
from .metrics import ReceiveMetrics, serve
from .mqtt_receiver import MqttReceiver
from .receiver import Receiver, server_ssl_context
from .store import format_summary, summarize

log = logging.getLogger("sensorcodec.receive")


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sensor-receive", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", help="TOML config file (flags win)")
    add_flags(p, ReceiveConfig)
    return p


def _ls(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="sensor-receive ls", description="Summarise a store.")
    p.add_argument("store")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    a = p.parse_args(argv)
    s = summarize(a.store)
    print(json.dumps(s, indent=2) if a.json else format_summary(s))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``sensor-receive``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "ls":
        return _ls(argv[1:])
    check = bool(argv) and argv[0] == "check-config"
    if check:
        argv = argv[1:]
    args = _build_parser().parse_args(argv)
    try:
        cfg = load_config(ReceiveConfig, args.config, overrides_from_args(args, ReceiveConfig))
    except ConfigError as exc:
        print(f"sensor-receive: configuration error: {exc}", file=sys.stderr)
        return 2
    if check:
        print(json.dumps(describe(cfg), indent=2))
        return 0
    setup_logging(cfg.log_format, cfg.log_level, "sensor-receive")
    metrics = ReceiveMetrics()
    if cfg.metrics:
        try:
            serve(metrics.registry, *parse_hostport(cfg.metrics, "metrics"))
        except ConfigError as exc:   # the port is taken
            print(f"sensor-receive: configuration error: {exc}", file=sys.stderr)
            return 2
    host, port = parse_hostport(cfg.listen, "listen")
    ctx = server_ssl_context(cfg.tls_cert, cfg.tls_key, cfg.tls_client_ca) if cfg.tls_cert else None
    token, tokens = cfg.auth_token(), cfg.load_tokens()
    if not token and not tokens and not cfg.tls_client_ca and host not in LOOPBACK_HOSTS:
        log.warning("listening on %s without a token or client certificates (allow_anonymous): "
                    "anyone can send data", host)
    try:
        rx = Receiver(host, port, cfg.store, token=token, tokens=tokens, token_streams=cfg.stream_patterns(),
                      ssl_context=ctx, cert_streams=cfg.client_streams,
                      max_record_bytes=cfg.max_record_bytes, max_segment_bytes=cfg.max_segment_bytes,
                      max_buffer_bytes=cfg.max_buffer_bytes, max_connections=cfg.max_connections,
                      max_connections_per_peer=cfg.max_connections_per_peer,
                      max_handshakes=cfg.max_handshakes, max_handshakes_per_peer=cfg.max_handshakes_per_peer,
                      handshake_timeout=cfg.handshake_timeout, idle_timeout=cfg.idle_timeout,
                      segment_timeout=cfg.segment_timeout, max_gap_frames=cfg.max_gap_frames,
                      max_seq_jump=cfg.max_seq_jump, file_max_bytes=cfg.file_max_bytes,
                      decode_dir=cfg.decode, decode_threads=cfg.decode_threads,
                      decode_variant=cfg.decode_variant, metrics=metrics)
    except OSError as exc:
        print(f"sensor-receive: cannot listen on {cfg.listen}: {exc}", file=sys.stderr)
        return 1
    sub = None
    if cfg.mqtt:
        try:
            sub = MqttReceiver(cfg.mqtt, rx.store, max_record_bytes=cfg.max_record_bytes,
                               max_segment_bytes=cfg.max_segment_bytes, max_gap_frames=cfg.max_gap_frames,
                               max_seq_jump=cfg.max_seq_jump, max_buffer_bytes=cfg.max_buffer_bytes,
                               metrics=metrics, decoder=rx.decoder)
        except ConfigError as exc:
            print(f"sensor-receive: configuration error: {exc}", file=sys.stderr)
            return 2
        sub.start()
        sub.subscribed.wait(15.0)  # report it on the status line; it keeps retrying either way
    stop = threading.Event()

    def on_signal(signum, _frame):
        log.info("signal %d: shutting down", signum)
        stop.set()
        if sub is not None:
            sub.stop()
        rx.shutdown()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # The first line on stdout tells scripts where we listen (port 0 = pick a free one).
    status = {"listening": f"{rx.address[0]}:{rx.address[1]}", "store": cfg.store}
    if sub is not None:
        status["mqtt"] = {"topic": sub.topic, "client_id": sub.params["client_id"],
                          "subscribed": sub.subscribed.is_set()}
    print(json.dumps(status), flush=True)
    log.info("listening on %s:%d, store %s, tls=%s, token=%s", rx.address[0], rx.address[1], cfg.store,
             ctx is not None, bool(token))
    sdnotify.notify("READY=1")
    rx.serve_forever()
    sdnotify.notify("STOPPING=1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
