"""Has live traffic moved away from the rows a version was judged on? Three views of the served inputs against
the version's eval rows (kept in the registry):

* **length**: characters per input, the two-sample Kolmogorov-Smirnov statistic and its p-value;
* **labels**: the shares of each predicted label against the eval rows' label shares (total variation distance);
* **tokens**: the Jensen-Shannon divergence (base 2, 0-1) between the word distributions of the two sets, minus
  what two random halves of the pooled inputs already differ by (a permutation baseline: small samples differ by
  chance). This excess is the drift score ``serve.drift_threshold`` is compared with. Needs the inputs' text
  (``serve.log_inputs: true``).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np

_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _js(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in bits (0: the same distribution, 1: disjoint) of two count vectors."""
    p, q = p / max(p.sum(), 1.0), q / max(q.sum(), 1.0)
    m = (p + q) / 2

    def kl(x: np.ndarray) -> float:
        nz = x > 0
        return float((x[nz] * np.log2(x[nz] / m[nz])).sum())

    return 0.5 * kl(p) + 0.5 * kl(q)


def token_drift(served: list[str], reference: list[str], *, permutations: int = 100, seed: int = 0) -> dict[str, Any]:
    """JS divergence of the word distributions, the permutation baseline, the excess (the score) and a p-value."""
    from scipy.sparse import csr_matrix

    docs = [Counter(words(t)) for t in [*served, *reference]]
    vocab = {w: i for i, w in enumerate(sorted({w for d in docs for w in d}))}
    rows = [i for i, d in enumerate(docs) for _ in d]
    cols = [vocab[w] for d in docs for w in d]
    vals = [c for d in docs for c in d.values()]
    m = csr_matrix((vals, (rows, cols)), shape=(len(docs), max(len(vocab), 1)), dtype=np.float64)
    k = len(served)

    def split(idx: np.ndarray) -> float:
        return _js(np.asarray(m[idx[:k]].sum(axis=0)).ravel(), np.asarray(m[idx[k:]].sum(axis=0)).ravel())

    observed = split(np.arange(len(docs)))
    rng = np.random.default_rng(seed)
    null = [split(rng.permutation(len(docs))) for _ in range(permutations)]
    base = float(np.mean(null)) if null else 0.0
    p = (1 + sum(x >= observed for x in null)) / (1 + len(null))
    return {"js": observed, "chance": base, "score": max(0.0, observed - base), "p_value": p}


def label_shift(predicted: list[str], reference_labels: list[str]) -> dict[str, Any]:
    labels = sorted(set(predicted) | set(reference_labels))
    served = {lab: predicted.count(lab) / max(len(predicted), 1) for lab in labels}
    ref = {lab: reference_labels.count(lab) / max(len(reference_labels), 1) for lab in labels}
    tvd = 0.5 * sum(abs(served[lab] - ref[lab]) for lab in labels)
    return {"served": served, "eval": ref, "tvd": tvd}


def length_shift(served_chars: list[int], reference_chars: list[int]) -> dict[str, Any]:
    from scipy.stats import ks_2samp

    ks = ks_2samp(served_chars, reference_chars)
    return {
        "served_median": float(np.median(served_chars)),
        "eval_median": float(np.median(reference_chars)),
        "ks": float(ks.statistic),
        "p_value": float(ks.pvalue),
    }


def drift_report(
    *,
    served_texts: list[str | None],
    served_chars: list[int],
    predicted: list[str] | None,
    eval_texts: list[str],
    eval_labels: list[str] | None,
    threshold: float,
) -> dict[str, Any]:
    """The three views and whether token drift passed ``threshold`` (None when the inputs were not logged)."""
    out: dict[str, Any] = {"n_served": len(served_chars), "n_eval": len(eval_texts), "threshold": threshold}
    if not served_chars:
        return {**out, "drifted": None, "note": "no served requests logged yet"}
    out["length"] = length_shift(served_chars, [len(t) for t in eval_texts])
    if predicted is not None and eval_labels is not None:
        out["labels"] = label_shift(predicted, eval_labels)
    texts = [t for t in served_texts if t is not None]
    if len(texts) < len(served_texts) or not texts:
        out["tokens"] = None
        out["drifted"] = None
        out["note"] = "token drift needs the inputs' text: serve with serve.log_inputs: true"
        return out
    out["tokens"] = token_drift(texts, eval_texts)
    out["drifted"] = out["tokens"]["score"] > threshold
    return out
