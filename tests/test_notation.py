"""Every post gives notation.qmd's letters the meaning the page gives them.

The notation page's tables pair each symbol with its meaning. A post *defines* a
letter in a few recognisable ways: a noun right before it ("the bias $b$", "a
weight $w = -2$"), or words right after it ("$p_i$ for the predictions", "$m$ is
the number of ...", "$t_i$ the target class", "$N$ examples"). This test finds
those defining phrases for every symbol of the page and requires the phrase to
share a word with the page's meaning of that symbol (compared by their first four
letters, so that "bias" and "biases" agree). A phrase that names one of the page's
concepts with another letter ("$y_l$ for the targets", when targets are $t$) is
caught the same way, from the other side.

It reads sentences, not minds: a defining phrase it cannot parse is not checked,
and an allowed use the words cannot show is listed in ``ALLOWED`` with its reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from site_sources import ROOT, body, post_paths

NOTATION = ROOT / "notation.qmd"


def word_set(text: str) -> set[str]:
    return set(text.split())


# Words that say nothing about what a letter means.
STOPWORDS = word_set(
    """a an the of to in on at by for from with and or is are be its it this that
    these those one two each every any all some as into over per than then so such
    which what where when while whose there here their them they we our your you
    same other another only also just now new first second last next both
    read written write call called name named mean means meaning"""
)
# Words after which a following letter is used, not defined ("the shape of $b$").
FUNCTION_WORDS = STOPWORDS | word_set(
    """gives give takes take has have had does do did was were been being times plus
    minus divided multiplied moves move make makes made using use used equal equals
    not no more less most least between along through against about above below
    after before under without within across because since if but until though let
    see say says said find found get gets got put puts keep keeps uses recomputes
    provides multiply remember away treats treat"""
    # Adjectives: "the final $\\ell$", "a tiny $\\varepsilon$".
    + """ final whole small tiny little large big direct separate single one-hot same
    usual own"""
)

# A math span and its content.
MATH = re.compile(r"(?<![\\$])\$(?!\$)([^$\n]+?)\$(?!\$)")
# A symbol: a letter or a Greek command, with an optional hat, tilde or bar, braced
# or not ("\\hat{x}", "\\bar\\mu", "\\tilde W").
DECORATION = re.compile(r"\s*\\(hat|tilde|bar|mathbf)(?:\{|\s*(?=\\)|\s+)")
SYMBOL = re.compile(
    r"^\s*(?:\\(?:hat|tilde|bar|mathbf)(?:\{|\s*(?=\\)|\s+))?"
    r"(\\[a-zA-Z]+|[a-zA-Z])\}?"
    r"(?:_(\{[^}]*\}|\\text\{[^}]*\}|[a-zA-Z0-9']))?"
)


@dataclass(frozen=True)
class Use:
    post: str
    symbol: str
    words: tuple[str, ...]
    text: str


def stem(word: str) -> str:
    return word.lower()[:4]


def words_of(text: str) -> list[str]:
    text = MATH.sub(" ", text)
    return [w.lower() for w in re.findall(r"[A-Za-z][A-Za-z-]*", text)]


def content_words(text: str) -> set[str]:
    return {stem(w) for w in words_of(text) if w not in STOPWORDS and len(w) > 2}


def symbol_key(content: str) -> str | None:
    """The symbol a math span starts with: 'w', 'C', '\\ell', 'hat y_i', 'n_in'..."""
    match = SYMBOL.match(content)
    if match is None:
        return None
    decoration = DECORATION.match(content)
    base = match.group(1)
    if base in ("\\frac", "\\partial", "\\sum", "\\operatorname", "\\text", "\\max"):
        return None
    key = f"{decoration.group(1)} {base}" if decoration else base
    if match.group(2) is not None:
        return key + "_" + re.sub(r"\\text\{|[{}]", "", match.group(2))
    return key


def notation_table() -> dict[str, set[str]]:
    """Symbol -> the stems of its meaning, from every table of notation.qmd.

    A subscripted symbol is also filed under its letter with '_*' ('W_*' holds
    $W_1$ and $W_2$), for subscripts the page does not list ('W_{jk}'), and a
    decorated one under its decoration ('bar *' holds $\\bar\\mu$ and $\\bar v$), so
    that a bar, hat or tilde over a letter the page does not list is checked too."""
    table: dict[str, set[str]] = {}
    for line in NOTATION.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if "$" not in cells[0]:
            continue
        meaning = content_words(" ".join(cells[1:]))
        for span in MATH.findall(cells[0]):
            # "n_h \times n_w", "z_1, \dots, z_C", "Y = XW + b": each symbol before "=".
            left = span.split("=")[0]
            for part in re.split(r",|\\times|\\dots", left):
                key = symbol_key(part)
                if key is None:
                    continue
                table.setdefault(key, set()).update(meaning)
                if "_" in key:
                    table.setdefault(key.split("_")[0] + "_*", set()).update(meaning)
                if " " in key:
                    # A decoration means one thing whatever it sits on: 'bar *'.
                    table.setdefault(key.split()[0] + " *", set()).update(meaning)
    return table


def lookup(table: dict[str, set[str]], key: str) -> str | None:
    """The notation entry a post's symbol falls under, or None if it is not reserved."""
    letter = key.split("_")[0]
    decoration = key.split()[0] + " *" if " " in key else None
    for candidate in (key, letter + "_*" if "_" in key else None, letter, decoration):
        if candidate in table:
            return candidate
    return None


