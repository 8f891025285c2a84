"""Text helpers shared by the sim's rollout roles (the simulated user and policy).

Plain, deterministic string work: word splitting and loose word matching, how a user
says a fact ("my email is ada@example.com", 'the product title is "blue lamp"') and how
the policy reads facts back out of user messages. The user simulator phrases facts only
in forms :func:`extract_facts` understands, so the two roles agree on a little protocol
that reads naturally.
"""

from __future__ import annotations

import functools
import re
from typing import Any

WORD_RE = re.compile(r"[a-z0-9]+")
EMAIL_RE = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
# Record keys as the generator makes them: a kind prefix (``tic``, ``ticket_purchase``), underscore, hex or digits.
ID_RE = re.compile(r"\b([a-z]{2,}(?:_[a-z]{2,})*)_([0-9a-f]{3,12})\b")
DATE_RE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
NUMBER_RE = re.compile(r"(?<![\w.@-])-?\d+(?:\.\d+)?(?![\w@-])")
QUOTED_RE = re.compile(r"\"([^\"]{1,80})\"|'([^']{2,80})'(?!\w)")
# "my email is X", "the product title is "blue lamp"", "my order id: ord_1234"
NAMED_RE = re.compile(
    r"\b(?:my|the|our)\s+((?:[a-z][a-z-]*\s+){0,3}?[a-z][a-z-]*)\s*(?:\bis\b|\bare\b|:|=)\s*"
    r"(\"[^\"]{1,80}\"|'[^']{1,80}'|[^\s,;!?\"]+)",
    re.IGNORECASE,
)
# "change the shipping address to "12 Berg St, Lisbon"" (a new value the user wants set)
CHANGE_RE = re.compile(
    r"\b(?:change|set|update|switch|move)\s+(?:my|the)\s+((?:[a-z][a-z-]*\s+){0,3}?[a-z][a-z-]*)\s+to\s+"
    r"(\"[^\"]{1,80}\"|'[^']{1,80}'|[^\s,;!?\"]+)",
    re.IGNORECASE,
)

KV_RE = re.compile(r"([a-z][a-z -]{0,30}?)\s*:\s*(\"[^\"]{1,80}\"|'[^']{1,80}'|[^,;]+)", re.IGNORECASE)

STOP = frozenset(
    "a an the my me i you your we our to for of on in at by with and or is are be it this that "
    "please could would can will want like need just also some any from as do does did have has "
    "hi hello thanks thank sure ok okay yes no not so get".split()
)
# Words too generic to identify a field on their own.
GENERIC = frozenset({"id", "name", "date", "number", "type", "status", "new", "old", "code", "value", "time", "note"})
# How people name things they are asked for.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "id": ("id", "number", "identifier", "reference", "ref", "code", "#"),
    "email": ("email", "e-mail", "mail"),
    "phone": ("phone", "telephone", "mobile", "cell"),
    "address": ("address",),
    "title": ("title",),
    "qty": ("quantity", "qty", "how many"),
    "quantity": ("quantity", "how many", "amount"),
}


def words(text: str) -> list[str]:
    """Lowercase alphanumeric words (underscores split words)."""
    return WORD_RE.findall(str(text).lower())


def content_words(text: str) -> list[str]:
    return [w for w in words(text) if w not in STOP and len(w) > 1]


def name_words(name: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]


INFLECTIONS = frozenset(
    "| e s es ed d ing led ling ling ation ations ion ions ment ments y ies ied al als ance".split(" ")
) | {""}


@functools.lru_cache(maxsize=65536)
def similar(a: str, b: str) -> bool:
    """Loose word match: equal, a prefix of 4+ letters (order/orders), or 5+ common letters (cancel/cancelled)."""
    if a == b:
        return True
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    if len(short) >= 4 and long_.startswith(short):
        return True
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    # The same stem with inflections (cancel/cancelled, reserve/reservation), not other words (subscriber/subscription).
    return n >= 5 and a[n:] in INFLECTIONS and b[n:] in INFLECTIONS


def overlap(query: list[str], target: list[str]) -> int:
    """How many distinct query words loosely match some target word."""
    return _overlap(frozenset(query), tuple(target))


@functools.lru_cache(maxsize=16384)
def _overlap(query: frozenset[str], target: tuple[str, ...]) -> int:
    return sum(1 for q in query if any(similar(q, t) for t in target))


def humanize(name: str) -> str:
    """``product_title`` -> ``product title`` (``id`` stays ``id``)."""
    return " ".join(name_words(name))


