"""tests/iam runs after the rest of the suite, on the calls it recorded (``make test`` runs it second).

It is collected only when ``TASKPLANE_IAM_CHECK`` is set, so a plain ``pytest`` run does not check
calls it has not finished recording.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "infra"))  # infra_synth

collect_ignore_glob = [] if os.environ.get("TASKPLANE_IAM_CHECK") else ["*.py"]
