from datetime import timedelta

from prefect import task

from tunegate import stages
from tunegate.answering import AnswerSpec
from tunegate.config import TunegateConfig
from tunegate.evaluation import prompt_fingerprint
from tunegate.ladder import Rung
from tunegate.ladder.core import baseline_rungs, rung_cache_key
from tunegate.records import DatasetRef, EvalResult, RunContext
from tunegate.tasks._policy import RETRIES
from tunegate.tasks._runner import submit


def _cache_key(context, parameters) -> str:
    # model + data + rung parameters (+ documents) + the exact prompt/answer token ids + precision + code: an edit
    # that changes no token (the method, a max_length that cuts nothing) reuses the result; a calibrated
    # rung's base result is determined by the same inputs
    run, dataset = parameters["run"], parameters["dataset"]
    prompts = prompt_fingerprint(AnswerSpec.from_config(parameters["cfg"]), run.model_path, dataset)
    key = rung_cache_key(run.model_sha, dataset.data_hash, parameters["rung"], prompts, run.placement.dtype)
    return "baseline-" + key


@task(
    name="evaluate_baseline",
    task_run_name="evaluate_baseline[{rung.name}]",
    cache_key_fn=_cache_key,
    cache_expiration=timedelta(days=30),
    persist_result=True,
    **RETRIES,
)
def evaluate_baseline(
    cfg: TunegateConfig, run: RunContext, dataset: DatasetRef, rung: Rung, base: EvalResult | None = None
) -> EvalResult:
    """Quality and cost of one rung of the baseline ladder (zero-shot, calibrated, few-shot, retrieved few-shot,
    RAG) on the eval rows."""
    return stages.evaluate_baseline(cfg, run, dataset, rung, base)


def submit_ladder(cfg: TunegateConfig, run: RunContext, dataset: DatasetRef) -> dict:
    """Every rung handed to the task runner (each its own task run; on workers at once with
    ``orchestration.task_runner: dask``); a calibrated rung waits for its base rung's result. Rung name -> future."""
    futures: dict = {}
    for rung in baseline_rungs(cfg.baselines, cfg.ladder_context()):
        base = futures[rung.base.name] if rung.base else None
        futures[rung.name] = submit(
            evaluate_baseline, fail_fast=True, cfg=cfg, run=run, dataset=dataset, rung=rung, base=base
        )
    return futures


def evaluate_ladder(cfg: TunegateConfig, run: RunContext, dataset: DatasetRef) -> list[EvalResult]:
    """Every rung's result, in the ladder's order; a failed rung raises, as in a sequential run."""
    return [f.result() for f in submit_ladder(cfg, run, dataset).values()]
