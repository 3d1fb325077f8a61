"""The one way FabLens writes an ONNX model (from a torch module, at training time) and opens
one for serving (onnxruntime, CPU)."""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Sequence

import onnxruntime as ort


def torch_to_onnx(module, example, inputs: Sequence[str], outputs: Sequence[str],
                  fold_constants: bool = True) -> bytes:
    """The ONNX graph (opset 17) of a torch ``module`` traced on the tensor ``example``; the
    first axis (the batch) of every input and output may take any size.

    Uses the TorchScript exporter: deprecated in torch 2.13 but still shipped, and far quicker
    than the dynamo exporter (about 50x for the sensor autoencoder, which matters inside CV
    folds); its deprecation and tracer warnings are silenced. ``fold_constants=False`` keeps
    computations on stored parameters as graph nodes (small files; onnxruntime folds them at
    load). torch is imported by the caller's module only: serving never reaches this.
    """
    import torch

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(module, (example,), str(path), input_names=list(inputs),
                          output_names=list(outputs), dynamo=False, opset_version=17,
                          do_constant_folding=fold_constants,
                          dynamic_axes={name: {0: "batch"} for name in (*inputs, *outputs)})
        return path.read_bytes()


def onnx_session(onnx_bytes: bytes, n_threads: int, arena: bool = False
                 ) -> ort.InferenceSession:
    """An onnxruntime CPU session using at most ``n_threads`` threads per run.

    Idle pool threads sleep instead of spinning: on a small server, request threads, XGBoost
    and the parsing thread share two cores, and a spinning pool only takes time from them
    (10,000-row sensor upload: about 0.1 s faster with spinning off).
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = n_threads
    options.inter_op_num_threads = 1
    # no memory arena by default: an arena keeps each session's largest run's buffers for
    # good, and with a dozen sessions in one 512 MB server those add up (PatchTST on a
    # 23,546-row history left 373 MiB behind with it, 313 without); it costs about 7% on
    # photo batches. ``arena`` is for a model with large but bounded buffers per call, where
    # the server's malloc settings (webapp.gunicorn_conf.tune_malloc: every large block
    # mmap'ed and returned) would fault them in again on every call
    options.enable_cpu_mem_arena = arena
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
