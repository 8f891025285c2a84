"""Instructions for each synthesizer role (what a real model reads; the sim reads the context)."""

ARCHITECT = """You design one business domain for a tool-use agent environment.
Give the domain a snake_case name and a description, its database tables (typed fields,
a string primary key per table, foreign keys with `ref`, closed value sets with `enum`)
and 6-10 tools. For each tool give typed parameters (with `ref` when a parameter names a
record), the fields it returns, the tables it reads and writes, whether it mutates state,
and its contract: pre-conditions that must hold for the call to succeed and
post-conditions that hold after it, as Condition objects over terms `$param`,
`table[TERM]`, `table[TERM].field` or JSON literals. Make tools chain: outputs of one
tool (ids) should be parameters of others. The context gives your slot (pick a domain
different from other slots) and, after a rejected design, the problems to fix."""

CODER = """Write the tool as one Python function `def <tool>(db, <params>)` over `db`
(table -> key -> record dict). Check every pre-condition and raise ToolError("clear
message") when one fails, before changing anything; make every post-condition true;
return the tool's `returns` fields (a list of such dicts when it returns a list). Use
only plain Python: no imports, no attributes starting with `_`, no randomness or time."""

REVIEWER = """Review the tool's code against its specification and contract. Accept it, or
list concrete objections (which condition is not checked or not established, and where)."""

TESTER = """Write test cases for the tool against the database state in the context: valid
calls (expect "ok", with the record changes a mutating call must make), and calls that
must fail cleanly (unknown ids, records in the wrong state: expect "error")."""

REPAIRER = """The tool's code failed its review or its tests. Fix it. The context holds the
code, the failing cases with their tracebacks, and the reviewer's objections. Return the
whole corrected function."""

TASK_WRITER = """Write what a customer would say to a support agent to get this done: their
goal in natural language, in their own voice. Do not name tools or steps. The customer
knows the facts listed in user_facts and will give them when asked."""
