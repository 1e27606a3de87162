"""Deterministic simulators of Canvas LMS and Canvas Credentials, with fault injection.

Build a :class:`World` (or :meth:`World.small`), link courses, and drive the sync engine
through a :class:`MemoryTransport` whose :class:`FaultPlan` draws every fault from an
injected :class:`ChoiceSource`.
"""

from simulators.api import ApiRequest
from simulators.canvas import Canvas
from simulators.canvas_api import CanvasApi
from simulators.clock import VirtualClock, iso, iso_micro
from simulators.credentials import Credentials
from simulators.credentials_api import CredentialsApi
from simulators.faults import (
    ChoiceSource,
    FaultKind,
    FaultPlan,
    FaultRates,
    HypothesisChoices,
    SeededChoices,
)
from simulators.services import Dropped, Services
from simulators.tokens import Service, TokenStore
from simulators.transport import MemoryTransport
from simulators.world import Link, World

__all__ = [
    "ApiRequest",
    "Canvas",
    "CanvasApi",
    "ChoiceSource",
    "Credentials",
    "CredentialsApi",
    "Dropped",
    "FaultKind",
    "FaultPlan",
    "FaultRates",
    "HypothesisChoices",
    "Link",
    "MemoryTransport",
    "SeededChoices",
    "Service",
    "Services",
    "TokenStore",
    "VirtualClock",
    "World",
    "iso",
    "iso_micro",
]
