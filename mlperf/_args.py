"""Argument types shared by the ``mlperf`` subcommands: numbers that cannot disarm a gate."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

__all__ = ["One", "number"]


def number(kind: type, low: float, *, inclusive: bool) -> Callable[[str], Any]:
    """An argparse type: a finite *kind* at least (or above) *low*; anything else exits 2."""

    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        ok = math.isfinite(value) and (value >= low if inclusive else value > low)
        if not ok:
            sign = ">=" if inclusive else ">"
            raise argparse.ArgumentTypeError(
                f"must be a finite number {sign} {low:g}; got {text!r}"
            )
        return value

    convert.__name__ = kind.__name__
    return convert


class One(argparse.Action):
    """Stores one value; ``--opt=--`` (which argparse hands over as ``[]``) is a usage error."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if isinstance(values, list):
            parser.error(f"{option_string} needs a value")
        setattr(namespace, self.dest, values)
