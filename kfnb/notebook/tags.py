"""The cell tag language (Kale-compatible) and what one cell's tags say.

A cell's tags become one ``Directive``: the cell's *role* (a step, the imports/functions prelude,
the parameters, the metrics, skipped, or ``None`` for "continue the section above") plus the
step settings the tags carry. Tags of other tools (``hide-input``, ``remove-cell``, ...) are
ignored, but a tag that is *almost* one of ours (``setp:train``, ``import``) is an error that
suggests the right spelling: a silently ignored typo would silently change the pipeline.

The language is written here too: :func:`write_step_tags` gives a cell's new tag list when the
cell tools rename a step or change what it runs after, its GPUs or its image (the *step tags*,
:func:`is_step_tag`, replaced; every other tag kept where it was).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from ..dag import GPU, Toleration
from .images import IMAGE_FIX, image_problem, short_ref

Role = Literal["step", "imports", "functions", "parameters", "metrics", "skip"]

WORD_TAGS: dict[str, Role] = {
    "skip": "skip",
    "imports": "imports",
    "functions": "functions",
    "pipeline-parameters": "parameters",
    "parameters": "parameters",  # papermill's
    "injected-parameters": "parameters",  # papermill's, in an already executed notebook
    "pipeline-metrics": "metrics",
}
PREFIXES = (
    "step",
    "block",
    "prev",
    "limit",
    "image",
    "label",
    "annotation",
    "retries",
    "timeout",
    "cache",
    "env",
    "node-selector",
    "toleration",
)
# Kale reads a step named like a section as that section: `step:imports` (and the older
# `block:imports`) is an imports cell, `step:skip` a skipped one.
SECTION_STEP_NAMES = frozenset(WORD_TAGS) - {"parameters", "injected-parameters"}
CACHE_VALUES = {"on": True, "off": False, "enabled": True, "disabled": False}
RESOURCE_ALIASES = {"gpu": GPU, "gpus": GPU, "mem": "memory"}
QUANTITY = re.compile(r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[KMGTPE]i?|[mkunpE])?$")
RESOURCE = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$")
_SEGMENT = r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?"
META_KEY = re.compile(rf"^({_SEGMENT}/)?{_SEGMENT}$")
LABEL_VALUE = re.compile(rf"^({_SEGMENT})?$")  # at most 63 characters, checked apart
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
KFNB_ENV = ("KFNB_HOME", "KFNB_RUN_ID", "KFNB_STEP")  # set by kfnb in every step
DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?)(s|m|h)?$")
_UNITS = {"s": 1, "m": 60, "h": 3600, None: 1}


class TagError(ValueError):
    """A tag that cannot be understood; the parser adds the cell it was found on."""

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix


@dataclass
class Directive:
    """What one cell declares, from its tags or its ``%%step`` header."""

    role: Role | None = None
    step: str | None = None
    prev: list[str] = field(default_factory=list)
    resources: dict[str, str] = field(default_factory=dict)
    image: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    retries: int | None = None
    timeout: float | None = None
    cache: bool | None = None
    env: dict[str, str] = field(default_factory=dict)
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[Toleration] = field(default_factory=list)

    @property
    def has_settings(self) -> bool:
        return bool(
            self.prev
            or self.resources
            or self.image
            or self.labels
            or self.annotations
            or self.retries is not None
            or self.timeout is not None
            or self.cache is not None
            or self.env
            or self.node_selector
            or self.tolerations
        )

    def merge(self, other: Directive) -> Directive:
        """Combine two directives of one cell (tags and magic); conflicting roles raise."""
        if other.role and self.role and (other.role, other.step) != (self.role, self.step):
            raise TagError(
                f"the cell's tags say {_describe(self)} but its %%step line says "
                f"{_describe(other)}",
                "keep one of them",
            )
        return Directive(
            role=self.role or other.role,
            step=self.step or other.step,
            prev=list(dict.fromkeys([*self.prev, *other.prev])),
            resources={**self.resources, **other.resources},
            image=other.image or self.image,
            labels={**self.labels, **other.labels},
            annotations={**self.annotations, **other.annotations},
            retries=other.retries if other.retries is not None else self.retries,
            timeout=other.timeout if other.timeout is not None else self.timeout,
            cache=other.cache if other.cache is not None else self.cache,
            env={**self.env, **other.env},
            node_selector={**self.node_selector, **other.node_selector},
            tolerations=list(dict.fromkeys([*self.tolerations, *other.tolerations])),
        )


def parse_tags(tags: Iterable[object]) -> Directive:
    """Read a cell's tags. Raises ``TagError`` for malformed or misspelt kfnb tags."""
    d = Directive()
    for tag in tags:
        if not isinstance(tag, str):
            raise TagError(f"tag {tag!r} is not a string", "remove it from the cell's tags")
        tag = tag.strip()
        if tag in WORD_TAGS:
            _set_role(d, WORD_TAGS[tag], None, tag)
            continue
        prefix, sep, rest = tag.partition(":")
        if sep and prefix in PREFIXES:
            _apply_prefixed(d, prefix, rest, tag)
        elif sep and prefix == "notebook":
            raise TagError(
                f"tag {tag!r} asks for Kale's notebook composition (another notebook as a "
                "sub-pipeline), which kfnb does not support",
                "copy that notebook's tagged cells into this one, or run it as a pipeline "
                "of its own",
            )
        else:
            _check_foreign(tag)
    return d


