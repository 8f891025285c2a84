"""The design answers of the job_seeking transcript: what a capable model answers the architect
(outline, then one tool group per call) and the database agent.

Written by hand, the way a strong model answers these prompts: complete descriptions,
contracts in the prompt's grammar, reward policies chosen per column. One deliberate
mistake: in round 0 the database agent models job postings as plain listings and leaves
out their ``status`` column, which the tools' contracts read; ``specs_check`` rejects the
schema, the architect is asked again for the groups whose tools name it (it keeps its
tools: they were right) and the database agent adds the column in round 1.
"""

from __future__ import annotations

from typing import Any

OUTLINE: dict[str, Any] = {
    "name": "job_seeking",
    "description": ("A job seeker's workspace: browse companies and their job postings, keep a candidate "
                    "profile, apply to open postings and follow or withdraw the applications."),
    "keywords": ["job search", "applications", "postings", "candidates", "companies"],
    "entities": [
        {"name": "companies", "purpose": "Employers that publish job postings."},
        {"name": "job_postings", "purpose": "Open or closed positions a company advertises."},
        {"name": "candidates", "purpose": "Job seekers, identified by a unique email address."},
        {"name": "applications", "purpose": "A candidate's application to one posting and where it stands."},
    ],
    "groups": [
        {"name": "postings", "purpose": "Look up employers and find postings worth applying to.",
         "tools": [
             {"name": "get_company", "purpose": "Read one company by id."},
             {"name": "search_job_postings", "purpose": "Find postings by a keyword in the title and/or by company."},
             {"name": "get_job_posting", "purpose": "Read one posting, including whether it is still open."},
         ]},
        {"name": "candidates", "purpose": "Create and find the job seeker's profile.",
         "tools": [
             {"name": "register_candidate", "purpose": "Create a candidate profile for a new email address."},
             {"name": "find_candidate_by_email", "purpose": "Look a candidate up by their email address."},
         ]},
        {"name": "applications", "purpose": "Apply to postings and manage the applications.",
         "tools": [
             {"name": "apply_to_job", "purpose": "Submit an application of a candidate to an open posting."},
             {"name": "list_candidate_applications", "purpose": "List every application of one candidate."},
             {"name": "withdraw_application", "purpose": "Withdraw an application that is still in progress."},
         ]},
    ],
}


def _col(name: str, type_: str, kind: str, reward: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, "kind": kind, "reward": reward, **extra}


COMPANY_FIELDS = [
    _col("company_id", "str", "id", "exempt", description="Company id."),
    _col("name", "str", "org_name", "exact", description="Registered company name.", required=True),
    _col("industry", "str", "label", "exact", description="Main industry."),
    _col("city", "str", "city", "exact", description="Head-office city."),
]
POSTING_FIELDS = [
    _col("posting_id", "str", "id", "exempt", description="Posting id."),
    _col("company_id", "str", "id", "exact", description="The company advertising the position.", ref="companies",
         required=True),
    _col("title", "str", "title", "semantic", description="Job title as advertised.", required=True),
    _col("salary_max", "float", "money", "exact", description="Top of the advertised salary band (yearly).",
         minimum=0),
    _col("status", "str", "label", "exact", description="Whether applications are accepted.",
         enum=["open", "closed"], required=True),
]
CANDIDATE_FIELDS = [
    _col("candidate_id", "str", "id", "exempt", description="Candidate id."),
    _col("full_name", "str", "person_name", "exact", description="The candidate's full name.", required=True),
    _col("email", "str", "email", "exact", description="Login and contact email.", unique=True, required=True),
    _col("registered_on", "str", "date", "exempt", description="When the profile was created (set by the system)."),
]
APPLICATION_FIELDS = [
    _col("application_id", "str", "id", "exempt", description="Application id."),
    _col("candidate_id", "str", "id", "exact", description="Who applied.", ref="candidates", required=True),
    _col("posting_id", "str", "id", "exact", description="The posting applied to.", ref="job_postings", required=True),
    _col("status", "str", "label", "exact", description="Where the application stands.",
         enum=["submitted", "interviewing", "offered", "rejected", "withdrawn"], required=True),
    _col("cover_note", "str", "text", "semantic", description="A short note to the recruiter."),
]


def _param(name: str, type_: str, description: str, *, required: bool = True, ref: str | None = None) -> dict[str, Any]:
    p: dict[str, Any] = {"name": name, "type": type_, "description": description, "required": required}
    if ref:
        p["ref"] = ref
    return p


def _pre(op: str, left: str, right: Any = None, why: str = "") -> dict[str, Any]:
    c: dict[str, Any] = {"when": "pre", "op": op, "left": left, "why": why}
    if right is not None:
        c["right"] = right
    return c


def _post(op: str, left: str, right: Any = None, why: str = "") -> dict[str, Any]:
    return {**_pre(op, left, right, why), "when": "post"}


