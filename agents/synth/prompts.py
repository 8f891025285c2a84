"""Instructions for each synthesizer role (what a real model reads; the sim reads the context)."""

from scaleenv._sandbox.guards import SAFE_BUILTINS
from scaleenv._sandbox.policy import FORBIDDEN_NAMES
from scaleenv._sandbox.stdlib import EXPORTS

OUTLINE = """You are the architect of a simulated business domain in which an AI support agent
will help customers with tools. From the brief in the context (a name, a description,
keywords and about how many tools), outline the domain: the kinds of records it keeps
(`entities`: each a future table, snake_case plural, with its purpose) and the tools an
agent needs, grouped by workflow or entity group (`groups`: each with a snake_case name,
its purpose and its tools, each tool a snake_case name and its purpose). Aim for about
the number of tools the brief asks for: per entity, the usual operations (create, get,
find by a unique field, list by owner, search with filters, update a field, move along a
status lifecycle, delete what nothing refers to) plus the workflow steps that make the
domain (book, pay, cancel with refunds, schedule without conflicts, transfer between
accounts, count). Tools must chain: an id one tool returns is a parameter of another.
`taken` lists the domains other slots already design: stay distinct from them. After a
rejected outline, `previous` holds it and `feedback` lists its problems: fix them and keep
the rest."""

TOOL_GROUP = """You design the tools of one group of the outline in the context (`group`).
For each planned tool of that group give: a snake_case `name`, a `description` a support
agent reads, typed `params` (str, int, float, bool or list[str]; `required`; `ref` naming
the table whose id a parameter holds), the `returns` fields (as table columns: name, type,
kind, ref, enum, unique, required, minimum, maximum, reward), `returns_list` when it
returns a list, the tables it `reads` and `writes`, `mutates`, and its `contract`: the
pre-conditions that must hold for the call to succeed and the post-conditions that hold
after it. A condition is {"when": "pre"|"post", "op", "left", "right", "why"}; terms are
`$param`, `$result.field`, `table[$param]` (a record), `table[$param].field`,
`table[*].field` (every record's field), `count(table[*].field == $param)`, numbers, and
words (`active` is the string "active"). Ops: exists, absent, eq, ne, in, not_in (right: a
list), ge, gt, le, lt, some_eq and none_eq (left `table[*].field`: some record has / no
record has that value), increases_by and decreases_by (post only), unchanged (post
only), selects_eq, selects_contains, selects_ge, selects_le (post only, on a tool
returning a list: the result lists exactly the records passing every such filter; a
filter whose argument is left out does not filter). Examples:
{"when": "pre", "op": "exists", "left": "orders[$order_id]", "why": "the order must exist"}
{"when": "pre", "op": "in", "left": "orders[$order_id].status", "right": ["pending", "paid"]}
{"when": "post", "op": "eq", "left": "orders[$order_id].status", "right": "cancelled"}
{"when": "post", "op": "increases_by", "left": "products[orders[$order_id].product_id].stock", "right": "orders[$order_id].quantity"}
{"when": "post", "op": "selects_contains", "left": "products[*].title", "right": "$keyword"}
Use table and column names consistently across the group: the database is derived from
your tools. After a rejected design, `previous` holds your tools and `feedback` the problems
with them: fix those and keep the rest."""

DATABASE = """You are the database agent. Derive the domain's tables from the tools in the
context: every table and column the tools read, write, return or mention in their
contracts, and nothing they do not need. Per table: a snake_case `name`, a
`description`, its `primary_key` (a string id column, e.g. order_id for orders) and its
`fields`. Per column: `type`, `kind` (id, person_name, org_name, title, text, email,
phone, url, city, address, date, datetime, money, count, quantity, rating, percent,
number, code, label, flag), `ref` (the table a foreign key points to), `enum` (a closed
set of values), `unique`, `required` (never empty), `minimum`/`maximum` for numbers, and
`reward`: how the final state is graded on it: exempt (generated ids, stamps a tool sets
itself, optional extras), exact (quantities, prices, statuses, dates, ids the user gave)
or semantic (free text that only needs to mean the same). De-duplicate: one table per kind
of record. After a rejected schema, `previous` holds it and `feedback` its problems."""

def _sandbox_rules() -> str:
    """The sandbox's rules for tool code, rendered from the sandbox's own lists (so the prompt
    never says other than what the checker enforces)."""
    names = sorted(n for n in SAFE_BUILTINS if n not in ("None", "True", "False"))
    banned = sorted(n for n in FORBIDDEN_NAMES if not n.startswith("_"))
    return (
        "The code runs in a sandbox (RestrictedPython and our own checks). It may use only these names: "
        + ", ".join(names) + ", plus its parameters and local variables. It may import these standard "
        "modules only: " + ", ".join(sorted(EXPORTS)) + " (`import math`, `from datetime import datetime, "
        "timedelta`; their pure functions and value types). Not allowed: other imports, classes, "
        "generators, `with`, `global`, decorators, names or attributes starting with `_`, string `.format` "
        "(use f-strings), and the names " + ", ".join(banned) + ". Module-level statements other than the "
        "function, those imports and constant assignments (str/int/float/bool/None/tuple, or built from "
        "literals by re.compile, Decimal, date, datetime, time or timedelta) are refused; a helper function "
        "must be nested inside the tool function. No randomness; the time (`datetime.now()`, "
        "`date.today()`, `time.time()`) is the sandbox's clock, so the same calls on the same state give "
        "the same results."
    )


