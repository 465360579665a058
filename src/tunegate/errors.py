"""Errors a user can act on. Each carries a one-paragraph message naming the problem and the fix."""


class TunegateError(Exception):
    """Base class of errors that are reported to the user without a traceback."""


class ConfigError(TunegateError):
    """The YAML config is invalid. The message lists every problem at once."""


class ModelNotFoundError(TunegateError):
    """The configured model cannot be found or loaded offline."""


class RegistryError(TunegateError):
    """A registry lookup or write failed (unknown model, version or alias)."""


class MethodUnavailableError(TunegateError):
    """A tuning method's optional dependency is missing on this machine."""


class TransientError(TunegateError):
    """A failure worth retrying (I/O hiccup, lock timeout). Only these are retried."""


class PromotionError(TunegateError):
    """The gate said promote, but the registered copy did not reproduce the judged model (or production moved)."""


class ResumeError(TunegateError):
    """``--resume RUN_ID`` names no run, or one started with another config, model or hardware."""


class OutputError(TunegateError):
    """``output.dir`` (or another place a run writes) is not a writable folder."""


class DataReadError(Exception):
    """A file that cannot be read: named in the validation report, not a traceback."""
