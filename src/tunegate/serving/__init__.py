"""``tunegate serve``: registered versions over HTTP (``app``), several on one base (``pool``), one inference
thread that batches (``batching``), and the OpenAI-compatible endpoints (``openai_api``)."""

from tunegate.serving.app import create_app, serve
from tunegate.serving.batching import InferenceQueue
from tunegate.serving.pool import ApiError, ModelPool

__all__ = ["ApiError", "InferenceQueue", "ModelPool", "create_app", "serve"]
