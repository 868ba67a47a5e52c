"""Train a random forest on a CSV with a ``target`` column, for SageMaker, Vertex AI and Azure ML.

It runs inside the providers' stock scikit-learn containers, so it needs only
scikit-learn, pandas and joblib, and keeps to Python 3.8 syntax.  It reads each
provider's conventions and falls back to explicit flags:

==============  ==========================  =====================================
what            flag                        environment (first one set wins)
==============  ==========================  =====================================
training data   ``--data``                  SM_CHANNEL_TRAIN, AIP_TRAINING_DATA_URI
model dir       ``--model_dir``             SM_MODEL_DIR, AIP_MODEL_DIR (else ./outputs)
output dir      ``--output_dir``            SM_OUTPUT_DATA_DIR (else the model dir)
==============  ==========================  =====================================

The data may be one CSV file, a directory of ``*.csv`` files or a glob; ``gs://``
URIs are read through Vertex's Cloud Storage FUSE mount under ``/gcs``.
Hyper-parameters come as ``--n_estimators 100`` (SageMaker, Azure) or
``--n_estimators=100`` (Vertex).  The held-out accuracy is printed as
``accuracy=0.8123;`` -- the line SageMaker's tuner regex and ``mlperf.cloud.run_local``
parse -- and logged to MLflow when a tracking URI is set (Azure ML jobs set one).
The model is written as ``model.joblib`` (the name Vertex's prebuilt sklearn
serving container loads); ``model_fn`` (SageMaker) and ``init``/``run`` (Azure
ML) serve it.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from typing import Any

METRIC_FORMAT = "{name}={value:.6f};"


def _none_or_int(text: str) -> int | None:
    # SageMaker serialises None as "null"; the tuner and Azure pass integers as strings
    if str(text).strip().lower() in ("", "none", "null", "0"):
        return None
    return int(float(text))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    # no abbreviations: a misspelt --n_estimator must not quietly set --n_estimators
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--data", default=None, help="CSV file, directory of CSVs or glob")
    p.add_argument("--target", default="target", help="label column (default: target)")
    p.add_argument("--n_estimators", type=int, default=100)
    p.add_argument("--max_depth", type=_none_or_int, default=None, help="int; none/0 = unlimited")
    p.add_argument("--test_size", type=float, default=0.2)
    p.add_argument("--random_state", type=int, default=42)
    p.add_argument("--model_dir", default=None)
    p.add_argument("--output_dir", default=None)
    args, unknown = p.parse_known_args(argv)
    # SageMaker's legacy toolkit may hand over its own sagemaker_* settings; anything else is a
    # hyper-parameter the user meant to set, and ignoring it would train a different model
    unknown = _without_sagemaker_settings(unknown)
    if unknown:
        p.error(f"unknown arguments {unknown!r}; this script takes {sorted(vars(args))!r}")
    return args


def _without_sagemaker_settings(args: list[str]) -> list[str]:
    kept, skip_value = [], False
    for arg in args:
        if skip_value and not arg.startswith("--"):
            skip_value = False
            continue
        skip_value = arg.startswith("--sagemaker_") and "=" not in arg
        if not arg.startswith("--sagemaker_"):
            kept.append(arg)
    return kept


def _local(path: str | None) -> str | None:
    """Map a gs:// URI to Vertex's Cloud Storage FUSE mount."""
    if path and path.startswith("gs://"):
        return "/gcs/" + path[len("gs://") :]
    return path


def resolve_paths(args: argparse.Namespace) -> tuple[str, str, str]:
    data = (
        args.data or os.environ.get("SM_CHANNEL_TRAIN") or os.environ.get("AIP_TRAINING_DATA_URI")
    )
    if not data:
        raise SystemExit(
            "train_sklearn: no training data; pass --data PATH or set SM_CHANNEL_TRAIN "
            "(SageMaker) / AIP_TRAINING_DATA_URI (Vertex AI)"
        )
    model_dir = args.model_dir or os.environ.get("SM_MODEL_DIR") or os.environ.get("AIP_MODEL_DIR")
    model_dir = _local(model_dir) or os.path.join(os.getcwd(), "outputs")
    output_dir = _local(args.output_dir or os.environ.get("SM_OUTPUT_DATA_DIR")) or model_dir
    return _local(data) or data, model_dir, output_dir


def csv_files(data: str) -> list[str]:
    if os.path.isdir(data):
        files = sorted(glob.glob(os.path.join(data, "**", "*.csv"), recursive=True))
    elif any(ch in data for ch in "*?["):
        files = sorted(glob.glob(data))
    else:
        files = [data] if os.path.exists(data) else []
    if not files:
        raise SystemExit(
            f"train_sklearn: no CSV file found at {data!r}; point --data (or the train "
            "channel) at a .csv file or a directory holding one"
        )
    return files


