"""The sim's ``user`` role: a customer with a goal and a few facts only they know.

Context (see :mod:`scaleenv._agents.rollout.answers`): ``instruction``, ``user_facts``,
``persona``, ``max_turns``, and for a task of several goals ``requests`` (one message per
goal, in order) with ``request_facts`` (what the user holds for each); the conversation so far is the request's chat, roles flipped
(:mod:`scaleenv._agents.llm.user_chat`); the turn is the number of agent messages.

- Opening (no assistant message yet): the goal from the instruction, in the first person,
  sometimes with one held fact up front (never all of them).
- Asked for facts (the assistant's last message names them: "email", "order id"/"order
  number", "title"...): gives every asked fact it holds ("Sure, my email is ..."); for a
  thing it does not hold it says so and offers a held fact not yet given. Noise
  (``call.mistake(0.3)``): answers vaguely instead of giving a fact.
- Several requests: the opening raises the first; once the assistant reports one settled
  (done/cancelled/updated/booked/here is/your X is..., not negated) the user thanks it and
  raises the next; the request at hand is the latest the user has said. Only its facts
  are given when asked (another request's "guest id" may be another guest).
- The assistant reports the last request settled: ``done=True``.
- Gives up (``gave_up=True``) when the assistant keeps failing or asking the same thing,
  or the turn budget is nearly spent.
- Corrects (``reason="correct"``): when the assistant states or asks to confirm a value that
  contradicts a fact of the request at hand (``title: Blue Lamp`` when the user's product
  title is another; a look-alike record, a wrong quantity), the user says no and restates
  the right fact instead of agreeing (:func:`.dialogue.contradiction`).
- Refuses: asked for something it must not give (a password, a card number) or does not
  hold (a record's internal id), it declines and says what it can give instead
  (``reason="refuse_info"``); offered an action that is none of its requests ("Would you
  also like me to update the address?"), it says no (``reason="refuse_action"``). A
  confirmation of what it asked for gets a plain yes.
- Bounded: after ``MAX_CORRECTIONS`` corrections or ``MAX_REFUSALS`` refusals in a request
  (``MAX_*_PER_EPISODE`` in an episode) the next one gives up instead (and the turn and
  tool-call limits end every episode).

Never reveals a fact it does not hold; never invents one.
"""

from __future__ import annotations

import re
from typing import Any

from scaleenv._agents.sim.call import SimCall, register_role
from scaleenv._agents.sim.dialogue import INTERNAL_ID_RE, SECRET_RE, contradiction, in_goals, proposed_action
from scaleenv._agents.sim.policy import PAST, VERB_SYNONYMS
from scaleenv._agents.sim.text import FAILURE_RE, humanize, mentions, reports_success, say_fact, words
from scaleenv._agents.llm.user_chat import conversation_of

ASK_RE = re.compile(
    r"\?|\b(could you|can you|would you|please (?:give|provide|tell|share|confirm)|what is your|what's your|"
    r"i need your|i'll need|i will need|need the|provide)\b",
    re.IGNORECASE,
)

OPENERS = ("Hi! ", "Hello, ", "Hi there. ", "")
THANKS = ("Thanks, that's all I needed.", "Great, thank you! That's everything.", "Perfect, thanks for your help.")
VAGUE = (
    "Hmm, I don't have my {n} at hand right now.",
    "I'm not sure about the exact {n}, sorry.",
    "I think it's the usual one? I don't remember my {n} exactly.",
)