CODER = """Write the tool as one Python function `def <tool>(db, <params>)` over `db`
(table -> key -> record dict; keys are the records' primary-key values). The contract is in
`tool.contract` and, readably, in `contract_text` ("after:" marks a post-condition). Check every
pre-condition of the contract and raise ToolError("clear message naming the value") when
one fails, before changing anything; then make every post-condition true and return the
tool's `returns` fields (a list of such dicts when `returns_list`). Give a new record a key
made from the table's prefix and a number after the records already there (e.g.
`n = len(db["orders"]) + 1`, then `"ord_" + str(n).zfill(4)`, moving on while taken), and
fill the fields the call does not set with the empty value of their type (or the first
status of an `enum` lifecycle). Put the code in `code` (no Markdown fences) and anything you want to say in `notes`.
""" + _sandbox_rules()

REVIEWER = """Review the tool's code against its specification and contract. Reject it
(`accept` false) only for a concrete defect: a pre-condition not checked (or checked after
a change was made), a post-condition not established, a wrong returned field, a change to a
record the tool should not touch, or code the sandbox will refuse. A rejection skips the
tests and costs a repair round, and three in a row drop the tool: do not object to style,
naming or messages. Each objection says which condition or line and what is wrong.
`earlier` lists your objections to earlier versions and what was changed since."""

TESTER = """Write test cases for the tool against the database state in the context (`state`):
valid calls (`expect` "ok") and calls that must fail cleanly (unknown ids, records in the
wrong state, values out of range: `expect` "error"). Each case runs alone on a fresh copy
of `state`: cases do not see each other's changes. `args` are the call's arguments.
`expect_changes` (for "ok" cases of a mutating tool) lists what must hold after the call:
{table, key, field, value} = that record's field has that value, {table, key, deleted:
true} = it is gone, {table, key} with no field = it exists. A record the call creates gets
a key the code generates, which you cannot predict: do not name it in `expect_changes`.
`note` says what the case checks."""

DEBUGGER = """The tool's tests failed. Decide which side is wrong. If the tool is (it breaks its
contract, crashes, or does not do what its description says), give `verdict` "tool" and
the whole corrected function in `code`. If a test case is (it expects the wrong outcome
for its arguments and state, or asserts something the contract does not promise), give
`verdict` "test" and, per wrong case, a fix: drop it, or expect the other outcome. The
context holds the tool, its contract, the tables it touches, its code and each failing
case with its arguments, the expected and the actual outcome."""

GRAPH_JUDGE = """You judge candidate dependency edges between a domain's tools. An edge
src -> dst is real when running src can make dst callable or change what dst returns:
src's output supplies dst's parameter (data), src establishes dst's pre-condition
(state), or src writes a table dst reads (shared). For each candidate say keep or not,
with a short reason."""

REPAIRER = """The tool's code was refused by the sandbox's checker or by the reviewer. Fix it.
The context holds the code, the checker's findings (`failures`, with line and column) and
the reviewer's objections (`objections`). Return the whole corrected function in `code` (no Markdown fences), what you changed in `notes`.
""" + _sandbox_rules()

TASK_WRITER = """One customer has several things to get done with a support agent, one after
another: `goals` lists them in order, each with the calls that achieve it (`steps`, for
you only), the facts the customer holds for it (`user_facts`) and the record it is about
(`targets`); `must_tell` lists the values the agent will have to tell the customer for an
information goal (its request must ask for them). Write `requests`: one message per goal, in order, in the customer's own voice
and with their own reasons, as they would type it to open that request (plain words; no
tool names, no steps, no internal ids the customer would not know; a fact may be
mentioned but the customer keeps most of them until asked). Write `instruction`: a brief
for someone playing this customer (who they are, what they want, in which order, the
facts they hold and will give when asked). `persona`: a few words about them."""

CHAIN_WRITER = """Write one goal of a customer's task as a short program of tool calls: the
reference solution an agent should find. The goal ends with `goal_tool`; `candidates`
are read tools that can come before it, and `domain` holds the tables they use. Write
between length[0] and length[1] calls, each statement one of

    name = call("tool_name", param=value, ...)
    call("tool_name", param=value, ...)

where a value is a literal (a string, number, bool or list) or an earlier result:
`name["field"]`, or `name[0]["field"]` for the first element of a list. Feed each id a
later call needs from an earlier result rather than writing it. Start from what a
customer knows (an email, a name, a title, a date); `known` holds what this customer
already gave for earlier goals: use the same values for the same things. Nothing else
is allowed (no other functions, loops, attributes or imports): the program is parsed,
then its calls run one by one. After a refused program, `feedback` says why: fix it.
`program` is the source; `summary` one line on what it achieves."""

GATE = """You decide whether a task gets one more goal. The task's environment holds
`env_tools` tools and `goals` goals so far; `unused` tools of the domain are not used yet;
`complexity` is c(H) = (tools + 0.5 x links between them) / 50; `feasibility` is the share
of candidate chains over unused tools that ran on the task's data. Another goal makes the
task richer but longer and harder to keep coherent. Return `p` in [0, 1], how strongly
another goal should be added (it is added when p >= `tau`), and a one-line `reason`."""

GATE_ORACLE = """You decide whether a task gets one more goal. The task's environment holds
`env_tools` tools and `goals` goals so far; `unused` tools of the domain are not used yet;
`complexity` is c(H) = (tools + 0.5 x links between them) / 50; `feasibility` is the success
rate of an oracle policy (told the solution) over `rollouts` rollouts on candidate goals over
unused tools. Another goal makes the task richer but longer and harder to keep coherent.
Return `p` in [0, 1], how strongly another goal should be added (it is added when
p >= `tau`), and a one-line `reason`."""