# Nouns that say what kind of object a letter is, not what it stands for.
TYPE_NOUNS = {
    stem(w)
    for w in word_set(
        """matrix matrices vector vectors tensor tensors number numbers scalar
    scalars entry entries column columns row rows array arrays function functions
    value values grid grids shape shapes size sizes sum sums product products integer
    integers letter symbol index indices term terms element elements square block
    blocks list layer layers dimension dimensions derivative derivatives factor factors
    amount amounts"""
    )
}
# A noun right before a letter, after an article, a comma or a bracket: "the bias",
# "a small step", "(height", ", weight".
NOUN_BEFORE = re.compile(
    r"(?:(?:^|\b)(?:the|a|an|its|their|our|with)|[,(])\s+(?:[A-Za-z-]+\s+)?"
    r"([A-Za-z-]+)(?:'s)?\s+$",
    re.I,
)
# A letter defined by words after it: "$p_i$ for the predictions", "where $m$ is the
# number of ...", "$t_i$ the target class"; not an owner ("$\\hat x$ is the forward's").
AFTER = re.compile(
    r"^\s*(?:for|is|are|stands\s+for|counts|denotes|means)?\s*(?:the|a|an)\s+"
    r"([`A-Za-z-]+(?:\s+[`A-Za-z-]+){0,2})(?!\w|['’]s\b)"
)


def _role_words(words: list[str]) -> list[str]:
    return [
        w
        for w in words
        if w not in FUNCTION_WORDS
        and stem(w) not in TYPE_NOUNS
        and len(w) > 2
        and not w.endswith("ed")
    ]


