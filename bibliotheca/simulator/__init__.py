"""A local cloudLibrary partner API for tests, the demo and the benchmark."""

from bibliotheca.simulator.catalogue import Catalogue
from bibliotheca.simulator.server import Fault, SimulatorServer, start_simulator

__all__ = ["Catalogue", "Fault", "SimulatorServer", "start_simulator"]
