"""Inference helpers shared by the classify and v2 routes: batching to the model's limit, top-k."""

from __future__ import annotations

import asyncio
import time

import numpy as np
from deploylab.services.modelzoo.catalog import imagenet_labels

from .context import GatewayContext
from .metrics import INFERENCE_DURATION
from .routing import Target
from .schemas import ImageResult, Prediction


async def infer_batch(context: GatewayContext, target: Target, batch: np.ndarray) -> tuple[np.ndarray, str]:
    """Logits for `batch`, split into chunks of the model's max_batch_size and sent concurrently."""
    started = time.perf_counter()
    limit = await context.max_batch_size(target.triton_model)
    if limit <= 0 or len(batch) <= limit:
        output = await context.client.infer(target.triton_model, batch, num_classes=target.spec.num_classes)
        logits, version = output.logits, output.model_version
    else:
        chunks = [batch[i : i + limit] for i in range(0, len(batch), limit)]
        classes = target.spec.num_classes
        outputs = await asyncio.gather(
            *(context.client.infer(target.triton_model, c, num_classes=classes) for c in chunks)
        )
        logits = np.concatenate([o.logits for o in outputs])
        version = outputs[0].model_version
    INFERENCE_DURATION.labels(target.model, target.variant).observe(time.perf_counter() - started)
    return logits, version


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted.astype(np.float64))
    return exp / exp.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]


def top_k_results(logits: np.ndarray, k: int) -> list[ImageResult]:
    """Per image, the k most probable ImageNet classes with softmax scores, best first."""
    labels = imagenet_labels()
    probabilities = softmax(logits)
    k = min(k, probabilities.shape[1])
    results = []
    for row in probabilities:
        candidates = np.argpartition(-row, k - 1)[:k]
        best = candidates[np.argsort(-row[candidates], kind="stable")]
        results.append(
            ImageResult(top_k=[Prediction(index=int(i), label=labels[i], score=float(row[i])) for i in best])
        )
    return results
