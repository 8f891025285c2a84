"""The hostile corpus: every case is contained and reported as a clean failure,
the session state is untouched, and the pool keeps serving normal calls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from scaleenv._sandbox import Limits, SandboxPool, check_source
from tests.sandbox.domain import TOOLS, make_state

HOSTILE = Path(__file__).parent / "hostile"
CASES = sorted(p.stem for p in HOSTILE.glob("*.py"))
FAILURE_KINDS = {"policy", "exception", "timeout", "memory", "crashed", "output_too_large", "bad_args"}


@pytest.fixture
async def hostile_pool() -> AsyncIterator[SandboxPool]:
    async with SandboxPool(workers=2, limits=Limits(timeout_s=0.3, kill_grace_s=0.5, memory_bytes=384 * 1024 * 1024)) as pool:
        yield pool


def test_corpus_size() -> None:
    assert len(CASES) >= 115


@pytest.mark.parametrize("case", CASES)
async def test_hostile_case_is_contained(case: str, hostile_pool: SandboxPool) -> None:
    source = (HOSTILE / f"{case}.py").read_text()
    issues = check_source(source, "attack")
    tools = {"attack": source, **TOOLS}
    state = make_state()
    await hostile_pool.open_session("s", tools, state)
    outcome = await hostile_pool.call("s", "attack", {})
    assert not outcome.ok, f"{case} was not rejected: {outcome.result!r}"
    assert outcome.error is not None and outcome.error.kind in FAILURE_KINDS
    assert outcome.error.message
    if issues:
        assert outcome.error.kind == "policy"
    assert outcome.delta == []
    assert await hostile_pool.get_state("s") == state
    after = await hostile_pool.call("s", "cancel_order", {"order_id": "o1"})
    assert after.ok, f"pool unusable after {case}: {after.error}"
    fresh = await hostile_pool.run_once(TOOLS, make_state(), "search_orders", {"status": "open"})
    assert fresh.ok and fresh.result == ["o1", "o2"]


async def test_runtime_only_cases_are_few() -> None:
    """Most of the corpus is stopped before running; list what reaches run time."""
    runtime = [c for c in CASES if not check_source((HOSTILE / f"{c}.py").read_text(), "attack")]
    assert set(runtime) <= {
        "infinite_loop", "infinite_loop_catch_exception", "c_level_slow_pow", "memory_bomb_list",
        "memory_bomb_growth", "memory_bomb_string", "deep_recursion", "huge_output", "huge_output_list",
        "huge_state_write", "non_json_result", "non_json_state", "delete_table", "mutate_then_crash",
        "dict_attribute_write", "dict_keys_type_escape", "str_maketrans_callable", "datetime_name",
        "exc_with_traceback", "os_system_via_sys_modules",
        # Text from objects with memory addresses (nondeterministic): refused at run time.
        "address_leak_fstring", "address_leak_str_iterator", "address_leak_percent",
        # The allowed standard modules: their limits, their objects' attributes and writes.
        "class_attribute_write_counter", "copy_deepcopy_module", "datetime_class_attribute_write",
        "datetime_now_bad_tz", "datetime_overflow", "datetime_strftime_bomb", "decimal_absurd_precision",
        "decimal_context_attribute_write", "decimal_power_bomb", "defaultdict_repr_address_leak",
        "deque_memory_bomb", "itertools_count_forever", "itertools_product_memory",
        "json_dumps_default_address_leak", "json_dumps_huge", "json_hook_returns_callable", "json_loads_cls",
        "json_loads_deep_nesting", "json_object_pairs_hook_class_method", "math_factorial_huge",
        "math_isqrt_huge", "module_attribute_write", "module_repr_text", "regex_catastrophic_backtracking",
        "regex_nested_groups", "regex_scanner_internals", "regex_sub_callback_scanner",
        "string_formatter_via_alias", "time_host_clock_via_alias", "toplevel_bad_pattern", "toplevel_deep_pattern",
    }, runtime


# What stops the allowed modules' bombs: the limit each must run into.
LIMIT_OF = {
    "regex_catastrophic_backtracking": {"timeout"},
    "math_factorial_huge": {"timeout"},
    "math_isqrt_huge": {"timeout"},
    "itertools_count_forever": {"timeout"},
    "json_dumps_huge": {"output_too_large"},
    "decimal_absurd_precision": {"memory"},
    # These grow memory as fast as they burn time: whichever limit comes first.
    "decimal_power_bomb": {"memory", "timeout"},
    "datetime_strftime_bomb": {"memory", "timeout"},
    "itertools_product_memory": {"memory", "timeout"},
    "deque_memory_bomb": {"memory", "timeout"},
}


@pytest.mark.parametrize("case", sorted(LIMIT_OF))
async def test_module_bombs_hit_their_limit(case: str, hostile_pool: SandboxPool) -> None:
    source = (HOSTILE / f"{case}.py").read_text()
    outcome = await hostile_pool.run_once({"attack": source}, make_state(), "attack", {})
    assert outcome.error is not None and outcome.error.kind in LIMIT_OF[case], (case, outcome.error)



@pytest.mark.parametrize(("text", "kind"), [
    ("<class 'collections.deque'> returned NULL without setting an exception", "memory"),
    ("something else went wrong inside", "exception"),
])
def test_a_c_function_failing_without_an_exception_is_the_memory_limit(tmp_path: Path, text: str, kind: str) -> None:
    """Under the address-space limit a C function can fail with no MemoryError made (CPython
    then raises SystemError '... returned NULL without setting an exception', as
    deque_memory_bomb did once under load): that is the memory limit, any other SystemError
    a tool bug. Tool code cannot name SystemError, so the executor runs here, in-process,
    with the loaded tool's function standing in for the failing C call."""
    from scaleenv._sandbox.confine import Gate
    from scaleenv._sandbox.executor import Session, run_call

    gate = Gate(str(tmp_path))
    session = Session({"attack": "def attack(db):\n    return 1\n"}, make_state(), gate)
    assert run_call(session, "attack", {}, Limits(timeout_s=5.0), gate).ok

    def failing_c_call(db: object) -> None:
        raise SystemError(text)

    session.tools["attack"].func = failing_c_call
    outcome = run_call(session, "attack", {}, Limits(timeout_s=5.0), gate)
    assert outcome.error is not None and outcome.error.kind == kind, outcome.error
    assert ("memory limit" in outcome.error.message) == (kind == "memory")
    if kind == "exception":
        assert outcome.error.type == "SystemError"
