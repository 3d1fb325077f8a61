"""A small CNN over 64 x 64 wafer maps: trained with torch, served through onnxruntime.

Input: (maps, 64, 64) die codes, 0 off-wafer, 1 pass, 2 fail (``transform.resize_map`` makes
any map that size). Everything after that is inside the exported ONNX graph, so serving can
never drift from training: the two input planes (on-wafer, fail), the network, the
calibration temperature and the softmax. Its output is the nine class probabilities.

Network: a 2 x 2 max-pool first (most real maps are about 27 x 27, so the 64 x 64 grid is
mostly a nearest-neighbour enlargement, and a max keeps every fail die), then four stages of
3 x 3 convolutions with batch norm and ReLU (one convolution in the first two stages, two in
the last two), max-pooling between them, then global average and global max pooling side by
side, dropout and one linear layer. About 0.3 M parameters, ~1 MB as ONNX.

Training (torch, CPU): each epoch draws ``epoch_size`` maps with replacement, a map of class c
with weight ``count_c ** -balance`` (0: natural frequencies, 1: every class equally often),
and turns each drawn map by a random multiple of 90 degrees and a random flip (the eight
symmetries of the square; failure patterns do not depend on orientation). AdamW with a
one-cycle learning rate. With ``validation`` maps, the epoch with the best validation macro-F1
is kept (validated from ``validate_from`` of the epochs on, once the one-cycle learning rate
comes down; early stop after ``patience`` validated epochs without a better one), and the
temperature that minimises the validation log-loss is fitted and baked into the export.

Test-time symmetry (``tta``): the exported graph scores each map in ``tta`` orientations (the
first of :data:`SYMMETRIES`: 1 as given, 4 the four rotations, 8 rotations and mirror images)
and averages the calibrated probabilities; the temperature is fitted for that average. The
epoch is chosen on single-orientation scores (cheaper during training).

Map-feature trees (``blend_features``): beside the network, XGBoost trees on the 34
rotation-proof map features of :mod:`pipelines.wafermap.features` (fail shares by ring and by
sorted sector, the largest fail cluster's size, place and shape), fitted on the same train
maps (class weights ``count ** -tree_balance``). The served probabilities are
``softmax((w * log p_cnn + (1 - w) * log p_trees) / T)``: the weight ``w`` is the one of
:data:`BLEND_WEIGHTS` with the best validation macro-F1 and ``T`` minimises the validation
log-loss of the blend. The two see a map differently (learned local shapes against global
statistics), so their errors differ: on WM-811K's val split the blend is markedly better than
either alone, and the trees are invariant to turning, so the network needs no test-time
symmetry (``tta`` 1) and the pair costs less than four orientations of the network alone.
The trees run in XGBoost's own runtime (no torch). :func:`single_view_onnx` turns an exported
graph of ``tta`` orientations into the one-orientation graph (to blend a trained network).

``explain`` is occlusion, run through onnxruntime (no torch, no gradients): for each patch of
``occlusion_patch`` x ``occlusion_patch`` cells (step ``occlusion_stride``) that holds a fail
die, the fail dies are turned into passing dies and the drop in the predicted class's
probability is spread over the patch; a cell's saliency is the mean drop over the patches
covering it (never below 0). Patches without fail dies change nothing and are skipped.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable, ClassVar, Sequence

import numpy as np

from pipelines.core.detectors import BaseDetector, ClassRegionExplanation, InvalidInputError
from pipelines.core.onnx import onnx_session, torch_to_onnx
from pipelines.wafermap.schema import CLASSES, FAIL, PASS

logger = logging.getLogger(__name__)

# map orientations per onnxruntime call (maps per call = this // tta): onnxruntime keeps its
# largest activations allocated (about 65 MB at 256, 120 MB at 512), so this bounds serving
# memory; throughput barely changes
VIEWS_PER_CALL = 256
# the blend weights of the network tried on validation data (the rest goes to the trees)
BLEND_WEIGHTS: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
# the eight symmetries of the square as (transpose, flip rows, flip columns): the four
# rotations by 0, 180, 90 and 270 degrees, then the four mirror images
SYMMETRIES: tuple[tuple[bool, bool, bool], ...] = (
    (False, False, False), (False, True, True), (True, True, False), (True, False, True),
    (True, False, False), (True, True, True), (False, True, False), (False, False, True))


def symmetry(maps, transpose: bool, flip_rows: bool, flip_cols: bool):
    """A torch batch (maps, H, W) turned/mirrored (transpose and flips export to ONNX)."""
    import torch

    if transpose:
        maps = maps.transpose(1, 2)
    dims = [d for d, flip in ((1, flip_rows), (2, flip_cols)) if flip]
    return torch.flip(maps, dims=dims) if dims else maps


def macro_f1(y: np.ndarray, predicted: np.ndarray, n_classes: int) -> float:
    """Macro-F1 over ``n_classes`` labels (0 for a class never seen nor predicted)."""
    f1 = []
    for k in range(n_classes):
        tp = np.sum((predicted == k) & (y == k))
        denom = np.sum(predicted == k) + np.sum(y == k)
        f1.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(f1))


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature T minimising the log-loss of ``softmax(logits / T)`` (grid, then refined).

    ``logits`` is (maps, classes), or (views, maps, classes) when the probabilities of several
    orientations are averaged.
    """
    logits = np.asarray(logits, dtype=np.float64)
    logits = logits[None] if logits.ndim == 2 else logits

    def nll(t: float) -> float:
        z = logits / t
        z = z - z.max(axis=2, keepdims=True)
        p = np.exp(z)
        p = (p / p.sum(axis=2, keepdims=True)).mean(axis=0)
        return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-300, None)).mean())

    grid = np.exp(np.linspace(np.log(0.2), np.log(10.0), 81))
    best = min(grid, key=nll)
    fine = best * np.exp(np.linspace(-0.05, 0.05, 41))
    return float(min(fine, key=nll))


