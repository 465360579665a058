"""The ladder's operations over the registered rung kinds: which rungs a config measures, their cache key, what each
adds to a prompt, how each is described, the files they read and their checks before any model runs."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tunegate.ladder.base import RUNGS, Augment, LadderContext, Rung, SearchEnv, get_rung
from tunegate.ladder.calibration import (  # noqa: F401 (the calibration API, re-exported for the evaluation)
    CALIBRATED,
    calibration_inputs,
    calibration_offset,
    describe_calibration,
    with_calibrated_twins,
)


def baseline_rungs(baselines: Any, ctx: LadderContext) -> list[Rung]:
    """The configured rungs, in registration order; with ``calibrated``, each classification rung is followed by
    its calibrated twin."""
    rungs = [
        rung
        for key, kind in RUNGS.items()
        if kind.enabled(getattr(baselines, key))
        for rung in kind.load().expand(getattr(baselines, key), ctx)
    ]
    if baselines.calibrated and ctx.has_labels:
        return with_calibrated_twins(rungs, baselines)
    return rungs


def rung_fingerprint(rung: Rung) -> dict[str, Any]:
    """The rung's settings plus the content of anything it reads besides the data (a document collection)."""
    out = {
        "name": rung.name,
        "kind": rung.kind,
        "params": rung.params,
        "base": rung_fingerprint(rung.base) if rung.base is not None else None,
    }
    if rung.kind in RUNGS:
        out.update(RUNGS[rung.kind].load().fingerprint(rung))
    return out


def rung_cache_key(model_sha: str, data_hash: str, rung: Rung, prompts: str, dtype: str = "float32") -> str:
    """What determines a rung's result: the model, the data, the rung's parameters (documents included),
    ``prompts`` (the exact prompt and answer token ids, :func:`tunegate.evaluation.prompt_fingerprint`),
    the precision it is computed in (bf16 and float32 scores differ slightly) and the code version.

    Config fields that do not change a token (the tuning method, a ``max_length`` that
    cuts no input, the batch size) do not change the key, so such edits reuse the ladder.
    """
    from tunegate.provenance import code_version, sha256_json

    return sha256_json(
        {
            "data": data_hash,
            "model": model_sha,
            "rung": rung_fingerprint(rung),
            "prompts": prompts,
            "dtype": dtype,
            "code": code_version(),
        }
    )


def augment_for(ctx: LadderContext, rung: Rung, train, texts: list[str]) -> Augment | None:
    """What ``rung`` puts into the prompts of ``texts`` (None: nothing besides the input)."""
    return get_rung(rung.kind).augment(rung, ctx, train, texts)


def searches(rung: Rung) -> bool:
    """Whether ``rung``'s prompt is searched on the selection split before it is scored."""
    return rung.kind in RUNGS and get_rung(rung.kind).searches


def search(ctx: LadderContext, rung: Rung, env: SearchEnv) -> tuple[Rung, dict[str, Any]]:
    """Run ``rung``'s search: (the rung with what was chosen, the search's record)."""
    return get_rung(rung.kind).search(rung, ctx, env)


def searched(rung: Rung, details: dict[str, Any]) -> Rung:
    """``rung`` as its search left it, from its result's details (a calibrated twin re-builds its base's prompts);
    unchanged for a rung that does not search."""
    if "search" not in details:
        return rung
    return replace(rung, params={**rung.params, "chosen": details["search"]["chosen"]})


def describe(kind: str | None, details: dict[str, Any]) -> str:
    """What a rung of ``kind`` put into the prompt, in words, from its result's details (a calibrated twin's
    details name the calibration)."""
    if kind is None:
        return "(rung kind not recorded)"
    text = get_rung(kind).describe(details)
    if "calibrated_from" in details:
        text += "; " + describe_calibration(details)
    return text


def source_paths(baselines: Any, ctx: LadderContext) -> list:
    """Files and folders the enabled rungs read besides the data."""
    return [
        p
        for key, kind in RUNGS.items()
        if kind.enabled(getattr(baselines, key))
        for p in kind.load().sources(getattr(baselines, key), ctx)
    ]


def preflight(baselines: Any, ctx: LadderContext) -> tuple[dict[str, Any], list[str]]:
    """Each enabled rung's checks before any model runs: (stats for the report, errors)."""
    stats: dict[str, Any] = {}
    errors: list[str] = []
    for key, kind in RUNGS.items():
        if kind.enabled(getattr(baselines, key)):
            found, error = kind.load().preflight(getattr(baselines, key), ctx)
            stats.update(found)
            errors += [error] if error else []
    return stats, errors