def load_frame(data: str, target: str) -> tuple[Any, Any]:
    import pandas as pd

    frames = [pd.read_csv(f) for f in csv_files(data)]
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if target not in frame.columns:
        raise SystemExit(
            f"train_sklearn: label column {target!r} not in the data (columns: "
            f"{list(frame.columns)!r}); pass "
            "--target NAME"
        )
    if len(frame) < 2:
        raise SystemExit(
            f"train_sklearn: the training frame has {len(frame)} row(s); need at least 2 to hold "
            "out a test split"
        )
    features = [c for c in frame.columns if c != target]
    bad = [c for c in features if not pd.api.types.is_numeric_dtype(frame[c])]
    if not features or bad:
        raise SystemExit(
            f"train_sklearn: feature columns must be numeric; got non-numeric {bad!r} "
            f"(features: {features!r}); encode them first, e.g. pd.get_dummies"
        )
    if frame[features].isna().any().any():
        raise SystemExit(
            "train_sklearn: feature columns hold NaN "
            f"({[c for c in features if frame[c].isna().any()]!r}); impute or drop them first"
        )
    return frame[features], frame[target]


def train(
    x: Any, y: Any, n_estimators: int, max_depth: int | None, test_size: float, random_state: int
) -> tuple[Any, float]:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import train_test_split

    counts = y.value_counts()
    n_test = max(1, round(len(y) * test_size))
    # stratify only when every class can appear on both sides of the split
    stratify = y if counts.min() >= 2 and n_test >= len(counts) else None
    x_train, x_test, y_train, y_test = train_test_split(
        x.to_numpy(), y.to_numpy(), test_size=n_test, random_state=random_state, stratify=stratify
    )
    model = RandomForestClassifier(
        n_estimators=n_estimators, max_depth=max_depth, random_state=random_state, n_jobs=1
    )
    model.fit(x_train, y_train)
    return model, float(accuracy_score(y_test, model.predict(x_test)))


def log_metric(name: str, value: float) -> None:
    print(METRIC_FORMAT.format(name=name, value=value), flush=True)
    if os.environ.get("MLFLOW_TRACKING_URI"):
        try:
            import mlflow
        except ImportError:  # optional: Azure ML images ship it, local runs need not
            return
        mlflow.log_metric(name, value)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.n_estimators < 1:
        raise SystemExit(f"train_sklearn: --n_estimators must be >= 1; got {args.n_estimators!r}")
    data, model_dir, output_dir = resolve_paths(args)
    x, y = load_frame(data, args.target)
    model, accuracy = train(
        x, y, args.n_estimators, args.max_depth, args.test_size, args.random_state
    )
    log_metric("accuracy", accuracy)

    import joblib

    os.makedirs(model_dir, exist_ok=True)
    joblib.dump(model, os.path.join(model_dir, "model.joblib"))
    os.makedirs(output_dir, exist_ok=True)
    summary = {
        "accuracy": accuracy,
        "n_rows": len(y),
        "features": [str(c) for c in x.columns],
        "n_estimators": args.n_estimators,
        "max_depth": args.max_depth,
    }
    with open(os.path.join(output_dir, "metrics.json"), "w") as fh:
        json.dump(summary, fh, indent=2)
    return 0


# ------------------------------------------------------------------ serving


def model_fn(model_dir: str) -> Any:
    """SageMaker scikit-learn serving: load the model written by :func:`main`."""
    import joblib

    return joblib.load(os.path.join(model_dir, "model.joblib"))


_MODEL: Any = None


def init() -> None:
    """Azure ML online deployment: load the model from AZUREML_MODEL_DIR."""
    global _MODEL
    root = os.environ.get("AZUREML_MODEL_DIR", ".")
    found = sorted(glob.glob(os.path.join(root, "**", "model.joblib"), recursive=True))
    if not found:
        raise FileNotFoundError(f"no model.joblib under AZUREML_MODEL_DIR={root!r}")
    import joblib

    _MODEL = joblib.load(found[0])


def run(raw_data: str | dict[str, Any]) -> list[Any]:
    """Azure ML online deployment: ``{"data": [[...], ...]}`` -> list of predictions."""
    import numpy as np

    rows = json.loads(raw_data)["data"] if isinstance(raw_data, str) else raw_data["data"]
    if _MODEL is None:
        init()
    predictions: list[Any] = _MODEL.predict(np.asarray(rows, dtype=float)).tolist()
    return predictions


if __name__ == "__main__":
    sys.exit(main())
