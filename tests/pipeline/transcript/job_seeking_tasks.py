"""Stage 2 answers of the job_seeking transcript: the chain writer's programs, the gate and the
task writer, for one task (``tasks_per_domain=1``), written as a capable model writes them.

The chain writer invents a customer (an email, the job they saw advertised) and reuses what
the customer already gave (``known``) in a later goal. Two of its programs fail first:

1. its first program for ``apply_to_job`` reads results with attribute access
   (``me.candidate_id``), as Python code usually does; the program parser refuses it with
   the line, and the writer's next round uses subscripts as the instructions say;
2. that program finds the posting by a keyword search; the realizer cannot make a keyword
   search list a record (it links records to a list through a foreign-key argument only),
   says so, and the writer's third round starts from the posting id in the job advert.
"""

from __future__ import annotations

from typing import Any

EMAIL = "amara.okafor@example.org"
NOTE = "I have five years of SQL and dashboard work."


def _email(ctx: dict[str, Any]) -> str:
    return str(ctx.get("known", {}).get("email", EMAIL))


def apply_round_0(ctx: dict[str, Any]) -> dict[str, Any]:
    return {"program": (f'me = call("find_candidate_by_email", email="{_email(ctx)}")\n'
                        'jobs = call("search_job_postings", keyword="Data Analyst")\n'
                        'call("apply_to_job", candidate_id=me.candidate_id, posting_id=jobs[0].posting_id,\n'
                        f'     cover_note="{NOTE}")\n'),
            "summary": "Find the candidate, find a Data Analyst posting, apply to it."}


def apply_round_1(ctx: dict[str, Any]) -> dict[str, Any]:
    return {"program": (f'me = call("find_candidate_by_email", email="{_email(ctx)}")\n'
                        'jobs = call("search_job_postings", keyword="Data Analyst")\n'
                        'call("apply_to_job", candidate_id=me["candidate_id"], posting_id=jobs[0]["posting_id"],\n'
                        f'     cover_note="{NOTE}")\n'),
            "summary": "Find the candidate, find a Data Analyst posting, apply to it."}


def apply_round_2(ctx: dict[str, Any]) -> dict[str, Any]:
    return {"program": (f'me = call("find_candidate_by_email", email="{_email(ctx)}")\n'
                        'posting = call("get_job_posting", posting_id="posting_5c1e")\n'
                        'call("apply_to_job", candidate_id=me["candidate_id"], posting_id=posting["posting_id"],\n'
                        f'     cover_note="{NOTE}")\n'),
            "summary": "The customer has the posting's id from the job advert: check it, then apply."}


def other_openings(ctx: dict[str, Any]) -> dict[str, Any]:
    posting = ctx.get("known", {}).get("posting_id", "posting_5c1e")
    return {"program": (f'posting = call("get_job_posting", posting_id="{posting}")\n'
                        'call("search_job_postings", company_id=posting["company_id"])\n'),
            "summary": "What else the company behind the posting the customer applied to is hiring for."}


def requests(ctx: dict[str, Any]) -> dict[str, Any]:
    """One request per goal, in the customer's words, grounded in each goal's facts only."""
    out = []
    for goal in ctx["goals"]:
        facts = goal["user_facts"]
        if goal["goal_tool"] == "apply_to_job":
            out.append(f"Hi! I'd like to apply to the job {facts['posting_id']} I saw advertised. My account email "
                       f"is {facts['email']}. Please add this cover note: \"{facts['cover_note']}\"")
        elif goal["goal_tool"] == "search_job_postings":
            out.append(f"Thanks. What other openings does the company behind {facts['posting_id']} have?")
        else:
            raise ValueError(f"the transcript's task writer has no request for a {goal['goal_tool']} goal")
    return {"instruction": " ".join(out),
            "persona": "A data analyst changing jobs; friendly and brief, gives details when asked.",
            "requests": out}


ANSWERS: dict[tuple[str, str, int], Any] = {
    ("chain_writer", "apply_to_job", 0): apply_round_0,
    ("chain_writer", "apply_to_job", 1): apply_round_1,
    ("chain_writer", "apply_to_job", 2): apply_round_2,
    ("chain_writer", "search_job_postings", 0): other_openings,
    ("gate", "goal1", 0): {"p": 0.7, "reason": "Two tools are still unused and the candidate chain ran on the "
                                               "task's data: one more goal keeps the task coherent."},
    ("task_writer", "requests", 0): requests,
}
