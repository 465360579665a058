"""The length checks: ``method.max_length`` against the model's context and the prompt's fixed part, each row's
prompt + answer tokens against it (``max_length: auto`` is resolved here, from the rows), what the label list costs
per request, and a length shift between train and eval."""

from __future__ import annotations

from tunegate.data import ROW
from tunegate.methods.settings import AUTO_MIN_LENGTH
from tunegate.prompts import PromptBuilder
from tunegate.validation.frames import _length_shift
from tunegate.validation.issues import Issue, policy_issue
from tunegate.validation.state import State

LABEL_LIST_WARN_TOKENS = 64  # a label list this long, and at least half the prompt without its input: a warning
LABEL_LIST_WARN_SHARE = 0.5


def max_length(s: State) -> None:
    """method.max_length against the model's context and against what the prompt costs without its input."""
    s.builder = PromptBuilder(
        s.tokenizer, s.cfg.prompt, s.cfg.task, list(s.answers.values()), conversation=s.conversational
    )
    s.per_label = {lab: len(s.builder.answer_ids(a)) for lab, a in s.answers.items()} if s.has_labels else {}
    fixed = s.builder.overhead_tokens() + max(s.per_label.values(), default=1)
    label_list_cost(s, fixed)
    configured = s.cfg.method.max_length
    if configured == "auto":  # resolved from the rows (too_long); the prompt alone must fit the context
        if s.context is not None and fixed >= s.context:
            s.issues.append(_no_room(s, fixed, f"the model's context is {s.context}", None))
        return
    if s.context is not None and configured > s.context:
        s.issues.append(
            Issue(
                check="max_length",
                severity="error",
                split="train",
                message=f"method.max_length={configured} exceeds the model's context of {s.context} tokens "
                "(max_position_embeddings in its config.json); set method.max_length to at most "
                f"{s.context}, or to auto",
            )
        )
    if fixed >= configured:
        s.issues.append(
            _no_room(s, fixed, f"method.max_length={configured}", f"method.max_length (e.g. to {fixed + 128})")
        )


def _no_room(s: State, fixed: int, limit: str, fix: str | None) -> Issue:
    listed = s.stats.get("label_list_tokens")
    return Issue(
        check="max_length",
        severity="error",
        split="train",
        message="the prompt without its input (template, instruction"
        + (f", the {len(s.per_label)} labels" if s.per_label else "")
        + f") and the longest answer already take {fixed} tokens, {limit}: no row's input would fit; "
        + (f"raise {fix} or " if fix else "")
        + "shorten prompt.instruction"
        + (f" (the label list alone takes {listed} tokens: prompt.list_labels: false drops it)" if listed else ""),
    )


def label_list_cost(s: State, fixed: int) -> None:
    """Tokens the label list adds to every prompt (``label_list_tokens`` in the stats); a warning offering
    ``prompt.list_labels: false`` when it is most of the prompt."""
    if not s.has_labels or not s.cfg.prompt.list_labels or s.conversational:
        return
    if s.cfg.prompt.instruction is not None and "{labels}" not in s.cfg.prompt.instruction:
        return
    # no answers: the default instruction without its list, or the user's own with '{labels}' filled by nothing
    unlisted = PromptBuilder(s.tokenizer, s.cfg.prompt.model_copy(update={"list_labels": False}), s.cfg.task)
    cost = s.builder.overhead_tokens() - unlisted.overhead_tokens()
    if cost <= 0:
        return
    s.stats["label_list_tokens"] = cost
    if cost >= LABEL_LIST_WARN_TOKENS and cost >= LABEL_LIST_WARN_SHARE * fixed:
        s.issues.append(
            Issue(
                check="label_list",
                severity="warning",
                split="config",
                message=f"the list of the {len(s.per_label)} labels in the instruction costs {cost} tokens per "
                f"request, {cost / fixed:.0%} of the {fixed} tokens each prompt takes without its input: every "
                "training example and every scored request pays them. prompt.list_labels: false drops the list "
                "(scoring reads each label's answer, not the list; the zero-shot rung may score lower without it)",
            )
        )


