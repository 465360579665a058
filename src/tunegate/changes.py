"""Has anything changed since the last trained version? (Champion/challenger retraining.)

Two fingerprints:

* the **data hash** of the validated rows (``validation.stats.data_hash``): what a
  retrain compares with the data hash recorded by the latest registered version of the
  model, together with the config hash: same data and same settings means there is
  nothing new to learn from, and the retrain stops there ("no change");
* the **source fingerprint**: sha256 of the raw bytes of the configured data files
  (train, eval, RAG documents). Cheap, no model or tokenizer needed; the data-change
  trigger checks it on a short schedule and starts a retrain only when it moved. Its
  last value per model is kept in ``<registry>/.watch/<model>.json``.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from tunegate.config import RegistryConfig
from tunegate.records import ChangeCheck, SourceWatch
from tunegate.registry import Registry, atomic_write_text


def last_trained(reg: Registry, name: str) -> dict | None:
    """The newest registered version's metadata (whatever the gate said about it), or None."""
    versions = reg.versions(name)
    return reg.get(name, versions[-1]).meta if versions else None


def check(registry: RegistryConfig, *, data_hash: str, config_hash: str, force: bool = False) -> ChangeCheck:
    """Retrain or not: data or config differ from the newest version's, no version yet, or forced."""
    last = last_trained(Registry(registry.path), registry.model_name)
    base = dict(
        data_hash=data_hash,
        config_hash=config_hash,
        forced=force,
        last_version=last.get("version") if last else None,
        last_run_id=last.get("run_id") if last else None,
        last_data_hash=last.get("data_hash") if last else None,
    )
    if last is None:
        return ChangeCheck(changed=True, reason=f"no version of '{registry.model_name}' is registered yet", **base)
    ref = f"v{last['version']} (run {last.get('run_id')})"
    same_data = last.get("data_hash") == data_hash
    same_config = last.get("config_hash") in (None, config_hash)  # versions from before config hashes were kept
    if force:
        return ChangeCheck(
            changed=True, reason=f"forced (data {'unchanged' if same_data else 'changed'} since {ref})", **base
        )
    if same_data and same_config:
        return ChangeCheck(
            changed=False,
            reason=f"no change: the data hash {data_hash[:12]} and the config equal those of "
            f"{ref}; nothing retrained (force=true retrains anyway)",
            **base,
        )
    what = " and ".join(w for w, same in (("data", same_data), ("config", same_config)) if not same)
    return ChangeCheck(changed=True, reason=f"{what} changed since {ref}", **base)


def source_fingerprint(files: list[Path]) -> str:
    """sha256 over the raw bytes of every data source file (a folder of documents: every file in it, by name)."""
    h = hashlib.sha256()
    for f in files:
        paths = sorted(p for p in f.rglob("*") if p.is_file()) if f.is_dir() else [f]
        for p in paths:
            h.update(str(p.relative_to(f) if f.is_dir() else p.name).encode() + b"\0")
            with open(p, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()


def _watch_file(registry: RegistryConfig) -> Path:
    return Path(registry.path) / ".watch" / f"{registry.model_name}.json"


def last_seen(registry: RegistryConfig) -> dict | None:
    f = _watch_file(registry)
    return json.loads(f.read_text()) if f.is_file() else None


def remember(registry: RegistryConfig, fingerprint: str, outcome: str) -> None:
    atomic_write_text(
        _watch_file(registry),
        json.dumps(
            {"fingerprint": fingerprint, "outcome": outcome, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=2
        ),
    )


def watch_sources(registry: RegistryConfig, files: list[Path]) -> SourceWatch:
    """Have the raw data ``files`` changed since the data-change trigger last looked (a cheap byte hash)?"""
    fingerprint = source_fingerprint(files)
    seen = last_seen(registry)
    if seen is not None and seen["fingerprint"] == fingerprint:
        message = f"data files unchanged since {seen['at']} (fingerprint {fingerprint[:12]}); no retrain"
        return SourceWatch(changed=False, fingerprint=fingerprint, message=message)
    was = seen["fingerprint"][:12] if seen else "never seen"
    message = f"data files changed (fingerprint {fingerprint[:12]}, was {was}): retraining"
    return SourceWatch(changed=True, fingerprint=fingerprint, message=message)


def check_run(registry: RegistryConfig, run, dataset, *, force: bool = False) -> ChangeCheck:
    """:func:`check` for a run's validated data and config; the answer is written to the run's change.json."""
    result = check(registry, data_hash=dataset.data_hash, config_hash=run.config_hash, force=force)
    atomic_write_text(Path(run.run_dir) / "change.json", result.model_dump_json(indent=2))
    return result
