"""``sensor-encode``: capture sensor frames, encode them, spool them durably and ship them.

    sensor-encode [run] -c /etc/sensor-encode/config.toml [--flags...]
    sensor-encode --source synthetic:256x256x3,fps=10 --model raw --sink tcp://127.0.0.1:7700 --spool ./spool
    sensor-encode check-config -c config.toml      # validate and print the effective config
    sensor-encode list-sources                     # which source schemes work on this machine

Flags override the config file. Exit codes: 0 ok (source finished / --max-frames reached and
everything acknowledged, or SIGTERM handled), 1 runtime failure, 2 configuration error.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys

from .config import ConfigError, EncodeConfig, add_flags, describe, load_config, overrides_from_args
from .logs import setup_logging

log = logging.getLogger("sensorcodec.encode")


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sensor-encode", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("-c", "--config", help="TOML config file (flags win)")
    add_flags(p, EncodeConfig)
    return p


def _list_sources() -> int:
    import importlib

    checks = {"synthetic": [], "dir": [], "file": [], "stdin": [], "serial": ["firmware_bridge.source"],
              "camera": ["cv2"], "mic": ["sounddevice"], "images": ["PIL"], "audio files": ["soundfile"]}
    for name, mods in checks.items():
        missing = []
        for mod in mods:
            try:
                importlib.import_module(mod)
            except Exception:
                missing.append(mod)
        print(f"{name:12s} {'ok' if not missing else 'unavailable (needs ' + ', '.join(missing) + ')'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``sensor-encode``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = "run"
    if argv and argv[0] in ("run", "check-config", "list-sources"):
        command, argv = argv[0], argv[1:]
    if command == "list-sources":
        return _list_sources()
    args = _build_parser().parse_args(argv)
    try:
        cfg = load_config(EncodeConfig, args.config, overrides_from_args(args, EncodeConfig))
        if command == "check-config":
            from .sources import open_source

            open_source(cfg.source).close()
            if cfg.sink.startswith("mqtt"):
                from .mqtt import parse_mqtt_url

                parse_mqtt_url(cfg.sink)
            print(json.dumps(describe(cfg), indent=2))
            return 0
        setup_logging(cfg.log_format, cfg.log_level, "sensor-encode")
        from .service import EncodeService

        service = EncodeService(cfg)
    except ConfigError as exc:
        print(f"sensor-encode: configuration error: {exc}", file=sys.stderr)
        return 2

    def on_signal(signum, _frame):
        log.info("signal %d: draining and stopping", signum)
        service.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return service.run()


if __name__ == "__main__":
    sys.exit(main())
