"""What the sim's user and policy say around an action: a confirmation asked before a
change, the user's yes, a correction ("No, that's not the right one: my product title is
...") or a refusal ("No, please don't ...", "I'd rather not share my password").

Pure text helpers shared by :mod:`.user` and :mod:`.policy` (the user recognises any
agent's "shall I ...?", the policy reads the user's answers to its own confirmations).
"""

from __future__ import annotations

import json
import re
from typing import Any

from scaleenv._agents.sim.text import GENERIC, humanize, id_kind, name_match, name_words, similar, words

# "shall I cancel the order ...?", "Would you also like me to update the address?"
PROPOSAL_RE = re.compile(
    r"\b(?:shall i|should i|do you want me to|would you (?:also )?like me to|want me to|"
    r"can i go ahead and|is it (?:ok|okay|alright) (?:if i|to)|may i(?! (?:have|ask|know|get|see|take|confirm)\b))"
    r"\s+(?:also\s+|go ahead and\s+)?(?P<action>[^?(]{2,200})",
    re.IGNORECASE,
)
# Markers of something offered on top of what was asked.
EXTRA_RE = re.compile(r"\b(also|as well|additionally|in addition|while i'?m at it|while i am at it)\b", re.IGNORECASE)
# A reply that turns down what was proposed or reported (a correction or a refusal).
NEGATIVE_RE = re.compile(
    r"^\W*(?:no\b|nope\b|not that\b|that's not\b|that is not\b|that isn't\b|wrong\b|hold on\b)", re.IGNORECASE)
POSITIVE_RE = re.compile(
    r"^\W*(?:yes\b|yeah\b|yep\b|sure\b|ok\b|okay\b|please do\b|go ahead\b|correct\b|that's right\b|right\b)",
    re.IGNORECASE)
# Things a customer must not give in a chat, whoever asks.
SECRET_RE = re.compile(
    r"\b(password|passcode|passphrase|pin(?: code| number)?|security (?:code|answer|question)|cvv|cvc|"
    r"card number|credit card number|social security(?: number)?|ssn|one-time code|login credentials)\b",
    re.IGNORECASE,
)
# "your order id", "the booking reference": a record's key, which a customer rarely knows.
INTERNAL_ID_RE = re.compile(r"\b((?:[a-z]+ ){0,2}(?:id|ids|identifier|reference|record number))\b", re.IGNORECASE)
# the value of "title: Blue Lamp", 'order id: "orde_1a2b"' (the label is the words before the colon)
VALUE_RE = re.compile(r":\s*(\"(?:[^\"\\]|\\.){0,120}\"|(?:[^,;()?:]|:(?!\s))+)")

CONFIRM_HEAD = "Just to confirm: shall I "
# Verbs of finding things out, which a user never needs to turn down.
LOOKING = frozenset("look check find search list get see show verify confirm review pull fetch read view "
                    "double-check go proceed continue".split())
# JSON or code where a sentence should be (a model's malformed answer).
GARBLED_RE = re.compile(r"[{}\[\]]|```")


# ------------------------------------------------------------------ the policy's side
def confirm_message(phrase: str, args: dict[str, Any], details: str) -> str:
    """``Just to confirm: shall I cancel the order with order id: "orde_1a2b" (title: Blue Lamp)?``:
    the arguments as ``label: <json>`` (read back by :func:`confirmed_args`), then what the
    records they name look like, so the user can tell a look-alike apart."""
    shown = ", ".join(f"{humanize(p)}: {json.dumps(v)}" for p, v in args.items())
    text = f"{CONFIRM_HEAD}{phrase}" + (f" with {shown}" if shown else "")
    if details:
        text += f" ({details})"
    return text + "?"


def confirmed_args(text: str, phrase: str, params: list[str]) -> dict[str, Any] | None:
    """The arguments of a confirmation :func:`confirm_message` wrote for ``phrase``, or None
    (another message, or another action)."""
    head = f"{CONFIRM_HEAD}{phrase}"
    if not text.startswith(head):
        return None
    rest = text[len(head):]
    if not rest.startswith(" with "):
        return {} if rest[:1] in ("?", " ") else None
    rest = rest[len(" with "):]
    labels = {humanize(p): p for p in params}
    out: dict[str, Any] = {}
    decoder = json.JSONDecoder()
    while rest:
        label, sep, tail = rest.partition(": ")
        if not sep or label not in labels:
            return None
        try:
            value, end = decoder.raw_decode(tail)
        except json.JSONDecodeError:
            return None
        out[labels[label]] = value
        rest = tail[end:]
        if not rest.startswith(", "):
            break
        rest = rest[2:]
    return out


def is_proposal(text: str) -> bool:
    return PROPOSAL_RE.search(text) is not None


# ------------------------------------------------------------------ the user's side
def proposed_action(text: str) -> tuple[str, bool] | None:
    """(the action an assistant message proposes, whether it is offered on top of something
    else: "also ...") or None. Only a question proposes."""
    if "?" not in text:
        return None
    m = None
    for m in PROPOSAL_RE.finditer(text):
        pass  # the last proposal in the message is what it waits an answer to
    if m is None:
        return None
    action = " ".join(m.group("action").split()).strip(" .,:;")
    if not action:
        return None
    around = text[max(0, m.start() - 40): m.start("action") + 40]
    return action, bool(EXTRA_RE.search(around))


