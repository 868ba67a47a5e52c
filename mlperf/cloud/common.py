"""Pieces every cloud provider package shares: errors, redaction, telemetry, validation.

Nothing here imports a cloud SDK.  Provider packages raise :class:`CloudError`
(whose message is always passed through :func:`redact`), validate their inputs
with :func:`check_ranges` and :func:`check_training_frame`, and opt out of
their SDK's telemetry with the settings below.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "AZURE_CLIENT_KWARGS",
    "DEFAULT_MAX_JOBS",
    "DEFAULT_MAX_PARALLEL_JOBS",
    "DEFAULT_OBJECTIVE",
    "DEFAULT_RANGES",
    "TELEMETRY_OPT_OUT_ENV",
    "CloudError",
    "check_ranges",
    "check_training_frame",
    "connect_timeout",
    "disable_telemetry",
    "metric_regex",
    "parse_metrics",
    "redact",
    "sagemaker_config_without_telemetry",
]

#: the tutorial's search space: name -> (low, high), both inclusive
DEFAULT_RANGES: dict[str, tuple[int, int]] = {"n_estimators": (50, 200), "max_depth": (5, 15)}
DEFAULT_OBJECTIVE = "accuracy"
DEFAULT_MAX_JOBS = 10
DEFAULT_MAX_PARALLEL_JOBS = 2


class CloudError(RuntimeError):
    """A cloud operation failed; the message never carries a credential.

    The message is redacted on construction, so code that formats a provider's
    error text (which may echo a signed URL or a connection string) into a
    ``CloudError`` cannot leak it into logs, reports or tracebacks.  The exception
    it was raised from is never printed with it: raise it ``from None`` (never
    ``from exc``, whose raw text a traceback prints) with the SDK's text in the message.
    """

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))
        # Raised inside an ``except`` block, the SDK's exception would be printed as the
        # context, its raw text (a signed URL, a connection string) with it.
        self.__suppress_context__ = True


# ------------------------------------------------------------------ redaction

_R = "[REDACTED]"
#: names whose value is a credential: matched at the end of any identifier, so
#: ``AZURE_CLIENT_SECRET``, ``DB_PASSWORD``, ``clientSecret`` and ``refresh_token`` count
#: (a ``\\b`` before the name missed them: there is none after ``_``)
_SECRET_NAME = (
    r"[\w.-]*?(?:secret|password|passwd|pwd|token|signature|sig|credential"
    r"|(?:account|access|secret|private|primary|secondary|master|api|client|storage"
    r"|shared|subscription|encryption|sas)[_-]?key)"
)
# (pattern, replacement); order matters: whole PEM blocks go first
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # PEM private keys, raw or JSON-escaped (a GCP service-account file's "private_key")
    (
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL
        ),
        f"-----BEGIN PRIVATE KEY-----{_R}-----END PRIVATE KEY-----",
    ),
    (re.compile(r'("private_key(?:_id)?"\s*:\s*")[^"]*(")'), rf"\1{_R}\2"),
    # user:password@ in a URL (the user name stays)
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*):[^/\s@]+@"), rf"\1:{_R}@"),
    (re.compile(r"(?i)(\b(?:bearer|basic)\s+)[A-Za-z0-9\-._~+/]+=*"), rf"\1{_R}"),
    (re.compile(r"\bya29\.[A-Za-z0-9_\-.]+"), _R),  # Google OAuth access tokens
    (re.compile(r"\b1//0[\w-]{10,}"), _R),  # Google OAuth refresh tokens
    (re.compile(r"\beyJ[\w-]{5,}\.eyJ[\w-]{5,}\.[\w-]+"), _R),  # JWTs (Entra ID, Google)
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"), _R),  # GitHub tokens
    # AWS access key ids (long-term AKIA, temporary ASIA, and the other IAM prefixes)
    (re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA|AIPA|ANPA|ANVA|AGPA|A3T[A-Z0-9])[A-Z0-9]{16}\b"), _R),
    # a bare Azure storage account key: 64 bytes of base64
    (re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{86}==(?![A-Za-z0-9+/=])"), _R),
]
# a bare 40-character AWS secret; mixed case is required so hex digests (SHA-1, commit ids) survive
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{40}(?![A-Za-z0-9+/=])")
# a bare AWS session token or other long base64 credential (STS tokens run to 300+ chars)
_LONG_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{100,}={0,2}(?![A-Za-z0-9+/=])")
# a bare Entra ID (Azure AD) client secret: 34-44 characters of [A-Za-z0-9_.~-] with a '~'
_AZURE_SECRET = re.compile(r"(?<![\w.~-])(?=[\w.-]*~)[\w.~-]{30,48}(?![\w.~-])")


# name=value, name: value, "name": "value", name='value with spaces'
_KEYED = re.compile(
    rf"(?i)(?<![\w.-])({_SECRET_NAME})([\"']?\s*[=:]\s*)(?:([\"'])(?:(?!\3).)*\3|[^\s\"'&;,]+)"
)


def _keyed(match: re.Match[str]) -> str:
    quote = match.group(3) or ""
    return f"{match.group(1)}{match.group(2)}{quote}{_R}{quote}"


def _secret_like(match: re.Match[str]) -> str:
    s = match.group(0)
    mixed = any(c.islower() for c in s) and any(c.isupper() for c in s)
    return _R if mixed and any(c.isdigit() or c in "+/~._-" for c in s) else s


def redact(text: str) -> str:
    """Replace anything that looks like a credential in *text* with ``[REDACTED]``.

    Covers the value of any name ending in secret, password, token, signature,
    credential or an account/access/API/client/... key (``AZURE_CLIENT_SECRET=``,
    ``"refresh_token": ...``, quoted values with spaces too); passwords in URLs;
    bearer and basic authorization; AWS access key ids, bare secret keys and session
    tokens; GCP private keys and OAuth tokens; JWTs; Azure storage account keys,
    SAS signatures and bare Entra ID client secrets; GitHub tokens.

    Parameters
    ----------
    text:
        Any message, e.g. an SDK exception's ``str()``.

    Returns
    -------
    str
        The text with each credential-shaped substring replaced (applying it again
        changes nothing).
    """
    for pattern, repl in _PATTERNS[:2]:  # PEM blocks before keyed values
        text = pattern.sub(repl, text)
    text = _KEYED.sub(_keyed, text)
    for pattern, repl in _PATTERNS[2:]:
        text = pattern.sub(repl, text)
    for bare in (_LONG_BASE64, _AZURE_SECRET, _AWS_SECRET):
        text = bare.sub(_secret_like, text)
    return text


def connect_timeout() -> float:
    """Seconds a provider's endpoint gets to answer a first call: ``$MLPERF_CONNECT_TIMEOUT``
    or 5 (the variable the engines' address probes read too)."""
    return float(os.environ.get("MLPERF_CONNECT_TIMEOUT", "5"))


# ------------------------------------------------------------------ telemetry

#: environment defaults that silence the providers' command-line tools a user's
#: credential chain may shell out to (gcloud, az)
TELEMETRY_OPT_OUT_ENV: dict[str, str] = {
    "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
    "AZURE_CORE_COLLECT_TELEMETRY": "false",
}
#: ``MLClient(**AZURE_CLIENT_KWARGS)``: azure-ai-ml's switch (it has no environment variable)
AZURE_CLIENT_KWARGS: dict[str, Any] = {"enable_telemetry": False}


def disable_telemetry(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Set the telemetry opt-out variables in *environ* unless the user set them.

    Parameters
    ----------
    environ:
        Mapping to update (default ``os.environ``).

    Returns
    -------
    dict
        The variables this call set (empty when the user had set them all).
    """
    env: Any = os.environ if environ is None else environ
    added = {k: v for k, v in TELEMETRY_OPT_OUT_ENV.items() if k not in env}
    env.update(added)
    return added


def sagemaker_config_without_telemetry(config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return a copy of a SageMaker SDK-defaults config with ``TelemetryOptOut: true``.

    SageMaker SDK v3 reads its opt-out only from the session's config
    (``SageMaker.PythonSDK.Modules.TelemetryOptOut``), not from the environment;
    pass the result as ``Session(sagemaker_config=...)``.  An explicit
    ``TelemetryOptOut: false`` in *config* is kept: the user chose it.
    """
    out: dict[str, Any] = _deepcopy(dict(config or {}))
    out.setdefault("SchemaVersion", "1.0")  # the SDK's schema requires it
    node = out
    for key in ("SageMaker", "PythonSDK", "Modules"):
        node = node.setdefault(key, {})
    node.setdefault("TelemetryOptOut", True)
    return out


def _deepcopy(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _deepcopy(v) if isinstance(v, dict) else v for k, v in d.items()}


# ------------------------------------------------------------------ metrics

_METRIC_LINE = re.compile(
    r"(?<![\w.])([A-Za-z_][\w.-]*)=(-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf|-inf);"
)


def metric_regex(name: str) -> str:
    """The regex SageMaker's tuner (and :func:`parse_metrics`) use to read metric *name*.

    The training script prints ``accuracy=0.812300;``; the capture group is the value.
    """
    return rf"{re.escape(name)}=(-?[0-9.]+(?:[eE][-+]?[0-9]+)?);"


def parse_metrics(log: str) -> dict[str, float]:
    """Read every ``name=value;`` metric from a training log; the last value of a name wins."""
    return {m.group(1): float(m.group(2)) for m in _METRIC_LINE.finditer(log)}


# ------------------------------------------------------------------ validation


def check_ranges(
    ranges: Mapping[str, Any] | None, func: str = "tune"
) -> dict[str, tuple[int, int] | tuple[float, float]]:
    """Validate a hyper-parameter search space ``{name: (low, high)}``.

    Integers on both ends give an integer range, otherwise a continuous one.

    Raises
    ------
    ValueError
        Naming the offending entry: not a (low, high) pair, not finite numbers,
        booleans, ``low > high``, an empty space or a name that is not an identifier.
    """
    if ranges is None:
        ranges = DEFAULT_RANGES
    if not isinstance(ranges, Mapping) or not ranges:
        raise ValueError(
            f"{func}: hyper-parameter ranges must be a non-empty mapping "
            f"{{name: (low, high)}}; got {ranges!r}; e.g. {DEFAULT_RANGES!r}"
        )
    out: dict[str, tuple[int, int] | tuple[float, float]] = {}
    for name, spec in ranges.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"{func}: hyper-parameter name must be an identifier; got {name!r}")
        ok_pair = isinstance(spec, (tuple, list)) and len(spec) == 2
        if ok_pair and not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in spec
        ):
            ok_pair = False
        if not ok_pair:
            raise ValueError(
                f"{func}: range for {name!r} must be a (low, high) pair of finite numbers; "
                f"got {spec!r}; e.g. {{{name!r}: (50, 200)}}"
            )
        low, high = spec
        if low > high:
            raise ValueError(
                f"{func}: range for {name!r} has low > high; got {spec!r}; "
                f"swap them: ({high!r}, {low!r})"
            )
        out[name] = (
            (low, high)
            if isinstance(low, int) and isinstance(high, int)
            else (float(low), float(high))
        )
    return out


def check_training_frame(
    frame: pd.DataFrame, target: str = "target", func: str = "upload_data"
) -> None:
    """Refuse a frame the training script cannot learn from, before any upload.

    Raises
    ------
    ValueError
        When the frame is empty, lacks *target*, has no feature column, or the
        label holds NaN.
    """
    if len(frame) == 0:
        raise ValueError(
            f"{func}: the training frame is empty (columns {list(frame.columns)!r}); "
            "pass a frame with rows"
        )
    if target not in frame.columns:
        raise ValueError(
            f"{func}: label column {target!r} is not in the frame (columns "
            f"{list(frame.columns)!r}); add it or pass target=NAME"
        )
    if frame.shape[1] < 2:
        raise ValueError(f"{func}: the frame holds only the label {target!r}; add feature columns")
    if frame[target].isna().any():
        raise ValueError(
            f"{func}: label column {target!r} holds {int(frame[target].isna().sum())} NaN; "
            "drop those rows first"
        )
