"""The schema of the data options (``data.*`` of every app, the keywords of the Python API's
constructors): types and ranges, checked where the options are given."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gemdiff.common.errors import GemdiffError

Positive = Annotated[int, Field(ge=1)]
Count = Annotated[int, Field(ge=0)]


class Data(BaseModel):
    model_config = ConfigDict(extra="ignore")

    test_size: Annotated[float, Field(gt=0, lt=1)] = 0.33
    train_fraction: Annotated[float, Field(gt=0, le=1)] = 1.0
    n_genes: Optional[Positive] = None
    select_by: Literal["variable", "random"] = "variable"
    subset_size: Positive = 16
    subset_index: Optional[Count] = None
    batch_size: Positive = 64
    input_scale: Literal["auto", "log2", "linear", "counts"] = "auto"
    nan_policy: Literal["replace", "drop"] = "replace"
    scaling: Literal["global", "per_gene"] = "global"
    constant_genes: Literal["error", "drop"] = "error"
    permute_labels: bool = False
    allow_single_sample_classes: bool = False


def check_data_options(options: dict[str, Any]) -> None:
    """Check data options given as keyword arguments (the Python API's constructors) with the
    schema the command line uses for ``data.*``: one line naming the option, the value and
    what is allowed."""
    try:
        Data.model_validate(options)
    except ValidationError as err:
        first = err.errors()[0]
        key = next((str(p) for p in first["loc"] if not isinstance(p, int)), "")
        msg = first["msg"]
        raise GemdiffError(f"option {key}={options.get(key, first.get('input'))!r}: "
                           f"{msg[0].lower()}{msg[1:]}") from None
