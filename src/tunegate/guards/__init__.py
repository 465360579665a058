"""What tuning may break, checked beside the gate: each guard scores the candidate and its reference (the base
model; the best rung for slices) on the same rows and checks a declared tolerance as non-inferiority.

Guards are plugins (``base``: :class:`Guard`, :func:`register_guard`), in peft's layout like the methods and the
rungs: a folder per guard with ``settings.py`` (its settings class, nothing heavy: the config imports it),
``guard.py`` (its :class:`Guard`, imported when a run measures it) and ``__init__.py`` (``register_guard(...)``).
Built in, in this order: ``retention`` (forgetting: shipped general probes, other datasets, KL on neutral text),
``slices`` (per label, input length, declared column), ``bias`` (counterfactual flips, stereotype preference),
``injection`` (obeyed injected instructions), ``overfitting`` (loss gap, verbatim copies of train answers).
``checking.check`` runs the ones a run turns on; ``verdicts`` judges their measures. The probes they score
ship with the package (``probes``). Importing this package imports nothing heavy.
"""

from tunegate.guards.base import GUARDS, Guard, GuardEntry, GuardSettings, Measured, Rows, register_guard
from tunegate.guards.probes import PROBES, Probe, probe_rows

# each registers itself; the order here is the report's order
# isort: off
from tunegate.guards import retention, slices, bias, injection, overfitting  # noqa: E402, F401
# isort: on

__all__ = [
    "GUARDS",
    "Guard",
    "GuardEntry",
    "GuardSettings",
    "Measured",
    "PROBES",
    "Probe",
    "Rows",
    "probe_rows",
    "register_guard",
]
