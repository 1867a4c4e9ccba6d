"""Refusals sent by the thousand come from bytes encoded once: they must mean exactly what
the fully encoded documents mean."""

from __future__ import annotations

import json

import msgspec
import pytest

from flashsale.api.problems import ProblemCode, ProblemError, rejection_problem
from flashsale.store.outcomes import Rejected, Rejection

INSTANCES = ["/v1/sales/s-1/purchases", '/v1/sales/we"ird\\/purchases', "/v1/sales/\u00e9t\u00e9"]
REFUSALS = [
    ProblemError(ProblemCode.OVERLOADED, "the engine is at capacity; retry shortly",
                 {"Retry-After": "1"}),
    ProblemError(ProblemCode.RATE_LIMITED, "too many requests from this address",
                 {"Retry-After": "3"}),
    rejection_problem(Rejected(Rejection.SOLD_OUT)),
    rejection_problem(Rejected(Rejection.SOLD_OUT, replayed=True)),
    rejection_problem(Rejected(Rejection.OVERLOADED)),
]  # fmt: skip


@pytest.mark.parametrize("instance", INSTANCES)
@pytest.mark.parametrize("problem", REFUSALS, ids=lambda p: f"{p.code}-{len(p.headers)}")
def test_a_canned_refusal_means_what_the_full_one_means(
    problem: ProblemError, instance: str
) -> None:
    full = msgspec.json.encode(problem.document(instance))
    for _ in range(2):  # the first call fills the cache; the second comes from it
        canned = problem.response(instance)
        assert canned.body == full  # byte for byte, in fact
        assert json.loads(canned.body) == json.loads(full)
        assert canned.status == problem.status
        assert canned.content_type == "application/problem+json"
        assert {k: canned.headers[k] for k in problem.headers} == problem.headers
