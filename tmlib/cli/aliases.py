"""The original's option spellings beside ours: ``--batch_size`` for ``--batch-size``.

The original TissueMAPS programs spelled their options with underscores
(``jterator 1 init --batch_size 5``, as its user guide shows); ours use dashes.
Every long option with a dash is also parsed in its underscore spelling, which
``--help`` and the error messages do not show, so one spelling is documented
and both work.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import click


def underscore_spellings(opts: Iterable[str]) -> list[str]:
    """The underscore spelling of each long option with a dash: ``--a-b`` -> ``--a_b``."""
    return [
        "--" + opt[2:].replace("-", "_") for opt in opts if opt.startswith("--") and "-" in opt[2:]
    ]


@contextlib.contextmanager
def _with_spellings(option: click.Parameter) -> Iterator[None]:
    """While the parser is built, `option` also answers to its underscore spellings."""
    if not isinstance(option, click.Option):
        yield
        return
    saved = option.opts, option.secondary_opts
    extra = [o for o in underscore_spellings(option.opts) if o not in option.opts]
    extra_secondary = [
        o for o in underscore_spellings(option.secondary_opts) if o not in option.secondary_opts
    ]
    option.opts = [*option.opts, *extra]
    option.secondary_opts = [*option.secondary_opts, *extra_secondary]
    try:
        yield
    finally:
        option.opts, option.secondary_opts = saved


class UnderscoreOption(click.Option):
    """A click option that also parses its underscore spelling (not shown in help).

    Parameters
    ----------
    aliases : sequence of str
        Further hidden spellings, e.g. the original's ``--verbosity`` for ``--verbose``.
    """

    def __init__(self, *args: Any, aliases: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.aliases = tuple(aliases)

    def add_to_parser(self, parser: Any, ctx: click.Context) -> None:
        saved = self.opts
        self.opts = [*self.opts, *(a for a in self.aliases if a not in self.opts)]
        try:
            with _with_spellings(self):
                super().add_to_parser(parser, ctx)
        finally:
            self.opts = saved


class UnderscoreCommand(click.Command):
    """A click command whose every dashed long option also parses with underscores."""

    def make_parser(self, ctx: click.Context) -> Any:
        with contextlib.ExitStack() as stack:
            for param in self.get_params(ctx):
                stack.enter_context(_with_spellings(param))
            return super().make_parser(ctx)
