"""The ``%%step`` cell magic header: the tag information written in the cell itself.

``%%step NAME [--after A [B ...]] [--gpus N] [--image REF] [--limit K=V ...] [--label K=V ...]
[--annotation K=V ...] [--retries N] [--timeout T] [--no-cache] [--env NAME=VALUE ...]
[--node-selector K=V ...] [--toleration KEY[=VALUE][:EFFECT] ...]``

``NAME`` may also be one of the section words ``imports``, ``functions``, ``parameters``,
``metrics`` or ``skip``, which mark the cell like the equally named tags. The same parser serves
the interactive magic (which just runs the body) and the notebook parser.

Lines that control the notebook rather than compute anything (``%kfnb ...``, ``%load_ext kfnb``)
are no pipeline code: :func:`strip_control_lines` blanks them, so a step never starts a run of
its own notebook (a ``%kfnb run`` cell inside a step would recurse).

The header is written here too: :func:`rewrite_header` gives a header line with a new name,
``--after``, ``--gpus`` and ``--image``, every other option kept, regenerated from the parsed
arguments in the parser's own order (:func:`format_header`).
"""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Iterable

from ..dag import GPU
from .tags import (
    RESOURCE_ALIASES,
    Directive,
    Role,
    TagError,
    parse_env,
    parse_image,
    parse_limit,
    parse_meta,
    parse_node_selector,
    parse_retries,
    parse_tags,
    parse_timeout,
    parse_toleration,
)

MAGIC = "%%step"
SECTIONS: dict[str, Role] = {
    "imports": "imports",
    "functions": "functions",
    "parameters": "parameters",
    "pipeline-parameters": "parameters",
    "metrics": "metrics",
    "pipeline-metrics": "metrics",
    "skip": "skip",
}


#: ``%kfnb ...`` and ``%load_ext/%reload_ext kfnb``: notebook control, not pipeline code.
CONTROL_LINE = re.compile(r"^\s*%(kfnb\b(?!\.)|(re)?load_ext\s+kfnb\s*$)")


def is_control_line(line: str) -> bool:
    return CONTROL_LINE.match(line) is not None


def strip_control_lines(source: str) -> str:
    """``source`` with its notebook-control lines blanked (line numbers stay)."""
    if "%" not in source:
        return source
    return "\n".join("" if is_control_line(ln) else ln for ln in source.split("\n"))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise TagError(f"bad %%step line: {message}", f"usage: {self.format_usage().strip()}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="%%step",
        add_help=False,
        description="Mark this cell as (the start of) a pipeline step.",
    )
    p.add_argument("name", help="step name, or imports/functions/parameters/metrics/skip")
    p.add_argument(
        "--after",
        "--prev",
        nargs="+",
        default=[],
        metavar="STEP",
        help="steps this one runs after (besides those data flow implies)",
    )
    p.add_argument("--gpus", type=str, default=None, help="number of GPUs (nvidia.com/gpu)")
    p.add_argument("--cpu", default=None, help="CPU limit, e.g. 2 or 500m")
    p.add_argument("--memory", default=None, help="memory limit, e.g. 4Gi")
    p.add_argument("--image", default=None, help="container image for the step on Kubeflow")
    p.add_argument("--limit", action="append", default=[], metavar="RESOURCE=VALUE")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--annotation", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--retries", default=None)
    p.add_argument("--timeout", default=None, help="seconds, or 30m / 2h")
    p.add_argument(
        "--no-cache",
        dest="cache",
        action="store_false",
        default=None,
        help="always run this step, never reuse an earlier run's results",
    )
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment variable set for the step",
    )
    p.add_argument(
        "--node-selector",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="node label the step's pod must run on (Kubernetes)",
    )
    p.add_argument(
        "--toleration",
        action="append",
        default=[],
        metavar="KEY[=VALUE][:EFFECT]",
        help="taint the step's pod tolerates, in kubectl taint syntax (Kubernetes)",
    )
    return p


def split_header(source: str) -> tuple[str | None, str]:
    """Return (the ``%%step`` line or None, the cell body without it)."""
    stripped = source.lstrip()
    first, _, body = stripped.partition("\n")
    if first.split(maxsplit=1)[:1] == [MAGIC]:
        return first, body
    return None, source


