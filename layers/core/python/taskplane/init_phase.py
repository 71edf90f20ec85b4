"""Lambda's init phase builds what every first invocation needs: the tracer and ``wiring.platform()``.

A deliberate exception to STYLE's rule 3 ("never at import time"). That rule exists because moto must
be active before a client is made, and moto is only ever active in tests and ``taskplane dev``; Lambda
sets ``AWS_LAMBDA_INITIALIZATION_TYPE`` (``on-demand``, ``provisioned-concurrency``, ``snap-start``) in
every execution environment it runs, and nothing else sets it; a handler module is imported in a new
instance's init phase. So a handler module calls ``warm_up()`` at its end: under pytest, moto and
``taskplane dev`` it does nothing; in Lambda's init it
makes the tracer (importing and patching the X-Ray SDK, before any client exists) and the platform
(settings from the environment, boto3 clients: no network call).

Why: on demand, Lambda runs the init phase at a full vCPU whatever the memory, while an invocation
runs at the memory's share (1,769 MB = one vCPU). Built in the first invocation, a 256 MB worker's
clients and tracer take about 7 times as long as at one vCPU, and its first batch starts that much
later (``bench/cold_start.py`` measures both ways). Since 1 August 2025 on-demand init is billed like
an invocation (AWS Compute Blog, "AWS Lambda standardizes billing for INIT Phase"): the set-up is paid
for either way, and takes less time here. A failure here is only logged: the first
invocation builds the platform again and fails there, as it always did, where the handler reports it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

#: Set by Lambda in its execution environments (handler modules are imported in their init phase), and
#: by nothing else.
INIT_VARIABLE = "AWS_LAMBDA_INITIALIZATION_TYPE"


def warm_up(environ: Mapping[str, str] | None = None) -> bool:
    """Build the tracer and the platform now if Lambda's init phase is running; True when built."""
    env = os.environ if environ is None else environ
    if not env.get(INIT_VARIABLE):
        return False
    from taskplane.observability import logger, tracer

    try:
        tracer.setup()  # first: X-Ray patches botocore before the platform's clients are made
        from taskplane import wiring

        wiring.platform()
    except Exception as exc:  # the first invocation builds it again, and reports the failure there
        logger.warning("init-phase warm-up failed", extra={"error": f"{type(exc).__name__}: {exc}"})
        return False
    return True
