"""The report: what the grader found, as text and as Markdown, and the exception
that stops a notebook at an unsolved exercise."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

__all__ = ["ExerciseNotDone", "Report"]


@dataclass
class Report:
    """What the grader found: ``ok``, a headline, the diagnoses and the cases tried.

    ``print(report)`` gives plain text (lines of at most 88 characters); as the
    last expression of a notebook cell the report shows as Markdown. It is truthy
    when the candidate is right.

    Attributes
    ----------
    name : str
        The layer or function checked, e.g. ``"lin"``.
    ok : bool
        True when every gradient matched autograd's on every case.
    headline : str
        One line: what was checked, or what went wrong.
    problems : list of str
        One paragraph per diagnosis, each naming the gradient it is about.
    cases : list of str
        One line per case tried, starting with ``✓`` or ``✗``.
    unsolved : bool
        True when the candidate raised ``NotImplementedError`` (a stub).

    Examples
    --------
    >>> from backprop.exercises import check_backward
    >>> from backprop.functional import relu_backward
    >>> report = check_backward("relu", relu_backward)
    >>> report.ok
    True
    >>> report.assert_ok()
    """

    name: str
    ok: bool
    headline: str
    problems: list[str] = field(default_factory=list)
    cases: list[str] = field(default_factory=list)
    unsolved: bool = False

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        lines = wrap(self.headline)
        for problem in self.problems:
            lines += wrap(problem, indent="- ", subsequent="  ")
        if self.cases and not self.ok:
            lines.append("Cases tried:")
            for case in self.cases:
                lines += wrap(case, indent="  ", subsequent="      ")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_markdown_(self) -> str:
        parts = [f"**{markdown(self.headline)}**"]
        if self.problems:
            parts.append(
                "\n".join(f"- {markdown(problem)}" for problem in self.problems)
            )
        if self.cases and not self.ok:
            parts.append(
                "Cases tried:\n\n" + "\n".join(f"- {markdown(c)}" for c in self.cases)
            )
        return "\n\n".join(parts)

    def assert_ok(self) -> None:
        """Raise ``AssertionError`` with the report unless the candidate is right.

        Raises
        ------
        AssertionError
            When ``ok`` is False; the message is the whole report.

        Examples
        --------
        >>> from backprop.exercises import check_backward
        >>> from backprop.functional import mse_backward
        >>> check_backward("mse", mse_backward).assert_ok()
        """
        if not self.ok:
            raise AssertionError("\n" + str(self))


def wrap(text: str, indent: str = "", subsequent: str = "  ") -> list[str]:
    out = []
    for number, paragraph in enumerate(text.split("\n")):
        first = indent if number == 0 else subsequent
        out += textwrap.wrap(
            paragraph,
            width=88,
            initial_indent=first,
            subsequent_indent=subsequent,
            break_long_words=False,
            break_on_hyphens=False,
        ) or [first.rstrip()]
    return out


def markdown(text: str) -> str:
    # Markdown would read "*" as emphasis and "_" inside names such as grad_w likewise;
    # code-like names are in backticks already, so only bare asterisks need escaping.
    return text.replace("*", "\\*").replace("\n", "  \n")


class ExerciseNotDone(Exception):
    """Raised by `exercise` while an exercise is unsolved or wrong.

    In a notebook it shows as a short message instead of a traceback (IPython
    calls ``_render_traceback_``), so "Run all" stops at the first unsolved
    exercise with a sentence, not a wall of frames.

    Parameters
    ----------
    report : Report
        What the grader found; kept as ``.report``.

    Examples
    --------
    >>> from backprop.exercises import ExerciseNotDone, exercise
    >>> def my_relu_backward(grad_out, x):
    ...     raise NotImplementedError("hint: where is relu's slope 1?")
    >>> try:
    ...     exercise("relu", my_relu_backward, show=False)
    ... except ExerciseNotDone as stop:
    ...     print(stop.report.unsolved)
    True
    """

    def __init__(self, report: Report) -> None:
        self.report = report
        if report.unsolved:
            message = (
                f"Exercise {report.name!r} is waiting for you: replace the "
                "NotImplementedError in the cell above with your answer and run the "
                "cell again. (The worked solution comes next, folded.)"
            )
        else:
            message = (
                f"Exercise {report.name!r} is not right yet: the report above says "
                "what is wrong. Fix your function and run the cell again."
            )
        super().__init__(message)

    def _render_traceback_(self) -> list[str]:
        return wrap(f"{type(self).__name__}: {self}")


def show(report: Report) -> None:
    """Display the report: as Markdown in a notebook, as text elsewhere."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display(report)  # type: ignore[no-untyped-call]  # IPython is untyped
    else:
        print(report)
