"""Whether the tests run on CI: there, missing shared data is a failure, not a skip."""

from __future__ import annotations

import os
from collections.abc import Mapping

TRUE_VALUES = ("1", "true", "yes", "on")  # GitHub/GitLab set CI=true, others CI=1


def on_ci(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get("CI", "").strip().lower() in TRUE_VALUES
