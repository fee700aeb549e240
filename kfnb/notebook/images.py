"""Container image references: the one check every reader of an image uses (``image:`` tags,
``%%step --image``, notebook metadata, backend options, ``kfnb compile --image``...).

The grammar is the OCI/Docker distribution reference, kept pragmatic::

    [REGISTRY[:PORT]/]NAME[/NAME...][:TAG][@ALGORITHM:HEX]

``NAME`` components are lowercase letters and digits joined by ``.``, ``_``, ``__`` or dashes;
the registry is a host name (or ``[IPv6]``) with an optional port; a tag is at most 128 word
characters, dots and dashes not starting with either; the repository (registry and names) is
at most 255 characters. Quotes, spaces, control characters and shell syntax are never part of
a reference, so a reference that passes is also safe to print in a command line or a YAML file.
"""

from __future__ import annotations

import re

MAX_NAME = 255  # the distribution spec's limit on a repository name (registry included)
MAX_TAG = 128
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-fA-F:]+\])"
_DOMAIN = rf"{_HOST}(?::[0-9]{{1,5}})?"
DOMAIN = re.compile(rf"^{_DOMAIN}$")
PATH = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG = re.compile(r"^[\w][\w.-]{0,127}$", re.ASCII)
DIGEST = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$")
IMAGE_FIX = "write REGISTRY/NAME:TAG, e.g. python:3.11 or ghcr.io/org/app:1.2 (or NAME@sha256:...)"


def image_problem(ref: object) -> str | None:
    """What is wrong with the image reference ``ref``, or ``None`` when it is well formed.
    The reason never repeats the reference (callers name it, shortened)."""
    if not isinstance(ref, str):
        return f"an image reference is text, not {type(ref).__name__}"
    if not ref:
        return "the image reference is empty"
    if len(ref) > MAX_NAME + MAX_TAG + 200:
        return f"the image reference is {len(ref)} characters long (a name is at most {MAX_NAME})"
    bad = next((c for c in ref if not c.isprintable() or c.isspace() or c in "'\"`$\\;|&<>"), None)
    if bad is not None:
        return f"an image reference cannot hold {bad!r}"
    if not ref.isascii():
        return "an image reference is ASCII only"
    rest, at, digest = ref.partition("@")
    if at and not DIGEST.match(digest):
        return "the digest after '@' is not ALGORITHM:HEX (e.g. sha256: and 64 hex digits)"
    name, tag = rest, ""
    slash, colon = rest.rfind("/"), rest.rfind(":")
    if colon > slash:  # a ':' after the last '/' starts the tag (an earlier one is a port)
        name, tag = rest[:colon], rest[colon + 1 :]
        if not TAG.match(tag):
            return (
                f"the tag must be at most {MAX_TAG} letters, digits, '_', '.' and '-', "
                "not starting with '.' or '-'"
            )
    if len(name) > MAX_NAME:
        return f"the image name is {len(name)} characters long, over the limit of {MAX_NAME}"
    first, slash_, path = name.partition("/")
    # as Docker reads it: the first part is a registry when it has a '.' or a ':' (a port), is
    # localhost or an [IPv6] address; else it is the first component of the name
    registry = slash_ and (any(c in first for c in ".:[") or first == "localhost")
    if registry and not DOMAIN.match(first):
        return "the registry is not HOST[:PORT] (a host name, or [IPv6], and a port number)"
    if not PATH.match(path if registry else name):
        if (path if registry else name) != (path if registry else name).lower():
            return "an image name is lowercase (only the registry host may have capitals)"
        return "the image name is not [REGISTRY[:PORT]/]NAME with lowercase NAME components"
    return None


def short_ref(ref: object, limit: int = 60) -> str:
    """``repr(ref)`` cut to ``limit`` characters: a 5,000-character reference is not printed."""
    text = repr(ref)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"
