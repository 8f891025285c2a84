"""The sim's ``policy`` role: a small backward-chaining planner over the offered tools.

It sees what a real policy sees (the OpenAI chat conversation and the function schemas,
never the golden chain) and re-derives its plan from the whole conversation on every call:

1. Goal: the tool that best matches the user's words (name and description overlap; a
   mutating verb the user used — cancel, update, book... — wins, else a read tool).
2. Values: named facts from user messages ("my email is ..."), emails, record ids
   (``ord_3f9a``), dates, numbers; and fields of earlier tool results.
3. Backward chaining: every required parameter of the goal is either known, or produced by
   a read tool whose ``Returns`` fields include it (called first, recursively), or asked of
   the user by name.
4. Records: when a list result holds several, the one whose values match what the user
   said wins (titles, names, dates, statuses, ids of other lookups); when they tie, the
   planner looks the candidates up (``get_product(product_id)`` for each) or calls a tool
   that yields a discriminating field, then decides.
5. Before a change it reads the record the change is about (``get_order`` before
   ``cancel_order``) once. After the goal succeeds it tells the user (mutations) or states the values (questions);
   on a tool error it tries one fix (another record) or reports the error.
6. Several requests in one conversation: the request at hand is the one the user raised
   after the last reply that reported the previous one settled; its goal, the calls it
   plans from, record choices and error budget are its own, while the facts the user gave
   carry over. The goal's own record id is asked of the user once before it is inferred
   through other records the conversation already points at.

7. Before a change it asks the user to confirm it, naming the arguments and what the
   record looks like (:func:`.dialogue.confirm_message`); a yes makes it act with exactly
   the confirmed arguments. A "no" to a confirmation or to a reported change (the user's
   correction or refusal) rejects the record ids the user did not give themselves: the
   planner picks again, without noise, among the rest, with the facts the user restated
   (a change already made on the wrong record stays made).

Noise (each a ``call.mistake(scale)``): a wrong record among look-alikes, a skipped
lookup with a guessed argument, truncated JSON arguments, an unknown tool name or a
wrongly typed argument, giving up early with an apology, a change made without asking to
confirm it, and once per episode offering a change the user did not ask for.
"""

from __future__ import annotations

import json
import re
from typing import Any

import attrs

from scaleenv._agents.sim.call import SimCall, register_role
from scaleenv._agents.sim.dialogue import NEGATIVE_RE, POSITIVE_RE, confirm_message, confirmed_args
from scaleenv._agents.sim.text import (
    CHANGE_RE,
    reports_success,
    EMAIL_RE,
    GENERIC,
    content_words,
    extract_facts,
    extract_ids,
    extract_numbers,
    humanize,
    kind_fits,
    name_match,
    name_words,
    overlap,
    similar,
    words,
)
from scaleenv._agents.sim.tools import Call, Conversation, Tool, parse_conversation, parse_tools

# Mistake scales (x noise.mistakes, 0.15 by default). A wrong record among look-alikes is
# the mistake a careless policy makes most and cannot undo: at the default rate about one
# selection in four goes wrong, so rewards spread with the noise setting.
WRONG_RECORD = 1.6
GIVE_UP_EARLY = 0.2
SKIP_STEP = 0.6
# Claiming a state change that was never made (the goal call is never sent): the failure
# a state-based reward exists to catch.
CLAIM_DONE = 0.25
# Acting without asking the user to confirm the change (the confirmation is where a user
# catches a look-alike record), and offering a change nobody asked for (once per episode).
SKIP_CONFIRM = 2.5
PROPOSE_EXTRA = 1.5
EXTRA_OFFER = "Would you also like me to "

# Verbs users say for what a tool's verb does (the tool's own verb always counts).
VERB_SYNONYMS: dict[str, tuple[str, ...]] = {
    "cancel": ("cancel", "call off", "abort", "stop"),
    "update": ("update", "change", "modify", "edit", "correct", "fix", "amend"),
    "change": ("change", "update", "modify", "edit", "switch", "correct"),
    "edit": ("edit", "change", "update", "modify"),
    "set": ("set", "change", "update"),
    "create": ("create", "make", "open", "place", "buy", "purchase", "start"),
    "place": ("place", "buy", "purchase", "make"),
    "make": ("make", "create", "book", "reserve"),
    "book": ("book", "reserve", "schedule"),
    "reserve": ("reserve", "book", "hold"),
    "schedule": ("schedule", "book", "arrange"),
    "return": ("return", "send back"),
    "refund": ("refund", "money back"),
    "pay": ("pay", "settle"),
    "renew": ("renew", "extend"),
    "delete": ("delete", "remove"),
    "remove": ("remove", "delete"),
    "add": ("add", "include", "leave", "write", "post", "make", "new"),
    "request": ("request", "ask for", "borrow"),
    "submit": ("submit", "send", "file"),
    "transfer": ("transfer", "send", "move"),
    # Creation verbs: users mostly say "make a new ..." whatever the tool calls it.
    "start": ("start", "make", "new", "begin", "set up", "open"),
    "open": ("open", "make", "new", "start"),
    "buy": ("buy", "purchase", "make", "new", "order"),
    "file": ("file", "make", "new", "submit", "open"),
    "initiate": ("initiate", "make", "new", "start"),
    "quote": ("quote", "make", "new", "get a quote"),
    "register": ("register", "sign up", "enrol", "enroll"),
    "record": ("record", "log", "note"),
    "send": ("send", "write"),
}
# Every creation verb also answers to "make a new ...".
for _verb in ("create", "place", "book", "reserve", "schedule", "request", "submit", "register", "record", "send"):
    VERB_SYNONYMS[_verb] = tuple(dict.fromkeys(VERB_SYNONYMS[_verb] + ("make", "new")))
