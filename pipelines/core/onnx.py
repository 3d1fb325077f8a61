"""The one way FabLens opens an ONNX model for serving (onnxruntime, CPU)."""
from __future__ import annotations

import onnxruntime as ort


def onnx_session(onnx_bytes: bytes, n_threads: int) -> ort.InferenceSession:
    """An onnxruntime CPU session using at most ``n_threads`` threads per run.

    Idle pool threads sleep instead of spinning: on a small server, request threads, XGBoost
    and the parsing thread share two cores, and a spinning pool only takes time from them
    (10,000-row sensor upload: about 0.1 s faster with spinning off).
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = n_threads
    options.inter_op_num_threads = 1
    # no memory arena: an arena keeps each session's largest run's buffers for good, and
    # with a dozen sessions in one 512 MB server those add up (PatchTST on a 23,546-row
    # history left 373 MiB behind with it, 313 without); it costs about 7% on photo batches
    options.enable_cpu_mem_arena = False
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