def single_view_onnx(onnx_bytes: bytes) -> bytes:
    """The graph of an exported network scoring every map in one orientation (as given): the
    ``tta`` views' concatenation is bypassed and the softmax of the one batch is the output.
    A graph that already has one orientation comes back unchanged. Training only (onnx)."""
    import onnx
    from onnx import helper

    model = onnx.load_from_string(onnx_bytes)
    graph = model.graph
    views = [n for n in graph.node if n.op_type == "Concat" and "maps" in n.input]
    if not views:
        return onnx_bytes
    (concat,) = views
    softmax = [n for n in graph.node if n.op_type == "Softmax"]
    if len(softmax) != 1:
        raise ValueError("not a FabLens wafer-map CNN graph: expected one Softmax")
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name == concat.output[0]:
                node.input[k] = "maps"
    for node in graph.node:  # the views' mean is no longer the output
        node.output[:] = ["views_mean" if o == "probabilities" else o for o in node.output]
    softmax[0].output[0] = "probabilities"
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("probabilities", onnx.TensorProto.FLOAT,
                                                      None))
    extracted = onnx.utils.Extractor(model).extract_model(["maps"], ["probabilities"])
    return extracted.SerializeToString()


def blend(p_cnn: np.ndarray, p_trees: np.ndarray, weight: float, temperature: float = 1.0
          ) -> np.ndarray:
    """``softmax((weight * log p_cnn + (1 - weight) * log p_trees) / temperature)``."""
    z = _blend_logits(p_cnn, p_trees, weight) / temperature
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def choose_blend_weight(p_cnn: np.ndarray, p_trees: np.ndarray, y: np.ndarray, n_classes: int
                        ) -> tuple[float, dict[float, float]]:
    """The network's weight of :data:`BLEND_WEIGHTS` whose blend has the best macro-F1 on
    ``y`` (of equals, the one nearest 0.5), and every weight's macro-F1."""
    f1 = {w: macro_f1(y, _blend_logits(p_cnn, p_trees, w).argmax(axis=1), n_classes)
          for w in BLEND_WEIGHTS}
    return max(BLEND_WEIGHTS, key=lambda w: (f1[w], -abs(w - 0.5))), f1