def _apply_prefixed(d: Directive, prefix: str, rest: str, tag: str) -> None:
    if prefix in ("step", "block"):
        if rest in SECTION_STEP_NAMES:  # Kale reads `step:imports` as the imports section
            _set_role(d, WORD_TAGS[rest], None, tag)
        elif rest:  # Kale writes an empty "block:" for untagged cells; treat it so.
            _set_role(d, "step", rest, tag)
    elif prefix == "prev":
        if not rest:
            raise TagError(f"tag {tag!r} names no step", "write prev:STEP_NAME")
        d.prev.append(rest)
    elif prefix == "limit":
        key, _, value = rest.rpartition(":")
        name, quantity = parse_limit(key, value, tag)
        d.resources[name] = quantity
    elif prefix == "image":
        d.image = parse_image(rest, tag)
    elif prefix in ("label", "annotation"):
        key, value = parse_meta(rest, tag, prefix)
        (d.labels if prefix == "label" else d.annotations)[key] = value
    elif prefix == "retries":
        d.retries = parse_retries(rest, tag)
    elif prefix == "timeout":
        d.timeout = parse_timeout(rest, tag)
    elif prefix == "cache":
        d.cache = parse_cache(rest, tag)
    elif prefix == "env":
        name, sep, value = rest.partition(":")
        name, value = parse_env(name, value if sep else None, tag)
        d.env[name] = value
    elif prefix == "node-selector":
        key, sep, value = rest.partition(":")
        key, value = parse_node_selector(key, value if sep else None, tag)
        d.node_selector[key] = value
    elif prefix == "toleration":
        toleration = parse_toleration(rest, tag)
        if toleration not in d.tolerations:
            d.tolerations.append(toleration)


def _set_role(d: Directive, role: Role, step: str | None, tag: str) -> None:
    if d.role is not None and (d.role, d.step) != (role, step):
        raise TagError(
            f"tag {tag!r} conflicts with {_describe(d)}: a cell belongs to one step or section",
            "keep one of the two tags",
        )
    d.role, d.step = role, step


def _describe(d: Directive) -> str:
    return f"step:{d.step}" if d.role == "step" else f"{d.role!r}"


def _check_foreign(tag: str) -> None:
    """Let other tools' tags through; stop near-misses of kfnb's own tags."""
    head = tag.partition(":")[0]
    if ":" in tag:
        close = difflib.get_close_matches(head, PREFIXES, n=1, cutoff=0.75)
        if close:
            fixed = close[0] + tag[len(head) :]
            raise TagError(f"unknown tag {tag!r}", f"did you mean {fixed!r}?")
        return
    words = [*WORD_TAGS, *PREFIXES]
    close = difflib.get_close_matches(tag, words, n=1, cutoff=0.8)
    if close:
        fixed = close[0] if close[0] in WORD_TAGS else f"{close[0]}:NAME"
        raise TagError(f"unknown tag {tag!r}", f"did you mean {fixed!r}?")


