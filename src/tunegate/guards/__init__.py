"""What tuning may break, checked beside the gate (issue 31). So far: the probes the guards score, shipped with
the package (``probes``: a general-ability set and a bias set, each with its source and license)."""

from tunegate.guards.probes import PROBES, Probe, probe_rows

__all__ = ["PROBES", "Probe", "probe_rows"]