PAST = {
    "cancel": "cancelled", "update": "updated", "change": "changed", "book": "booked", "create": "created",
    "place": "placed", "make": "made", "reserve": "reserved", "schedule": "scheduled", "return": "returned",
    "refund": "refunded", "pay": "paid", "renew": "renewed", "delete": "deleted", "remove": "removed",
    "add": "added", "request": "requested", "submit": "submitted", "transfer": "transferred", "set": "set",
    "edit": "edited", "open": "opened", "close": "closed", "start": "started", "suspend": "suspended",
    "file": "filed", "ship": "shipped", "settle": "settled", "redeem": "redeemed", "assign": "assigned",
}
# How a user says they do not hold something at all (not "I don't have it at hand right now").
HARD_DECLINE_RE = re.compile(r"\b(don't know that|do not know that|don't have that|do not have that|no idea|"
                             r"rather not share|won't give out|don't have an internal|don't have any internal)\b", re.I)
SOFT_DECLINE_RE = re.compile(r"\b(don't|do not|not sure|can't remember|don't remember)\b", re.I)
TOOL_SLIP_RE = re.compile(r"^(arguments are not|unknown tool)", re.I)
QUESTION_WORDS = frozenset("what which when where how status show list check tell find much many".split())
APOLOGY = "I'm sorry, but I'm not able to help with this request right now."
MAX_DEPTH = 4
MAX_LOOKUPS = 5


