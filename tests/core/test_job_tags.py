"""Provider job tags: the trace and job ids of the requests a provider job serves, in budget."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from qhybrid.core import MAX_JOB_TAG_CHARS, MAX_JOB_TAGS, provider_job_tags

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
JOB = "0b5f6c2e-9a51-4d1e-8f43-2c7d9e1a6b30"


def _trace(n: int) -> str:
    return f"{n + 1:032x}"


def test_a_run_is_tagged_with_its_trace_and_its_job() -> None:
    assert provider_job_tags([(TRACE, JOB)]) == ("qhybrid", f"trace:{TRACE}", f"job:{JOB}")


def test_without_a_request_only_the_platform_tag_is_given() -> None:
    assert provider_job_tags([]) == ("qhybrid",)
    assert provider_job_tags([(None, None)]) == ("qhybrid",)


def test_malformed_ids_give_no_tag() -> None:
    bad = [("0" * 32, "x" * 37), (TRACE.upper(), "not a job id"), ("abc", "")]
    assert provider_job_tags(bad) == ("qhybrid",)


def test_a_small_group_keeps_every_trace_then_every_job_once() -> None:
    jobs = [str(uuid.UUID(int=n)) for n in range(3)]
    pairs = [(_trace(0), jobs[0]), (_trace(1), jobs[1]), (_trace(0), jobs[2])]
    assert provider_job_tags(pairs) == (
        "qhybrid", f"trace:{_trace(0)}", f"trace:{_trace(1)}",
        *(f"job:{j}" for j in jobs))


def test_a_large_group_keeps_the_first_trace_ids_and_drops_the_job_ids() -> None:
    pairs = [(_trace(n), str(uuid.UUID(int=n))) for n in range(50)]
    tags = provider_job_tags(pairs)
    assert len(tags) == MAX_JOB_TAGS
    assert tags == ("qhybrid", *(f"trace:{_trace(n)}" for n in range(MAX_JOB_TAGS - 1)))


_ids = st.one_of(st.none(), st.text(max_size=40),
                 st.integers(0, 2**128 - 1).map(lambda n: f"{n:032x}"),
                 st.uuids().map(str))


@given(st.lists(st.tuples(_ids, _ids), max_size=40))
def test_tags_stay_within_the_budget_whatever_the_requests(pairs) -> None:
    tags = provider_job_tags(pairs)
    assert tags[0] == "qhybrid" and len(set(tags)) == len(tags) <= MAX_JOB_TAGS
    assert all(len(tag) <= MAX_JOB_TAG_CHARS and tag.isascii() and " " not in tag
               for tag in tags)
    first = next((t for t, _ in pairs if t is not None and len(t) == 32
                  and t.strip("0123456789abcdef") == "" and t != "0" * 32), None)
    if first is not None:  # the first request's trace is never dropped
        assert tags[1] == f"trace:{first}"
