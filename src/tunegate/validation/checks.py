"""The data checks, as a list: each with its name, what it reads and whether a failure stops the checks after it.

:func:`validate` runs them in order on one :class:`State` (what the files and the earlier checks found). A check
adds :class:`Issue` s whose message names the rows, the field and the fix; the order of the checks is the order
of the report, and the report lists every check that ran with what it read. Whole-file checks read an index of
light columns (row number, hashes, label); only the rows a run uses are read as text, and train is streamed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

import polars as pl

from tunegate.config import TunegateConfig
from tunegate.data import (
    ROW,
    DataReadError,
    Table,
    conversation_format,
    infer_labels,
    read_conversations,
    same_text_expr,
    sample,
    scan_table,
    source_columns,
    split,
    to_canonical,
    update_hash,
)
from tunegate.formats import is_conversation
from tunegate.ladder import core as ladder
from tunegate.schemas import schema_for
from tunegate.validation.frames import (
    SAME,
    TEXT_HASH,
    USABLE,
    _also_in,
    _answer_clashes,
    _conflicts,
    _conversation_issues,
    _failure_issues,
    _index_query,
    _pandera_failures,
    _repeats,
    _rows,
    _scan_train,
    _select,
    _token_totals,
    _usable,
    group_references,
)
from tunegate.validation.issues import Issue, ValidationOutcome, policy_issue
from tunegate.validation.lengths import length_shift, max_length, too_long
from tunegate.validation.state import State


@dataclass(frozen=True)
class Check:
    """One data check: its name (the ``check`` of the issues it raises), what it reads, and its run."""

    name: str
    reads: str
    run: Callable[[State], None]


def readable(s: State) -> None:
    d = s.data
    for split_name, path in (("train", d.train), ("eval", d.eval), ("dev", d.dev)):
        if path is None:
            continue
        try:
            source = s.cfg.resolve(path)
            conv = conversation_format(source, d.format) if s.cfg.task_type.conversations else None
            if conv is not None:  # conversations: the canonical columns come from the turns
                frame, problems = read_conversations(source, conv, d.encoding)
                s.tables[split_name] = Table(source, conv, frame.lazy())
                s.issues.extend(_conversation_issues(problems, split_name, conv))
                s.stats.setdefault("conversation_format", conv)
                if frame.height == 0 and not problems:
                    s.issues.append(Issue("readable", "error", f"{source}: no conversations found", split_name))
            else:
                table = scan_table(source, d.format, d.columns, d.encoding)
                lazy = to_canonical(table.lazy, s.cfg.task, d)
                s.tables[split_name] = Table(table.path, table.kind, lazy, table.columns())  # + the file's header
        except DataReadError as exc:
            s.issues.append(Issue(check="readable", severity="error", split=split_name, message=str(exc)))
    s.stop = bool(s.issues)


def required_columns(s: State) -> None:
    user_cols = dict(zip(s.columns, source_columns(s.cfg.task, s.data)))
    for split_name, table in s.tables.items():
        found = table.columns()
        for canon in s.columns:
            if canon in found:
                continue
            names = [c for c in (table.header or found) if c != ROW]  # as the file names them
            hint = ""
            if len(names) == 1 and table.kind in ("csv", "tsv"):
                other = next((d for d in (";", "\t", "|", ",") if d in names[0]), None)
                if other:
                    hint = (
                        f"; the header looks {other!r}-separated: CSV files are read with ',' and .tsv files "
                        "with tabs, so re-save it as one of those"
                    )
            show = ", ".join(n if len(n) <= 80 else n[:77] + "..." for n in names[:20])
            s.issues.append(
                Issue(
                    check="required_columns",
                    severity="error",
                    split=split_name,
                    message=(
                        f"{split_name} data ({table.path}) has no column '{user_cols[canon]}' (columns found: "
                        f"{show}); rename the column or set data.{'text' if canon == 'text' else canon}_column{hint}"
                    ),
                )
            )
    eval_split = "eval" if "eval" in s.tables else "train"  # the eval rows' file: an eval file, or train split
    if eval_split in s.tables:
        table = s.tables[eval_split]
        missing = [c for c in s.data.slice_columns if c not in table.columns()]
        if missing:
            s.issues.append(
                Issue(
                    check="required_columns",
                    severity="error",
                    split=eval_split,
                    message=f"{eval_split} data ({table.path}) has no column '{missing[0]}' named in "
                    "data.slice_columns; fix the name or remove it from data.slice_columns",
                )
            )
    s.stop = bool(s.issues)


def row_index(s: State) -> None:
    text_col, label_col = s.columns
    for split_name, table in s.tables.items():
        try:
            s.index[split_name] = table.collect(_index_query(table.lazy, text_col, label_col, s.has_labels))
            if s.index[split_name].height == 0 and not is_conversation(table.kind):
                raise DataReadError(f"{table.path}: no rows found (an empty file, or not {table.kind})")
        except DataReadError as exc:
            s.issues.append(Issue(check="readable", severity="error", split=split_name, message=str(exc)))
    s.stop = bool(s.issues)
    s.totals = {k: v.height for k, v in s.index.items()}


def labels(s: State) -> None:
    """Classification without data.labels: the labels are the ones train has (all of train, before sampling)."""
    d = s.data
    s.answers = d.label_answers()
    if s.has_labels and d.labels is None:
        s.answers = infer_labels(s.index["train"].get_column(s.columns[1]).unique().to_list())
        clash = _answer_clashes(s.answers)
        if len(s.answers) < 2 or clash:
            reason = (
                f"train has {len(s.answers)} distinct label(s); classification needs at least two"
                if len(s.answers) < 2
                else f"labels {clash} would be answered by the same words"
            )
            s.issues.append(
                Issue(
                    check="labels",
                    severity="error",
                    split="train",
                    message=f"data.labels is not set and {reason}; declare data.labels (label -> answer word)",
                )
            )
            s.stop = True
            return
        s.stats["labels_inferred"] = s.answers
    s.labels = list(s.answers) if s.has_labels else None


def duplicates(s: State) -> None:
    """Exact duplicates within train, over the whole file (before sampling: a dropped repeat must not eat a
    label's sampled rows)."""
    d = s.data
    dup_rows = _repeats(s.tables["train"], s.index["train"], s.columns)
    if not dup_rows:
        return
    s.issues.append(
        policy_issue(
            d.duplicates,
            "duplicates",
            f"train has {len(dup_rows)} duplicate row(s) (repeats of an earlier row's text and label; case, "
            "spacing and punctuation ignored)",
            "train",
            dup_rows,
            "remove them or set data.duplicates: drop",
        )
    )
    if d.duplicates == "drop":
        gone = pl.col(ROW).is_in(pl.Series(dup_rows, dtype=pl.UInt32).implode())
        s.index["train"] = s.index["train"].filter(~gone)


def sample_and_split(s: State) -> None:
    """Sample and split on the index, so that only the rows this run uses are read and judged. Generation: an
    input with several reference rows is one eval example, so max_eval_rows samples inputs; classification
    samples per label (every label kept)."""
    d, (text_col, label_col) = s.data, s.columns
    by_input = TEXT_HASH if s.cfg.task_type.generates else None
    strata = label_col if s.labels else None
    floor = d.min_examples_per_label
    train = sample(s.index["train"], d.max_train_rows, d.split_seed, stratify=strata, min_per_group=floor)
    if "eval" in s.index:
        evl = sample(s.index["eval"], d.max_eval_rows, d.split_seed, by=by_input, stratify=strata)
    else:
        train, evl = split(train, fraction=d.eval_fraction, seed=d.split_seed, stratify=strata)
        evl = sample(evl, d.max_eval_rows, d.split_seed, by=by_input, stratify=strata)
    dev = s.index.get("dev")
    if dev is None and d.dev_fraction:  # the selection split, held out of the sampled train rows
        s.stats["dev_fraction_of"] = train.height
        train, dev = split(train, fraction=d.dev_fraction, seed=d.split_seed + 1, stratify=strata)
    if strata and (d.max_train_rows or d.max_eval_rows):
        s.stats["sampling"] = "stratified by label"
    known = pl.col(label_col).is_in(s.labels) if s.labels else pl.lit(True)
    s.keep = _usable(text_col, label_col) & known
    # eval and dev (capped by max_eval_rows) are read whole; train is streamed in batches (_scan_train)
    train_table = s.tables["train"]
    sliced = tuple(c for c in d.slice_columns if c not in s.columns)  # carried to the eval frame for the guards
    s.evl = _rows(s.tables.get("eval", train_table), evl, s.columns + sliced, s.totals.get("eval", s.totals["train"]))
    if dev is not None:
        dev = _rows(s.tables.get("dev", train_table), dev, s.columns, s.totals.get("dev", s.totals["train"]))
    s.dev = dev
    s.train = train
    s.train_rows = train.filter(pl.col(USABLE) & known)
    s.index = {}


def conflicting_labels(s: State) -> None:
    """One text with several labels: data.duplicates says what to do (drop: every such row)."""
    if not s.has_labels:
        return
    text_col, label_col = s.columns
    clash = _conflicts(s.tables["train"], s.train_rows, text_col, label_col)
    if not clash.height:
        return
    rows = clash.get_column(ROW).to_list()
    s.issues.append(
        policy_issue(
            s.data.duplicates,
            "conflicting_labels",
            f"{clash.get_column(SAME).n_unique()} text(s) appear in train with different labels (case, "
            "spacing and punctuation ignored)",
            "train",
            rows,
            "fix the labels, or set data.duplicates: drop (drops every row of such a text)",
        )
    )
    if s.data.duplicates == "drop":
        gone = pl.col(ROW).is_in(pl.Series(rows, dtype=pl.UInt32).implode())
        s.train, s.train_rows = s.train.filter(~gone), s.train_rows.filter(~gone)


def schema(s: State) -> None:
    """The pandera contract on every sampled row (train streamed in batches, its tokens counted on the way)."""
    d, label_col = s.data, s.columns[1]
    contract = schema_for(s.cfg.task_type.answers, s.labels)
    s.count = partial(_token_totals, s.tokenizer, s.builder, s.per_label, s.conversational, s.columns)
    train_table = s.tables["train"]
    s.scan = _scan_train(
        train_table,
        _select(train_table, s.train, s.columns, s.totals["train"]),
        s.train.height,
        s.keep,
        contract,
        s.count,
        s.columns,
        d.train_on if s.conversational else None,
    )
    failures = {"train": s.scan.failures}
    failures.update(
        {name: _pandera_failures(df, contract) for name, df in (("eval", s.evl), ("dev", s.dev)) if df is not None}
    )
    sizes = {"train": s.train.height, "eval": s.evl.height, "dev": s.dev.height if s.dev is not None else 0}
    user_cols = dict(zip(s.columns, source_columns(s.cfg.task, d)))
    for split_name, fc in failures.items():
        found = _failure_issues(fc, split_name, user_cols, sizes.get(split_name))
        for i in found:
            if d.label_pattern and i.check == "null_values" and f"'{user_cols[label_col]}'" in i.message:
                i.message += f" or labels that do not match data.label_pattern '{d.label_pattern}'"
        for i in found:
            if i.check == "unknown_labels" and "<ClassLabel value" in i.message and split_name in s.tables:
                i.message += (
                    f" In {s.tables[split_name].path}, an integer label beyond the names of its Hugging Face "
                    "ClassLabel feature: fix those rows, or the feature's names"
                )
        if "labels_inferred" in s.stats:  # the label set is train's: an unknown eval label was never seen in train
            for i in found:
                if i.check == "unknown_labels":
                    i.message = i.message.replace(
                        "labels not in data.labels", "labels never seen in train (data.labels not set)"
                    ).replace("add the labels", "declare data.labels")
        s.issues.extend(found)
    s.evl = s.evl.filter(s.keep)


def leakage(s: State) -> None:
    """An eval input that is also a train input inflates the eval score."""
    in_train = _also_in(s.evl, s.columns[0], s.tables["train"], s.train_rows)
    if not in_train.any():
        return
    leak = s.evl.filter(in_train)
    s.issues.append(
        policy_issue(
            s.data.leakage,
            "leakage",
            f"{leak.height} eval row(s) also occur in train (case, spacing and punctuation ignored; "
            "train/eval overlap inflates the eval score)",
            "eval",
            leak.get_column(ROW).to_list(),
            "remove them or set data.leakage: drop",
        )
    )
    if s.data.leakage == "drop":
        s.evl = s.evl.filter(~in_train)


def rows_left(s: State) -> None:
    """Eval rows are left to judge on; a selection row that also judges (eval) or trains is dropped from dev."""
    text_col = s.columns[0]
    if s.evl.height == 0:
        s.issues.append(
            Issue(check="eval_rows", severity="error", split="eval", message="no usable eval rows are left")
        )
    if s.dev is None:
        return
    dev = s.dev.filter(s.keep)
    seen = _also_in(dev, text_col, s.tables["train"], s.train_rows) | dev.select(
        same_text_expr(text_col)
    ).to_series().is_in(s.evl.select(same_text_expr(text_col)).to_series().implode())
    if seen.any():
        overlap = dev.filter(seen)
        s.issues.append(
            Issue(
                check="dev_overlap",
                severity="warning",
                split="dev",
                message=f"{overlap.height} dev row(s) also occur in train or eval (dropped from dev)",
                rows=overlap.get_column(ROW).to_list(),
            )
        )
        dev = dev.filter(~seen)
    if dev.height == 0:
        n, fraction = s.stats.get("dev_fraction_of"), s.data.dev_fraction
        fix = f"data.dev_fraction {fraction} of {n} train rows holds out none: raise it" if n else "check data.dev"
        s.issues.append(Issue("dev_rows", "error", f"no usable dev rows are left; {fix}", "dev"))
    s.dev = dev


def class_balance(s: State) -> None:
    """Examples per label (too few is an error) and class balance (a warning unless the gate uses macro_f1)."""
    if not s.labels:
        return
    label_col = s.columns[1]
    counts = {lab: 0 for lab in s.labels}
    counts.update(dict(s.train_rows.group_by(label_col).len().iter_rows()))
    eval_counts = {lab: 0 for lab in s.labels}
    eval_counts.update(dict(s.evl.group_by(label_col).len().iter_rows()))
    s.stats["class_balance"] = {"train": counts, "eval": eval_counts}
    least = s.data.min_examples_per_label
    few = {lab: n for lab, n in counts.items() if n < least}
    held = f"; data.dev_fraction {s.data.dev_fraction} holds them out: lower it" if "dev_fraction_of" in s.stats else ""
    if few:
        s.issues.append(
            Issue(
                check="min_examples_per_label",
                severity="error",
                split="train",
                message=(
                    f"labels with fewer than {least} train rows: "
                    + ", ".join(f"{k!r} ({v})" for k, v in few.items())
                    + held
                    + "; add examples or lower data.min_examples_per_label"
                ),
            )
        )
    nonzero = [n for n in counts.values() if n]
    if nonzero and max(nonzero) > 10 * min(nonzero) and s.cfg.gate.metric != "macro_f1":
        s.issues.append(
            Issue(
                check="class_balance",
                severity="warning",
                split="train",
                message=f"labels are imbalanced (largest/smallest = {max(nonzero) / min(nonzero):.1f}); prefer "
                "macro_f1 as gate metric",
            )
        )


def forecast_fractions(s: State) -> None:
    """With ``forecast.after_reject``, the learning curve's smallest train subset must hold every label (else the
    curve fails after the run has trained); ``tunegate forecast`` checks the same before training."""
    if not s.cfg.forecast.after_reject or not s.has_labels or s.train_rows.height == 0:
        return
    from tunegate.errors import ConfigError
    from tunegate.forecast import nested_rows

    try:
        nested_rows(s.train_rows, s.cfg.forecast.fractions, seed=s.data.split_seed, task=s.cfg.task)
    except ConfigError as exc:
        s.issues.append(Issue(check="forecast_fractions", severity="error", split="config", message=str(exc)))


def documents(s: State) -> None:
    """What the enabled rungs read besides the data (RAG's documents), before any model runs."""
    found, errors = ladder.preflight(s.cfg.baselines, s.cfg.ladder_context())
    s.stats.update(found)
    s.issues += [Issue(check="documents", severity="error", split="documents", message=m) for m in errors]


def search_rows(s: State) -> None:
    """A prompt search scores its candidates on part of the selection split and every rung is compared on the rest:
    too few rows there make the choice of the best rung (the bar tuning must beat) a coin toss."""
    from tunegate.ladder.optimized_prompt.settings import FEW_UNSEEN_ROWS, searched_rows

    search = s.cfg.baselines.optimized_prompt
    if not search.enabled or s.dev is None or s.dev.height == 0:
        return
    searched = searched_rows(search.selection_rows, s.dev.height)
    unseen = s.dev.height - searched
    if unseen < FEW_UNSEEN_ROWS:
        message = (
            f"baselines.optimized_prompt searches on {searched} of the {s.dev.height} selection rows; the rungs are "
            f"compared on the {unseen} it does not see, where one row is {100 / max(unseen, 1):.1f} points of "
            f"{s.cfg.gate_metric}: which rung is best (the bar tuning must beat) is noisy below {FEW_UNSEEN_ROWS}. "
            f"Give the selection split at least {FEW_UNSEEN_ROWS + searched} rows (raise data.dev_fraction, or more "
            "rows in data.dev), or lower baselines.optimized_prompt.selection_rows"
        )
        s.issues.append(Issue(check="search_rows", severity="warning", split="dev", message=message))


def guard_files(s: State) -> None:
    """The files the guards name (another dataset config, a pairs file), before any model runs."""
    from tunegate.guards.checking import preflight

    errors = preflight(s.cfg.guards, s.cfg.config_dir)
    s.issues += [Issue(check="guard_files", severity="error", split="config", message=m) for m in errors]


# the order of the checks is the order of the report
CHECKS: list[Check] = [
    Check("readable", "each file (train, eval, dev): its format, encoding and rows", readable),
    Check("required_columns", "each file's header", required_columns),
    Check("readable", "light columns of every row (row number, text and label hashes, label)", row_index),
    Check("labels", "train's labels, when data.labels is not set", labels),
    Check("duplicates", "the train index", duplicates),
    Check("sampling", "the index (max_train_rows, max_eval_rows, eval_fraction, dev_fraction)", sample_and_split),
    Check("conflicting_labels", "the sampled train texts and labels", conflicting_labels),
    Check("max_length", "the prompt template, the labels' answer tokens, the model's context", max_length),
    Check("schema", "every sampled row (pandera; train streamed), with its token count", schema),
    Check("leakage", "eval texts against train texts", leakage),
    Check("eval_rows", "the eval and dev rows left", rows_left),
    Check("class_balance", "train and eval labels", class_balance),
    Check("too_long", "each row's prompt + answer tokens (method.max_length: auto is chosen here)", too_long),
    Check("length_shift", "train and eval input lengths", length_shift),
    Check("forecast_fractions", "train's labels against forecast.fractions (with after_reject)", forecast_fractions),
    Check("documents", "the enabled rungs' files (RAG's document folder)", documents),
    Check("search_rows", "the selection rows a prompt search leaves unseen (baselines.optimized_prompt)", search_rows),
    Check("guard_files", "the files the guards name (guards.retention.datasets, guards.bias.pairs)", guard_files),
]


def validate(cfg: TunegateConfig, tokenizer, context: int | None = None) -> ValidationOutcome:
    """Run every check on the configured data, in the order of :data:`CHECKS`; never raises for bad data.
    ``context``: the model's context length (``method.max_length`` must fit it)."""
    s = State(cfg=cfg, tokenizer=tokenizer, context=context)
    ran = []
    for check in CHECKS:
        before = len(s.issues)
        check.run(s)
        ran.append({"check": check.name, "reads": check.reads, "issues": len(s.issues) - before})
        if s.stop:
            break
    s.stats["checks"] = ran
    if s.stop:
        return ValidationOutcome(issues=s.issues, stats=s.stats)
    return _finish(s)


def _finish(s: State) -> ValidationOutcome:
    """Rows and sources for the report; when no check failed, the data hash and the frames the run uses."""
    d, cols = s.data, s.columns
    s.stats["rows"] = {"train": s.train_rows.height, "eval": s.evl.height}
    s.stats["sources"] = {
        "train": str(s.cfg.resolve(d.train)),
        "eval": str(s.cfg.resolve(d.eval)) if d.eval else "split from train",
    }
    if s.dev is not None:
        s.stats["rows"]["dev"] = s.dev.height
    out = ValidationOutcome(issues=s.issues, stats=s.stats)
    if not out.ok:
        return out
    h = s.scan.hasher
    for f in (s.evl, s.dev):
        if f is not None:
            update_hash(h, f, cols)
    s.stats["data_hash"] = h.hexdigest()
    evl = s.evl
    if s.cfg.task_type.numeric:  # an answer without a number counts as the train mean
        s.stats["train_mean"] = s.scan.label_sum / max(s.train_rows.height, 1)
    if s.cfg.task_type.generates:  # every reference of an input judges its answer
        evl = group_references(evl)
        s.stats["rows"]["eval"] = evl.height
        s.stats["eval_references"] = int(evl.get_column("references").list.len().sum())
    out.train_rows = _select(s.tables["train"], s.train_rows, cols, s.totals["train"])
    out.eval, out.dev = evl, s.dev
    return out
