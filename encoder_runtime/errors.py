"""The one error hierarchy for malformed or untrusted input (files, streams, bundles).

Every reader in :mod:`encoder_runtime` turns bad bytes into one of these, never into an
``IndexError``/``TypeError``/``RecursionError`` or an unbounded allocation::

    MalformedInputError (ValueError)
    ├── ContainerError        a stream, record or stream header          (container.py)
    │   └── FrameError        a FRAME payload, or one that does not fit the model (frame.py)
    │       └── DecodeLimitError   a frame that would decode to more than the allowed size
    ├── CorruptPayloadError   coded bytes that do not decode to their shape      (entropy.py)
    └── BundleError           a model bundle: manifest, files, sha256, name      (bundle.py)

Messages name the source (file or stream), the field and what was expected; callers catch
``MalformedInputError`` (or ``ValueError``) and print the message as one line.
"""

from __future__ import annotations


class MalformedInputError(ValueError):
    """Input bytes or files are malformed, corrupt, hostile or do not match what they claim."""


class ContainerError(MalformedInputError):
    """A stream is malformed, truncated, corrupted or of an unsupported version."""


class FrameError(ContainerError):
    """A frame payload is malformed or does not fit the model that should decode it."""


class DecodeLimitError(FrameError):
    """A frame would decode to more samples than the decoder's limit allows."""


class CorruptPayloadError(MalformedInputError):
    """A payload does not decode to codes of the given shape (truncated, padded or garbage)."""


class BundleError(MalformedInputError):
    """A bundle is missing, incomplete, corrupt, untrusted or of an unsupported version."""
