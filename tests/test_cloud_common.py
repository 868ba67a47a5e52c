"""mlperf.cloud.common: redaction, telemetry opt-out, metric lines, input checks, import cost."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlperf.cloud import training_script
from mlperf.cloud.common import (
    AZURE_CLIENT_KWARGS,
    DEFAULT_RANGES,
    TELEMETRY_OPT_OUT_ENV,
    CloudError,
    check_ranges,
    check_training_frame,
    disable_telemetry,
    metric_regex,
    parse_metrics,
    redact,
    sagemaker_config_without_telemetry,
)

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
UPPER_DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

# ------------------------------------------------------------------ redaction

SECRETS = {
    "aws key id": ("Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1", "AKIAIOSFODNN7EXAMPLE"),
    "aws temp key id": ("using ASIAY34FZKBOKMUTVV7A now", "ASIAY34FZKBOKMUTVV7A"),
    "aws secret, bare": (
        "secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY end",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    "aws secret, keyed": ("aws_secret_access_key = abc123", "abc123"),
    "session token": ('"SessionToken": "FwoGZXIvYXdzEJr//////////wEaDAnother"', "FwoGZXIvYXdzEJr"),
    "sigv4 query": (
        "https://b.s3.amazonaws.com/k?X-Amz-Signature=deadbeef00&X-Amz-Date=1",
        "deadbeef00",
    ),
    "gcp private key": (
        '{"private_key": "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBg'
        '\\n-----END PRIVATE KEY-----\\n"}',
        "MIIEvQIBADANBg",
    ),
    "gcp key id": ('"private_key_id": "7c3f0e2b8a9d"', "7c3f0e2b8a9d"),
    "google token": ("Authorization: Bearer ya29.a0AfH6SMBx-token_value", "a0AfH6SMBx"),
    "azure connection string": (
        (
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0a2V5c2VjcmV0a2V5==;"
            "EndpointSuffix=core.windows.net"
        ),
        "c2VjcmV0a2V5c2VjcmV0a2V5==",
    ),
    "azure sas": (
        "https://acct.blob.core.windows.net/c/b?sv=2024&sig=AbC%2Bd%3D&se=2026",
        "AbC%2Bd",
    ),
    "azure bare key": (
        "key " + "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
        "K1SZFPTOtr/KBHBeksoGMGw==",
        "Eby8vdM02xNOcqFl",
    ),
    "client secret": ("client_secret=s3cr3t-Value", "s3cr3t-Value"),
    # issue 14 item 3: each of these survived
    "azure client secret variable": (
        "AZURE_CLIENT_SECRET=Xk58Q~Vq3.lm_Rt-9aBcDeFgHiJkLmNoPqRsTuVw",
        "Xk58Q~Vq3.lm_Rt",
    ),
    "password variable": ("DB_PASSWORD=hunter2", "hunter2"),
    "bare azure client secret": (
        "secret is Xk58Q~Vq3.lm_Rt-9aBcDeFgHiJkLmNoPqRsTuVw here",
        "Xk58Q~Vq3.lm_Rt",
    ),
    "refresh token, json": ('{"refresh_token": "1//0gAbCdEfGh-iJk"}', "1//0gAbCdEfGh"),
    "password in a url": ("cannot reach https://admin:hunter2@db.example.com/x", "hunter2"),
    "bare aws session token": (
        "token IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD" + "x7Yq" * 30 + " expired",
        "IQoJb3JpZ2luX2VjEJr",
    ),
    "camel-case client secret": ('{"clientSecret": "abc.def~ghi"}', "abc.def~ghi"),
    "quoted password with spaces": ("password='correct horse battery'", "horse battery"),
    "basic auth header": ("Authorization: Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy"),
    "jwt": (
        "token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXBhcnQ end",
        "eyJzdWIiOiIxMjM0NTY3ODkwIn0",
    ),
    "azure endpoint key": ('primary_key="Zm9vYmFyYmF6cXV4"', "Zm9vYmFyYmF6cXV4"),
}


@pytest.mark.parametrize("text, secret", SECRETS.values(), ids=SECRETS.keys())
def test_redact_removes_each_kind_of_credential(text, secret):
    out = redact(text)
    assert secret not in out and "[REDACTED]" in out


@pytest.mark.parametrize(
    "text",
    [
        "commit 3f786850e387550fdab836ed7e6dc881de23001b",  # hex digests are not keys
        "s3://mlperf-test/flow/train/train.csv",
        "arn:aws:iam::123456789012:role/mlperf-sagemaker",
        "accuracy=0.812300; design=3 signal=4",
        "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
        "max_tokens=5 token_count: 3 password_policy=strict secret_name=prod",
        "see ~/.aws/credentials and https://example.com:8443/path@v2",
        "Token authentication is enabled for this Ray cluster",
        "numpy~=2.4 took ~1.5 ms",
    ],
)
def test_redact_keeps_ordinary_text(text):
    assert redact(text) == text


_KEY_NAMES = st.sampled_from(
    [
        "AZURE_CLIENT_SECRET",
        "client_secret",
        "clientSecret",
        "DB_PASSWORD",
        "password",
        "pwd",
        "refresh_token",
        "access_token",
        "GITHUB_TOKEN",
        "x-amz-security-token",
        "AccountKey",
        "api_key",
        "MY_SERVICE_API-KEY",
        "SharedAccessSignature",
    ]
)
_SEPARATORS = st.sampled_from(["=", ": ", " = ", '": "', "='", "':'"])
_VALUES = st.text(B64 + "-_.~!@#$%^*()[]{}", min_size=6, max_size=60).filter(
    lambda v: len(set(v)) > 3
)


@settings(max_examples=100)
@given(key=_KEY_NAMES, sep=_SEPARATORS, value=_VALUES, before=st.sampled_from(["", "x ", "{", "?"]))
def test_keyed_secrets_never_survive(key, sep, value, before):
    """Any secret-named key with any separator and value: the value is gone."""
    quote = sep[-1] if sep[-1] in "'\"" else ""
    text = f"{before}{key}{sep}{value}{quote} tail"
    out = redact(text)
    assert value not in out, out
    assert redact(out) == out  # idempotent


def test_cloud_error_keeps_no_sdk_text_in_its_traceback():
    """Issue 14 item 3: ``raise CloudError(...) from exc`` printed the raw SDK message
    (credentials and all) as the cause; an implicit context is printed the same way."""
    import traceback

    secret = "AccountKey=c2VjcmV0a2V5c2VjcmV0a2V5"

    def sdk() -> None:
        raise RuntimeError(f"HTTP 403 for {secret}")

    def wrapped(explicit: bool) -> None:
        try:
            sdk()
        except RuntimeError as exc:
            if explicit:
                raise CloudError(f"upload failed ({exc})") from None
            raise CloudError(f"upload failed ({exc})")  # noqa: B904 - what the test is about

    for explicit in (True, False):
        with pytest.raises(CloudError) as info:
            wrapped(explicit)
        printed = "".join(traceback.format_exception(info.value))
        assert "c2VjcmV0a2V5" not in printed and "[REDACTED]" in printed, printed


def test_no_cloud_error_is_raised_from_the_sdk_exception():
    """The property that would have found item 3's traceback leak: in mlperf/cloud every
    ``raise ... from X`` is ``from None`` (the message carries the redacted SDK text)."""
    import ast

    root = Path(__file__).resolve().parents[1] / "mlperf" / "cloud"
    chained = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            cause = node.cause if isinstance(node, ast.Raise) else None
            if cause is not None and not (isinstance(cause, ast.Constant) and cause.value is None):
                chained.append(f"{path.relative_to(root.parent.parent)}:{node.lineno}")
    assert chained == [], chained


def test_run_local_failure_shows_no_client_secret(tmp_path):
    """Issue 14 item 3: a failing script that printed its environment's Azure client
    secret put it, unredacted, into the CloudError."""
    from mlperf.cloud import run_local

    script = tmp_path / "train.py"
    script.write_text(
        "import sys\n"
        "print('AZURE_CLIENT_SECRET=Xk58Q~Vq3.lm_Rt-9aBcDeFgHiJkLmNoPqRsTuVw', file=sys.stderr)\n"
        "print('conn: https://svc:hunter2@db.internal/x', file=sys.stderr)\n"
        "sys.exit(3)\n"
    )
    with pytest.raises(CloudError, match="exited with status 3") as info:
        run_local(script, pd.DataFrame({"x": [1.0], "target": [0]}), workdir=tmp_path / "run")
    assert "Xk58Q~Vq3" not in str(info.value) and "hunter2" not in str(info.value)


@settings(max_examples=40)
@given(
    key_id=st.text(UPPER_DIGITS, min_size=16, max_size=16),
    secret=st.text(B64, min_size=40, max_size=40).filter(
        lambda s: (
            any(c.islower() for c in s)
            and any(c.isupper() for c in s)
            and any(c.isdigit() or c in "+/" for c in s)
        )
    ),
    prefix=st.sampled_from(["AKIA", "ASIA"]),
)
def test_generated_aws_credentials_never_survive(key_id, secret, prefix):
    text = f"boto3 failed with {prefix}{key_id} / {secret} in env"
    out = redact(text)
    assert prefix + key_id not in out and secret not in out
    assert redact(out) == out  # idempotent


def test_cloud_error_redacts_its_message():
    err = CloudError("deploy failed: AccountKey=c2VjcmV0;BlobEndpoint=http://x")
    assert "c2VjcmV0" not in str(err) and "BlobEndpoint=http://x" in str(err)


# ------------------------------------------------------------------ telemetry


def test_disable_telemetry_sets_defaults_and_keeps_the_users_choice():
    env = {"AZURE_CORE_COLLECT_TELEMETRY": "true"}
    added = disable_telemetry(env)
    assert env["AZURE_CORE_COLLECT_TELEMETRY"] == "true"  # the user's explicit value stays
    assert added == {
        k: v for k, v in TELEMETRY_OPT_OUT_ENV.items() if k != "AZURE_CORE_COLLECT_TELEMETRY"
    }
    assert env["CLOUDSDK_CORE_DISABLE_USAGE_REPORTING"] == "true"
    assert AZURE_CLIENT_KWARGS == {"enable_telemetry": False}


def test_sagemaker_config_gets_the_opt_out_without_mutating_the_input():
    mine = {
        "SchemaVersion": "1.0",
        "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": False}}},
    }
    assert sagemaker_config_without_telemetry(mine) == mine  # an explicit False is the user's call
    out = sagemaker_config_without_telemetry(
        {"SageMaker": {"TrainingJob": {"EnableNetworkIsolation": True}}}
    )
    assert out["SageMaker"]["PythonSDK"]["Modules"]["TelemetryOptOut"] is True
    assert out["SageMaker"]["TrainingJob"] == {"EnableNetworkIsolation": True}
    empty: dict = {}
    sagemaker_config_without_telemetry(empty)
    assert empty == {}


def test_the_sagemaker_sdk_reads_the_opt_out(monkeypatch, tmp_path):
    pytest.importorskip(
        "sagemaker.core", reason='needs the aws extra: pip install "pytest-mlperf[aws]"'
    )
    from sagemaker.core.config.config_manager import SageMakerConfig
    from sagemaker.core.config.config_schema import TELEMETRY_OPT_OUT_PATH

    from mlperf.cloud.sagemaker import make_session

    defaults = tmp_path / "config.yaml"
    defaults.write_text("SchemaVersion: '1.0'\n")
    monkeypatch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(defaults))
    monkeypatch.setenv("SAGEMAKER_ADMIN_CONFIG_OVERRIDE", str(defaults))
    import boto3

    session = make_session(
        boto3.Session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"),
        bucket="b",
    )
    assert (
        SageMakerConfig().resolve_value_from_config(
            config_path=TELEMETRY_OPT_OUT_PATH, sagemaker_session=session, default_value=False
        )
        is True
    )


# ------------------------------------------------------------------ metric lines


def _script_format() -> str:
    text = training_script().read_text()
    (fmt,) = re.findall(r'^METRIC_FORMAT = "(.*)"$', text, flags=re.MULTILINE)
    return fmt


@settings(max_examples=50)
@given(value=st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))
def test_what_the_script_prints_is_what_both_parsers_read(value):
    line = _script_format().format(name="accuracy", value=value)
    expected = round(value, 6)
    assert parse_metrics(f"INFO starting\n{line}\nINFO done") == {
        "accuracy": pytest.approx(expected, abs=1e-6)
    }
    (captured,) = re.findall(metric_regex("accuracy"), line)
    assert float(captured) == pytest.approx(expected, abs=1e-6)


def test_parse_metrics_keeps_the_last_value_and_ignores_prose():
    log = "loss=0.5; accuracy=0.1;\nepoch done, lr=1e-3;\naccuracy=0.9;\nmax_depth=None\n"
    assert parse_metrics(log) == {"loss": 0.5, "accuracy": 0.9, "lr": 1e-3}
    assert math.isnan(parse_metrics("auc=nan;")["auc"])


# ------------------------------------------------------------------ input checks


@settings(max_examples=40)
@given(lo=st.integers(-(10**6), 10**6), width=st.integers(0, 10**6))
def test_integer_ranges_stay_integer(lo, width):
    assert check_ranges({"n_estimators": (lo, lo + width)}) == {"n_estimators": (lo, lo + width)}
    assert all(isinstance(v, int) for v in check_ranges({"n": [lo, lo + width]})["n"])


@settings(max_examples=40)
@given(lo=st.floats(-1e6, 1e6), width=st.floats(0, 1e6))
def test_float_ranges_are_continuous_and_reversed_ones_refused(lo, width):
    assert check_ranges({"lr": (lo, lo + width)}) == {"lr": (float(lo), float(lo + width))}
    if lo + width > lo:
        with pytest.raises(ValueError, match=r"low > high.*swap them"):
            check_ranges({"lr": (lo + width, lo)})


def test_default_ranges_are_the_tutorials():
    assert check_ranges(None) == DEFAULT_RANGES == {"n_estimators": (50, 200), "max_depth": (5, 15)}


def test_check_training_frame_names_the_problem():
    good = pd.DataFrame({"x": [1.0, 2.0], "target": [0, 1]})
    check_training_frame(good)
    with pytest.raises(ValueError, match="holds only the label"):
        check_training_frame(good[["target"]])
    with pytest.raises(ValueError, match="'target' holds 1 NaN"):
        check_training_frame(good.assign(target=[0, None]))
    with pytest.raises(ValueError, match="label column 'y' is not in the frame"):
        check_training_frame(good, target="y")


# ------------------------------------------------------------------ import cost


def test_importing_the_cloud_modules_imports_no_sdk():
    code = (
        "import sys, mlperf.cloud, mlperf.cloud.sagemaker;"
        "print([m for m in ('boto3', 'botocore', 'sagemaker', 'sklearn', 'moto') if m in "
        "sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent,
    )
    assert json.loads(out.stdout.replace("'", '"')) == []


def test_the_script_options_are_its_hyperparameters():
    from mlperf.cloud import training_script_options

    expected = {"target", "n_estimators", "max_depth", "test_size", "random_state"}
    assert training_script_options() == expected


def test_the_training_script_runs_on_old_pythons():
    # the stock sklearn 1.2-1 image runs Python 3.9: no match statements, no 3.10+ syntax
    import ast

    tree = ast.parse(training_script().read_text(), feature_version=(3, 8))
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Match)]
