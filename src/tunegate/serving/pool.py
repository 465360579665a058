"""The versions a server holds: one slot per ``--model`` reference, sharing base models and loaded versions."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from tunegate.adapters import SharedAnswerer, SharedBases
from tunegate.errors import TunegateError
from tunegate.inference import Predictor, load_version
from tunegate.registry import Registry
from tunegate.serving.batching import InferenceQueue

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An HTTP error answered in OpenAI's JSON shape: status, a machine-readable code, the message, the parameter."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.param = status, code, message, param


def normalized(ref: str) -> str:
    """``name`` -> ``name@production``; other references as given."""
    return ref if "@" in ref else f"{ref}@production"


class Slot:
    """One served reference (``NAME@alias`` or ``NAME@version``) and the version it points at now."""

    def __init__(self, ref: str, predictor: Predictor):
        self.ref = ref
        self.predictor = predictor
        self.loaded_at = time.time()
        self.requests = 0
        self.reloads = 0
        self.last_reload_error: str | None = None

    @property
    def version_ref(self) -> str:
        v = self.predictor.version
        return f"{v.name}@v{v.version}"

    def describe(self) -> dict[str, Any]:
        p = self.predictor
        return {
            "model": self.version_ref,
            "ref": self.ref,
            "method": p.meta.get("method"),
            "task": p.meta.get("task"),
            "labels": list((p.meta.get("labels") or {}).keys()),
            "base_model": (p.meta.get("base_model") or {}).get("spec"),
            "shares_base": isinstance(p.answerer, SharedAnswerer),
            "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.loaded_at)),
            "requests": self.requests,
            "reloads": self.reloads,
            "last_reload_error": self.last_reload_error,
        }


class ModelPool:
    """Every served reference, its version loaded once (two references to one version share it), versions of one
    base model on one copy of its weights (``adapters.SharedBases``), and one inference thread for all of them."""

    def __init__(self, registry_root: str | Path, refs: list[str]):
        self.registry_root = Path(registry_root)
        self.bases = SharedBases()
        self.inference = InferenceQueue()
        self.reload_lock = threading.Lock()  # one reload at a time
        self.slots: dict[str, Slot] = {}
        self._loads = 0
        for ref in refs:
            ref = normalized(ref)
            if ref in self.slots:
                raise TunegateError(f"--model {ref} is given twice; give each model once")
            self.slots[ref] = Slot(ref, self._load(ref))

    @property
    def default(self) -> Slot:
        """The first ``--model``: what a request that names no model gets."""
        return next(iter(self.slots.values()))

    def _load(self, ref: str, *, reuse: bool = True) -> Predictor:
        reg = Registry(self.registry_root)
        info = reg.resolve(ref)
        reg.require_intact(
            info.name, info.version, doing=f"loading (`tunegate registry rollback {info.name}` moves production back)"
        )
        for s in self.slots.values() if reuse else ():  # another reference to the same version: loaded once
            if (s.predictor.version.name, s.predictor.version.version) == (info.name, info.version):
                return s.predictor
        self._loads += 1
        adapter = f"{info.name}-v{info.version}-{self._loads}".replace(".", "_")  # unique: a forced reload's too
        # on the inference thread: adding an adapter changes the shared model other versions are answering with
        return self.inference.call(load_version, info, bases=self.bases, adapter_name=adapter)

    def _release(self, predictor: Predictor) -> None:
        """Unload a version no slot serves any more (its adapter leaves the shared base)."""
        if any(s.predictor is predictor for s in self.slots.values()):
            return
        self.inference.forget(predictor)
        a = predictor.answerer
        if isinstance(a, SharedAnswerer) and a.adapter is not None:
            self.inference.call(a.shared.drop, a.adapter)

    def find(self, model: str | None) -> Slot:
        """The slot a request's ``model`` names: a served reference (``sst2@production``), the version it serves
        now (``sst2@v3``), or a bare name (its production slot, or its only slot); none: the first ``--model``."""
        if not model:
            return self.default
        if model in self.slots:
            return self.slots[model]
        for s in self.slots.values():
            if s.version_ref == model or (
                model.partition("@")[2].isdigit() and s.version_ref == model.replace("@", "@v")
            ):
                return s
        if "@" not in model:
            same = [s for s in self.slots.values() if s.predictor.version.name == model]
            if len(same) == 1:
                return same[0]
            if f"{model}@production" in self.slots:
                return self.slots[f"{model}@production"]
        served = ", ".join(f"{s.ref} ({s.version_ref})" for s in self.slots.values())
        raise ApiError(
            404, "model_not_found", f"model '{model}' is not served here; served: {served} (GET /v1/models)", "model"
        )

    def reload(self, slot: Slot, *, force: bool = False) -> dict[str, Any]:
        """Switch ``slot`` to what its reference points at now; the current version serves until the new one is
        loaded (an adapter onto the shared base, on the inference thread between two batches)."""
        with self.reload_lock:
            before, old = slot.version_ref, slot.predictor
            try:
                target = Registry(self.registry_root).resolve(slot.ref).version
                if not force and target == old.version.version:
                    return {"reloaded": False, "model": before, "message": f"{slot.ref} still points at {before}"}
                fresh = self._load(slot.ref, reuse=not force)
            except TunegateError as exc:
                slot.last_reload_error = str(exc)
                raise ApiError(409, "reload_failed", f"{exc}; still serving {before}") from None
            slot.predictor = fresh  # one reference swap: requests in flight keep the object they started with
            slot.loaded_at = time.time()
            slot.reloads += 1
            slot.last_reload_error = None
            if fresh is not old:
                self._release(old)
            log.info("reloaded %s: %s -> %s", slot.ref, before, slot.version_ref)
            return {
                "reloaded": True,
                "from": before,
                "model": slot.version_ref,
                "message": f"{before} -> {slot.version_ref}",
            }

    def moved(self) -> list[Slot]:
        """Slots whose reference points at another version now."""
        reg = Registry(self.registry_root)
        return [s for s in self.slots.values() if reg.resolve(s.ref).version != s.predictor.version.version]

    def memory(self) -> dict[str, Any]:
        return self.bases.memory()