def too_long(s: State) -> None:
    """Token length of prompt + answer against method.max_length (data.too_long: error, or truncate); an 'auto'
    max_length becomes the longest row's, within the model's context."""
    d = s.data
    s.token_totals = {"train": s.scan.tokens}
    if s.evl.height:
        s.token_totals["eval"] = s.count(s.evl, "validate: tokens (eval)")
    choose_length(s)
    max_len = s.max_len
    auto = s.cfg.method.max_length == "auto"
    for split_name, totals_ in s.token_totals.items():
        if totals_.len() == 0:
            continue
        s.stats.setdefault("tokens", {})[split_name] = {
            "max": int(totals_.max()),
            "mean": round(float(totals_.mean()), 1),
            "total": int(totals_.clip(upper_bound=max_len).sum()),
            "limit": max_len,
        }
        row_numbers = s.scan.rows if split_name == "train" else s.evl.get_column(ROW)
        over = row_numbers.filter(totals_ > max_len).to_list()
        if over:
            s.issues.append(
                policy_issue(
                    "error" if d.too_long == "error" else "warn",
                    "too_long",
                    f"{len(over)} {split_name} row(s) exceed "
                    + (f"the model's context of {max_len}" if auto else f"method.max_length={max_len}")
                    + " tokens (prompt + answer)"
                    + (" and will be truncated" if d.too_long == "truncate" else ""),
                    split_name,
                    over,
                    "shorten them"
                    + ("" if auto else ", raise method.max_length")
                    + ", or set data.too_long: truncate"
                    + (" (conversations lose their oldest exchanges first)" if s.conversational else ""),
                )
            )
    if "train" in s.stats.get("tokens", {}):
        epochs = getattr(s.cfg.method, "epochs", 1) or 1
        examples = s.scan.example_tokens if s.conversational else s.scan.tokens
        if s.conversational:  # one training example per trained assistant turn (data.train_on)
            s.stats["training_examples"] = examples.len()
        s.stats["training_tokens"] = int(examples.clip(upper_bound=max_len).sum()) * epochs
        if "label_list_tokens" in s.stats and s.scan.tokens.len():
            epoch = int(s.scan.tokens.clip(upper_bound=max_len).sum())
            s.stats["label_list_share"] = round(s.stats["label_list_tokens"] * s.scan.tokens.len() / epoch, 3)


def choose_length(s: State) -> None:
    """What ``max_length: auto`` becomes: the longest prompt + answer of train, eval and the selection rows, at
    least ``AUTO_MIN_LENGTH``, at most the model's context. Recorded in the stats (``max_length``: configured,
    chosen, what auto would choose) whatever is configured, as a ``compare`` entry may be 'auto'; the flows apply
    it to what is still 'auto' (``resolved_settings``)."""
    totals = list(s.token_totals.values())
    if s.dev is not None and s.dev.height:
        totals.append(s.count(s.dev, "validate: tokens (dev)"))
    longest = max((int(t.max()) for t in totals if t.len()), default=0)
    auto = max(longest, AUTO_MIN_LENGTH)
    capped = s.context is not None and auto > s.context
    if capped:
        auto = s.context
    configured = s.cfg.method.max_length
    if configured == "auto":
        s.resolved_length = auto
    if capped:
        why = f"the model's context ({s.context} tokens); longer rows follow data.too_long"
    elif longest >= AUTO_MIN_LENGTH:
        why = f"the longest row's prompt + answer ({longest} tokens, train/eval/selection rows)"
    else:
        why = f"the floor of {AUTO_MIN_LENGTH} (the longest row takes {longest}; a served input may be longer)"
    s.stats["max_length"] = {
        "configured": configured,
        "chosen": s.max_len,
        "auto": auto,
        "longest_row": longest,
        "why": why if configured == "auto" else "configured",
    }


def length_shift(s: State) -> None:
    """Train and eval inputs of very different lengths: a selection split drawn from train may mislead."""
    from_train = s.data.dev is None and bool(s.data.dev_fraction)
    shift = _length_shift(s.token_totals, s.builder.overhead_tokens(), from_train=from_train)
    if shift is not None:
        s.issues.append(shift)
