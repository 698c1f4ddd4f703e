"""Exact counts of one categorical column, updated batch by batch.

What a reference profile keeps of a categorical channel before it is cut into top-K and
the rest (:func:`detectors.profiles.categorical_from_counts`): every category seen with its
count, and the rows that were null or of the wrong type. A column read from a table comes
with codes (``Batch.codes``): then it is counted with one ``bincount`` and one dict update
per distinct name, not one hash per row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from detectors.columns import WRONG_TYPE


@dataclass
class CategoryCounts:
    """Category -> rows, plus the rows counted (``count``), null and of the wrong type."""

    counts: dict[str, int] = field(default_factory=dict)
    count: int = 0
    null: int = 0
    wrong: int = 0

    def update(
        self, x: np.ndarray | None, status: np.ndarray | None, coded: tuple[np.ndarray, np.ndarray] | None = None
    ) -> None:
        """Count a column (object array of str/None, encoded as in :mod:`detectors.columns`),
        through its ``(codes, names)`` when it has them (then ``x`` may be None)."""
        wrong = 0 if status is None else int(np.count_nonzero(status == WRONG_TYPE))
        pairs: Iterable[tuple[str, int]]
        if coded is None:
            if x is None:
                raise ValueError("a column without codes needs its values")
            rows = x.size
            found = pd.Series(x, dtype=object).value_counts(dropna=True)
            pairs = zip(found.index.tolist(), found.to_numpy().tolist(), strict=True)
        else:
            rows = coded[0].size
            per_name = np.bincount(coded[0], minlength=coded[1].size)
            # None names are the null and wrong-type rows; an unused category is not a category seen
            pairs = ((c, n) for c, n in zip(coded[1].tolist(), per_name.tolist(), strict=True) if c is not None and n)
        present = 0
        for category, n in pairs:
            self.counts[category] = self.counts.get(category, 0) + n
            present += n
        self.count += rows
        self.wrong += wrong
        self.null += rows - present - wrong
