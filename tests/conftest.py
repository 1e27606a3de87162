"""Shared test configuration: Hypothesis profiles, chosen by ``HYPOTHESIS_PROFILE``.

``ci``
    What tox and CI run. Derandomized, so a run on the same code always tries the same
    examples and a red build is reproducible; no deadline, because CI machines are slow and
    uneven; no example database, because CI starts clean anyway; ``print_blob`` so a failure's
    log carries the ``@reproduce_failure`` blob. The health checks that fire on big, slow,
    heavily filtered stateful runs are suppressed so they do not fail a build by themselves.
``dev``
    The default for a plain ``pytest``: fewer examples for a quick loop, no deadline, and the
    default local database, so a failure found once is replayed first next time.
``fuzz``
    For a long hunt by hand (``HYPOTHESIS_PROFILE=fuzz pytest``): many examples, no deadline,
    and the database on, so whatever it finds is kept and replayed by later ``dev`` runs.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    max_examples=200,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile(
    "fuzz",
    max_examples=10_000,
    deadline=None,
    database=DirectoryBasedExampleDatabase(".hypothesis/examples"),
)

settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