def parse_limit(key: str, value: str, tag: str) -> tuple[str, str]:
    """``limit:RESOURCE:VALUE`` -> (resource name, quantity), checked like Kubernetes does."""
    if not key or not value:
        raise TagError(
            f"tag {tag!r} needs a resource and a value",
            "write limit:RESOURCE:VALUE, e.g. limit:nvidia.com/gpu:1 or limit:memory:4Gi",
        )
    name = RESOURCE_ALIASES.get(key, key)
    if not RESOURCE.match(name):
        raise TagError(
            f"{key!r} in tag {tag!r} is not a Kubernetes resource name",
            "use cpu, memory, nvidia.com/gpu or another vendor/resource name",
        )
    if not QUANTITY.match(value):
        raise TagError(
            f"{value!r} in tag {tag!r} is not a Kubernetes quantity",
            "write a number with an optional unit, e.g. 2, 500m, 4Gi",
        )
    if name.endswith("/gpu") and not (value.isascii() and value.isdigit()):
        raise TagError(
            f"a GPU count must be a whole number, not {short_ref(value)} (tag {short_ref(tag)})",
            f"write limit:{name}:1",
        )
    if name.endswith("/gpu") and (len(value) > 5 or int(value) > MAX_GPUS):
        raise TagError(
            f"{short_ref(tag)} asks for more than {MAX_GPUS} GPUs (the limit)",
            f"ask for at most {MAX_GPUS}, e.g. limit:{name}:1",
        )
    problem = quantity_problem(name, value)
    if problem is not None:
        raise TagError(f"{short_ref(tag)}: {problem}", "write e.g. limit:cpu:2 or limit:memory:4Gi")
    return name, value


#: Bounds of a step's CPU and memory limits: 1 millicore to 4096 cores, 1 byte to 64 TiB. A
#: value outside them is a typo (``limit:memory:4`` is 4 bytes, ``limit:cpu:2000`` 2000 cores).
_QUANTITY_BOUNDS = {"cpu": (1e-3, 4096.0), "memory": (1.0, 64 * 2.0**40)}
_SUFFIX = {
    **{s: 1000.0**i for i, s in enumerate(("", "k", "M", "G", "T", "P", "E"))},
    **{s: 1024.0**i for i, s in enumerate(("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")) if s},
    "m": 1e-3,
    "u": 1e-6,
    "n": 1e-9,
    "p": 1e-12,
}


def quantity_problem(name: str, value: str) -> str | None:
    """Whether a CPU or memory quantity is outside sane bounds (``None``: it is fine)."""
    if name not in _QUANTITY_BOUNDS or len(value) > 40:
        return None if name not in _QUANTITY_BOUNDS else f"{name} quantity too long"
    m = re.match(r"^\+?([0-9.]+(?:[eE][+-]?[0-9]+)?)([A-Za-z]*)$", value)
    if m is None or m.group(2) not in _SUFFIX:
        return None  # QUANTITY accepted it; leave odd spellings to Kubernetes
    try:
        amount = float(m.group(1)) * _SUFFIX[m.group(2)]
    except (ValueError, OverflowError):
        return f"{name} quantity is not a number"
    low, high = _QUANTITY_BOUNDS[name]
    if not low <= amount <= high:
        shown = "1m (a thousandth of a core) and 4096" if name == "cpu" else "1 byte and 64Ti"
        return f"a {name} limit must be between {shown}"
    return None


def parse_image(ref: str, tag: str) -> str:
    """An ``image:REF`` tag's (``--image REF``'s) reference, checked by ``images.image_problem``
    (the one check of every image reference)."""
    problem = image_problem(ref)
    if problem is not None:
        raise TagError(
            f"tag {short_ref(tag)} has no valid image reference: {problem}",
            _written(tag, "write image:REGISTRY/NAME:TAG, e.g. image:python:3.11", IMAGE_FIX),
        )
    return ref


def parse_meta(rest: str, tag: str, kind: str) -> tuple[str, str]:
    key, sep, value = rest.partition(":")
    if not sep or not META_KEY.match(key) or len(key) > 253:
        raise TagError(
            f"tag {tag!r} is not {kind}:KEY:VALUE with a Kubernetes key",
            f"write {kind}:KEY:VALUE, e.g. {kind}:team:vision",
        )
    return key, value


#: The most retries a step may ask for: a failing step retried more than this is failing for good
#: (and each retry reruns the step's whole notebook).
MAX_RETRIES = 100
#: The longest step timeout: 30 days; a longer one is no timeout at all (leave it out).
MAX_TIMEOUT = 30 * 24 * 3600
#: The most GPUs one step may ask for (the largest nodes have 8 or 16; room for more).
MAX_GPUS = 1024


