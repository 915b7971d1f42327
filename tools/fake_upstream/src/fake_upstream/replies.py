"""In-character replies made up from the persona and the trainee's last line.

No model here: the system prompt picks a topic and a mood by keywords, the
trainee's last message picks a reaction, and fixed templates fill the rest.
Everything is a pure function of the input (variants are chosen by a CRC of the
prompt, not by ``random``), so tests and benchmarks see the same text for the
same conversation. Replies are cached, so a benchmark that repeats one prompt
pays for composing and JSON-encoding it once.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

# Checked in order; the first topic with a keyword in the system prompt wins.
_TOPICS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("refund", ("refund", "reimburs", "money back")),
    ("billing", ("bill", "charge", "invoice", "overcharg", "payment")),
    ("internet", ("internet", "wifi", "wi-fi", "router", "broadband", "outage", "connection")),
    ("cancel", ("cancel", "subscription", "contract", "terminat")),
    ("account", ("password", "login", "log in", "locked out", "account")),
    ("delivery", ("deliver", "package", "parcel", "shipping", "order", "late", "delay")),
)

_MOODS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "angry",
        (
            "angry",
            "furious",
            "irate",
            "impatient",
            "losing patience",
            "lost patience",
            "frustrat",
            "upset",
            "annoyed",
            "rude",
            "livid",
            "fed up",
            "demanding",
        ),
    ),
    (
        "confused",
        (
            "confused",
            "elderly",
            "not tech",
            "unsure",
            "doesn't understand",
            "does not understand",
            "anxious",
            "worried",
        ),
    ),
    ("calm", ("polite", "calm", "friendly", "patient", "kind", "courteous")),
)

_OPENERS: dict[str, tuple[str, ...]] = {
    "angry": (
        "Finally, a human being.",
        "Oh, great, another agent.",
        "I have been on hold for twenty minutes.",
    ),
    "confused": (
        "Oh, hello, I hope I called the right number.",
        "Hello dear, I'm sorry, I'm not very good with these things.",
    ),
    "calm": (
        "Hi, thanks for taking my call.",
        "Hello, I appreciate your help with this.",
    ),
    "neutral": (
        "Hi.",
        "Hello, thanks for picking up.",
    ),
}

_TOPIC_LINES: dict[str, tuple[str, ...]] = {
    "refund": (
        "I sent the item back three weeks ago and the refund is still not on my card.",
        "You promised my refund in five working days and it has been three weeks.",
    ),
    "billing": (
        "My bill this month has a charge on it that I never agreed to.",
        "I was charged twice this month and nobody can tell me why.",
    ),
    "internet": (
        "My internet keeps dropping every evening and I work from home.",
        "The connection has been down since Monday and the router lights are all red.",
    ),
    "cancel": (
        "I want to cancel my subscription and I keep getting sent in circles.",
        "I asked to end my contract last month and you still took a payment.",
    ),
    "account": (
        "I am locked out of my account and the password reset email never arrives.",
        "My login stopped working and I cannot see any of my orders.",
    ),
    "delivery": (
        "My order was supposed to arrive last week and the tracking has not moved.",
        "The package is late again and nobody told me anything.",
    ),
    "generic": (
        "I have a problem with my service and I need it sorted out.",
        "Something is wrong with my account and I need help with it.",
    ),
}

_CLOSERS: dict[str, tuple[str, ...]] = {
    "angry": (
        "Fix this today or I am taking my business elsewhere.",
        "I want a real answer this time, not another excuse.",
        "If this is not sorted now I want to speak to your manager.",
    ),
    "confused": (
        "Could you please explain what I should do, slowly?",
        "I'm not sure what to do next, can you help me?",
    ),
    "calm": (
        "Could you please check what is going on?",
        "What are my options here?",
    ),
    "neutral": (
        "What can you do about it?",
        "Can you look into it, please?",
    ),
}

# Reactions to the trainee's last message: {quote} is a piece of it.
_REACTIONS: dict[str, dict[str, str]] = {
    "apology": {
        "angry": 'You say "{quote}", but sorry does not fix anything.',
        "confused": 'Oh, "{quote}", that is kind of you, but I still don\'t understand.',
        "calm": 'Thank you, "{quote}" is appreciated.',
        "neutral": 'Okay, "{quote}", noted.',
    },
    "question": {
        "angry": 'You ask "{quote}"? Here is what is wrong.',
        "confused": 'You ask "{quote}"? Let me think, I am not sure.',
        "calm": 'You ask "{quote}", sure, happy to explain.',
        "neutral": 'You ask "{quote}", well, here it is.',
    },
    "hold": {
        "angry": 'And now "{quote}"? I have waited long enough already.',
        "confused": 'Oh, "{quote}", all right, but please don\'t hang up on me.',
        "calm": '"{quote}", of course, I can wait a moment.',
        "neutral": '"{quote}", fine.',
    },
    "statement": {
        "angry": 'You say "{quote}", but that does not help me at all.',
        "confused": 'You say "{quote}", and I\'m not sure I follow.',
        "calm": 'You say "{quote}", I understand.',
        "neutral": 'You say "{quote}", okay.',
    },
}

# Used to lengthen a reply when more chunks are asked for than it has words.
_FILLERS: dict[str, tuple[str, ...]] = {
    "angry": (
        "This is the third time I am calling about it.",
        "Every time I call I get a different story.",
        "I am paying for a service I am not getting.",
        "Nobody ever calls me back like they promise.",
    ),
    "confused": (
        "My grandson usually helps me with this.",
        "I wrote down what the last person said but I lost the paper.",
        "I just want it to work like it used to.",
    ),
    "calm": (
        "I understand these things happen.",
        "I just want to get it resolved.",
        "Let me know if you need any details from me.",
    ),
    "neutral": (
        "I have my account number here if you need it.",
        "I would like this resolved soon.",
        "Let me know what you need from me.",
    ),
}

_APOLOGY = ("sorry", "apolog", "i understand your frustration", "my apologies")
_HOLD = ("hold", "wait", "one moment", "a moment", "let me check", "bear with")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_QUOTE_WORDS = 12
_KIND_PRIORITY = ("apology", "question", "hold", "statement")


def _first_match(text: str, table: tuple[tuple[str, tuple[str, ...]], ...], default: str) -> str:
    for name, keywords in table:
        if any(k in text for k in keywords):
            return name
    return default


def _pick(options: tuple[str, ...], seed: int, salt: int) -> str:
    return options[(seed >> salt) % len(options)]


def _kind_of(sentence: str) -> str:
    said = sentence.lower()
    if any(k in said for k in _APOLOGY):
        return "apology"
    if "?" in sentence:
        return "question"
    if any(k in said for k in _HOLD):
        return "hold"
    return "statement"


def _react(message: str) -> tuple[str, str] | None:
    """What the trainee's message is (apology, question, hold, statement) and a quote of it.

    The quote is the last sentence of the strongest kind found, shortened, so an
    apology followed by small talk is still answered as an apology.
    """
    sentences = [s.strip() for s in _SENTENCE_END.split(message.strip()) if s.strip()]
    if not sentences:
        return None
    kinds = [_kind_of(s) for s in sentences]
    kind = min(kinds, key=_KIND_PRIORITY.index)
    sentence = sentences[len(kinds) - 1 - kinds[::-1].index(kind)]
    words = sentence.replace('"', "'").split()
    quote = " ".join(words[:_QUOTE_WORDS])
    quote = quote + "..." if len(words) > _QUOTE_WORDS else quote.rstrip(".!?,;: ")
    return kind, quote


def compose_reply(system: str, last_user: str) -> str:
    """A short customer reply in the persona of ``system`` to the trainee's ``last_user``."""
    persona = system.lower()
    topic = _first_match(persona, _TOPICS, "generic")
    mood = _first_match(persona, _MOODS, "neutral")
    seed = zlib.crc32(f"{system}\x00{last_user}".encode())

    parts = [_pick(_OPENERS[mood], seed, 0)]
    reaction = _react(last_user)
    if reaction is not None:
        kind, quote = reaction
        parts.append(_REACTIONS[kind][mood].format(quote=quote))
    parts.append(_pick(_TOPIC_LINES[topic], seed, 4))
    parts.append(_pick(_CLOSERS[mood], seed, 8))
    return " ".join(parts)


