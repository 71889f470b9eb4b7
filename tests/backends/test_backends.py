"""Backends: Aer ideal and noisy, qiskit-ibm-runtime local testing mode, error mapping."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import numpy as np
import pytest
import qiskit_ibm_runtime
from qiskit_ibm_runtime import exceptions as runtime_exceptions
from qiskit_ibm_runtime.api.exceptions import RequestsApiError

from backends import IbmBackend, map_runtime_error, open_backend, open_executor
from backends._ibm_errors import RUNTIME_ERRORS
from qhybrid.core import (
    BackendNameError,
    BackendRejectedError,
    ExecutionError,
    Settings,
    SubmissionError,
    TransportError,
    VqeFamily,
)
from qhybrid.experiments import build_workload, h2_hamiltonian


@pytest.fixture(scope="module")
def workload():
    return build_workload(VqeFamily(), h2_hamiltonian())


POINT = np.array([[0.1, 0.2, 0.3, 0.4]])


@pytest.mark.parametrize("name", ["aer-noisy:fake_manila", "ibm:fake_manila"])
def test_noisy_backends_are_seeded_and_describe_their_device(workload, name: str) -> None:
    settings = Settings()
    backend = open_executor(name, settings, transpiler_seed=5)
    first = backend.sample(workload.measured, POINT, shots=500, seed=7)[0]
    again = open_executor(name, settings, transpiler_seed=5).sample(
        workload.measured, POINT, shots=500, seed=7)[0]
    assert first == again and sum(first.values()) == 500
    info = backend.describe()
    assert info["device"] == "fake_manila" and info["calibration"]["qubits"]
    assert info["transpiler_seed"] == 5


def test_ibm_local_estimator_is_close_to_exact(workload) -> None:
    settings = Settings()
    exact = open_executor("aer", settings, transpiler_seed=1).estimate(
        workload.ansatz, workload.observable, POINT, seed=1)[0]
    noisy = open_executor("ibm:fake_manila", settings, transpiler_seed=1).estimate(
        workload.ansatz, workload.observable, POINT, seed=1)[0]
    assert abs(noisy - exact) < 0.2 * abs(exact)


def test_batched_pub_equals_one_call_per_point(workload) -> None:
    aer = open_executor("aer", Settings(), transpiler_seed=1)
    points = np.random.default_rng(0).uniform(-3, 3, size=(20, 4))
    batched = aer.estimate(workload.ansatz, workload.observable, points, seed=1)
    single = [aer.estimate(workload.ansatz, workload.observable, p[None, :], seed=1)[0]
              for p in points]
    assert np.allclose(batched, single)


def test_unknown_devices_and_missing_token_are_input_errors() -> None:
    with pytest.raises(BackendNameError, match="unknown fake device"):
        open_backend("aer-noisy:fake_nowhere", Settings(), transpiler_seed=1)
    with pytest.raises(BackendNameError, match="QHYBRID_IBM_TOKEN") as info:
        open_backend("ibm:ibm_torino", Settings(ibm_token=None), transpiler_seed=1)
    assert isinstance(info.value, BackendNameError)


# What each qiskit-ibm-runtime exception means to qhybrid, decided class by class.
EXPECTED_CLASS = {
    "IBMAccountError": BackendNameError,          # no usable account: fix the token
    "IBMNotAuthorizedError": BackendNameError,
    "AuthenticationLicenseError": BackendNameError,
    "IBMApiError": TransportError,                # the API call failed on the way
    "IBMBackendApiError": TransportError,
    "IBMBackendApiProtocolError": TransportError,
    "ApiError": TransportError,
    "ApiIBMProtocolError": TransportError,
    "RequestsApiError": TransportError,           # without a status: no response at all
    "RuntimeJobTimeoutError": TransportError,     # our wait timed out; the job lives on
    "UserTimeoutExceededError": TransportError,
    "IBMBackendError": BackendRejectedError,      # the device cannot take work now
    "IBMRuntimeError": BackendRejectedError,
    "IBMBackendValueError": SubmissionError,      # our request as formed
    "IBMInputValueError": SubmissionError,
    "IBMError": ExecutionError,                   # unclassified: final, never retried blindly
    "RuntimeInvalidStateError": ExecutionError,   # cancelled or finished: gone
    "RuntimeJobFailureError": ExecutionError,
    "RuntimeJobMaxTimeoutError": ExecutionError,
    "RuntimeJobNotFound": ExecutionError,
    "RuntimeProgramNotFound": ExecutionError,
    "AccountsError": BackendNameError,            # the saved or given account: fix it
    "AccountAlreadyExistsError": BackendNameError,
    "AccountNotFoundError": BackendNameError,
    "CloudResourceNameResolutionError": BackendNameError,
    "InvalidAccountError": BackendNameError,
    "BackendConfigurationError": ExecutionError,  # the device's own data: not ours to retry
    "BackendPropertyError": ExecutionError,
}


def _runtime_exception_classes() -> list[type[Exception]]:
    """Every exception class of every ``exceptions`` module of qiskit-ibm-runtime."""
    modules = [importlib.import_module(found.name) for found in
               pkgutil.walk_packages(qiskit_ibm_runtime.__path__, "qiskit_ibm_runtime.")
               if found.name.rsplit(".", 1)[-1] == "exceptions"]
    assert len(modules) >= 4, [m.__name__ for m in modules]  # the walk found the package's
    return list({c for module in modules
                 for _, c in inspect.getmembers(module, inspect.isclass)
                 if issubclass(c, Exception) and c.__module__.startswith("qiskit_ibm_runtime")})


def test_every_runtime_exception_class_is_mapped_to_its_expected_class() -> None:
    classes = _runtime_exception_classes()
    names = {c.__name__ for c in classes}
    assert names == set(EXPECTED_CLASS), "a runtime release added or removed exceptions: " \
        f"decide their class: {sorted(names ^ set(EXPECTED_CLASS))}"
    unmapped = [c.__name__ for c in classes if not issubclass(c, RUNTIME_ERRORS)]
    assert unmapped == [], f"add these to backends._ibm_errors.RUNTIME_ERRORS: {unmapped}"
    for cls in classes:
        mapped = map_runtime_error(cls("boom"), "ibm:x")
        assert type(mapped) is EXPECTED_CLASS[cls.__name__], cls.__name__
        assert "boom" in str(mapped)


@pytest.mark.parametrize(("exc", "cls", "status"), [
    (RequestsApiError("no route", -1), TransportError, "RequestsApiError"),
    (RequestsApiError("busy", 503), BackendRejectedError, "503"),
    (RequestsApiError("slow down", 429), BackendRejectedError, "429"),
    (RequestsApiError("bad", 400), SubmissionError, "400"),
    (RequestsApiError("gone", 404), ExecutionError, "NOT_FOUND"),
    (runtime_exceptions.RuntimeInvalidStateError("cancelled"), ExecutionError, "CANCELLED"),
    (runtime_exceptions.RuntimeJobNotFound("no job"), ExecutionError, "NOT_FOUND"),
    (runtime_exceptions.RuntimeJobMaxTimeoutError("too long"), ExecutionError, "MAX_TIME"),
    (runtime_exceptions.RuntimeJobTimeoutError("wait"), TransportError, "RuntimeJobTimeoutError"),
])
def test_provider_failures_keep_their_status_and_get_the_right_class(exc, cls, status) -> None:
    mapped = map_runtime_error(exc, "ibm:x")
    assert type(mapped) is cls and mapped.provider_status == status
    assert str(exc) in mapped.message


def test_an_unknown_real_device_is_an_input_error() -> None:
    from qiskit.providers.exceptions import QiskitBackendNotFoundError

    mapped = map_runtime_error(QiskitBackendNotFoundError("No backend matches"), "ibm:nowhere")
    assert isinstance(mapped, BackendNameError)


@pytest.mark.ibm
def test_real_ibm_backend_describes_itself() -> None:
    settings = Settings()
    if settings.ibm_token is None:
        pytest.skip("QHYBRID_IBM_TOKEN is not set")
    backend = open_backend("ibm:ibm_brisbane", settings, transpiler_seed=1)
    assert isinstance(backend, IbmBackend) and backend.describe()["num_qubits"] > 5


def test_too_wide_circuit_is_refused_at_the_seam() -> None:
    from qhybrid.core import QaoaMaxcutFamily
    from qhybrid.experiments import random_regular_graph

    wide = build_workload(QaoaMaxcutFamily(), random_regular_graph(10, 3, 7, triangle_free=True,
                                                                   weighted=False))
    for name in ("ibm:fake_manila", "aer-noisy:fake_manila"):
        backend = open_executor(name, Settings(), transpiler_seed=1)
        with pytest.raises(BackendNameError, match="5 qubits"):
            backend.sample(wide.measured, np.array([[0.1, 0.2]]), shots=10, seed=1)


@pytest.mark.parametrize("method", ["statevector", "matrix_product_state", "density_matrix"])
def test_ideal_aer_method_is_selectable_and_agrees(workload, method: str) -> None:
    points = np.random.default_rng(1).uniform(-3, 3, size=(5, 4))
    automatic = open_executor("aer", Settings(), transpiler_seed=1)
    chosen = open_executor(f"aer:{method}", Settings(), transpiler_seed=1)
    assert chosen.describe()["method"] == method
    assert np.allclose(chosen.estimate(workload.ansatz, workload.observable, points, seed=1),
                       automatic.estimate(workload.ansatz, workload.observable, points, seed=1))


def test_unknown_aer_method_names_the_field() -> None:
    from qhybrid.core import parse_backend_name

    with pytest.raises(BackendNameError, match="matrix_product_state") as info:
        parse_backend_name("aer:tensor_magic", field="gates.ideal.backend")
    assert info.value.field == "gates.ideal.backend"
    assert str(parse_backend_name("aer:stabilizer")) == "aer:stabilizer"
