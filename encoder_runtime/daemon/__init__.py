"""The shipping path: ``sensor-encode`` (source → queue → encoder → spool → uploader) and
``sensor-receive`` (authenticate, verify, de-duplicate, store durably, acknowledge).

Modules, one job each:

- :mod:`.config`     TOML + flag configuration, sizes/durations, validation
- :mod:`.sources`    frame sources chosen by URL scheme (``dir:``, ``file:``, ``stdin:``, ...)
- :mod:`.pipeline`   bounded frame queue and the encode → spool worker
- :mod:`.spool`      sealed, CRC-checked segments on disk with crash recovery and bounds
- :mod:`.wire`       the session protocol (container records + small JSON control records)
- :mod:`.tcp`        at-least-once TCP (optionally TLS) uploader
- :mod:`.mqtt`       MQTT QoS 1 uploader
- :mod:`.store`      the receiver's per-stream durable store with de-duplication
- :mod:`.receiver`   the ``sensor-receive`` server
- :mod:`.metrics`    Prometheus text exposition on localhost
- :mod:`.sdnotify`   systemd ``sd_notify`` without dependencies
- :mod:`.codecs`     loading the encoder/decoder (the real codec, or the ``raw`` pass-through)
"""