def _json_type(t: str) -> str:
    return {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(t, t)


def _coerce(value: Any, jtype: str) -> Any:
    t = _json_type(jtype)
    try:
        if t == "integer" and not isinstance(value, bool):
            if isinstance(value, str):
                return int(float(value.strip()))
            if isinstance(value, float) and value.is_integer():
                return int(value)
        if t == "number" and isinstance(value, str):
            return float(value.strip())
        if t == "string" and not isinstance(value, str):
            return str(value)
        if t == "boolean" and isinstance(value, str):
            return value.strip().lower() in ("true", "yes", "1")
    except ValueError:
        return value
    return value


@attrs.define
class ToolPlan:
    """How to call one tool: its arguments, or the calls and questions that must come first."""

    args: dict[str, Any] = attrs.field(factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = attrs.field(factory=list)
    asks: list[str] = attrs.field(factory=list)

    @property
    def ready(self) -> bool:
        return not self.calls and not self.asks


@attrs.define
class Planner:
    call: SimCall
    tools: dict[str, Tool]
    conv: Conversation
    facts: dict[str, Any] = attrs.field(factory=dict)
    ids: list[str] = attrs.field(factory=list)
    numbers: list[Any] = attrs.field(factory=list)
    unavailable: set[str] = attrs.field(factory=set)
    asked_all: set[str] = attrs.field(factory=set)
    asked_here: set[str] = attrs.field(factory=set)  # asked since the request at hand was raised
    fact_pos: dict[str, int] = attrs.field(factory=dict)  # where each fact was last given
    ids_here: set[str] = attrs.field(factory=set)  # record ids said since the request at hand was raised
    user_words: list[str] = attrs.field(factory=list)
    goal: Tool | None = None
    noisy: bool = True  # whether record choices may be mistaken this time
    new_values: set[str] = attrs.field(factory=set)  # facts the user wants set ("change the email to ...")
    start: int = 0  # where the request at hand begins (a message position; see request_start)
    earlier_calls: list[Call] = attrs.field(factory=list)  # calls made for earlier requests
    rejected: set[str] = attrs.field(factory=set)  # record ids the user said no to (this request)
    redo_after: int = -1  # the goal's calls up to here were reported and turned down by the user
    _bad: set[tuple[str, str]] = attrs.field(factory=set)

    @property
    def request_text(self) -> str:
        """What the user said since the request at hand was raised."""
        return "\n".join(t for p, t in self.conv.users if p >= self.start)

    # ---------------------------------------------------------------- reading
    def read(self) -> None:
        asked_before: list[str] = []
        declined: dict[str, int] = {}
        events = sorted([(p, "u", t) for p, t in self.conv.users] + [(p, "a", t) for p, t in self.conv.assistants])
        for pos, who, text in events:
            if who == "a":
                asked_before = _parse_ask(text)
                self.asked_all.update(asked_before)
                if pos >= self.start:
                    self.asked_here.update(asked_before)
                continue
            found = extract_facts(text)
            # "change the email to X": X is the new value to set, not something to look records up by.
            changed = {"_".join(w for w in name_words(m.group(1)) if w not in ("my", "the")) for m in CHANGE_RE.finditer(text)}
            for k, v in found.items():
                self.facts[k] = v
                self.fact_pos[k] = pos
                if k in changed:
                    self.new_values.add(k)
                else:
                    self.new_values.discard(k)
            # A reply to our question binds to the asked name when the names differ ("date" <- "order_date"),
            # never across kinds ("my ticket purchase id is ..." does not answer "attendee id").
            for p in asked_before:
                if p in found:
                    continue
                close = [k for k in found if kind_fits(p, found[k]) and (
                    name_match(p, k) >= 1 or set(name_words(p)) & set(name_words(k)) - GENERIC)]
                if len(close) == 1:
                    self.facts[p] = found[close[0]]
                    self.fact_pos[p] = pos
                elif len(asked_before) == 1 and len(found) == 1:
                    k, v = next(iter(found.items()))
                    if set(name_words(k)) <= GENERIC and kind_fits(p, v):  # "the number is 42"
                        self.facts[p] = v
                        self.fact_pos[p] = pos
                if p in found or p in self.facts:
                    continue
                if pos < self.start:
                    continue  # declined for an earlier request: this request's record may be another one
                if HARD_DECLINE_RE.search(text):
                    declined[p] = declined.get(p, 0) + 2  # the user does not hold it: do not ask again
                elif not found and SOFT_DECLINE_RE.search(text):
                    declined[p] = declined.get(p, 0) + 1
            asked_before = []
            self.ids.extend(i for i in extract_ids(text) if i not in self.ids)
            if pos >= self.start:
                self.ids_here.update(extract_ids(text))
            self.numbers.extend(extract_numbers(text))
        self.unavailable = {p for p, n in declined.items() if n >= 2}
        self._bad = self.bad_values()
        self.user_words = content_words(self.request_text)

    # ---------------------------------------------------------------- goal
    def choose_goal(self) -> Tool | None:
        if not self.tools:
            return None
        # The request is the message that raised it; later ones mostly answer questions ("my email is ...").
        opening = [t for p, t in self.conv.users if p >= self.start]
        text = (opening[0] if opening else self.conv.user_text).lower()
        # Only the request itself, not facts offered with it ("my email is ...") nor idioms ("find out").
        request = re.sub(r"\b(?:my|the|our)\s+[a-z ]{1,40}?\s+(?:is|are)\s+\S+", " ", text)
        request = re.sub(r"\bfind out\b", "learn", request)
        # "... for the same booking as my seat ...": where the new record's references come from,
        # not what to do (the seat is not what is made).
        request = re.sub(r"\bfor the same\b[^.?!]*", " ", request)
        # "(email: ..., city: ...)": the values of what is asked, not what to do with them.
        request = re.sub(r"\([^)]*\)", " ", request)
        uw = content_words(request)
        verb_hits = {t.name: self._verb_used(t, request, uw) for t in self.tools.values()}
        any_mut_verb = any(verb_hits[t.name] for t in self.tools.values() if t.mutating)
        question = "?" in text or bool(set(words(text)) & QUESTION_WORDS)
        wants_all = bool(re.search(r"\b(all|every|list)\b", request))

        # "get my brand marked as inactive": the tool that moves records to that state.
        marked = {m.group(1) for m in re.finditer(r"\bmarked as ([a-z_]+)", request)}
        # "make a new review ...": the kind of record to create.
        created = {m.group(1) for m in re.finditer(r"\bnew ([a-z_]+)", request)}

        def score(t: Tool) -> tuple[float, int, int]:
            obj = [w for w in t.name_words[1:] if w not in ("by", "for", "of", "id")]
            hits = overlap(uw, obj)
            missed = sum(1 for w in obj if not any(similar(w, u) for u in uw))
            if t.mutating and marked and any(re.search(rf"\bto '?{re.escape(m)}\b", t.description.lower()) for m in marked):
                verb_hits[t.name] = True
            if t.mutating and created and obj and any(similar(obj[-1], c) or similar(obj[0], c) for c in created):
                hits += 2  # "make a new crew": the kind of record made decides
            # The noun decides between tools of the same kind ("event review" vs "ticket purchase").
            s = 3.0 * hits - 1.0 * missed + 0.5 * overlap(uw, t.desc_words)
            if t.mutating and verb_hits[t.name]:
                s += 4.0
            elif not t.mutating and verb_hits[t.name]:
                s += 1.0
            if not t.mutating and question and not any_mut_verb:
                s += 2.0
            if not t.mutating and t.returns_list == wants_all:
                s += 1.0
            if t.mutating and not verb_hits[t.name]:
                s -= 3.0  # never mutate what the user did not ask to change
            return (s, 1 if t.mutating == any_mut_verb else 0, -t.order)

        return max(self.tools.values(), key=score)

    @staticmethod
    def _verb_used(t: Tool, text: str, uw: list[str]) -> bool:
        past = PAST.get(t.verb, t.verb + ("d" if t.verb.endswith("e") else "ed"))
        # Words naming the tool's object are nouns here ("my salon bookings" does not say "book").
        nouns = {o + sfx for o in t.name_words[1:] for sfx in ("", "s", "es")}
        uw = [w for w in uw if w not in nouns]
        for syn in VERB_SYNONYMS.get(t.verb, ()) + (t.verb, past):
            if " " in syn:
                if syn in text:
                    return True
            elif any(similar(syn, w) if len(syn) >= 4 else syn == w for w in uw):
                return True
        return False

    # ---------------------------------------------------------------- values
    def failed_values(self) -> set[tuple[str, str]]:
        out: set[tuple[str, str]] = set()
        for c in self.conv.calls:
            if c.answered and c.error is not None and c.args is not None:
                out.update((k, json.dumps(v, sort_keys=True)) for k, v in c.args.items())
        return out

    def bad_values(self) -> set[tuple[str, str]]:
        """(parameter, value) pairs a tool rejected by name ("the attendee must exist: ticket_purchase_596d")."""
        out: set[tuple[str, str]] = set()
        for c in self.conv.calls:
            if not (c.answered and c.error is not None and c.args):
                continue
            for k, v in c.args.items():
                if isinstance(v, str) and len(v) >= 3 and v.lower() in c.error.lower() and "must exist" in c.error.lower():
                    out.add((k, str(v)))
        return out

    def _usable(self, name: str, value: Any) -> bool:
        return kind_fits(name, value) and (name, str(value)) not in self._bad and str(value) not in self.rejected

    # ---------------------------------------------------------------- confirmations
    def replies(self) -> list[tuple[int, str, str]]:
        """(position, assistant message, the user's reply) for this request's messages that got one."""
        out = []
        for pos, text in sorted(self.conv.assistants):
            if pos < self.start:
                continue
            reply = next((t for p, t in self.conv.users if p > pos), None)
            if reply is not None:
                out.append((pos, text, reply))
        return out

    def review(self, goal: Tool) -> dict[str, Any] | None:
        """Read the user's answers to this request's confirmations and reports of ``goal``:
        a "no" rejects the record ids the user did not give (and makes the next choice
        careful), and a "no" to a report makes the goal's earlier calls not count as done;
        returns the arguments of the latest confirmation the user said yes to."""
        agreed: dict[str, Any] | None = None
        said = self.request_text.lower()
        for pos, text, reply in self.replies():
            if EXTRA_OFFER in text:
                continue  # the answer is about the offer, not the change reported before it
            args = confirmed_args(text, _phrase(goal), list(goal.types))
            report = args is None and reports_success(text)
            if report:
                done = [c for c in self.conv.calls if c.ok and c.name == goal.name and c.pos < pos and c.args]
                args = done[-1].args if done else None
            if NEGATIVE_RE.match(reply) and report:
                self.redo_after = pos  # what it reported is not what the user meant: do it again
            if args is None:
                continue
            if NEGATIVE_RE.match(reply):
                self.noisy = False
                self.rejected.update(str(v) for p, v in args.items()
                                     if p.lower().endswith("id") and str(v).lower() not in said)
                agreed = None
            elif POSITIVE_RE.match(reply) and text.startswith("Just to confirm"):
                agreed = args
        if agreed is not None and not all(self._usable(p, v) for p, v in agreed.items()):
            agreed = None
        return agreed

    def describe(self, args: dict[str, Any]) -> str:
        """What the records ``args`` name look like (their fields and those of lookups made with
        them), for a confirmation."""
        row: dict[str, Any] = {}
        for p, v in args.items():
            if not p.lower().endswith("id"):
                continue
            for c in self.conv.calls:
                if not c.ok:
                    continue
                found = [c.result] if isinstance(c.result, dict) else c.result if isinstance(c.result, list) else []
                for r in found:
                    if isinstance(r, dict) and r.get(p) == v:
                        for k, x in r.items():
                            row.setdefault(k, x)
                        for extra in self._joined(r):
                            for k, x in extra.items():
                                row.setdefault(k, x)
        return _fmt({k: v for k, v in row.items() if k not in args})

    def known(self, name: str, jtype: str, depth: int = 0, for_goal: bool = False) -> tuple[bool, Any, ToolPlan | None]:
        """(found, value, plan-to-disambiguate-first) for a parameter name."""
        # The goal's own records in a later request come from this request, not from what an
        # earlier one settled ("my diner" now may be another diner than before).
        fresh_only = for_goal and name.lower().endswith("_id") and self._later_request()

        def fact_ok(k: str) -> bool:
            if fresh_only and self.fact_pos.get(k, -1) < self.start:
                return False
            return (for_goal or k not in self.new_values) and self._usable(name, self.facts[k])

        if name in self.facts and fact_ok(name):
            return True, _coerce(self.facts[name], jtype), None
        # Exact field names of earlier tool results (a lookup of one candidate among several decides nothing).
        for c in reversed(self.conv.calls):
            if not c.ok:
                continue
            if isinstance(c.result, dict) and name in c.result and self._usable(name, c.result[name]):
                if not self._candidate_lookup(c):
                    return True, c.result[name], None
            if isinstance(c.result, list):
                records = [r for r in c.result if isinstance(r, dict) and self._usable(name, self._field(r, name))]
                records = [r for r in records if self._field(r, name) is not None]
                if not records:
                    continue
                record, plan = self.select(c, records, depth)
                if plan is not None:
                    return False, None, plan
                if record is not None:
                    return True, self._field(record, name), None
        # A fact whose name fits exactly enough, and whose value is of the right kind.
        scored = [(name_match(name, k), k) for k in self.facts if fact_ok(k)]
        best = max((s for s, _ in scored), default=0)
        if best >= 2 or (best == 1 and sum(1 for s, _ in scored if s == 1) == 1):
            tops = [k for s, k in scored if s == best]
            if len(tops) == 1 or len({str(self.facts[k]) for k in tops}) == 1:
                return True, _coerce(self.facts[tops[0]], jtype), None
        base = name.lower().removesuffix("_id").removesuffix("id").strip("_")
        if name.lower().endswith("id") and base:
            for i in reversed(self.ids):
                if fresh_only and i not in self.ids_here:
                    continue
                if kind_fits(name, i) and self._usable(name, i):
                    return True, i, None
        if "email" in name.lower():
            emails = [e for e in EMAIL_RE.findall(self.conv.user_text) if (for_goal or e not in self._new_texts())]
            if emails:
                return True, emails[-1], None
        t = _json_type(jtype)
        if t in ("integer", "number") and len(self.numbers) == 1 and not name.lower().endswith("id"):
            return True, _coerce(self.numbers[0], jtype), None
        return False, None, None

    def _field(self, record: dict[str, Any], name: str) -> Any:
        """A record's field, or the field of a lookup made with its values."""
        if name in record:
            return record[name]
        for extra in self._joined(record):
            if name in extra:
                return extra[name]
        return None

    def _candidate_lookup(self, call: Call) -> bool:
        """A lookup of one record of an earlier list of several (``get_order`` for each listed order)."""
        if not call.args:
            return False
        for c in self.conv.calls:
            if c is call or not c.ok or not isinstance(c.result, list) or len(c.result) < 2:
                continue
            if any(isinstance(r, dict) and all(r.get(a) == b for a, b in call.args.items()) for r in c.result):
                return True
        return False

    def _new_texts(self) -> set[str]:
        return {str(self.facts[k]) for k in self.new_values if k in self.facts}

    # ---------------------------------------------------------------- records
    def _joined(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        """Results of lookups made with this record's values (``get_product(product_id=...)``)."""
        out = []
        for c in self.conv.calls:
            if c.ok and c.args and isinstance(c.result, dict) and all(record.get(k) == v for k, v in c.args.items()):
                out.append(c.result)
        return out

    def _score(self, record: dict[str, Any], others: list[dict[str, Any]], list_call: Call) -> float:
        text = self.request_text.lower()
        uw = set(words(text))
        s = 0.0
        values: list[tuple[str, Any]] = list(record.items())
        for extra in self._joined(record):
            values.extend(extra.items())
        seen: set[str] = set()
        for k, v in values:
            if not isinstance(v, str) or len(v) < 3 or v.lower() in seen:
                continue
            seen.add(v.lower())
            if re.search(r"(?<![\w-])" + re.escape(v.lower()) + r"(?![\w-])", text):
                s += 3.0 + len(words(v))
            else:
                vw = [w for w in words(v) if len(w) > 2]
                s += 0.5 * sum(1 for w in vw if w in uw)
        # Values equal to what other lookups or the user established ("product_id" of the titled product).
        for k, v in record.items():
            if k in self.facts and str(self.facts[k]) == str(v):
                s += 3.0
            for c in self.conv.calls:
                if c is list_call or not c.ok or not isinstance(c.result, dict):
                    continue
                if c.args and any(all(o.get(a) == b for a, b in c.args.items()) for o in others):
                    continue  # a lookup of one of the candidates themselves, not independent evidence
                if k in c.result and c.result[k] == v and any(o.get(k) != v for o in others):
                    s += 3.0
        # States the goal tool's description names ("Cancel a pending or processing order").
        if self.goal is not None:
            dw = set(words(self.goal.description))
            if any(isinstance(v, str) and v.lower() in dw for v in record.values()):
                s += 0.5
        return s

    def select(self, list_call: Call, records: list[dict[str, Any]], depth: int) -> tuple[dict[str, Any] | None, ToolPlan | None]:
        if len(records) == 1:
            return records[0], None
        scores = [self._score(r, records, list_call) for r in records]
        failed = self.failed_values()

        def failed_record(r: dict[str, Any]) -> bool:
            return any((k, json.dumps(v, sort_keys=True)) in failed for k, v in r.items() if k in self._goal_params())

        order = sorted(range(len(records)), key=lambda i: (-scores[i], i))
        top = [i for i in order if scores[i] == scores[order[0]]]
        if len(top) > 1 or scores[order[0]] <= 0.5:
            plan = self.lookup_plan(list_call, records if scores[order[0]] <= 0.5 else [records[i] for i in top], depth)
            if plan is not None:
                return None, plan
            if len(top) > 1 or scores[order[0]] <= 0.5:
                ask = self.describing_field(records if scores[order[0]] <= 0.5 else [records[i] for i in top])
                if ask is not None:
                    return None, ToolPlan(asks=[ask])
        # One fix after an error: another record that fits at least as well.
        best = order[0]
        if failed_record(records[best]):
            for i in order[1:]:
                if scores[i] >= scores[best] - 0.5 and not failed_record(records[i]):
                    best = i
                    break
        if self.noisy and self.call.mistake(WRONG_RECORD):
            others = [i for i in range(len(records)) if i != best]
            best = self.call.rng.choice(others)
        return records[best], None

    def describing_field(self, cands: list[dict[str, Any]]) -> str | None:
        """A descriptive field (title, name, date...) that tells the candidates apart, to ask the user about once."""
        rows = []
        for c in cands:
            row = dict(c)
            for extra in self._joined(c):
                row.update(extra)
            rows.append(row)
        for k in rows[0]:
            if k.lower().endswith("id") or k in ("status", "email") or k in self.asked_all or k in self.unavailable:
                continue
            vals = [r.get(k) for r in rows]
            if all(isinstance(v, str) for v in vals) and len(set(vals)) == len(vals):
                return k
        # Nothing descriptive tells them apart: ask for the record's own id.
        key = next(iter(rows[0]), None)
        if key is not None and key.lower().endswith("id") and key not in self.asked_all and key not in self.unavailable \
                and len({str(r.get(key)) for r in rows}) == len(rows):
            return key
        return None

    def _goal_params(self) -> set[str]:
        return set(self.goal.required) if self.goal else set()

    def lookup_plan(self, list_call: Call, cands: list[dict[str, Any]], depth: int) -> ToolPlan | None:
        """Calls that would tell tied candidates apart, or None when there is nothing left to learn."""
        if depth >= MAX_DEPTH:
            return None
        varying = [k for k in cands[0] if any(c.get(k) != cands[0].get(k) for c in cands)]
        done_calls = {(c.name, json.dumps(c.args, sort_keys=True)) for c in self.conv.calls if c.answered and c.args is not None}
        # (a) look each candidate up by one of its varying fields: get_product(product_id) per order.
        for t in sorted(self.tools.values(), key=lambda t: t.order):
            if t.mutating or t.name == list_call.name or not t.required:
                continue
            if not all(p in varying or p in cands[0] for p in t.required) or not any(p in varying for p in t.required):
                continue
            if not (set(t.returns) - set(cands[0])):
                continue  # it would tell us nothing new
            calls = []
            for c in cands[:MAX_LOOKUPS]:
                args = {p: c[p] for p in t.required}
                if (t.name, json.dumps(args, sort_keys=True)) not in done_calls:
                    calls.append((t.name, args))
            if calls:
                return ToolPlan(calls=calls)
            return None  # already looked up: decide with what we have
        # (b) a tool that yields a varying field from things the user can tell: find_product_by_title(title).
        for t in sorted(self.tools.values(), key=lambda t: t.order):
            if t.mutating or t.name == list_call.name or t.returns_list:
                continue
            if not any(f in varying and f.endswith("id") for f in t.returns):
                continue
            if any(c.name == t.name and c.answered for c in self.conv.calls):
                continue
            sub = self.plan_tool(t, depth + 1, frozenset({t.name, list_call.name}))
            if sub.asks and any(a in self.unavailable for a in sub.asks):
                continue
            if sub.ready:
                return ToolPlan(calls=[(t.name, sub.args)])
            if not sub.asks or all(self._askable(a) for a in sub.asks):
                return sub
        return None

    def _askable(self, name: str) -> bool:
        return name not in self.unavailable

    # ---------------------------------------------------------------- planning
    def plan_tool(self, tool: Tool, depth: int = 0, visiting: frozenset[str] = frozenset()) -> ToolPlan:
        plan = ToolPlan()
        for p in tool.required:
            if tool is self.goal and self._confirm_first(p):
                plan.asks.append(p)  # a later request's record: ask which one before reusing an earlier one
                continue
            found, value, first = self.known(p, tool.types.get(p, "string"), depth, for_goal=tool is self.goal)
            if found:
                plan.args[p] = _coerce(value, tool.types.get(p, "string"))
                continue
            if first is not None:
                plan.calls.extend(c for c in first.calls if c not in plan.calls)
                plan.asks.extend(a for a in first.asks if a not in plan.asks)
                continue
            sub = self.produce(p, depth, visiting | {tool.name})
            if (tool is self.goal and sub is not None and sub.calls and not sub.asks and p.lower().endswith("_id")
                    and p not in self.asked_all and self._askable(p)):
                plan.asks.append(p)  # the record the request is about: ask before inferring it through other records
                continue
            if sub is None:
                if p not in plan.asks:
                    plan.asks.append(p)
                continue
            if sub.asks and not sub.calls and p not in plan.asks and self._askable(p):
                plan.asks.append(p)  # the user may hold it; else what would let us look it up
            plan.calls.extend(c for c in sub.calls if c not in plan.calls)
            plan.asks.extend(a for a in sub.asks if a not in plan.asks)
        # Optional parameters the user named explicitly.
        for p in tool.types:
            if p not in tool.required and p in self.facts and (tool is self.goal or p not in self.new_values):
                plan.args[p] = _coerce(self.facts[p], tool.types[p])
        return plan

    def _later_request(self) -> bool:
        return self.start > (self.conv.users[0][0] if self.conv.users else 0)

    def _confirm_first(self, name: str) -> bool:
        """Whether a record the goal refers to must be asked of the user before it is taken from
        what an earlier request established: in a later request "my enrollment" may be another
        enrollment than the one settled before. Asked once per request; a value the user gave
        for the request at hand, or one they cannot give, needs no question."""
        if not self._later_request():
            return False  # the first request: nothing earlier to confuse it with
        if not name.lower().endswith("_id") or name in self.asked_here or not self._askable(name):
            return False
        if name in self.facts and self.fact_pos.get(name, -1) >= self.start:
            return False
        earlier = name in self.facts or any(
            isinstance(c.result, (dict, list)) and name in json.dumps(c.result) for c in self.earlier_calls)
        return earlier

    def check_first(self, goal: Tool, args: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """A read of the record a change is about (``get_order(order_id)`` before
        ``cancel_order``), when one exists and it was not read yet for this request."""
        for t in sorted(self.tools.values(), key=lambda t: t.order):
            if t.mutating or t.returns_list or t.verb != "get" or not t.required:
                continue
            if not all(p in args and p.lower().endswith("id") for p in t.required):
                continue
            if not set(goal.name_words[1:]) & set(t.name_words[1:]):
                continue  # a read of another kind of record
            check = {p: args[p] for p in t.required}
            if any(c.name == t.name and c.args == check for c in self.conv.calls):
                return None
            return t.name, check
        return None

    def produce(self, name: str, depth: int, visiting: frozenset[str]) -> ToolPlan | None:
        """The cheapest way to learn ``name`` from a read tool, or None."""
        if depth >= MAX_DEPTH:
            return None
        options: list[tuple[tuple[int, int, int, int], ToolPlan]] = []
        for t in self.tools.values():
            if t.mutating or t.name in visiting or name not in t.returns or name in t.required:
                continue  # (a lookup that needs the value itself teaches nothing)
            if any(c.ok and c.name == t.name and _empty(c.result) for c in self.conv.calls):
                continue  # it already came back empty
            sub = self.plan_tool(t, depth + 1, visiting | {t.name})
            if any(a in self.unavailable for a in sub.asks):
                continue
            if sub.ready:
                sub = ToolPlan(calls=[(t.name, sub.args)])
            rel = overlap(self.user_words, t.name_words + t.desc_words)
            options.append(((len(sub.asks), len(sub.calls), -rel, t.order), sub))
        if not options:
            return None
        return min(options, key=lambda o: o[0])[1]


def request_start(conv: Conversation) -> int:
    """Where the request at hand begins: the latest user message that follows a reply in which
    the assistant reported the previous one settled (the first user message otherwise)."""
    start = conv.users[0][0] if conv.users else 0
    said = sorted(conv.assistants)
    for pos, text in conv.users[1:]:
        before = [t.split(EXTRA_OFFER)[0] for p, t in said if p < pos]  # (an offer on top is no question about the request)
        if before and reports_success(before[-1]) and not ASKED_RE.search(before[-1]) and not NEGATIVE_RE.match(text):
            start = pos  # (a "no" to what was reported is a correction, not the next request)
    return start


ASKED_RE = re.compile(r"\?\s*$")


def _empty(result: Any) -> bool:
    return isinstance(result, list) and not result


def _parse_ask(text: str) -> list[str]:
    m = re.search(r"Could you tell me (?:your|the) (.+?)(?:, so I can|\?)", text)
    if not m:
        return []
    return ["_".join(p.split()) for p in re.split(r",\s*|\s+and\s+", m.group(1)) if p.strip()]


# -------------------------------------------------------------------- answers
def _phrase(tool: Tool) -> str:
    """``cancel_order`` -> ``cancel the order``."""
    ws = tool.name_words
    if len(ws) <= 1:
        return f"use {tool.name}"
    return f"{ws[0]} the {' '.join(ws[1:])}"


def _fmt(record: dict[str, Any], limit: int = 8) -> str:
    parts = [f"{humanize(k)}: {v}" for k, v in list(record.items())[:limit] if not isinstance(v, (dict, list))]
    return ", ".join(parts)


def _done_message(tool: Tool, result: Any, record: dict[str, Any] | None) -> str:
    if tool.mutating:
        past = PAST.get(tool.verb, f"{tool.verb}ed" if not tool.verb.endswith("e") else f"{tool.verb}d")
        obj = " ".join(tool.name_words[1:]) or "request"
        detail = _fmt(result) if isinstance(result, dict) else ""
        return f"Done: I have {past} the {obj}." + (f" Details: {detail}." if detail else "")
    if record is not None:
        return f"Here is what I found: {_fmt(record)}."
    if isinstance(result, dict):
        return f"Here is what I found: {_fmt(result)}."
    if isinstance(result, list):
        if not result:
            return "I looked it up, but there are no matching records."
        shown = "; ".join(_fmt(r) if isinstance(r, dict) else str(r) for r in result[:3])
        return f"Here is what I found: {shown}."
    return f"Here is what I found: {result}."


def _extra_offer(goal: Tool, planner: Planner) -> Tool | None:
    """A change to offer on top of the request (noise, once per episode): a mutating tool of
    another verb that the user never mentioned."""
    if any(EXTRA_OFFER in t for _, t in planner.conv.assistants):
        return None
    said = set(words(planner.conv.user_text))
    options = [t for t in sorted(planner.tools.values(), key=lambda t: t.order)
               if t.mutating and t.verb != goal.verb and t.verb not in said and len(t.name_words) > 1]
    return planner.call.rng.choice(options) if options else None


def _ask_message(names: list[str], goal: Tool | None) -> str:
    parts = [humanize(n) for n in names]
    joined = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    purpose = f", so I can {_phrase(goal)}" if goal is not None else ""
    return f"Could you tell me your {joined}{purpose}?"


class _Emit:
    """Builds the PolicyTurn dict, with deterministic call ids and the noise of how calls are written."""

    def __init__(self, call: SimCall, turn: int, base: int, tools: dict[str, Tool]) -> None:
        self.call, self.turn, self.base, self.tools = call, turn, base, tools
        self.careful = False  # no slips in how the calls are written (right after one)

    def tool_calls(self, calls: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        out = []
        for k, (name, args) in enumerate(calls):
            args = dict(args)
            tool = self.tools.get(name)
            if tool is not None and args and not self.careful and self.call.mistake(0.1):
                p = self.call.rng.choice(sorted(args))
                args[p] = _mistype(args[p], tool.types.get(p, "string"))
            text = json.dumps(args, sort_keys=True)
            if not self.careful and self.call.mistake(0.15):
                text = text[: max(1, len(text) * 2 // 3)]  # cut off mid-object
            if not self.careful and self.call.mistake(0.05):
                name = _misname(name, self.call)
            out.append({"id": f"call_{self.turn}_{self.base + k}", "name": name, "arguments": text})
        return {"content": "", "tool_calls": out}

    @staticmethod
    def say(text: str) -> dict[str, Any]:
        return {"content": text, "tool_calls": []}


def _mistype(value: Any, jtype: str) -> Any:
    t = _json_type(jtype)
    if t in ("integer", "number"):
        return str(value)
    if t == "string":
        digits = re.sub(r"\D", "", str(value))
        return int(digits) if digits else 0
    return str(value)


def _misname(name: str, call: SimCall) -> str:
    ws = name.split("_")
    choice = call.rng.randrange(3)
    if choice == 0:
        return name + "s"
    if choice == 1 and len(ws) > 1:
        return "".join(w.capitalize() if i else w for i, w in enumerate(ws))
    return "_".join(["get" if ws[0] != "get" else "fetch"] + ws[1:])


def _guess(name: str, jtype: str, planner: Planner) -> Any:
    """A made-up value for a parameter (the lookup that would give it was skipped)."""
    rng = planner.call.rng
    t = _json_type(jtype)
    if t == "integer":
        return rng.randint(1, 5)
    if t == "number":
        return float(rng.randint(1, 100))
    if t == "boolean":
        return True
    if name.lower().endswith("id"):
        base = name.lower().removesuffix("_id") or "item"
        return f"{base[:4]}_{rng.randrange(16**4):04x}"
    known = [v for v in planner.facts.values() if isinstance(v, str)]
    return rng.choice(known) if known else "unknown"


@register_role("policy", answers="PolicyTurn")
def simulate_policy(call: SimCall) -> dict[str, Any]:
    ctx = call.context
    tools = parse_tools(ctx.get("tools") or call.tools)
    conv = parse_conversation(ctx.get("conversation") or [])
    turn = int(ctx.get("turn") or 0)
    emit = _Emit(call, turn, len(conv.calls), tools)
    start = request_start(conv)
    # The planner sees the calls made for the request at hand; facts the user gave carry over.
    current = [c for c in conv.calls if c.pos >= start]
    planner = Planner(call=call, tools=tools, start=start, earlier_calls=[c for c in conv.calls if c.pos < start],
                      conv=Conversation(users=conv.users, assistants=conv.assistants, calls=current,
                                        last_role=conv.last_role))
    planner.read()
    goal = planner.goal = planner.choose_goal()
    if goal is None:
        return emit.say("I'm sorry, I don't have any tools that can help with this.")

    agreed = planner.review(goal)
    agreed = agreed if goal.mutating else None
    errors = [c for c in current if c.answered and c.error is not None]
    # The goal already succeeded: report it (a question's answer may still need a record choice);
    # a change the user said was made on the wrong record does not count.
    done_call = next((c for c in reversed(current) if c.ok and c.name == goal.name and c.pos > planner.redo_after
                      and not any(str(v) in planner.rejected for v in (c.args or {}).values())), None)
    if done_call is not None:
        record = None
        if isinstance(done_call.result, list) and done_call.result and all(isinstance(r, dict) for r in done_call.result):
            planner.noisy = False
            record, first = planner.select(done_call, done_call.result, 0)
            if first is not None and first.ready is False and first.calls:
                return emit.tool_calls(first.calls)
        message = _done_message(goal, done_call.result, record)
        offer = _extra_offer(goal, planner) if goal.mutating else None
        if offer is not None and call.mistake(PROPOSE_EXTRA):
            message += f" {EXTRA_OFFER}{_phrase(offer)}?"
        return emit.say(message)

    if conv.last_role == "user" and call.mistake(GIVE_UP_EARLY):
        return emit.say(APOLOGY)

    # A malformed call or a misspelt tool name is a one-off slip: the next call is written with care.
    slips = [c for c in errors if TOOL_SLIP_RE.match(c.error or "")]
    real = [c for c in errors if c not in slips]
    last_call = current[-1] if current else None
    if last_call is not None and last_call in slips:
        emit.careful = True
    goal_errors = [c for c in real if c.name == goal.name]
    if len(goal_errors) >= 2 or len(real) >= 6 or len(slips) >= 4:
        last = (real or errors)[-1]
        return emit.say(f"I'm sorry, I couldn't {_phrase(goal)}: {last.error}")

    plan = planner.plan_tool(goal)
    if agreed is not None:
        plan = ToolPlan(args=agreed)  # what the user said yes to, as confirmed
    check = planner.check_first(goal, plan.args) if plan.ready and goal.mutating and agreed is None else None
    if plan.ready and check is None and goal.mutating and agreed is None and not call.mistake(SKIP_CONFIRM):
        return emit.say(confirm_message(_phrase(goal), plan.args, planner.describe(plan.args)))
    if plan.ready and check is None and goal.mutating and call.mistake(CLAIM_DONE):
        return emit.say(_done_message(goal, None, None))
    if check is not None:
        calls = [check]  # look at the record before changing it, as a careful agent does
    elif plan.ready:
        calls = [(goal.name, plan.args)]
    elif plan.calls:
        calls = plan.calls
        # Skip a step and guess an argument of the goal (noise).
        missing = [p for p in goal.required if p not in plan.args]
        if missing and call.mistake(SKIP_STEP):
            args = dict(plan.args)
            for p in missing:
                args[p] = _guess(p, goal.types.get(p, "string"), planner)
            calls = [(goal.name, args)]
    else:
        asks = [a for a in plan.asks if a not in planner.unavailable]
        if not asks:
            return emit.say(f"I'm sorry, I can't {_phrase(goal)} without your {humanize(plan.asks[0])}.")
        return emit.say(_ask_message(asks, goal))

    # Never repeat a call that already failed with the same arguments: report instead.
    failed = {(c.name, json.dumps(c.args, sort_keys=True)): c for c in real if c.args is not None}
    for name, args in calls:
        bad = failed.get((name, json.dumps(args, sort_keys=True)))
        if bad is not None:
            return emit.say(f"I'm sorry, I couldn't {_phrase(goal)}: {bad.error}")
    return emit.tool_calls(calls)