def parse_retries(text: str, tag: str) -> int:
    text = text.strip()
    if not text.isascii() or not text.isdigit():
        raise TagError(
            f"{short_ref(tag)} needs a whole number of retries",
            _written(tag, "write e.g. retries:2", "write e.g. --retries 2"),
        )
    if len(text) > 6 or int(text) > MAX_RETRIES:
        raise TagError(
            f"{short_ref(tag)} asks for more than {MAX_RETRIES} retries (the limit)",
            f"ask for at most {MAX_RETRIES}, e.g. " + _written(tag, "retries:3", "--retries 3"),
        )
    return int(text)


def parse_cache(text: str, tag: str) -> bool:
    """``cache:on``/``cache:off``, or Kale's spelling ``cache:enabled``/``cache:disabled``."""
    value = text.strip().lower()
    if value not in CACHE_VALUES:
        raise TagError(
            f"tag {tag!r} must be cache:off or cache:on",
            "write cache:off to always run this step",
        )
    return CACHE_VALUES[value]


def parse_timeout(text: str, tag: str) -> float:
    m = DURATION.match(text.strip()) if len(text) <= 40 else None
    if not m or float(m.group(1)) <= 0:
        raise TagError(
            f"{short_ref(tag)} needs a positive duration",
            "write seconds (timeout:90) or with a unit (timeout:30m, timeout:2h)",
        )
    seconds = float(m.group(1)) * _UNITS[m.group(3)]
    if seconds > MAX_TIMEOUT:
        raise TagError(
            f"{short_ref(tag)} is longer than 30 days (the limit)",
            "give a shorter timeout (e.g. timeout:24h), or none",
        )
    return seconds


def _written(tag: str, tag_form: str, option_form: str) -> str:
    """How to write a setting where ``tag`` came from: a cell tag or a ``%%step`` option."""
    return option_form if tag.startswith("--") else tag_form


def parse_env(name: str, value: str | None, tag: str) -> tuple[str, str]:
    """``env:NAME:VALUE`` (``--env NAME=VALUE``) -> (name, value); the value may hold ':' and
    may be empty (``env:NAME:``). ``value`` is ``None`` when the tag has no separator."""
    if not name or value is None:
        raise TagError(
            f"tag {tag!r} is not " + _written(tag, "env:NAME:VALUE", "--env NAME=VALUE"),
            _written(
                tag,
                "write env:NAME:VALUE, e.g. env:LOG_LEVEL:debug",
                "write --env NAME=VALUE, e.g. --env LOG_LEVEL=debug",
            ),
        )
    if len(name) > 253:
        raise TagError(
            f"the environment variable name in tag {short_ref(tag)} is {len(name)} characters "
            "long, over the limit of 253",
            "use a shorter name",
        )
    if not ENV_NAME.match(name):
        fixed = re.sub(r"[^A-Za-z0-9_]", "_", name)
        fixed = fixed if ENV_NAME.match(fixed) else "_" + fixed
        raise TagError(
            f"{name!r} in tag {tag!r} is not an environment variable name: use "
            "letters, digits and '_', not starting with a digit",
            _written(tag, f"write env:{fixed}:{value}", f"write --env {fixed}={value}"),
        )
    if name in KFNB_ENV:
        raise TagError(
            f"{name} in tag {tag!r} is set by kfnb for every step",
            "use another name for your variable",
        )
    return name, value


def parse_node_selector(key: str, value: str | None, tag: str) -> tuple[str, str]:
    """``node-selector:KEY:VALUE`` (``--node-selector KEY=VALUE``): a node label to match."""
    if value is None or not META_KEY.match(key) or len(key) > 253:
        raise TagError(
            f"tag {tag!r} is not "
            + _written(tag, "node-selector:KEY:VALUE", "--node-selector KEY=VALUE")
            + " with a Kubernetes label key",
            _written(
                tag,
                "write node-selector:KEY:VALUE, e.g. node-selector:kubernetes.io/arch:amd64",
                "write --node-selector KEY=VALUE, e.g. --node-selector kubernetes.io/arch=amd64",
            ),
        )
    if not LABEL_VALUE.match(value) or len(value) > 63:
        raise TagError(
            f"{value!r} in tag {tag!r} is not a Kubernetes label value",
            "use at most 63 letters, digits, '-', '_' and '.', starting and ending "
            "with a letter or digit",
        )
    return key, value


