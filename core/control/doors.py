"""Which operator doors are open: a pure verdict the executor announces at start and publishes."""

from __future__ import annotations


def disabled_doors(has_secret: bool, http_port: int | None, has_http_token: bool, has_sigusr1: bool) -> list[str]:
    """One line per door that is off, saying why and what it means for the operator."""
    out: list[str] = []
    if not has_secret:
        out.append("file: GRIDBRIDGE_CONTROL_SECRET is not set; every signed command file is refused "
                   "(CONTROL_NO_SECRET), `gridbridge control` and the dashboard kill switch do nothing")
    if http_port is None:
        out.append("http: executor.control_http_port is not set; the local control API is off")
    elif not has_http_token:
        out.append("http: control_http_port is set but GRIDBRIDGE_CONTROL_TOKEN is not; the control API stays closed")
    if not has_sigusr1:
        out.append("sigusr1: this OS has no SIGUSR1; there is no signal halt")
    return out
