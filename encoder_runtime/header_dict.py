"""The fixed zstd dictionary of compressed HEADER records (container format 1.1, flag 0x01).

A raw-content dictionary: the canonical JSON (sorted keys, compact separators, no ``clock``) of
one representative stream header per kind — raw pass-through, time series, audio and image as
``sensor-codec encode`` writes them, then an image header as ``Encoder.encode`` writes it —
with the hashes and stream ids left empty; the most common kind comes last (nearest offsets).

Frozen: changing one byte makes every compressed header ever written unreadable, so
``tests/test_container.py`` pins its sha256. A different dictionary needs a new record flag.
"""

HEADER_DICT = b"".join((
    b'{"codec":"raw-zstd","format":1,"stream_id":""}',
    b'{"bundle":{"manifest_sha256":"","name":"imu6-l3c3"},"coder":"sigplane-zstd",'
    b'"encoder_variant":"int8","format":"sensorcodec-stream","latent":{"channels":3,'
    b'"code_max":127},"modality":"timeseries","sample":{"channels":6,"dtype":"int16",'
    b'"layout":"TC","rate_hz":10,"scale":512},"stream_id":"","transform":{"block":[8]}}',
    b'{"bundle":{"manifest_sha256":"","name":"audio16k-c6"},"coder":"sigplane-zstd",'
    b'"encoder_variant":"fp32","format":"sensorcodec-stream","latent":{"channels":6,'
    b'"code_max":127},"meta":{"kind":"audio","rate_hz":16000,"source":".wav"},'
    b'"modality":"audio","sample":{"channels":1,"dtype":"int16","layout":"TC","rate_hz":16000},'
    b'"stream_id":"","transform":{"block":[16]}}',
    b'{"bundle":{"manifest_sha256":"","name":"rgb-c16"},"coder":"sigplane-zstd",'
    b'"encoder_variant":"fp32","format":"sensorcodec-stream","latent":{"channels":16,'
    b'"code_max":127},"meta":{"kind":"image","source":".png"},"modality":"image",'
    b'"sample":{"channels":3,"dtype":"uint8","layout":"HWC"},"stream_id":"",'
    b'"transform":{"block":[8,8]}}',
    b'{"bundle":{"manifest_sha256":"","name":"rgb-c16"},"coder":"sigplane-zstd",'
    b'"encoder_variant":"fp32","format":"sensorcodec-stream","latent":{"channels":16,'
    b'"code_max":127},"modality":"image","sample":{"channels":3,"dtype":"uint8",'
    b'"layout":"HWC"},"stream_id":"","transform":{"block":[8,8]}}',
))
