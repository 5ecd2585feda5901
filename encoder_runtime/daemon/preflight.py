"""The checks ``sensor-encode run`` makes before it streams, in one place: ``check-config``, the start
of ``run`` and a SIGHUP reload all call :func:`prepare`, so a config that passes one passes all.

Checked: the source opens and its reader packages are installed (Pillow for images, soundfile for
audio); the model exists, is of the source's modality and fits its frames (channel count, dtype,
size: the encoder's own input checks on the source's frame shape); the sink's packages (paho-mqtt
for ``mqtt://``) and TLS files load.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .config import ConfigError, EncodeConfig
from .sources import Source, open_source


@dataclasses.dataclass
class Prepared:
    """An opened source and a loaded encoder that fit each other."""

    source: Source
    encoder: Any

    def close(self) -> None:
        """Release the source (check-config, or a rejected reload)."""
        self.source.close()


def check_sink(cfg: EncodeConfig) -> None:
    """The sink URL parses, its client package is installed and its TLS files load."""
    scheme = cfg.sink.split("://", 1)[0]
    if scheme in ("mqtt", "mqtts"):
        from .mqtt import import_paho, parse_mqtt_url

        parse_mqtt_url(cfg.sink)
        import_paho()
    if cfg.tls or scheme in ("tls", "mqtts"):
        import ssl

        from .tcp import client_ssl_context
        try:
            client_ssl_context(cfg.tls_ca, cfg.tls_cert, cfg.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"sink TLS files (tls_ca/tls_cert/tls_key): {exc}") from None


def load_fitting_encoder(cfg: EncodeConfig, source: Source) -> Any:
    """The encoder ``cfg.model`` names, checked against the source's modality and frame shape."""
    from .codecs import load_encoder

    try:
        encoder = load_encoder(cfg.model, cfg.threads, source.modality, cfg.variant,
                               channels=source.channels)
    except (FileNotFoundError, KeyError, ValueError, ImportError) as exc:  # BundleError is a ValueError
        raise ConfigError(f"model {cfg.model!r}: {exc}") from None
    check_fit(cfg, source, encoder)
    return encoder


def check_fit(cfg: EncodeConfig, source: Source, encoder: Any) -> None:
    """ConfigError unless ``encoder`` accepts the frames ``source`` will deliver."""
    spec = source.frame_spec()
    check = getattr(encoder, "check_frame", None)
    if spec is None or check is None:
        return
    try:
        check(*spec)
    except ValueError as exc:  # CodecError is a ValueError
        shape, dtype = spec
        raise ConfigError(f"model {getattr(encoder, 'name', cfg.model)!r} does not fit source "
                          f"{cfg.source!r} (frames {'x'.join(map(str, shape))} {dtype}): {exc}") from None


def prepare(cfg: EncodeConfig, source: Source | None = None, encoder: Any = None) -> Prepared:
    """Open the source and load the encoder for ``cfg`` and check that source, model and sink work
    together; raises ConfigError naming the field. ``source``/``encoder`` given: check those."""
    check_sink(cfg)
    opened = source is None
    src = open_source(cfg.source) if opened else source
    try:
        if encoder is None:
            encoder = load_fitting_encoder(cfg, src)
        else:
            check_fit(cfg, src, encoder)
    except BaseException:
        if opened:
            src.close()
        raise
    return Prepared(src, encoder)