def first_person(instruction: str) -> str:
    """The instruction as the user would say it (a written-for-the-user brief becomes first person)."""
    text = " ".join(str(instruction).split())
    if not text:
        return "I need some help with my account."
    subs = [
        (r"^(?:you are [^.]*?\b(?:who|and)\s+)?you (?:want|would like|need|wish) to\b", "I want to"),
        (r"^your goal is to\b", "I want to"),
        (r"^you\b", "I"),
        (r"\byour\b", "my"),
        (r"\byours\b", "mine"),
        (r"\byou are\b", "I am"),
        (r"\byou have\b", "I have"),
        (r"\byou\b", "I"),
    ]
    if re.match(r"^(you|your)\b", text, re.IGNORECASE):
        for pat, rep in subs:
            text = re.sub(pat, rep, text, flags=re.IGNORECASE)
    text = text[0].upper() + text[1:]
    if text[-1] not in ".!?":
        text += "."
    return text


DIRECTIVE_RE = re.compile(
    r"^(you\b|your\b|do not\b|don't\b|keep\b|ask\b|double-check\b|if\b|at the end\b|things you\b|make sure\b|"
    r"answer\b|be\b|never\b|only\b|remember\b)",
    re.IGNORECASE,
)
FIRST_PERSON_RE = re.compile(r"\b(i|i'd|i'm|i've|my|me|mine)\b|^please\b", re.IGNORECASE)


def goal_text(instruction: str) -> str:
    """What the user says to open: the request sentences of the instruction.

    A task writer's instruction may be a brief for the user ("You are a busy
    professional. I need to cancel my order. Things you know ...: your email is ...");
    only the first-person request is said, never the brief's fact list or directions.
    """
    text = " ".join(str(instruction).split())
    sentences = [x.strip() for x in re.split(r"(?<=[.!?])\s+(?=[A-Z\"'])", text) if x.strip()]
    said = [x for x in sentences if FIRST_PERSON_RE.search(x) and not DIRECTIVE_RE.match(x)]
    if said:
        return " ".join(said)
    plain = [x for x in sentences if not re.search(r"\b(can share|when asked|at hand|can tell it)\b", x, re.IGNORECASE)]
    return first_person(plain[0] if plain else text)


def _mentioned(value: Any, text: str) -> bool:
    v = str(value).lower()
    return bool(v) and v in text.lower()


def _given(facts: dict[str, Any], conversation: list[dict[str, Any]]) -> set[str]:
    """Facts already given: their value appears in one of the user's own messages."""
    said = " ".join(str(m.get("content") or "") for m in conversation if m.get("role") == "user")
    return {k for k, v in facts.items() if _mentioned(v, said)}