def parse_header(line: str) -> Directive:
    """Parse a ``%%step ...`` line into a ``Directive``; raise ``TagError`` when it is wrong."""
    try:
        words = shlex.split(line)[1:]
    except ValueError as err:
        raise TagError(f"bad %%step line: {err}", "check the quotes") from err
    args = build_parser().parse_args(words)
    if args.name in SECTIONS:
        d = Directive(role=SECTIONS[args.name])
    else:
        d = Directive(role="step", step=args.name)
    d.prev = list(args.after)
    for flag, resource in (("gpus", GPU), ("cpu", "cpu"), ("memory", "memory")):
        value = getattr(args, flag)
        if value is not None:
            name, qty = parse_limit(resource, value, f"--{flag} {value}")
            d.resources[name] = qty
    for item in args.limit:
        key, _, value = item.partition("=")
        name, qty = parse_limit(key, value, f"--limit {item}")
        d.resources[name] = qty
    for item in args.label:
        key, value = parse_meta(item.replace("=", ":", 1), f"--label {item}", "label")
        d.labels[key] = value
    for item in args.annotation:
        key, value = parse_meta(item.replace("=", ":", 1), f"--annotation {item}", "annotation")
        d.annotations[key] = value
    for item in args.env:
        name, sep, value = item.partition("=")
        name, value = parse_env(name, value if sep else None, f"--env {item}")
        d.env[name] = value
    for item in args.node_selector:
        key, sep, value = item.partition("=")
        key, value = parse_node_selector(key, value if sep else None, f"--node-selector {item}")
        d.node_selector[key] = value
    for item in args.toleration:
        toleration = parse_toleration(item, f"--toleration {item}")
        if toleration not in d.tolerations:
            d.tolerations.append(toleration)
    if args.image is not None:
        d.image = parse_image(args.image, f"--image {args.image}")
    if args.retries is not None:
        d.retries = parse_retries(args.retries, f"--retries {args.retries}")
    if args.timeout is not None:
        d.timeout = parse_timeout(args.timeout, f"--timeout {args.timeout}")
    if args.cache is not None:
        d.cache = args.cache
    if d.role != "step" and d.has_settings:
        raise TagError(
            f"%%step {args.name} takes no step options",
            "put --after/--gpus/... on a %%step line that names a step",
        )
    return d


def cell_directive(tags: Iterable[object], source: str) -> Directive:
    """What one code cell declares, as the notebook parser reads it: its tags merged with its
    ``%%step`` header. Raises ``TagError`` when either cannot be read."""
    header, _ = split_header(source)
    directive = parse_tags(tags)
    return directive if header is None else directive.merge(parse_header(header))


# -- writing the header ---------------------------------------------------------------------------
def header_args(line: str) -> argparse.Namespace:
    """The arguments of a ``%%step ...`` line, unchecked beyond argparse (``parse_header``
    checks the values)."""
    try:
        words = shlex.split(line)[1:]
    except ValueError as err:
        raise TagError(f"bad %%step line: {err}", "check the quotes") from err
    return build_parser().parse_args(words)


def format_header(args: argparse.Namespace) -> str:
    """A ``%%step`` line from parsed arguments: the name, then every option that is set, in
    the order ``build_parser`` declares them, each value quoted for the shell."""
    words = [MAGIC]
    for action in build_parser()._actions:
        value = getattr(args, action.dest, None)
        if not action.option_strings:
            words.append(shlex.quote(str(value)))
        elif action.nargs == 0:  # a switch (--no-cache)
            if value is not None and value != action.default:
                words.append(action.option_strings[0])
        elif isinstance(value, list):
            items = [shlex.quote(str(v)) for v in value]
            if action.nargs == "+":
                words.extend([action.option_strings[0], *items] if items else [])
            else:  # appended: the option once per value
                words.extend(w for item in items for w in (action.option_strings[0], item))
        elif value is not None:
            words.extend([action.option_strings[0], shlex.quote(str(value))])
    return " ".join(words)


def rewrite_header(
    line: str, name: str, after: Iterable[str] = (), gpus: int = 0, image: str | None = None
) -> str:
    """``line`` with a new step name, ``--after``, ``--gpus`` (none for 0) and ``--image``; the
    other options stay, and a GPU ``--limit`` (under any of its names) gives way to ``--gpus``."""
    args = header_args(line)
    args.name = name
    args.after = list(dict.fromkeys(after))
    args.gpus = str(gpus) if gpus else None
    args.image = image or None
    args.limit = [item for item in args.limit if not _gpu_limit(item)]
    return format_header(args)


def _gpu_limit(item: str) -> bool:
    key = item.partition("=")[0]
    return RESOURCE_ALIASES.get(key, key) == GPU
