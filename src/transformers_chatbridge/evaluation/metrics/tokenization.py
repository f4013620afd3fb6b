"""Pure-Python stand-in for pycocoevalcap's ``PTBTokenizer`` (no Java needed).

pycocoevalcap runs the Stanford CoreNLP 3.4.1 ``PTBTokenizer`` with ``-preserveLines -lowerCase`` on every caption
and then drops the tokens listed in :data:`PUNCTUATIONS`. :func:`ptb_tokenize` reproduces the effect of that pipeline
for the text that captions and model answers are made of:

* newlines become spaces and the text is split on whitespace;
* curly quotes, en/em dashes, ``…`` and the vulgar fractions are mapped to their ASCII forms as CoreNLP does;
* double quotes become `````` (opening: at the start or after whitespace or an opening bracket) or ``''``; a single
  quote opening a word becomes ````` except in the clitics ``'em 'cause 'n 'n' 'til`` and decades (``'90s``);
  ``'tis``/``'twas`` become ``'t is``/``'t was``; a single quote closing a word becomes a ``'`` token;
* clitics are split off: ``n't 's 'm 're 've 'll 'd`` (``can't`` -> ``ca n't``, ``won't`` -> ``wo n't``,
  ``ain't`` -> ``ai n't``), and ``cannot gonna gotta wanna`` -> ``can not``, ``gon na``, ``got ta``, ``wan na``;
* brackets become ``-lrb- -rrb- -lsb- -rsb- -lcb- -rcb-`` (CoreNLP emits ``-LRB-`` etc. and ``-lowerCase``
  lowercases them, so they do *not* match pycocoevalcap's upper-case ``-LRB-`` entries and stay in the output);
* runs of ``!``/``?`` are one token (``?!`` and ``!!`` stay in the output: only single ``!``/``?`` are removed);
  ``, ; :`` are split off (not between digits: ``1,000``, ``10:30``), as are ``# $ % * + = ^ | \\ ~`` and ``&``
  when it is not inside a word (``at&t``); ``-`` at a word's end and runs of two or more hyphens (``--``) are split;
* a final period is split off unless the word is an abbreviation: a single letter (``j.``), letters joined by
  periods (``u.s.``, ``e.g.``, ``p.m.``) or one of the abbreviations in :data:`_ABBREVIATIONS`;
* everything is lowercased and the tokens in :data:`PUNCTUATIONS` are removed.

It was checked token for token against the Java tokenizer on the examples in ``tests/test_metrics.py``. Known
divergences are confined to rare input: URLs with unusual punctuation, SGML-like ``<tags>``,
emoticons, words glued by an ellipsis (``a...b``), apostrophes in ``y'all``/``rock'n'roll``, and abbreviations outside
the list below.
"""

from __future__ import annotations

import re

__all__ = ["PUNCTUATIONS", "ptb_tokenize"]

#: Tokens pycocoevalcap's ``PTBTokenizer`` removes after tokenising (``pycocoevalcap/tokenizer/ptbtokenizer.py``).
PUNCTUATIONS = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)

# Words that keep their final period (matched case-insensitively, without the period). A subset of the Stanford
# PTBLexer abbreviation classes: titles, company suffixes, months and days, a few others.
_ABBREVIATIONS = frozenset(
    """
    mr mrs ms messrs dr drs prof profs sen sens rep reps gen gov govs lt col maj sgt cpl pvt capt adm rev hon pres
    lieut brig cmdr comdr det mt st ste ave blvd rd jr sr bros esq inc co cos corp ltd plc dept assn univ intl
    jan feb mar apr jun jul aug sep sept oct nov dec mon tue tues wed thu thurs fri
    etc al seq vs cf wm jos ft mme mlle
    """.split()
)

_UNICODE_MAP = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"',
        "\u2013": "--", "\u2014": "--", "\u2015": "--",
        "\u2026": "...",
        "\u00bd": "1/2", "\u00bc": "1/4", "\u00be": "3/4", "\u2153": "1/3", "\u2154": "2/3",
        "\u00a0": " ",
    }
)

_BRACKETS = {"(": "-LRB-", ")": "-RRB-", "[": "-LSB-", "]": "-RSB-", "{": "-LCB-", "}": "-RCB-"}
_SPECIAL_WORDS = {
    "cannot": ["can", "not"], "gonna": ["gon", "na"], "gotta": ["got", "ta"], "wanna": ["wan", "na"],
    "'tis": ["'t", "is"], "'twas": ["'t", "was"],
}
_LEADING_CLITICS = re.compile(r"^'(?:em|cause|n|n'|til|\d0s)$", re.IGNORECASE)
_CLITIC = re.compile(r"^(.*?[a-z0-9])(n't|'s|'m|'re|'ve|'ll|'d)$", re.IGNORECASE)
_ACRONYM = re.compile(r"^(?:[a-z]\.)+(?:[a-z]\.?)?$", re.IGNORECASE)
_SYMBOLS = re.compile(r"([#$%*+=^|\\~;]|-{2,}|[!?]+)")