def uses(post: Path) -> list[Use]:
    """Every phrase of the post's prose that says what a letter stands for."""
    text = body(post)
    # Prose only: no code cells, no display maths.
    text = re.sub(r"^```.*?^```", " ", text, flags=re.S | re.M)
    text = re.sub(r"\$\$.*?\$\$(?:\s*\{#[\w-]+\})?", " . ", text, flags=re.S)
    text = re.sub(r"\s+", " ", text)
    found = []
    for match in MATH.finditer(text):
        content = match.group(1)
        key = symbol_key(content)
        if key is None:
            continue
        rest = content[SYMBOL.match(content).end() :].strip()  # type: ignore[union-attr]
        # Only a bare letter, or one being given a value or a formula.
        if rest and not rest.startswith("="):
            continue
        # The sentence before the letter, up to the previous piece of maths.
        before_text = re.split(r"[.!?;:#]\s|\s-\s|\$", text[: match.start()])[-1]
        before = words_of(before_text)
        defining: list[str] = []
        after_text = text[match.end() : match.end() + 12]
        noun = NOUN_BEFORE.search(before_text)
        if noun and (
            rest or re.match(r"\s*(?:[,.;:()]|(?:is|are|and|for)\b)", after_text)
        ):
            # A noun right before: "the bias $b$", "(width $w$)", "weight $w = -2$".
            word = noun.group(1).lower()
            if word not in FUNCTION_WORDS and stem(word) not in TYPE_NOUNS:
                defining += [word]
        elif rest and re.search(r"[A-Za-z*],\s*$", before_text) and len(before) > 2:
            # An equation in apposition: "centring each feature, $C = Y - mean$".
            defining += _role_words(before[-6:])
        if not rest:
            after = AFTER.match(text[match.end() : match.end() + 60])
            if after:
                defining += _role_words(words_of(after.group(1)))
        if defining:
            snippet = text[max(0, match.start() - 50) : match.end() + 50]
            found.append(Use(post.parent.name, key, tuple(defining), snippet))
    return found


# Allowed uses the words cannot show: (post, symbol key, a word of the phrase) -> why.
ALLOWED: dict[tuple[str, str, str], str] = {
    (
        "11-convolutions",
        "Y_n",
        "convolution",
    ): "image n's output of a convolution, which "
    "im2col writes as a linear layer's output: Y is a layer's output",
    ("12-attention", "\\ell", "forward"): "the forward's ell: the row log-sum-exp the "
    "forward pass keeps, as the notation page says",
}


def clashes(posts: list[Path]) -> list[str]:
    table = notation_table()
    found = []
    for post in posts:
        for use in uses(post):
            key = lookup(table, use.symbol)
            if key is None:
                continue
            stems = {stem(w) for w in use.words}
            if stems & table[key]:
                continue
            if any((use.post, use.symbol, w) in ALLOWED for w in use.words):
                continue
            found.append(
                f"{use.post}: ${use.symbol}$ defined as "
                f"{' '.join(use.words)!r}, but notation.qmd reserves it "
                f"({' '.join(sorted(table[key]))}): ...{use.text}..."
            )
    return found


def test_notation_table_is_read():
    table = notation_table()
    for key in ("N", "C", "w", "b", "t_i", "n_h", "\\ell", "\\alpha", "\\varepsilon"):
        assert key in table, key
    assert {"weig"} <= table["w"] and "widt" not in table["w"]


@pytest.mark.parametrize("post", post_paths(), ids=lambda p: p.parent.name)
def test_posts_use_the_notation_pages_letters(post):
    found = clashes([post])
    assert not found, "\n".join(found)


def test_the_check_sees_a_clash_and_a_right_use(tmp_path):
    # The oracle works: a reserved letter given another meaning is caught, by the
    # word before it or the words after it, and the page's own meaning passes.
    post = tmp_path / "99-example" / "index.qmd"
    post.parent.mkdir()
    post.write_text(
        "---\ntitle: x\n---\n\n"
        "An image (height $n_h$, width $w$), and a weight $w = -2$.\n"
        "Write $p_i$ for the predictions and $t_i$ for the targets.\n"
        "Here $\\alpha$ is the momentum of the running mean.\n"
        "Call the padded image $\\bar x$, and the running variance $\\bar v$.\n",
        encoding="utf-8",
    )
    found = "\n".join(clashes([post]))
    assert "$w$ defined as 'width'" in found
    assert "$p_i$ defined as 'predictions'" in found
    assert "$\\alpha$ defined as 'momentum" in found
    assert "$bar x$ defined as 'image'" in found  # a bar is a running statistic
    for right in ("'weight'", "$t_i$ defined", "$n_h$ defined", "$bar v$ defined"):
        assert right not in found, right
