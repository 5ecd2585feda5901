"""``sensor-encode``: capture sensor frames, encode them, spool them durably and ship them.

    sensor-encode [run] -c /etc/sensor-encode/config.toml [--flags...]
    sensor-encode --source synthetic:256x256x3,fps=10 --model raw --sink tcp://127.0.0.1:7700 --spool ./spool
    sensor-encode check-config -c config.toml      # make run's checks and print the effective config
    sensor-encode list-sources                     # which source schemes work on this machine

Flags override the config file. SIGHUP re-reads the config: if it passes check-config's checks the
pipeline restarts with it, otherwise the daemon logs why and keeps running the old one. Exit codes:
0 ok (source finished / --max-frames reached and everything acknowledged, or SIGTERM handled),
1 runtime failure, 2 configuration error.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys

from .config import ConfigError, EncodeConfig, add_flags, describe, load_config, overrides_from_args
from .logs import setup_logging
from .preflight import prepare

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


def _reloader(service, config_path: str | None, overrides: dict, pending: dict):
    """The SIGHUP handler's work, run on the service's main loop: re-read and check the config; on
    success fill ``pending`` (the next service's config, source, encoder) and return True."""
    def reload() -> bool:
        try:
            cfg = load_config(EncodeConfig, config_path, overrides)
            same_source = cfg.source == service.cfg.source   # a device cannot be opened twice
            prepared = prepare(cfg, service.source if same_source else None)
        except ConfigError as exc:
            log.error("SIGHUP: new config rejected, still running the old one: %s", exc)
            return False
        pending.update(cfg=cfg, source=None if same_source else prepared.source, encoder=prepared.encoder)
        log.info("SIGHUP: config %s checked; restarting the pipeline with it", config_path or "(flags)")
        return True
    return reload


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``sensor-encode``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = "run"
    if argv and argv[0] in ("run", "check-config", "list-sources"):
        command, argv = argv[0], argv[1:]
    if command == "list-sources":
        return _list_sources()
    args = _build_parser().parse_args(argv)
    overrides = overrides_from_args(args, EncodeConfig)
    try:
        cfg = load_config(EncodeConfig, args.config, overrides)
        if command == "check-config":
            prepare(cfg).close()   # exactly what run checks before it streams
            print(json.dumps(describe(cfg), indent=2))
            return 0
        setup_logging(cfg.log_format, cfg.log_level, "sensor-encode")
        from .service import EncodeService

        service = EncodeService(cfg)
    except ConfigError as exc:
        print(f"sensor-encode: configuration error: {exc}", file=sys.stderr)
        return 2
    current, terminated = [service], []

    def on_signal(signum, _frame):
        log.info("signal %d: draining and stopping", signum)
        terminated.append(signum)
        current[0].stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, lambda _s, _f: current[0].request_reload())
    while True:
        pending: dict = {}
        service.reload = _reloader(service, args.config, overrides, pending)
        try:
            rc = service.run()
            if not service.reloading or terminated:
                return rc
            cfg = pending["cfg"]
            setup_logging(cfg.log_format, cfg.log_level, "sensor-encode")
            service = current[0] = EncodeService(cfg, pending["source"], pending["encoder"])
        except ConfigError as exc:   # e.g. the metrics port is taken
            print(f"sensor-encode: configuration error: {exc}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
