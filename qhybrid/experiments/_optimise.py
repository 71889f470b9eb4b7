"""Classical optimisation fed by batched evaluations.

scipy drives the search; every call it makes is served by one batched evaluation: the
multi-start screen is one PUB over all start points, and each gradient is one PUB over the
point and its central finite-difference neighbours.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from qhybrid.core import OptimiserSpec

BatchObjective = Callable[[np.ndarray], np.ndarray]
"""Maps points of shape (n, k) to n objective values to *minimise*."""


@dataclass
class OptimisationResult:
    """The outcome of one optimisation.

    Attributes:
        parameters: The best point found, in the family's parameter order.
        value: The objective (to minimise) at ``parameters``.
        history: Objective after every optimiser iteration (first entry: best start).
        evaluations: Points evaluated in total.
        batches: Batched calls (PUBs) made.
        message: scipy's termination message.
    """

    parameters: np.ndarray
    value: float
    history: list[float] = field(default_factory=list)
    evaluations: int = 0
    batches: int = 0
    message: str = ""


def optimise(
    objective: BatchObjective,
    bounds: list[tuple[float, float]],
    spec: OptimiserSpec,
    seed: int,
) -> OptimisationResult:
    """Minimise a batched objective from the best of several random starts.

    Args:
        objective: Batched objective to minimise.
        bounds: Box bounds per parameter; starts are drawn uniformly inside them.
        spec: Optimiser method and budget.
        seed: Seeds the start points.

    Returns:
        The best point, its value and the per-iteration history. Without parameters (a
        fixed circuit) nothing is evaluated: the empty point, a NaN value, no history.
    """
    if not bounds:
        return OptimisationResult(parameters=np.empty(0), value=float("nan"),
                                  message="no parameters: nothing to optimise")
    rng = np.random.default_rng(seed)
    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])
    starts = lo + (hi - lo) * rng.random((spec.starts, len(bounds)))
    result = OptimisationResult(parameters=starts[0], value=float("inf"))

    screen = objective(starts)
    result.evaluations += len(starts)
    result.batches += 1
    best = int(np.argmin(screen))
    x0 = starts[best]
    result.history.append(float(screen[best]))

    h = spec.finite_difference_step
    k = len(bounds)

    def value_and_gradient(x: np.ndarray) -> tuple[float, np.ndarray]:
        shifts = np.vstack([np.zeros(k), np.eye(k) * h, -np.eye(k) * h])
        values = objective(x[None, :] + shifts)
        result.evaluations += len(shifts)
        result.batches += 1
        grad = (values[1 : k + 1] - values[k + 1 :]) / (2 * h)
        return float(values[0]), grad

    cache: dict[tuple[float, ...], tuple[float, np.ndarray]] = {}

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        key = tuple(x)
        if key not in cache:
            cache[key] = value_and_gradient(x)
        return cache[key]

    def remember(xk: np.ndarray, *_: object) -> None:
        # Every iterate was just evaluated by ``fun``; the cache saves a second batch.
        result.history.append(fun(xk)[0])

    from scipy.optimize import minimize  # 0.2 s, for the commands that optimise

    outcome = minimize(
        fun,
        x0,
        jac=True,
        method=spec.method,
        bounds=bounds,
        callback=remember,
        options={"maxiter": spec.maxiter},
    )
    value, _ = fun(outcome.x)
    if value > result.history[0]:
        # scipy can stop on a worse point than the screen found; keep the better one.
        result.parameters, result.value = x0, result.history[0]
    else:
        result.parameters, result.value = np.asarray(outcome.x, dtype=float), value
    result.message = str(outcome.message)
    return result
