"""Decoding: a source → windows of frames sampled at a fixed rate by presentation time.

VideoDecoder (decoder.py)   owns probing, sampling, stats and the choice/fallback of backends
FrameReader  (reader.py)    the interface every backend implements
DecordReader, PyAVReader    the backends, one module each; container.py opens and probes
"""

from heron.pipeline.decode.container import VideoInfo, map_open_error, probe
from heron.pipeline.decode.decoder import DecodeStats, VideoDecoder, iter_windows
from heron.pipeline.decode.reader import FrameReader, ReaderFailed, ReadProgress, StreamTruncated
from heron.pipeline.decode.sampling import FrameSampler, output_size

__all__ = [
    "DecodeStats",
    "FrameReader",
    "FrameSampler",
    "ReadProgress",
    "ReaderFailed",
    "StreamTruncated",
    "VideoDecoder",
    "VideoInfo",
    "iter_windows",
    "map_open_error",
    "output_size",
    "probe",
]
