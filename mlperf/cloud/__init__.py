"""Cloud ML on SageMaker, Vertex AI and Azure ML, and a local run of the same training script.

``import mlperf.cloud`` imports no SDK; each provider is a package named like its
suite folder (:mod:`mlperf.cloud.sagemaker`, :mod:`mlperf.cloud.vertex`,
:mod:`mlperf.cloud.azure`, tested under ``suites/cloud/<provider>/``), laid out the
same way: ``__init__`` (the public verbs), ``_base`` (client or session, shared
helpers), ``_training`` (upload, train, tune) and ``_serving`` (deploy, predict,
delete; SageMaker's clean-up is ``_cleanup``).  What the providers share (errors,
redaction, telemetry opt-out, metric parsing, argument checks) is
:mod:`mlperf.cloud.common`.
:func:`run_local` runs a training script in a subprocess under one provider's
conventions (directories, environment variables, argument style) so a user can
test it before paying for a cloud job.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mlperf.cloud.common import CloudError, parse_metrics, redact

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pandas as pd

__all__ = [
    "PROVIDERS",
    "CloudError",
    "LocalRunResult",
    "run_local",
    "training_script",
    "training_script_options",
]

Provider = Literal["sagemaker", "azure", "vertex"]
PROVIDERS: tuple[str, ...] = ("sagemaker", "azure", "vertex")


def training_script() -> Path:
    """Path of the scikit-learn training script that ships with mlperf (every provider uses it)."""
    return Path(__file__).parent / "scripts" / "train_sklearn.py"


def training_script_options() -> frozenset[str]:
    """The hyper-parameters :func:`training_script` accepts (paths excluded).

    Cloud verbs check names against it before a job starts: the script refuses
    any other flag, but only inside the job, after it has been paid for.
    """
    import importlib.util

    spec = importlib.util.spec_from_file_location("_mlperf_train_sklearn", training_script())
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # the module level defines functions only
    return frozenset(vars(module.parse_args([]))) - {"data", "model_dir", "output_dir"}


@dataclass(frozen=True)
class LocalRunResult:
    """What a local run of a training script produced.

    Attributes
    ----------
    provider:
        Whose conventions the run followed.
    metrics:
        Every ``name=value;`` metric the script printed (last value per name).
    model_dir:
        The directory the script was told to write its model to.
    model_path:
        ``model_dir/model.joblib`` when the script wrote it, else the single file
        in ``model_dir``, else None.
    workdir:
        The run's root directory (the caller owns it and may delete it).
    command, stdout, stderr, wall_s:
        The exact command line, its output, and its wall time in seconds.
    """

    provider: str
    metrics: dict[str, float]
    model_dir: Path
    model_path: Path | None
    workdir: Path
    command: list[str]
    stdout: str
    stderr: str
    wall_s: float
    env: dict[str, str] = field(default_factory=dict)


def _cli_args(hyperparameters: Mapping[str, Any], joined: bool) -> list[str]:
    args: list[str] = []
    for key, value in hyperparameters.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"run_local: hyper-parameter name must be an identifier; got {key!r}")
        text = "none" if value is None else str(value)
        args.extend([f"--{key}={text}"] if joined else [f"--{key}", text])
    return args


def _stage_data(data: str | os.PathLike[str] | pd.DataFrame, into: Path) -> Path:
    """Put the training data in *into* (a channel directory) and return the path to hand over."""
    import pandas as pd

    into.mkdir(parents=True, exist_ok=True)
    if isinstance(data, pd.DataFrame):
        if len(data) == 0:
            raise ValueError("run_local: the training frame is empty; pass a frame with rows")
        data.to_csv(into / "train.csv", index=False)
        return into
    src = Path(data)
    if not src.exists():
        raise FileNotFoundError(
            f"run_local: training data {str(src)!r} does not exist; pass a CSV file, a "
            "directory of CSV files or a DataFrame"
        )
    if src.is_dir():
        for f in sorted(src.glob("*.csv")):
            _link_or_copy(f, into / f.name)
    else:
        _link_or_copy(src, into / src.name)
    return into


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.symlink(src.resolve(), dst)
    except OSError:  # filesystems without symlinks
        shutil.copyfile(src, dst)


def _conventions(
    provider: str, root: Path, channel: Path, hps: Mapping[str, Any]
) -> tuple[dict[str, str], list[str], Path]:
    """(environment, arguments, model dir) the provider's training service would give."""
    if provider == "sagemaker":
        # the /opt/ml layout of a SageMaker training container, rooted at workdir
        model_dir = root / "model"
        out = root / "output" / "data"
        env = {
            "SM_CHANNEL_TRAIN": str(channel),
            "SM_CHANNELS": json.dumps(["train"]),
            "SM_MODEL_DIR": str(model_dir),
            "SM_OUTPUT_DATA_DIR": str(out),
            "SM_OUTPUT_DIR": str(root / "output"),
            "SM_INPUT_DIR": str(root / "input"),
            "SM_HPS": json.dumps(dict(hps)),
            "SM_CURRENT_HOST": "algo-1",
            "SM_HOSTS": json.dumps(["algo-1"]),
            "SM_NUM_CPUS": str(os.cpu_count() or 1),
            "SM_NUM_GPUS": "0",
        }
        return env, _cli_args(hps, joined=False), model_dir
    if provider == "azure":
        # an Azure ML command job:
        # `python train.py --data ${{inputs.data}} ... --model_dir ./outputs`
        model_dir = root / "outputs"
        args = [
            "--data",
            str(channel),
            *_cli_args(hps, joined=False),
            "--model_dir",
            str(model_dir),
        ]
        return {"AZUREML_RUN_ID": "local"}, args, model_dir
    if provider == "vertex":
        # a Vertex AI custom job: AIP_* variables and --name=value flags (as its tuner passes them)
        model_dir = root / "model"
        env = {
            "AIP_MODEL_DIR": str(model_dir),
            "AIP_CHECKPOINT_DIR": str(root / "checkpoints"),
            "AIP_TENSORBOARD_LOG_DIR": str(root / "logs"),
            "AIP_TRAINING_DATA_URI": str(channel / "*.csv"),
            "AIP_DATA_FORMAT": "csv",
        }
        return env, _cli_args(hps, joined=True), model_dir
    raise ValueError(f"run_local: provider must be one of {PROVIDERS!r}; got {provider!r}")