def _verb_forms(verb: str, synonyms: dict[str, tuple[str, ...]], past: dict[str, str]) -> set[str]:
    forms = {verb, past.get(verb, verb + ("d" if verb.endswith("e") else "ed"))}
    forms.update(synonyms.get(verb, ()))
    forms.update(k for k, syns in synonyms.items() if verb in syns)
    return forms


def in_goals(action: str, goals: str, extra: bool, synonyms: dict[str, tuple[str, ...]],
             past: dict[str, str]) -> bool:
    """Whether a proposed action is one the user came for: a lookup ("shall I check your
    orders?"), or its verb (or a synonym) is in the user's requests; an action not offered
    on top of something else also counts when its object is named there (an agent's own
    verb for what the user asked)."""
    text = " ".join(str(goals).lower().split())
    ws = words(text)
    aw = [w for w in words(action) if w not in ("the", "a", "an", "my", "your", "this", "that", "it")]
    if not aw:
        return True
    verb = aw[0]
    if verb in LOOKING:
        return True  # looking something up changes nothing: no reason to refuse it
    for form in _verb_forms(verb, synonyms, past):
        if " " in form:
            if form in text:
                return True
        elif any(similar(form, w) if len(form) >= 4 else form == w for w in ws):
            return True
    if extra:
        return False
    obj = [w for w in aw[1:] if w not in ("with", "for", "of", "to", "and", "id") and not w.isdigit()]
    return bool(obj) and any(similar(obj[0], w) for w in ws)


def _canon(value: Any) -> str:
    text = " ".join(str(value).strip().strip("\"'").strip().rstrip(".").lower().split())
    try:
        f = float(text)
    except ValueError:
        return text
    return repr(f) if f == f else text


def stated(text: str) -> list[tuple[list[str], str]]:
    """Every ``label: value`` an assistant message states: (the up to three words before the
    colon, the value)."""
    out = []
    for m in VALUE_RE.finditer(str(text)):
        before = words(str(text)[max(0, m.start() - 60): m.start()])[-3:]
        if before:
            out.append((before, m.group(1)))
    return out


def _names_fact(label: list[str], fact: str) -> bool:
    """Whether a stated label names a fact: the same last word, and a suffix of the label that
    fits the fact's name specifically (``title`` for ``product_title``; never ``name`` alone
    for ``customer_name`` nor ``id`` for ``order_id``)."""
    fw = name_words(fact)
    if not fw or label[-1] != fw[-1]:
        return False
    for n in range(1, len(label) + 1):
        score = name_match("_".join(label[-n:]), fact)
        if score >= 2 or (score == 1 and label[-1] not in GENERIC):
            return True
    return False


def _is_id(name: str) -> bool:
    n = name.lower()
    return n == "id" or n.endswith("_id")


def contradiction(text: str, facts: dict[str, Any], known: str) -> tuple[str, Any] | None:
    """The first fact (name, value) an assistant message contradicts: it states that field
    (``title: Blue Lamp``) with another value, never the user's own, and the value is not one
    the user said themselves (``known``: what they wrote, their requests; a value to set is
    said there). None when the message says nothing against the facts.

    An id contradicts an id fact only when both are keys of the same kind (``orde_5389`` for
    the user's ``orde_aca7``; a new record's ``pro_0029`` is no claim about the user's
    ``progress_mark_13ea``). A message naming one of the user's own records by its id is
    about that record: its other fields then contradict nothing (a fact may describe
    another record of the task, or a value still to be set). Timestamps (``created_on``,
    ``paid_at``) are never a contradiction: facts hold them for records of every kind."""
    if not facts or GARBLED_RE.search(str(text)):
        return None  # (an answer the user cannot read states nothing)
    text_l = " ".join(str(text).lower().split())
    known_l = " ".join(str(known).lower().split())
    said = stated(text)
    if not said:
        return None
    own_record = any(_is_id(k) and isinstance(v, str) and len(v) >= 3 and v.lower() in text_l for k, v in facts.items())
    for k in sorted(facts):
        v = facts[k]
        sv = " ".join(str(v).lower().split())
        if isinstance(v, str) and len(sv) >= 3 and sv in text_l:
            continue  # the user's own value is there (a list naming the right record among others)
        if own_record and not _is_id(k):
            continue
        if re.search(r"_(?:on|at)$", k.lower()):
            continue  # when a record was made or changed: bookkeeping, not what the user tells a record by
        cv = _canon(v)
        for label, raw in said:
            if not _names_fact(label, k):
                continue
            cw = _canon(raw)
            if not cw or cw == cv or (len(cw) >= 3 and cw in known_l):
                continue
            if _is_id(k) and (id_kind(v) is None or id_kind(cw) != id_kind(v)):
                continue
            return k, v
    return None
