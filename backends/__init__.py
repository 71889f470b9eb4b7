"""The execution seam: every backend estimates and samples batched PUBs behind one interface.

No qiskit-ibm-runtime type leaves this package; its exceptions are mapped into qhybrid's tree.
"""

from backends._aer import AerBackend
from backends._devices import calibration_snapshot, check_width, fake_device
from backends._factory import open_backend
from backends._faults import INJECTED, FaultyBackend
from backends._ibm import IbmBackend, map_runtime_error

__all__ = [
    "INJECTED",
    "AerBackend",
    "FaultyBackend",
    "IbmBackend",
    "calibration_snapshot",
    "check_width",
    "fake_device",
    "map_runtime_error",
    "open_backend",
]