def run_local(
    script: str | os.PathLike[str] | None,
    data: str | os.PathLike[str] | pd.DataFrame,
    hyperparameters: Mapping[str, Any] | None = None,
    *,
    provider: Provider = "sagemaker",
    workdir: str | os.PathLike[str] | None = None,
    python: str | None = None,
    timeout: float | None = 600,
) -> LocalRunResult:
    """Run a training script locally the way *provider*'s training service would.

    Parameters
    ----------
    script:
        The training script; None means :func:`training_script`.
    data:
        A CSV file, a directory of CSV files, or a DataFrame (written as ``train.csv``).
    hyperparameters:
        ``{name: value}``, passed as command-line flags in the provider's style.
    provider:
        ``"sagemaker"`` (SM_CHANNEL_TRAIN, SM_MODEL_DIR, SM_OUTPUT_DATA_DIR, ``--name value``),
        ``"azure"`` (``--data PATH --name value --model_dir DIR``) or
        ``"vertex"`` (AIP_MODEL_DIR, AIP_TRAINING_DATA_URI, ``--name=value``).
    workdir:
        Root of the run's directories (created if missing); default a new temporary
        directory, which the caller owns.
    python:
        Interpreter to run the script with (default: this one).
    timeout:
        Seconds before the run is killed.

    Returns
    -------
    LocalRunResult
        Parsed metrics, the model path, the output and the wall time.

    Raises
    ------
    ValueError, FileNotFoundError
        Unknown provider, missing script or data, or an empty frame.
    CloudError
        The script exited non-zero or timed out; the message ends with its stderr
        (credentials redacted).
    """
    script_path = Path(script) if script is not None else training_script()
    if not script_path.is_file():
        raise FileNotFoundError(f"run_local: training script {str(script_path)!r} does not exist")
    if provider not in PROVIDERS:
        raise ValueError(f"run_local: provider must be one of {PROVIDERS!r}; got {provider!r}")
    root = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="mlperf-cloud-"))
    root.mkdir(parents=True, exist_ok=True)
    hps = dict(hyperparameters or {})
    channel = _stage_data(data, root / "input" / "data" / "train")
    env_add, args, model_dir = _conventions(provider, root, channel, hps)
    env = {**os.environ, **env_add, "PYTHONUNBUFFERED": "1"}
    command = [python or sys.executable, str(script_path.resolve()), *args]
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            command, cwd=root, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise CloudError(
            f"run_local: {script_path.name} did not finish within {timeout!r} s "
            f"(provider {provider!r}); raise timeout= or shrink the data"
        ) from None
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise CloudError(
            f"run_local: {script_path.name} exited with status {proc.returncode} "
            f"(provider {provider!r}, command {' '.join(command[1:])!r}):\n{tail}"
        )
    model_path: Path | None = model_dir / "model.joblib"
    if not model_path.is_file():  # type: ignore[union-attr]
        files = [p for p in model_dir.glob("*") if p.is_file()] if model_dir.is_dir() else []
        model_path = files[0] if len(files) == 1 else None
    return LocalRunResult(
        provider=provider,
        metrics=parse_metrics(proc.stdout),
        model_dir=model_dir,
        model_path=model_path,
        workdir=root,
        command=command,
        stdout=redact(proc.stdout),
        stderr=redact(proc.stderr),
        wall_s=wall,
        env=env_add,
    )