def parse_toleration(spec: str, tag: str) -> Toleration:
    """A toleration in kubectl taint syntax: ``KEY=VALUE:EFFECT`` (operator Equal),
    ``KEY:EFFECT`` (Exists), ``KEY`` (Exists, any effect); ``KEY=VALUE`` matches any effect."""
    usage = _written(
        tag,
        "write toleration:KEY=VALUE:EFFECT, toleration:KEY:EFFECT or "
        "toleration:KEY, e.g. toleration:nvidia.com/gpu=present:NoSchedule",
        "write --toleration KEY=VALUE:EFFECT, KEY:EFFECT or KEY, e.g. "
        "--toleration nvidia.com/gpu=present:NoSchedule",
    )
    head, sep, effect = spec.strip().partition(":")
    key, eq, value = head.partition("=")
    if not key:
        raise TagError(f"tag {tag!r} names no taint key", usage)
    if not META_KEY.match(key) or len(key) > 253:
        raise TagError(f"{key!r} in tag {tag!r} is not a Kubernetes taint key", usage)
    if eq and (not value or not LABEL_VALUE.match(value) or len(value) > 63):
        raise TagError(
            f"{value!r} in tag {tag!r} is not a taint value"
            if value
            else f"tag {tag!r} has '=' but no taint value",
            _written(
                tag,
                f"write toleration:{key}:EFFECT to tolerate any value",
                f"write --toleration {key}:EFFECT to tolerate any value",
            )
            if not value
            else "use at most 63 letters, digits, '-', '_' and '.', starting and ending with a "
            "letter or digit",
        )
    if sep and effect not in EFFECTS:
        close = difflib.get_close_matches(
            effect.lower(), [e.lower() for e in EFFECTS], n=1, cutoff=0.6
        )
        hint = next((e for e in EFFECTS if close and e.lower() == close[0]), None)
        fixed = f"{head}:{hint}"
        raise TagError(
            (
                f"{effect!r} in tag {tag!r} is not a taint effect"
                if effect
                else f"tag {tag!r} has ':' but no taint effect"
            )
            + ": use "
            + ", ".join(EFFECTS),
            _written(
                tag, f"did you mean 'toleration:{fixed}'?", f"did you mean '--toleration {fixed}'?"
            )
            if hint
            else usage,
        )
    return Toleration(
        key=key,
        operator="Equal" if eq else "Exists",
        value=value if eq else None,
        effect=effect if sep else None,
    )


# -- writing the language -----------------------------------------------------------------------
def is_step_tag(tag: object) -> bool:
    """Whether ``tag`` is one the cell tools own: ``step:``/``block:``, ``prev:``, ``image:`` and
    the GPU limit under any of its names (``limit:gpu:1``, ``limit:nvidia.com/gpu:1``)."""
    if not isinstance(tag, str):
        return False
    prefix, sep, rest = tag.strip().partition(":")
    if not sep:
        return False
    if prefix in ("step", "block"):
        return rest not in SECTION_STEP_NAMES  # `step:imports` is a section, not a step
    if prefix in ("prev", "image"):
        return True
    if prefix == "limit":
        key = rest.rpartition(":")[0]
        return RESOURCE_ALIASES.get(key, key) == GPU
    return False


def step_tags(
    name: str, after: Iterable[str] = (), gpus: int = 0, image: str | None = None
) -> list[str]:
    """The tags that declare step ``name`` with these settings, in the order kfnb writes them."""
    tags = [f"step:{name}", *(f"prev:{a}" for a in dict.fromkeys(after))]
    if gpus:
        tags.append(f"limit:{GPU}:{gpus}")
    if image:
        tags.append(f"image:{image}")
    return tags


def write_step_tags(tags: Iterable[object], new: list[str]) -> list[str]:
    """``tags`` with their step tags replaced by ``new`` (``[]`` removes them): the new tags go
    where the first old step tag was (first when there was none), other tags stay in place.
    Tags that are no strings are dropped (``parse_tags`` refuses them)."""
    kept: list[str] = []
    at: int | None = None
    for tag in tags:
        if not isinstance(tag, str):
            continue
        if is_step_tag(tag):
            at = len(kept) if at is None else at
        else:
            kept.append(tag)
    at = 0 if at is None else at
    return [*kept[:at], *new, *kept[at:]]