POSTINGS_GROUP: dict[str, Any] = {"tools": [
    {"name": "get_company",
     "description": "Get a company's profile (name, industry and city) by its id.",
     "params": [_param("company_id", "str", "The company's id, e.g. from a job posting.", ref="companies")],
     "returns": COMPANY_FIELDS, "reads": ["companies"], "writes": [], "mutates": False,
     "contract": [_pre("exists", "companies[$company_id]", why="the company must exist"),
                  _post("eq", "$result.name", "companies[$company_id].name", why="returns that company")]},
    {"name": "search_job_postings",
     "description": ("Search job postings. `keyword` matches inside the title (case-insensitive) and `company_id` "
                     "restricts to one employer; leave a filter out to not filter on it. Closed postings are "
                     "listed too: check `status` before applying."),
     "params": [_param("keyword", "str", "Text to look for in the job title.", required=False),
                _param("company_id", "str", "Only this company's postings.", required=False, ref="companies")],
     "returns": POSTING_FIELDS, "returns_list": True, "reads": ["job_postings"], "writes": [], "mutates": False,
     "contract": [_post("selects_contains", "job_postings[*].title", "$keyword", why="title contains the keyword"),
                  _post("selects_eq", "job_postings[*].company_id", "$company_id", why="posted by that company")]},
    {"name": "get_job_posting",
     "description": "Get one job posting by id: title, company, salary band and whether it is open.",
     "params": [_param("posting_id", "str", "The posting's id.", ref="job_postings")],
     "returns": POSTING_FIELDS, "reads": ["job_postings"], "writes": [], "mutates": False,
     "contract": [_pre("exists", "job_postings[$posting_id]", why="the posting must exist"),
                  _post("eq", "$result.status", "job_postings[$posting_id].status", why="returns that posting")]},
]}

CANDIDATES_GROUP: dict[str, Any] = {"tools": [
    {"name": "register_candidate",
     "description": "Create a candidate profile. The email must not belong to another candidate.",
     "params": [_param("full_name", "str", "The candidate's full name."),
                _param("email", "str", "The candidate's email address (unique).")],
     "returns": CANDIDATE_FIELDS[:3], "reads": ["candidates"], "writes": ["candidates"], "mutates": True,
     "contract": [_pre("none_eq", "candidates[*].email", "$email", why="one profile per email address"),
                  _post("exists", "candidates[$result.candidate_id]", why="the profile is created"),
                  _post("eq", "candidates[$result.candidate_id].email", "$email", why="with the given email")]},
    {"name": "find_candidate_by_email",
     "description": "Find a candidate by the exact email address they registered with.",
     "params": [_param("email", "str", "The registered email address.")],
     "returns": CANDIDATE_FIELDS[:3], "reads": ["candidates"], "writes": [], "mutates": False,
     "contract": [_pre("some_eq", "candidates[*].email", "$email", why="a candidate has that email"),
                  _post("eq", "$result.email", "$email", why="returns the candidate with that email")]},
]}

APPLICATION_RESULT = [APPLICATION_FIELDS[0], APPLICATION_FIELDS[3]]

APPLICATIONS_GROUP: dict[str, Any] = {"tools": [
    {"name": "apply_to_job",
     "description": ("Submit a candidate's application to an open job posting, with an optional cover note. "
                     "The new application starts as `submitted`."),
     "params": [_param("candidate_id", "str", "Who applies.", ref="candidates"),
                _param("posting_id", "str", "The posting to apply to.", ref="job_postings"),
                _param("cover_note", "str", "A short note to the recruiter.", required=False)],
     "returns": APPLICATION_RESULT, "reads": ["candidates", "job_postings", "applications"],
     "writes": ["applications"], "mutates": True,
     "contract": [_pre("exists", "candidates[$candidate_id]", why="the candidate must exist"),
                  _pre("exists", "job_postings[$posting_id]", why="the posting must exist"),
                  _pre("eq", "job_postings[$posting_id].status", "open", why="closed postings take no applications"),
                  _post("exists", "applications[$result.application_id]", why="the application is recorded"),
                  _post("eq", "applications[$result.application_id].status", "submitted", why="it starts as submitted"),
                  _post("eq", "applications[$result.application_id].candidate_id", "$candidate_id",
                        why="for that candidate")]},
    {"name": "list_candidate_applications",
     "description": "List every application of a candidate, whatever its status.",
     "params": [_param("candidate_id", "str", "The candidate.", ref="candidates")],
     "returns": APPLICATION_FIELDS, "returns_list": True, "reads": ["candidates", "applications"], "writes": [],
     "mutates": False,
     "contract": [_pre("exists", "candidates[$candidate_id]", why="the candidate must exist"),
                  _post("selects_eq", "applications[*].candidate_id", "$candidate_id", why="that candidate's applications")]},
    {"name": "withdraw_application",
     "description": "Withdraw an application that is still submitted or interviewing.",
     "params": [_param("application_id", "str", "The application to withdraw.", ref="applications")],
     "returns": APPLICATION_RESULT, "reads": ["applications"], "writes": ["applications"], "mutates": True,
     "contract": [_pre("exists", "applications[$application_id]", why="the application must exist"),
                  _pre("in", "applications[$application_id].status", ["submitted", "interviewing"],
                       why="only an application in progress can be withdrawn"),
                  _post("eq", "applications[$application_id].status", "withdrawn", why="it is withdrawn")]},
]}


def _table(name: str, description: str, key: str, fields: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": name, "description": description, "primary_key": key, "fields": fields}


TABLES_ROUND_0: dict[str, Any] = {"tables": [
    _table("companies", "Employers that publish job postings.", "company_id", COMPANY_FIELDS),
    # The mistake: postings modelled as plain listings, without the status the contracts read.
    _table("job_postings", "Positions advertised by companies.", "posting_id",
           [f for f in POSTING_FIELDS if f["name"] != "status"]),
    _table("candidates", "Job seekers; one profile per email address.", "candidate_id", CANDIDATE_FIELDS),
    _table("applications", "Applications of candidates to postings.", "application_id", APPLICATION_FIELDS),
]}

TABLES_ROUND_1: dict[str, Any] = {"tables": [
    _table("companies", "Employers that publish job postings.", "company_id", COMPANY_FIELDS),
    _table("job_postings", "Positions advertised by companies; only open ones take applications.", "posting_id",
           POSTING_FIELDS),
    _table("candidates", "Job seekers; one profile per email address.", "candidate_id", CANDIDATE_FIELDS),
    _table("applications", "Applications of candidates to postings.", "application_id", APPLICATION_FIELDS),
]}
