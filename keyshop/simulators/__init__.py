"""Provider simulators: real HTTP servers on loopback that speak the CodesWholesale and
Kinguin contracts (docs/providers.md), with knobs for latency, errors, out-of-stock,
pre-orders, late keys, hangs and crashes. ``keyshop simulate-providers`` runs them; tests
start a :class:`SimulatorServer` on a free port."""

from keyshop.simulators.server import (
    PROVIDERS,
    SimulatorServer,
    build_app,
    default_knobs,
    parse_knob_assignments,
    run_simulators,
)
from keyshop.simulators.state import Knobs

__all__ = [
    "PROVIDERS",
    "Knobs",
    "SimulatorServer",
    "build_app",
    "default_knobs",
    "parse_knob_assignments",
    "run_simulators",
]
