"""Metrics as the LINSTOR session's call observer."""

from __future__ import annotations

from app.linstor import LinstorNotFound
from app.linstor.models import ApiCallRc
from app.metrics import Metrics


def test_linstor_calls_are_counted_apart_per_method_and_endpoint() -> None:
    """The label children are cached per (method, endpoint): each pair keeps its own counts."""
    metrics = Metrics(lambda: None)
    rd = "/v1/resource-definitions/{rd}"
    missing = LinstorNotFound(ApiCallRc(ret_code=-1, message="gone"), status=404, rcs=[])
    for _ in range(3):
        metrics.linstor_call("GET", rd, 0.002, None)
    metrics.linstor_call("DELETE", rd, 0.004, None)
    metrics.linstor_call("GET", "/v1/resource-definitions", 0.5, missing)

    def value(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    calls = "linstor_names_linstor_requests_total"
    assert value(calls, method="GET", endpoint=rd) == 3
    assert value(calls, method="DELETE", endpoint=rd) == 1
    assert value(calls, method="GET", endpoint="/v1/resource-definitions") == 1
    seconds = "linstor_names_linstor_request_duration_seconds_sum"
    assert value(seconds, method="GET", endpoint=rd) == 0.006
    assert value(seconds, method="DELETE", endpoint=rd) == 0.004
    errors = "linstor_names_linstor_errors_total"
    assert value(errors, method="GET", endpoint="/v1/resource-definitions", kind="not_found") == 1
