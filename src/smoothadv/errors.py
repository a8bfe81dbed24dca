"""The one exception type users see as a one-line message from the CLI."""

from __future__ import annotations


class UserError(ValueError):
    """Bad input from a user (arguments, files, data): the CLI prints ``str(err)`` and exits 2.

    Library functions raise it for problems a user can fix; programming errors stay ordinary
    exceptions so that their tracebacks remain visible.
    """


def check_sigma(sigma: float) -> float:
    """Return ``sigma`` as a float, raising :class:`UserError` unless it is finite and > 0."""
    sigma = float(sigma)
    if not sigma > 0 or sigma != sigma or sigma == float("inf"):
        raise UserError(f"sigma must be a positive number, got {sigma}")
    return sigma


def check_alpha(alpha: float) -> float:
    """Return ``alpha`` as a float, raising :class:`UserError` unless 0 < alpha < 1."""
    alpha = float(alpha)
    if not 0.0 < alpha < 1.0:
        raise UserError(f"alpha must lie strictly between 0 and 1, got {alpha}")
    return alpha


def check_positive_int(value: int, name: str) -> int:
    """Return ``value`` as an int, raising :class:`UserError` unless it is ≥ 1."""
    if int(value) != value or value < 1:
        raise UserError(f"{name} must be a positive integer, got {value}")
    return int(value)


def check_epsilon(epsilon: float) -> float:
    """Return ``epsilon`` (an ℓ2 radius in pixel space) as a float, raising unless ≥ 0."""
    epsilon = float(epsilon)
    if not epsilon >= 0 or epsilon == float("inf"):
        raise UserError(f"epsilon must be a non-negative l2 radius, got {epsilon}")
    return epsilon