def say_value(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if isinstance(value, str) and (re.search(r"[\s,;!?]", text) or not text):
        return f'"{text}"'
    return text


def say_fact(name: str, value: Any, form: int = 0) -> str:
    """One fact as a user says it; every form is read back by :func:`extract_facts`."""
    n = humanize(name)
    v = say_value(value)
    if form == 1:
        return f"the {n} is {v}"
    return f"my {n} is {v}"


def _clean_value(raw: str) -> str:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        return raw[1:-1]
    return raw.rstrip(".")


def extract_facts(text: str) -> dict[str, str]:
    """Named facts in one user message: ``{"product_title": "blue lamp", "email": "..."}``."""
    facts: dict[str, str] = {}
    for m in [*NAMED_RE.finditer(text), *CHANGE_RE.finditer(text)]:
        name_ws = [w for w in name_words(m.group(1)) if w not in STOP]
        if not name_ws or name_ws[-1] in ("goal", "problem", "issue", "question", "request", "reason"):
            continue
        value = _clean_value(m.group(2))
        if not value:
            continue
        facts["_".join(name_ws)] = value
    # "make a new review (rating: 2, comment: "compact tent")"
    for group in re.findall(r"\(([^()]*:[^()]*)\)", text):
        for m in KV_RE.finditer(group):
            name_ws = [w for w in name_words(m.group(1)) if w not in STOP]
            value = _clean_value(m.group(2))
            if name_ws and value:
                facts.setdefault("_".join(name_ws), value)
    for email in EMAIL_RE.findall(text):
        if email not in facts.values():
            facts.setdefault("email", email)
    return facts


def extract_ids(text: str) -> list[str]:
    return [f"{a}_{b}" for a, b in ID_RE.findall(text.lower()) if re.search(r"\d", b) or len(b) == 4]


def id_kind(value: Any) -> str | None:
    """The kind prefix of a record key (``ticket_purchase`` for ``ticket_purchase_596d``), or None."""
    if not isinstance(value, str):
        return None
    m = ID_RE.fullmatch(value.strip().lower())
    return m.group(1) if m else None


def kind_fits(param: str, value: Any) -> bool:
    """Whether a value may fill an id parameter: ``attendee_id`` takes ``attendee_2988`` or ``att_0003``,
    never ``ticket_purchase_596d``, an email or a phrase. Other parameters take anything."""
    p = param.lower()
    if not (p.endswith("_id") or p == "id"):
        return True
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, (int, float)):
        return True
    text = str(value).strip()
    if not text or "@" in text or re.search(r"\s", text):
        return False
    kind = id_kind(text)
    if kind is None:
        return True  # some other id form (digits, codes): no kind to check
    base = p.removesuffix("_id").removesuffix("id").strip("_")
    if not base:
        return True
    a, b = base.replace("_", ""), kind.replace("_", "")
    # The full stem, or a short prefix of it (keys of created records: ``tic_0003``).
    if kind == base or (len(kind) <= 4 and b and a.startswith(b)):
        return True
    # A stem naming the same kind with another qualifier (``plan`` for ``broadband_plan``).
    return base.split("_")[-1] == kind.split("_")[-1]


def extract_numbers(text: str) -> list[float | int]:
    stripped = EMAIL_RE.sub(" ", text)
    stripped = ID_RE.sub(" ", stripped)
    stripped = DATE_RE.sub(" ", stripped)
    out: list[float | int] = []
    for raw in NUMBER_RE.findall(stripped):
        out.append(float(raw) if "." in raw else int(raw))
    return out


def extract_quoted(text: str) -> list[str]:
    return [a or b for a, b in QUOTED_RE.findall(text)]


def name_match(param: str, fact: str) -> int:
    """How well a fact's name fits a parameter's name: 3 exact, 2 specific subset, 1 same head, 0 none."""
    if param == fact:
        return 3
    pw, fw = name_words(param), name_words(fact)
    if not pw or not fw:
        return 0
    small, big = (pw, fw) if len(pw) <= len(fw) else (fw, pw)
    if set(small) <= set(big) and any(w not in GENERIC for w in small):
        return 2
    if pw[-1] == fw[-1] and pw[-1] != "id":
        return 1
    return 0


def mentions(text: str, name: str) -> int:
    """How strongly ``text`` asks about the field ``name`` (0: not at all).

    The head word (``email`` in ``email``, ``id`` in ``order_id``) must appear, or a
    synonym of it; a generic head (id, date, name) also needs a qualifier word
    (``order`` for ``order_id``). The score counts matched words.
    """
    text_l = str(text).lower()
    tws = words(text_l)
    nws = name_words(name)
    if not nws:
        return 0

    def hit(w: str) -> bool:
        for syn in SYNONYMS.get(w, (w,)):
            if " " in syn or not syn.isalnum():
                if syn in text_l:
                    return True
            elif any(similar(syn, t) if len(syn) >= 4 else syn == t for t in tws):
                return True
        return False

    head, quals = nws[-1], [w for w in nws[:-1] if w not in STOP]
    if not hit(head):
        return 0
    q = sum(1 for w in quals if hit(w))
    if head in GENERIC and quals and q == 0:
        return 0
    return 1 + q


SUCCESS_RE = re.compile(
    r"\b(done|cancell?ed|updated|booked|completed|complete|changed|created|placed|reserved|scheduled|confirmed|"
    r"processed|renewed|returned|refunded|paid|submitted|added|removed|deleted|set|transferred|registered|"
    r"successful(?:ly)?|all set|here is|here are|here's|i found|has been|have been)\b"
    r"|\byour\b[^.?!]{0,60}\b(?:is|are|was|were)\b",
    re.IGNORECASE,
)
FAILURE_RE = re.compile(
    r"\b(sorry|unable|cannot|can't|can not|couldn't|could not|failed|fail|error|not possible|unfortunately|"
    r"isn't possible|wasn't able|not able|don't have access)\b",
    re.IGNORECASE,
)


def reports_success(text: str) -> bool:
    """A statement (not a question) reports the work done, and nothing says it failed."""
    if FAILURE_RE.search(text):  # "could not be cancelled", "I'm unable to..."
        return False
    sentences = re.findall(r"[^.!?]+(?:[.!?]+|$)", re.sub(r"(?<=\w)\.(?=\w)", "", text))
    return any(SUCCESS_RE.search(s) and not s.rstrip().endswith("?") for s in sentences)