@dataclass(slots=True, eq=False)
class Reply:
    """A reply split into content chunks, plus per-vendor encodings cached on first use."""

    text: str
    chunks: tuple[str, ...]
    encoded: dict[str, tuple[bytes, ...]] = field(default_factory=dict)


def split_chunks(text: str, n: int, mood_fillers: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Split ``text`` into exactly ``n`` non-empty pieces that concatenate back to it.

    Pieces are runs of whole words (the second and later ones keep their leading
    space, like real tokens). A text with fewer words than ``n`` is first
    lengthened with ``mood_fillers`` so that no chunk is empty.
    """
    words = text.split(" ")
    i = 0
    while len(words) < n:
        filler = mood_fillers[i % len(mood_fillers)] if mood_fillers else "Hello."
        words.extend(filler.split(" "))
        i += 1
    base, extra = divmod(len(words), n)
    chunks: list[str] = []
    start = 0
    for k in range(n):
        end = start + base + (1 if k < extra else 0)
        piece = " ".join(words[start:end])
        chunks.append(piece if k == 0 else " " + piece)
        start = end
    return tuple(chunks)


@lru_cache(maxsize=512)
def build_reply(system: str, last_user: str, n_chunks: int) -> Reply:
    """The cached :class:`Reply` for a persona, a trainee line and a chunk count."""
    text = compose_reply(system, last_user)
    mood = _first_match(system.lower(), _MOODS, "neutral")
    chunks = split_chunks(text, n_chunks, _FILLERS[mood])
    return Reply(text="".join(chunks), chunks=chunks)


def flatten_content(content: Any) -> str:
    """Text of a message ``content``: a string, or a list of text parts/blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        ]
        return "\n".join(texts)
    return ""


def estimate_tokens(texts: Iterable[str]) -> int:
    """A cheap, deterministic stand-in for a tokenizer: about four characters a token."""
    chars = sum(len(t) for t in texts)
    return max(1, (chars + 3) // 4)