def _join(parts: list[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _asked_facts(text: str, facts: dict[str, Any]) -> list[str]:
    scores = {k: mentions(text, k) for k in facts}
    asked = [k for k, s in scores.items() if s > 0]
    # Among facts sharing a head word ("order_id", "customer_id"), keep the best-qualified ones.
    best: dict[str, int] = {}
    for k in asked:
        head = k.lower().split("_")[-1]
        best[head] = max(best.get(head, 0), scores[k])
    return sorted(k for k in asked if scores[k] == best[k.lower().split("_")[-1]])


def _streak(conversation: list[dict[str, Any]], pred: Any) -> int:
    """How many of the assistant's latest messages in a row satisfy ``pred``."""
    n = 0
    for m in reversed(conversation):
        if m.get("role") != "assistant":
            continue
        if not pred(str(m.get("content") or "")):
            break
        n += 1
    return n


def _repeats(conversation: list[dict[str, Any]]) -> int:
    """How many times in a row the assistant said (nearly) the same thing."""
    texts = [" ".join(words(m.get("content") or "")) for m in conversation if m.get("role") == "assistant"]
    if not texts:
        return 0
    n = 1
    for t in reversed(texts[:-1]):
        if t != texts[-1]:
            break
        n += 1
    return n


def _turn(message: str, *, done: bool = False, gave_up: bool = False, reason: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"message": message, "done": done, "gave_up": gave_up}
    if reason:
        out["reason"] = reason
    return out


# Past these (in the request at hand, or in the whole episode) the user gives up rather
# than correct or refuse once more.
MAX_CORRECTIONS = 2
MAX_REFUSALS = 3
MAX_CORRECTIONS_PER_EPISODE = 4
MAX_REFUSALS_PER_EPISODE = 8
CORRECT = (
    "No, that's not the right one: {fact}.",
    "No, not that one. To be clear, {fact}.",
    "No, that's wrong: {fact}.",
)
REFUSE_ACTION = (
    "No, please don't {action}; I didn't ask for that.",
    "No thanks, I only want what I asked for. Please don't {action}.",
)
YES = ("Yes, please go ahead.", "Yes, that's the one. Please go ahead.", "Yes, please do.")
# How the user's own corrections and refusals begin (to count them in the conversation).
CORRECTED_RE = re.compile(r"^(No, that's not the right one:|No, not that one\. To be clear,|No, that's wrong:)")
REFUSED_RE = re.compile(
    r"^(No, please don't|No thanks, I only want what I asked for|I'd rather not share|I won't give out|"
    r"I don't have an internal|I don't have any internal|I don't know that, sorry|I'm afraid I don't have that|"
    r"I don't have that\.)")


def _count(conversation: list[dict[str, Any]], pattern: re.Pattern[str]) -> int:
    return sum(1 for m in conversation if m.get("role") == "user" and pattern.match(str(m.get("content") or "")))


def _capped(conversation: list[dict[str, Any]], pattern: re.Pattern[str], request: str, per_request: int,
            per_episode: int) -> bool:
    """Whether the user has corrected (or refused) enough: ``per_request`` times since it raised
    the request at hand, or ``per_episode`` times in all."""
    if _count(conversation, pattern) >= per_episode:
        return True
    raised = max((i for i, m in enumerate(conversation)
                  if m.get("role") == "user" and _plain(request) in _plain(m.get("content") or "")), default=0)
    return _count(conversation[raised:], pattern) >= per_request


THANKS_NEXT = ("Thanks!", "Great, thank you.", "Perfect, thanks.", "Thanks, that's sorted.", "Good.")


def _plain(text: str) -> str:
    return " ".join(str(text).split())


def current_request(requests: list[str], conversation: list[dict[str, Any]]) -> int:
    """The request the user is on: the latest one they have said (0 before any)."""
    said = " ".join(_plain(m.get("content") or "") for m in conversation if m.get("role") == "user")
    for i in range(len(requests) - 1, 0, -1):
        if _plain(requests[i]) in said:
            return i
    return 0


@register_role("user", answers="UserTurn")
def simulate_user(call: SimCall) -> dict[str, Any]:
    ctx = call.context
    rng = call.rng
    instruction = str(ctx.get("instruction") or "")
    requests = [_plain(r) for r in ctx.get("requests") or [] if _plain(r)]
    per_request = [dict(f) if isinstance(f, dict) else {} for f in ctx.get("request_facts") or []]
    if "conversation" in ctx:  # given in the context (the role as a pure function: the tests call it so)
        conversation: list[dict[str, Any]] = [m for m in ctx.get("conversation") or [] if isinstance(m, dict)]
        turn = int(ctx.get("turn") or 0)
    else:
        conversation = list(conversation_of(call.messages))
        turn = sum(1 for m in conversation if m["role"] == "assistant")  # the agent's turns so far
    max_turns = int(ctx.get("max_turns") or 10)
    k = current_request(requests, conversation) if requests else 0
    # The facts of the request at hand (another request's "guest id" may be another guest).
    facts: dict[str, Any] = dict(per_request[k]) if k < len(per_request) else dict(ctx.get("user_facts") or {})
    request = requests[k] if requests else goal_text(instruction)

    assistant = [m for m in conversation if m.get("role") == "assistant"]
    if not assistant:
        return _turn(_opening(request, per_request[0] if per_request else facts, call, plain=bool(requests)))

    last = str(assistant[-1].get("content") or "")
    given = _given(facts, conversation)
    asking = bool(ASK_RE.search(last))
    # What is asked for, not the purpose ("..., so I can reserve the ticket purchase?").
    asked = _asked_facts(re.split(r",?\s+so (?:that )?I can\b", last)[0], facts) if asking else []

    # What the user said and came for: a value found there is never a contradiction.
    known = " ".join([*(str(m.get("content") or "") for m in conversation if m.get("role") == "user"),
                      *requests, instruction])
    wrong = contradiction(last, facts, known)
    if wrong is not None:
        if _capped(conversation, CORRECTED_RE, request, MAX_CORRECTIONS, MAX_CORRECTIONS_PER_EPISODE):
            return _turn("That's still not the right one. I'll sort it out myself, thanks.", gave_up=True)
        name, value = wrong
        fact = say_fact(name, value, rng.randrange(2))
        return _turn(rng.choice(CORRECT).format(fact=fact), reason="correct")
    proposal = proposed_action(last)
    if proposal is not None:
        action, extra = proposal
        if not in_goals(action, " ".join(requests) or instruction, extra, VERB_SYNONYMS, PAST):
            if _capped(conversation, REFUSED_RE, request, MAX_REFUSALS, MAX_REFUSALS_PER_EPISODE):
                return _turn("I keep saying no. I'll sort it out myself, thanks.", gave_up=True)
            return _turn(rng.choice(REFUSE_ACTION).format(action=_you(action)), reason="refuse_action")
        if not (extra and reports_success(last)):
            return _turn(rng.choice(YES))
        # An offer on top of a settled request, of something the user came for anyway: on to
        # the next request in the user's own words (below).
        asked = []
    if asking and SECRET_RE.search(last):
        if _capped(conversation, REFUSED_RE, request, MAX_REFUSALS, MAX_REFUSALS_PER_EPISODE):
            return _turn("I'm not comfortable with this. I'll sort it out another way.", gave_up=True)
        what = SECRET_RE.search(last).group(1).lower()  # type: ignore[union-attr]
        return _turn(_refuse_secret(what, facts, given, call), reason="refuse_info")

    if not asked and reports_success(last):
        if k + 1 < len(requests):  # settled: on to the next request
            return _turn(f"{rng.choice(THANKS_NEXT)} {requests[k + 1]}")
        return _turn(rng.choice(THANKS), done=True)

    budget_left = max_turns - turn
    if budget_left <= 1:
        return _turn("I've spent too long on this already; I'll try again another time.", gave_up=True)
    if _repeats(conversation) >= 3:
        return _turn("We're going in circles. Never mind, I'll sort it out myself.", gave_up=True)
    failing = _streak(conversation, lambda t: bool(FAILURE_RE.search(t)) and not ASK_RE.search(t))
    if failing >= 2:
        return _turn("This isn't working. I give up, thanks anyway.", gave_up=True)

    if asked:
        return _turn(_answer(asked, facts, given, call))
    if asking:
        if _capped(conversation, REFUSED_RE, request, MAX_REFUSALS, MAX_REFUSALS_PER_EPISODE):
            return _turn("I've told you everything I know. I'll sort it out another way.", gave_up=True)
        offer_first = per_request[k] if k < len(per_request) else {}
        internal = INTERNAL_ID_RE.search(last.split(", so I can")[0])
        if internal is not None:
            return _turn(_refuse_id(internal.group(1).lower(), facts, given, call, offer_first), reason="refuse_info")
        return _turn(_dont_know(facts, given, call, first=offer_first), reason="refuse_info")
    if failing:
        return _turn(f"That's not what I hoped for. Could you please try again? {request}")
    return _turn(f"Sorry, I'm not sure that answers it. {request}")


def _opening(request: str, facts: dict[str, Any], call: SimCall, *, plain: bool = False) -> str:
    """The first message: the first request (already in the user's words when ``plain``;
    else the instruction's request sentences), sometimes with one held fact up front."""
    rng = call.rng
    text = rng.choice(OPENERS) + (request if plain else goal_text(request))
    unsaid = sorted(k for k, v in facts.items() if not _mentioned(v, text))
    # Reveal at most one fact up front, and never the last one the instruction leaves unsaid.
    if len(unsaid) >= 2 and rng.random() < 0.4:
        k = rng.choice(unsaid)
        text += f" {say_fact(k, facts[k], rng.randrange(2)).capitalize()}."
    return text


def _answer(asked: list[str], facts: dict[str, Any], given: set[str], call: SimCall) -> str:
    rng = call.rng
    parts: list[str] = []
    vague: list[str] = []
    for k in asked:
        if call.mistake(0.3):
            vague.append(k)
        else:
            parts.append(say_fact(k, facts[k], rng.randrange(2)))
    out: list[str] = []
    if parts:
        out.append(rng.choice(("Sure, ", "Of course: ", "Yes, ", "")) + _join(parts) + ".")
    for k in vague:
        out.append(rng.choice(VAGUE).format(n=" ".join(k.split("_"))))
    text = " ".join(out)
    return text[0].upper() + text[1:]


def _dont_know(facts: dict[str, Any], given: set[str], call: SimCall, first: dict[str, Any] | None = None) -> str:
    """Asked for something the user does not hold: say so, and offer a held fact not given yet
    (one of the request at hand, ``first``, when there is one)."""
    rng = call.rng
    facts = _sayable(facts)
    first = _sayable(first or {})
    text = rng.choice(("I don't know that, sorry.", "I'm afraid I don't have that information.", "I don't have that."))
    offer = sorted(k for k in (first or {}) if k not in given) or sorted(k for k in facts if k not in given)
    if offer:
        k = rng.choice(offer)
        text += f" But {say_fact(k, facts[k], rng.randrange(2))}, if that helps."
    elif facts:
        k = rng.choice(sorted(facts))
        text += f" All I can tell you is that {say_fact(k, facts[k], rng.randrange(2))}."
    return text


def _sayable(facts: dict[str, Any]) -> dict[str, Any]:
    """The facts a user would say in a chat (never a password or a card number)."""
    return {k: v for k, v in facts.items() if not SECRET_RE.search(humanize(k))}


def _you(action: str) -> str:
    """The assistant's words for an action, as the user repeats them ("your" for "my")."""
    text = re.sub(r"\byour\b", "my", action, flags=re.IGNORECASE)
    return re.sub(r"\s+with\s+.*$", "", text)


def _offer(facts: dict[str, Any], given: set[str], call: SimCall, first: dict[str, Any] | None = None) -> str:
    """What the user can give instead: a held fact not given yet (of the request at hand first)."""
    rng = call.rng
    facts = _sayable(facts)
    first = _sayable(first or {})
    offer = sorted(k for k in first if k not in given) or sorted(k for k in facts if k not in given)
    if offer:
        k = rng.choice(offer)
        return f" I can give you this instead: {say_fact(k, facts[k], rng.randrange(2))}."
    if facts:
        k = rng.choice(sorted(facts))
        return f" What I can tell you is that {say_fact(k, facts[k], rng.randrange(2))}."
    return ""


def _refuse_secret(what: str, facts: dict[str, Any], given: set[str], call: SimCall) -> str:
    """Asked for a secret (a password, a card number): never given, whoever asks."""
    text = call.rng.choice((f"I'd rather not share my {what} in a chat.", f"I won't give out my {what}, sorry."))
    return text + _offer(facts, given, call)


def _refuse_id(what: str, facts: dict[str, Any], given: set[str], call: SimCall, first: dict[str, Any]) -> str:
    """Asked for a record's internal key the user does not hold: a customer never sees those."""
    what = re.sub(r"^(?:your|the|my|me)\s+", "", what)
    text = call.rng.choice((f"I don't have an internal {what}, I'm afraid; I never see those.",
                            f"I don't have any internal {what} - that's not something I'd know."))
    return text + _offer(facts, given, call, first)
