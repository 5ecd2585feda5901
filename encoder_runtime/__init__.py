"""sensorcodec device + cloud runtime: bundles, Encoder/Decoder on ONNX Runtime, the container.

Never imports torch: numpy, onnxruntime and zstandard only.
"""

from .bundle import Bundle, BundleError, list_models, load_bundle
from .codec import CodecError, Decoder, Encoder
from .container import ContainerError
from .errors import DecodeLimitError, MalformedInputError

__all__ = ["Bundle", "BundleError", "CodecError", "ContainerError", "DecodeLimitError", "Decoder", "Encoder",
           "MalformedInputError", "list_models", "load_bundle"]
__version__ = "0.1.0"