def _blend_logits(p_cnn: np.ndarray, p_trees: np.ndarray, weight: float) -> np.ndarray:
    tiny = 1e-7
    return (weight * np.log(np.maximum(p_cnn, tiny))
            + (1 - weight) * np.log(np.maximum(p_trees, tiny)))


def _mean_softmax(logits: np.ndarray) -> np.ndarray:
    """Mean over views of softmax(logits), (views, maps, classes) -> (maps, classes)."""
    z = logits - logits.max(axis=2, keepdims=True)
    p = np.exp(z)
    return (p / p.sum(axis=2, keepdims=True)).mean(axis=0)


class CNNDetector(BaseDetector):
    """Nine-class wafer-map classifier; ``score`` gives calibrated class probabilities."""

    name: ClassVar[str] = "cnn"
    input_ndim: ClassVar[int] = 3  # (maps, height, width)
    integer_input: ClassVar[bool] = True  # uint8 die codes are checked without a float copy
    MODEL_FILE: ClassVar[str] = "model.onnx"
    CALIBRATION_FILE: ClassVar[str] = "calibration.json"
    TREES_FILE: ClassVar[str] = "trees.ubj"

    def __init__(self, *, classes: tuple[str, ...] = CLASSES,
                 channels: tuple[int, ...] = (16, 32, 64, 128), epochs: int = 40,
                 epoch_size: int = 20000, batch_size: int = 128, learning_rate: float = 3e-3,
                 weight_decay: float = 1e-4, dropout: float = 0.2, balance: float = 0.5,
                 validate_from: float = 0.5, patience: int = 10, tta: int = 4,
                 occlusion_patch: int = 8, occlusion_stride: int = 4,
                 blend_features: bool = False, trees: int = 400, tree_depth: int = 6,
                 tree_learning_rate: float = 0.08, tree_balance: float = 0.5,
                 n_jobs: int = 2, random_state: int = 0):
        self.classes = tuple(classes)
        self.channels = tuple(channels)
        self.epochs = epochs
        self.epoch_size = epoch_size
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.balance = balance
        self.validate_from = validate_from
        self.patience = patience
        self.tta = tta
        self.occlusion_patch = occlusion_patch
        self.occlusion_stride = occlusion_stride
        self.blend_features = blend_features
        self.trees = trees
        self.tree_depth = tree_depth
        self.tree_learning_rate = tree_learning_rate
        self.tree_balance = tree_balance
        self.n_jobs = n_jobs
        self.random_state = random_state

    # -- input ------------------------------------------------------------------------
    def _check_maps(self, X, *, reset: bool, feature_names: Sequence[str] | None = None
                    ) -> np.ndarray:
        """The base checks (shape, finite), then die codes 0/1/2 only; returns uint8 maps."""
        X = self._check_input(X, reset=reset, feature_names=feature_names)
        if X.dtype == np.uint8:
            if X.max() <= FAIL:
                return X
            bad = X > FAIL
        else:
            bad = (X != 0) & (X != 1) & (X != 2)
        if bad.any():
            where = np.argwhere(bad)[0]
            raise InvalidInputError(
                f"{self.name}: {int(bad.sum())} cell(s) are not die codes 0 (off-wafer), "
                f"1 (pass) or 2 (fail); first at map {where[0] + 1}, row {where[1] + 1}, "
                f"column {where[2] + 1}: {X[tuple(where)]:g}")
        return X.astype(np.uint8)

    def _labels(self, y) -> np.ndarray:
        y = np.asarray(y)
        if y.dtype.kind in "USO":
            index = {c: k for k, c in enumerate(self.classes)}
            unknown = sorted({str(v) for v in y} - set(index))
            if unknown:
                raise InvalidInputError(f"{self.name}: unknown class label(s) {unknown[:5]}; "
                                        f"known: {list(self.classes)}")
            return np.array([index[str(v)] for v in y], dtype=np.int64)
        y = y.astype(np.int64)
        if y.size and (y.min() < 0 or y.max() >= len(self.classes)):
            raise InvalidInputError(f"{self.name}: class indices must be in "
                                    f"0..{len(self.classes) - 1}")
        return y

    # -- training (torch) -------------------------------------------------------------
    def _build(self):
        import torch
        from torch import nn

        n_classes, dropout = len(self.classes), self.dropout
        if not 1 <= self.tta <= len(SYMMETRIES):
            raise ValueError(f"tta must be 1..{len(SYMMETRIES)} orientations, got {self.tta}")
        views = SYMMETRIES[:self.tta]
        layers: list[nn.Module] = [nn.MaxPool2d(2)]
        c_in = 2
        for stage, c_out in enumerate(self.channels):
            if stage:
                layers.append(nn.MaxPool2d(2))
            for _ in range(1 if stage < 2 else 2):
                layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                           nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
                c_in = c_out

        class WaferCNN(nn.Module):
            """Die codes (maps, H, W) -> logits; ``forward`` -> calibrated probabilities."""

            def __init__(self):
                super().__init__()
                self.features = nn.Sequential(*layers)
                self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * c_in, n_classes))
                self.register_buffer("temperature", torch.ones(()))

            def logits(self, x):
                planes = torch.stack([(x > 0.5).float(), (x > 1.5).float()], dim=1)
                z = self.features(planes)
                pooled = torch.cat([z.mean(dim=(2, 3)), z.amax(dim=(2, 3))], dim=1)
                return self.head(pooled)

            def forward(self, x):
                if len(views) == 1:
                    return torch.softmax(self.logits(x) / self.temperature, dim=1)
                turned = torch.cat([symmetry(x, *v) for v in views], dim=0)
                p = torch.softmax(self.logits(turned) / self.temperature, dim=1)
                return p.reshape(len(views), x.shape[0], n_classes).mean(dim=0)

        return WaferCNN()

    @staticmethod
    def _augment(batch, generator):
        """Each map in one of the eight symmetries of the square, drawn at random."""
        import torch

        which = torch.randint(0, len(SYMMETRIES), (batch.shape[0],), generator=generator)
        out = batch.clone()
        for k, view in enumerate(SYMMETRIES):
            chosen = which == k
            if chosen.any():
                out[chosen] = symmetry(batch[chosen], *view)
        return out

    def _torch_logits(self, module, maps: np.ndarray, views=SYMMETRIES[:1],
                      batch: int = 2048) -> np.ndarray:
        """Logits per orientation, (views, maps, classes)."""
        import torch

        module.eval()
        out = []
        with torch.no_grad():
            for view in views:
                part = []
                for start in range(0, len(maps), batch):
                    x = torch.from_numpy(maps[start:start + batch]).float()
                    part.append(module.logits(symmetry(x, *view)).numpy())
                out.append(np.concatenate(part))
        return np.stack(out).astype(np.float64)

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, *,
            feature_names: Sequence[str] | None = None,
            validation: tuple[np.ndarray, np.ndarray] | None = None,
            progress: Callable[[str], None] | None = None) -> "CNNDetector":
        """Train on maps ``X`` with labels ``y`` (class names or indices).

        ``validation`` (maps, labels) chooses the epoch and fits the temperature; without it
        the last epoch is kept and the temperature is 1.
        """
        import torch

        if y is None:
            raise InvalidInputError(f"{self.name}: needs class labels to fit")
        maps = self._check_maps(X, reset=True, feature_names=feature_names)
        labels = self._labels(y)
        if len(labels) != len(maps):
            raise InvalidInputError(f"{self.name}: {len(labels)} labels for {len(maps)} maps")
        val = None
        if validation is not None:
            val_maps = self._check_maps(validation[0], reset=False)
            val = (val_maps, self._labels(validation[1]))
        progress = progress or (lambda s: None)

        torch.manual_seed(self.random_state)
        torch.set_num_threads(self.n_jobs)
        rng = np.random.default_rng(self.random_state)
        generator = torch.Generator().manual_seed(self.random_state)
        n_classes = len(self.classes)
        counts = np.bincount(labels, minlength=n_classes).astype(float)
        weights = np.where(counts[labels] > 0, counts[labels], 1.0) ** -self.balance
        weights /= weights.sum()
        self.class_counts_ = counts.astype(int).tolist()

        module = self._build()
        steps = max(1, -(-self.epoch_size // self.batch_size))
        optimiser = torch.optim.AdamW(module.parameters(), lr=self.learning_rate,
                                      weight_decay=self.weight_decay)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimiser, max_lr=self.learning_rate, total_steps=self.epochs * steps,
            pct_start=0.15)
        all_maps = torch.from_numpy(maps)
        all_labels = torch.from_numpy(labels)
        best = (-1.0, None, -1)  # (val macro-F1, state, epoch)
        history = []
        started = time.perf_counter()
        for epoch in range(self.epochs):
            module.train()
            drawn = torch.from_numpy(rng.choice(len(maps), size=steps * self.batch_size,
                                                p=weights))
            total = 0.0
            for s in range(steps):
                index = drawn[s * self.batch_size:(s + 1) * self.batch_size]
                xb = self._augment(all_maps[index], generator).float()
                loss = torch.nn.functional.cross_entropy(module.logits(xb), all_labels[index])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                schedule.step()
                total += loss.item()
            record = {"epoch": epoch + 1, "loss": round(total / steps, 4)}
            if val is not None and epoch + 1 >= int(self.validate_from * self.epochs):
                predicted = self._torch_logits(module, val[0])[0].argmax(axis=1)
                record["val_macro_f1"] = round(macro_f1(val[1], predicted, n_classes), 4)
                if record["val_macro_f1"] > best[0]:
                    state = {k: v.detach().clone() for k, v in module.state_dict().items()}
                    best = (record["val_macro_f1"], state, epoch + 1)
            history.append(record)
            progress(f"epoch {epoch + 1}/{self.epochs}: loss {record['loss']:.4f}"
                     + (f", val macro-F1 {record['val_macro_f1']:.4f} (best {best[0]:.4f} at "
                        f"epoch {best[2]})" if "val_macro_f1" in record else "")
                     + f" [{time.perf_counter() - started:.0f}s]")
            if "val_macro_f1" in record and epoch + 1 - best[2] >= self.patience:
                progress(f"early stop: no better validation macro-F1 for {self.patience} epochs")
                break
        if val is not None:
            module.load_state_dict(best[1])
        module.eval()
        self.best_epoch_ = best[2] if val is not None else len(history)
        self.history_ = history
        self.temperature_ = 1.0
        if val is not None:
            logits = self._torch_logits(module, val[0], SYMMETRIES[:self.tta])
            self.temperature_ = fit_temperature(logits, val[1])
            # the validation probabilities before calibration (temperature 1), for the record
            self.uncalibrated_val_ = _mean_softmax(logits)
        module.temperature.fill_(self.temperature_)
        self.module_ = module
        self.onnx_ = torch_to_onnx(module, torch.zeros(2, *self.input_shape_), ["maps"],
                                   ["probabilities"])
        self.session_ = onnx_session(self.onnx_, self.n_jobs)
        self.trees_ = None
        if self.blend_features:
            self.fit_blend(maps, labels, validation=val, progress=progress)
        return self

    def fit_blend(self, X: np.ndarray, y: np.ndarray, *,
                  validation: tuple[np.ndarray, np.ndarray] | None = None,
                  progress: Callable[[str], None] | None = None) -> "CNNDetector":
        """Fit the map-feature trees on ``X``, ``y`` beside the fitted network and choose the
        blend weight and temperature on ``validation`` (without it: 0.5 and 1). Used by ``fit``
        with ``blend_features``, or on a trained network. The release's network scores one
        orientation (``tta`` 1): the trees see every turn alike, so more orientations cost
        time for little gain; any ``tta`` blends."""
        import xgboost

        from pipelines.wafermap.features import grid_features

        self.check_is_fitted()
        progress = progress or (lambda s: None)
        maps, labels = self._check_maps(X, reset=False), self._labels(y)
        counts = np.bincount(labels, minlength=len(self.classes)).astype(float)
        started = time.perf_counter()
        features = grid_features(maps, self.n_jobs)
        weights = counts[labels] ** -self.tree_balance
        train = xgboost.DMatrix(features, label=labels, weight=weights / weights.mean())
        self.trees_ = xgboost.train(
            {"objective": "multi:softprob", "num_class": len(self.classes),
             "max_depth": self.tree_depth, "eta": self.tree_learning_rate, "subsample": 0.9,
             "colsample_bytree": 0.8, "tree_method": "hist", "nthread": self.n_jobs,
             "seed": self.random_state}, train, num_boost_round=self.trees)
        progress(f"map-feature trees fitted on {len(maps)} maps "
                 f"[{time.perf_counter() - started:.0f}s]")
        self.blend_weight_, self.blend_temperature_ = 0.5, 1.0
        if validation is not None:
            val_maps, val_labels = self._check_maps(validation[0], reset=False), \
                self._labels(validation[1])
            p_cnn, p_trees = self._network(val_maps), self._trees(val_maps)
            n = len(self.classes)
            self.blend_weight_, f1 = choose_blend_weight(p_cnn, p_trees, val_labels, n)
            logits = _blend_logits(p_cnn, p_trees, self.blend_weight_)
            self.blend_temperature_ = fit_temperature(logits, val_labels)
            self.uncalibrated_val_ = blend(p_cnn, p_trees, self.blend_weight_)
            self.blend_val_ = {"network": round(macro_f1(val_labels, p_cnn.argmax(1), n), 4),
                               "trees": round(macro_f1(val_labels, p_trees.argmax(1), n), 4),
                               "by_weight": {str(w): round(f1[w], 4) for w in BLEND_WEIGHTS}}
            progress(f"blend: val macro-F1 network {self.blend_val_['network']:.4f}, trees "
                     f"{self.blend_val_['trees']:.4f}, blend {f1[self.blend_weight_]:.4f} at "
                     f"weight {self.blend_weight_:g}; temperature "
                     f"{self.blend_temperature_:.3f}")
        return self

    def torch_probabilities(self, X: np.ndarray) -> np.ndarray:
        """Probabilities from the torch module (only after ``fit``; to check the export)."""
        import torch

        maps = self._check_maps(X, reset=False)
        with torch.no_grad():
            return self.module_(torch.from_numpy(maps).float()).numpy()

    # -- serving (onnxruntime) ----------------------------------------------------------
    def _run(self, maps: np.ndarray) -> np.ndarray:
        """Calibrated probabilities: the network's, or its blend with the trees'."""
        p = self._network(maps)
        if self.trees_ is None:
            return p
        return blend(p, self._trees(maps), self.blend_weight_,
                     self.blend_temperature_).astype(np.float32)

    def _trees(self, maps: np.ndarray) -> np.ndarray:
        from pipelines.wafermap.features import grid_features

        return self.trees_.inplace_predict(grid_features(maps, self.n_jobs))

    def _network(self, maps: np.ndarray) -> np.ndarray:
        chunk = max(1, VIEWS_PER_CALL // self.tta)
        out = [self.session_.run(None, {"maps": np.ascontiguousarray(
            maps[start:start + chunk], dtype=np.float32)})[0]
            for start in range(0, len(maps), chunk)]
        return np.concatenate(out)

    def score(self, X: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities, (maps, classes), in the order of ``classes``."""
        return self._run(self._check_maps(X, reset=False)).astype(float)

    def _patches(self, size: int) -> list[int]:
        patch, stride = min(self.occlusion_patch, size), max(1, self.occlusion_stride)
        starts = list(range(0, size - patch + 1, stride))
        if starts[-1] != size - patch:
            starts.append(size - patch)
        return starts

    def explain(self, X: np.ndarray) -> ClassRegionExplanation:
        """Probabilities plus an occlusion saliency map per map, (maps, height, width)."""
        maps = self._check_maps(X, reset=False)
        probabilities = self._run(maps)
        predicted = probabilities.argmax(axis=1)
        n, h, w = maps.shape
        ph, pw = min(self.occlusion_patch, h), min(self.occlusion_patch, w)
        rows, cols = self._patches(h), self._patches(w)
        coverage = np.zeros((h, w))
        for r in rows:
            for c in cols:
                coverage[r:r + ph, c:c + pw] += 1
        regions = np.zeros((n, h, w))
        fail = maps == FAIL
        for i in range(n):
            spots = [(r, c) for r in rows for c in cols if fail[i, r:r + ph, c:c + pw].any()]
            for start in range(0, len(spots), VIEWS_PER_CALL):
                part = spots[start:start + VIEWS_PER_CALL]
                batch = np.repeat(maps[i][None], len(part), axis=0)
                for b, (r, c) in enumerate(part):
                    window = batch[b, r:r + ph, c:c + pw]
                    window[window == FAIL] = PASS
                drops = probabilities[i, predicted[i]] - self._run(batch)[:, predicted[i]]
                for (r, c), drop in zip(part, np.maximum(drops, 0.0)):
                    regions[i, r:r + ph, c:c + pw] += drop
        regions /= coverage
        return ClassRegionExplanation(probabilities.astype(float), self.classes, regions)

    # -- bundles ------------------------------------------------------------------------
    def save(self, directory: Path) -> dict:
        """Write the ONNX graph and the calibration record; ``{file: role}`` for the manifest."""
        self.check_is_fitted()
        directory = Path(directory)
        (directory / self.MODEL_FILE).write_bytes(self.onnx_)
        (directory / self.CALIBRATION_FILE).write_text(json.dumps({
            "temperature": self.temperature_, "classes": list(self.classes),
            "best_epoch": getattr(self, "best_epoch_", None),
            **({"blend": {"network_weight": self.blend_weight_,
                          "temperature": self.blend_temperature_,
                          "val_macro_f1": getattr(self, "blend_val_", None)}}
               if self.trees_ is not None else {}),
            "history": getattr(self, "history_", None)}, indent=1) + "\n")
        files = {self.MODEL_FILE: "onnx cnn (input planes, temperature and softmax inside)",
                 self.CALIBRATION_FILE: "temperature, blend and training history"}
        if self.trees_ is not None:
            self.trees_.save_model(str(directory / self.TREES_FILE))
            files[self.TREES_FILE] = "XGBoost trees on the map features (XGBoost's UBJSON)"
        return files

    @classmethod
    def load(cls, directory: Path, manifest: dict, **overrides) -> "CNNDetector":
        """Rebuild a scoring-only detector from a bundle (onnxruntime, no torch)."""
        directory = Path(directory)
        detector = cls._from_manifest(manifest, **overrides)
        calibration = json.loads((directory / cls.CALIBRATION_FILE).read_text())
        detector.temperature_ = float(calibration["temperature"])
        detector.best_epoch_ = calibration.get("best_epoch")
        detector.history_ = calibration.get("history")
        detector.onnx_ = (directory / cls.MODEL_FILE).read_bytes()
        detector.session_ = onnx_session(detector.onnx_, detector.n_jobs)
        detector.trees_ = None
        if (directory / cls.TREES_FILE).is_file():
            import xgboost

            detector.trees_ = xgboost.Booster(model_file=str(directory / cls.TREES_FILE))
            detector.trees_.set_param({"nthread": detector.n_jobs})
            detector.blend_weight_ = float(calibration["blend"]["network_weight"])
            detector.blend_temperature_ = float(calibration["blend"]["temperature"])
            detector.blend_val_ = calibration["blend"].get("val_macro_f1")
        return detector
