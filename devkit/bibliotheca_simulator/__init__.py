"""A local cloudLibrary partner API for tests, the demo and the benchmark."""

from devkit.bibliotheca_simulator.catalogue import Catalogue
from devkit.bibliotheca_simulator.server import Fault, SimulatorServer, start_simulator

__all__ = ["Catalogue", "Fault", "SimulatorServer", "start_simulator"]
