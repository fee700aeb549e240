"""Edit the step one cell starts: the cell tools' one write, answered by the server.

The cell tools (a small form in the JupyterLab side panel: step name, after, GPUs, image) never
write tags themselves. They send the live notebook, the cell's index and the wanted settings;
:func:`edit_step` checks them with the grammar's own rules and answers the cell's new tags and
source, which the client applies to its model:

- a cell with a ``%%step`` header gets that line rewritten (``magic.rewrite_header``: every other
  option kept); its step tags go, as they would contradict the header;
- a cell without one gets its step tags replaced (``tags.write_step_tags``: other tags kept);
- ``name`` None clears the cell: no header, no step tags; it then continues the step above.

The answer is re-read (``magic.cell_directive``) before it leaves, so it always parses into the
declaration asked for. Refusals are ``NotebookError``s located at the cell, with a fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..dag import GPU, Cell, check_step_name
from ..errors import NotebookError, PipelineError
from .cells import EDITABLE_ROLES, cell_source, cell_tags, declaration
from .magic import cell_directive, rewrite_header, split_header
from .parser import unknown_step_fix
from .tags import Directive, TagError, parse_image, parse_limit, parse_tags, step_tags
from .tags import write_step_tags as replace_step_tags

#: The fields of a step edit (the REST contract's ``StepSettings``).
SETTINGS = ("name", "after", "gpus", "image")


@dataclass(frozen=True)
class StepSettings:
    """What the cell tools ask of a cell: the step it starts (None: none) and that step's
    explicit upstream steps, GPU count and image."""

    name: str | None
    after: tuple[str, ...] = ()
    gpus: int = 0
    image: str | None = None


def edit_step(
    nb: Mapping[str, Any], index: int, settings: Mapping[str, Any], path: str | None = None
) -> dict[str, Any]:
    """The new ``{"index", "tags", "source"}`` of cell ``index`` of ``nb`` once it starts the
    step ``settings`` describe (``{"name", "after", "gpus", "image"}``; ``name`` None clears
    it). ``path`` only locates errors. Raises ``NotebookError`` for an edit the grammar refuses."""
    cells = list(nb.get("cells", []))
    cell = _editable_cell(cells, index, path)
    at = _At(index, cell, path)
    header = split_header(cell_source(cell))[0]
    wanted = _read_settings(settings, at)
    _check(wanted, cells, at, header is not None)
    tags, source = _write(cell, header, wanted, at)
    _prove(tags, source, wanted, at)
    return {"index": index, "tags": tags, "source": source}


@dataclass(frozen=True)
class _At:
    """Where an edit happens: makes the errors that name the cell."""

    index: int
    cell: Mapping[str, Any]
    path: str | None

    def error(self, message: str, fix: str | None) -> NotebookError:
        line = Cell(self.index, cell_source(self.cell)).first_line
        return NotebookError(
            message, cell_index=self.index, cell_line=line, fix=fix, path=self.path
        )


def _editable_cell(cells: list[Any], index: int, path: str | None) -> Mapping[str, Any]:
    """Cell ``index``, when the cell tools may edit its step: a code cell with no section role."""
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(cells):
        raise NotebookError(
            f"the notebook has no cell {index!r}: it has {len(cells)} cells",
            fix=f"give a cell index from 0 to {len(cells) - 1}" if cells else "add a code cell",
            path=path,
        )
    cell: Mapping[str, Any] = cells[index]
    at = _At(index, cell, path)
    kind = cell.get("cell_type")
    if kind != "code":
        raise at.error(f"this is a {kind} cell; only code cells run in steps", "pick a code cell")
    d = declaration(cell)  # None: unreadable tags, which the edit may repair
    if d is not None and d.role not in EDITABLE_ROLES:
        header = split_header(cell_source(cell))[0]
        what = "a skipped cell" if d.role == "skip" else f"the {d.role} cell"
        if header is not None:
            fix = f"change its first line, {header.strip()!r}, to name a step"
        else:
            fix = f"remove its {_role_tag(cell_tags(cell), d.role)!r} tag to make it a step cell"
        raise at.error(f"this is {what}, not a step cell", fix)
    return cell


def _role_tag(tags: list[Any], role: str | None) -> str:
    for tag in tags:
        try:
            if isinstance(tag, str) and parse_tags([tag]).role == role:
                return tag
        except TagError:
            continue
    return str(role)


def _read_settings(settings: Mapping[str, Any], at: _At) -> StepSettings:
    """The settings, typed; an empty name or image means none."""
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise at.error(
            f"unknown step setting(s) {', '.join(unknown)}", "send " + ", ".join(SETTINGS)
        )
    name, after = settings.get("name"), settings.get("after", [])
    gpus, image = settings.get("gpus", 0), settings.get("image")
    if name is not None and not isinstance(name, str):
        raise at.error(f"the step name must be text or null, not {name!r}", "send a step name")
    if not isinstance(after, Sequence) or isinstance(after, str):
        raise at.error(f"after must be a list of step names, not {after!r}", "send a list")
    if not all(isinstance(a, str) for a in after):
        raise at.error(f"after must be a list of step names, not {after!r}", "send a list")
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0:
        raise at.error(
            f"GPUs must be a whole number, 0 or more, not {gpus!r}", "give 0 for none, or e.g. 1"
        )
    if image is not None and not isinstance(image, str):
        raise at.error(f"the image must be text or null, not {image!r}", "send an image reference")
    return StepSettings(
        name=(name or "").strip() or None,
        after=tuple(dict.fromkeys(after)),
        gpus=gpus,
        image=(image or "").strip() or None,
    )


def _check(wanted: StepSettings, cells: list[Any], at: _At, magic: bool) -> None:
    """The rules of the grammar and of the parser, checked on the wanted settings."""
    name = wanted.name
    if name is None:
        if wanted.after or wanted.gpus or wanted.image:
            raise at.error(
                "after, GPUs and an image belong to a step, and this edit names none",
                "name the step, or clear after, GPUs and image",
            )
        return
    try:
        check_step_name(name)  # the step-name rule and the reserved names (section words too)
    except PipelineError as err:
        raise at.error(err.message, err.fix) from err
    above: list[str] = []
    for i, other in enumerate(cells):
        d = declaration(other) if i != at.index and other.get("cell_type") == "code" else None
        if d is None or d.role != "step" or d.step is None:
            continue
        if d.step == name:
            raise at.error(
                f"step {name!r} is already defined at cell {i}", "give this cell its own step name"
            )
        if i < at.index and d.step not in above:
            above.append(d.step)
    for dep in wanted.after:
        if dep == name:
            raise at.error(f"step {name!r} cannot run after itself", f"remove {dep!r} from after")
        if dep not in above:
            raise at.error(
                f"after: {dep!r} names no step defined above this cell",
                unknown_step_fix(dep, above),
            )
    try:
        tag = f"--gpus {wanted.gpus}" if magic else f"limit:{GPU}:{wanted.gpus}"
        parse_limit(GPU, str(wanted.gpus), tag)
        if wanted.image is not None:
            parse_image(
                wanted.image, f"--image {wanted.image}" if magic else f"image:{wanted.image}"
            )
    except TagError as err:
        raise at.error(err.message, err.fix) from err


def _write(
    cell: Mapping[str, Any], header: str | None, wanted: StepSettings, at: _At
) -> tuple[list[str], str]:
    """The cell's new tags and source."""
    tags, source = cell_tags(cell), cell_source(cell)
    if header is None:
        new = [] if wanted.name is None else step_tags(wanted.name, *_settings(wanted))
        return replace_step_tags(tags, new), source
    rest = source.lstrip()[len(header) :]  # the newline after the header, then the body
    if wanted.name is None:
        return replace_step_tags(tags, []), rest.removeprefix("\n")
    try:
        line = rewrite_header(header, wanted.name, *_settings(wanted))
    except TagError as err:
        raise at.error(err.message, err.fix) from err
    return replace_step_tags(tags, []), line + rest


def _settings(wanted: StepSettings) -> tuple[tuple[str, ...], int, str | None]:
    return wanted.after, wanted.gpus, wanted.image


def _prove(tags: list[str], source: str, wanted: StepSettings, at: _At) -> None:
    """Re-read the edited cell: it must parse, and declare what was asked."""
    try:
        d = cell_directive(tags, source)
    except TagError as err:
        raise at.error(err.message, err.fix) from err
    if wanted.name is None:
        asked = Directive()
        got = Directive(role=d.role, step=d.step)
    else:
        gpus = {GPU: str(wanted.gpus)} if wanted.gpus else {}
        asked = Directive("step", wanted.name, list(wanted.after), gpus, wanted.image)
        got = Directive(d.role, d.step, d.prev, {k: v for k, v in d.resources.items() if k == GPU})
        got.image = d.image
    if got != asked:
        raise at.error(
            f"the cell's other tags keep it from what was asked: it would declare {_what(got)}",
            "remove the cell's other kfnb tags that declare a step or section, then edit again",
        )


def _what(d: Directive) -> str:
    if d.role is None:
        return "no step"
    return f"step {d.step!r}" if d.role == "step" else f"the {d.role} section"