def _split_period(word: str) -> list[str]:
    if not word.endswith(".") or word == ".":
        return [word]
    stem = word[:-1]
    if stem.lower() in _ABBREVIATIONS or _ACRONYM.match(word) or (len(stem) == 1 and stem.isalpha()):
        return [word]
    return [*_split_word(stem), "."]


def _split_clitics(word: str) -> list[str]:
    low = word.lower()
    if low in _SPECIAL_WORDS:
        parts = _SPECIAL_WORDS[low]
        out, i = [], 0
        for part in parts:  # keep the original casing
            out.append(word[i : i + len(part)])
            i += len(part)
        return out
    if low in ("can't", "won't", "ain't"):
        return [word[:2], word[2:]]
    match = _CLITIC.match(word)
    if match:
        return [*_split_clitics(match.group(1)), match.group(2)]
    return [word]


def _split_word(word: str) -> list[str]:
    """Split one whitespace-free piece that contains no brackets, quotes-as-symbols or ``!?;`` runs."""
    if not word:
        return []
    # A leading single quote: a clitic ('em, '90s), 'tis/'twas, or an opening quote.
    if word.startswith("'") and len(word) > 1:
        if _LEADING_CLITICS.match(word) or word.lower() in _SPECIAL_WORDS:
            return _split_clitics(word)
        if not word.startswith("''"):
            return ["`", *_split_word(word[1:])]
    # Trailing punctuation: commas, colons, periods, closing quotes, final hyphen.
    if len(word) > 1:
        last = word[-1]
        if last in ",:":
            return [*_split_word(word[:-1]), last]
        if last == "-" and not word.endswith("--"):
            return [*_split_word(word[:-1]), "-"]
        if word.endswith("''"):
            return [*_split_word(word[:-2]), "''"]
        if last == "'":
            return [*_split_word(word[:-1]), "'"]
        if word.endswith(".."):  # two periods (three or more were already split off as an ellipsis)
            return [*_split_word(word.rstrip(".")), ".", "."]
        if last == ".":
            return _split_period(word)
    if re.match(r"(?:https?|ftp)://", word, re.IGNORECASE):
        return [word]
    # Commas and colons inside a word split it unless they sit between digits (1,000 / 10:30).
    match = re.search(r"(?<!\d)[,:]|[,:](?!\d)", word)
    if match and len(word) > 1:
        i = match.start()
        return [*_split_word(word[:i]), word[i], *_split_word(word[i + 1 :])]
    # "&" is kept inside a word (at&t) and split off otherwise.
    if "&" in word and len(word) > 1:
        match = re.search(r"(?<![a-z0-9])&|&(?![a-z0-9])", word, re.IGNORECASE)
        if match:
            i = match.start()
            return [*_split_word(word[:i]), "&", *_split_word(word[i + 1 :])]
    return _split_clitics(word)


def _tokenize_raw(text: str) -> list[str]:
    text = text.replace("\n", " ").translate(_UNICODE_MAP)
    # Double quotes: opening at the start of a word (after whitespace / an opening bracket), closing otherwise.
    text = re.sub(r'(^|(?<=[\s(\[{<]))"', " `` ", text)
    text = text.replace('"', " '' ")
    for bracket, name in _BRACKETS.items():
        text = text.replace(bracket, f" {name} ")
    text = re.sub(r"\.{3,}", " ... ", text)
    text = _SYMBOLS.sub(r" \1 ", text)
    text = re.sub(r"-{3,}", "--", text)
    tokens: list[str] = []
    for piece in text.split():
        if piece in ("``", "''", "...", "--") or piece in _BRACKETS.values() or _SYMBOLS.fullmatch(piece):
            tokens.append(piece)
        else:
            tokens.extend(_split_word(piece))
    return tokens


def ptb_tokenize(text: str) -> str:
    """Tokenise and lowercase ``text`` as pycocoevalcap's ``PTBTokenizer`` does, punctuation tokens removed.

    Returns the tokens joined by single spaces (the form pycocoevalcap's scorers take).
    """
    tokens = [token.lower() for token in _tokenize_raw(text)]
    # pycocoevalcap compares the lowercased Java output with its (partly upper-case) punctuation list.
    return " ".join(token for token in tokens if token not in PUNCTUATIONS)
