/**
 * Cell tools: a compact editor of the active cell's step, and the step badges on cells.
 *
 * The server is the one authority on the tag language: what a cell declares, which step it
 * runs in and what is wrong with it come from the pipeline view (`view.cells`, `problems`), and
 * an edit is the server's answer to `POST cells/step` (the cell's new tags and source: a
 * `%%step` header rewritten, or step tags replaced), which the tools write into the cell. No
 * tag is parsed or composed here.
 *
 * `CellBadges` puts a `kfnb-CellBadge` in the header of every cell that declares a step (by
 * tags or by a `%%step` line) or a section (imports, functions, parameters, metrics, skip).
 */
import { Cell } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';

import {
  errorMessage,
  ICellInfo,
  IPipelineView,
  IStepEdit,
  IStepSettings
} from './api';
import { h } from './dom';

/** Asks the server for the edit of cell `index` (the panel knows the notebook and its path). */
export type StepEditor = (
  index: number,
  step: IStepSettings
) => Promise<IStepEdit>;

/** The server's word on `cell` (the `index`-th of its notebook): by cell id, else by index. */
export function cellInfo(
  view: IPipelineView | null,
  cell: Cell,
  index: number
): ICellInfo | null {
  const cells = view?.cells ?? [];
  const id = cell.model.id;
  if (id && cells.some(c => c.id)) {
    return cells.find(c => c.id === id) ?? null; // a cell added since: not described yet
  }
  return cells[index] ?? null;
}

/** What the badge of a cell says, or null for no badge. */
export function badgeOf(
  info: ICellInfo | null
): { text: string; kind: string; title: string } | null {
  if (!info || info.type !== 'code') {
    return null;
  }
  if (info.role && info.role !== 'step') {
    return {
      text: info.role,
      kind: info.role,
      title: `kfnb: the ${info.role} cell`
    };
  }
  if (!info.starts || !info.step) {
    return null;
  }
  const extras = [
    info.after.length ? `after ${info.after.join(', ')}` : '',
    info.gpus > 0 ? `GPU ${info.gpus}` : '',
    info.image ?? '',
    info.declared_by === 'magic' ? 'its %%step line' : ''
  ].filter(Boolean);
  return {
    text: info.step,
    kind: 'step',
    title: `kfnb step “${info.step}”${extras.length ? ` (${extras.join('; ')})` : ''}`
  };
}

/** One line: what cell `index` is in the pipeline now. */
export function cellStatus(info: ICellInfo | null, index: number): string {
  if (!info) {
    return `Cell ${index}: reading the pipeline…`;
  }
  if (info.type !== 'code') {
    return `Cell ${index} is a ${info.type} cell: only code cells run in steps.`;
  }
  if (info.role && info.role !== 'step') {
    return `Cell ${index} is the ${info.role} cell${info.role === 'skip' ? ' (not run)' : ''}.`;
  }
  if (info.starts && info.step) {
    const how = info.declared_by === 'magic' ? ' (its %%step line)' : '';
    return `Cell ${index} starts step “${info.step}”${how}.`;
  }
  return info.step
    ? `Cell ${index} continues step “${info.step}”. Name a step to start one here.`
    : `Cell ${index} starts no step. Name a step to start one here.`;
}

/** The editor of the active cell's step. */
export class CellTools {
  readonly node = h('div', { class: 'kfnb-CellTools' });

  constructor(private readonly _edit: StepEditor) {}

  /** Follow `cell` of `panel` (null: no notebook or no active cell). */
  setCell(panel: NotebookPanel | null, cell: Cell | null): void {
    if (this._cell !== cell) {
      this._cell = cell && !cell.isDisposed ? cell : null;
      this._panel = panel;
      this._render(true);
    }
  }

  /** The latest pipeline view: the cells' declarations, steps and problems. */
  setPipeline(view: IPipelineView | null): void {
    this._view = view;
    const editing = this.node.contains(document.activeElement);
    this._render(!editing);
  }

  dispose(): void {
    this._cell = null;
  }

  private _index(): number {
    const cell = this._cell;
    return cell && this._panel ? this._panel.content.widgets.indexOf(cell) : -1;
  }

  /** Redraw; `force` also redraws the form when what it shows did not change. */
  private _render(force: boolean): void {
    const cell = this._cell;
    const index = this._index();
    if (!cell || index < 0) {
      this._renderedKey = '';
      this.node.replaceChildren(
        h(
          'p',
          { class: 'kfnb-Muted' },
          'Select a cell of the notebook to tag it.'
        )
      );
      return;
    }
    const info = cellInfo(this._view, cell, index);
    const problems = (this._view?.problems ?? []).filter(
      p => p.cell_index === index
    );
    const key = JSON.stringify([index, info, this._stepsAbove(index)]);
    this._status.textContent = cellStatus(info, index);
    this._problems.replaceChildren(
      ...problems.map(p =>
        h(
          'p',
          { class: 'kfnb-CellTools-problem' },
          p.message,
          p.fix ? h('span', { class: 'kfnb-Problem-fix' }, ` ${p.fix}`) : ''
        )
      )
    );
    if (!force && key === this._renderedKey) {
      return;
    }
    this._renderedKey = key;
    this._error.textContent = '';
    const parts: Node[] = [this._status, this._problems];
    if (info?.editable) {
      parts.push(this._form(index, info));
    }
    this.node.replaceChildren(...parts);
  }

  /** The steps declared by cells above `index`, in notebook order. */
  private _stepsAbove(index: number): string[] {
    return (this._view?.cells ?? [])
      .filter(c => c.index < index && c.starts && c.step)
      .map(c => c.step!);
  }

  /** A checkbox for each step above the cell (and each `after` it names that is not). */
  private _afterChoices(index: number, info: ICellInfo): HTMLElement {
    const prev = h('div', {
      class: 'kfnb-CellTools-prev',
      role: 'group',
      'aria-label': 'after'
    });
    const above = this._stepsAbove(index);
    const known = new Set(above);
    for (const step of [...above, ...info.after.filter(p => !known.has(p))]) {
      const box = h('input', {
        type: 'checkbox',
        value: step,
        checked: info.after.includes(step)
      });
      prev.append(
        h(
          'label',
          { class: 'kfnb-Chip', title: `run after ${step}` },
          box,
          step
        )
      );
    }
    if (!prev.childElementCount) {
      prev.append(h('span', { class: 'kfnb-Muted' }, 'no steps above'));
    }
    return prev;
  }

  /** What the step receives anyway (data edges need no `after`); nothing when nothing. */
  private _received(current: string | null): HTMLElement | string {
    const step = this._view?.pipeline?.steps.find(st => st.name === current);
    const inputs = Object.entries(step?.inputs ?? {});
    if (!inputs.length) {
      return '';
    }
    return h(
      'div',
      { class: 'kfnb-Field' },
      h('span', {}),
      h(
        'span',
        { class: 'kfnb-Muted kfnb-CellTools-inputs' },
        'receives ',
        inputs.map(([n, from]) => `${n} ← ${from}`).join(', ')
      )
    );
  }

  private _form(index: number, info: ICellInfo): HTMLElement {
    const current = info.starts ? info.step : null;
    const name = h('input', {
      class: 'kfnb-Input kfnb-CellTools-name',
      type: 'text',
      placeholder: 'step name',
      value: current ?? '',
      'aria-label': 'step name',
      spellcheck: 'false'
    });
    const gpus = h('input', {
      class: 'kfnb-Input kfnb-CellTools-gpus',
      type: 'number',
      min: 0,
      step: 1,
      value: info.gpus,
      'aria-label': 'GPUs'
    });
    const image = h('input', {
      class: 'kfnb-Input kfnb-CellTools-image',
      type: 'text',
      placeholder: 'image (default: the pipeline’s)',
      value: info.image ?? '',
      'aria-label': 'container image',
      spellcheck: 'false'
    });
    const prev = this._afterChoices(index, info);
    const received = this._received(current);
    const apply = h(
      'button',
      { class: 'jp-mod-styled jp-mod-accept kfnb-CellTools-apply' },
      'Apply'
    );
    const clear = h(
      'button',
      {
        class: 'jp-mod-styled kfnb-CellTools-clear',
        title: 'The cell starts no step: it continues the step above'
      },
      'Clear'
    );
    const read = (): IStepSettings => ({
      name: name.value.trim() || null,
      after: Array.from(
        prev.querySelectorAll<HTMLInputElement>('input:checked')
      ).map(b => b.value),
      gpus: gpus.value === '' ? 0 : Number(gpus.value),
      image: image.value.trim() || null
    });
    apply.addEventListener('click', () => void this._apply(read()));
    clear.addEventListener(
      'click',
      () => void this._apply({ name: null, after: [], gpus: 0, image: null })
    );
    name.addEventListener('keydown', event => {
      if (event.key === 'Enter') {
        void this._apply(read());
      }
    });
    return h(
      'div',
      { class: 'kfnb-Form' },
      h('label', { class: 'kfnb-Field' }, h('span', {}, 'Step'), name),
      h('div', { class: 'kfnb-Field' }, h('span', {}, 'After'), prev),
      received,
      h('label', { class: 'kfnb-Field' }, h('span', {}, 'GPUs'), gpus),
      h('label', { class: 'kfnb-Field' }, h('span', {}, 'Image'), image),
      h('div', { class: 'kfnb-Actions' }, apply, clear),
      this._error
    );
  }

  /** Ask the server for the edit, then write its tags and source into the cell. */
  private async _apply(step: IStepSettings): Promise<void> {
    const cell = this._cell;
    const index = this._index();
    if (!cell || index < 0) {
      return;
    }
    this._error.textContent = '';
    let edit: IStepEdit;
    try {
      edit = await this._edit(index, step);
    } catch (error) {
      this._error.textContent = errorMessage(error);
      return;
    }
    if (cell.isDisposed || this._cell !== cell) {
      return;
    }
    if (edit.tags.length) {
      cell.model.setMetadata('tags', edit.tags);
    } else {
      cell.model.deleteMetadata('tags');
    }
    if (cell.model.sharedModel.getSource() !== edit.source) {
      cell.model.sharedModel.setSource(edit.source);
    }
  }

  private _cell: Cell | null = null;
  private _panel: NotebookPanel | null = null;
  private _view: IPipelineView | null = null;
  private _renderedKey = '';
  private readonly _status = h('p', { class: 'kfnb-CellTools-status' });
  private readonly _problems = h('div', { class: 'kfnb-CellTools-problems' });
  private readonly _error = h('p', {
    class: 'kfnb-CellTools-error',
    role: 'alert'
  });
}

/** Step badges on the cells of one notebook, from the server's pipeline view. */
export class CellBadges {
  constructor(readonly panel: NotebookPanel) {}

  /** Badge every cell as `view` says (null: no badges). */
  setView(view: IPipelineView | null): void {
    this._view = view;
    this.sync();
  }

  dispose(): void {
    for (const cell of this.panel.content.widgets) {
      cell.node.querySelector('.kfnb-CellBadge')?.remove();
    }
  }

  /** Put each cell's badge in place now. */
  sync(): void {
    if (this.panel.isDisposed) {
      return;
    }
    this.panel.content.widgets.forEach((cell, index) => {
      if (cell.isPlaceholder()) {
        void cell.ready.then(
          () => this._syncCell(cell, index),
          () => undefined // a cell disposed before it rendered needs no badge
        );
      } else {
        this._syncCell(cell, index);
      }
    });
  }

  private _syncCell(cell: Cell, index: number): void {
    if (cell.isDisposed) {
      return;
    }
    const info = badgeOf(cellInfo(this._view, cell, index));
    const header =
      cell.node.querySelector<HTMLElement>('.jp-CellHeader') ?? cell.node;
    let badge = header.querySelector<HTMLElement>(':scope > .kfnb-CellBadge');
    if (!info) {
      badge?.remove();
      return;
    }
    if (!badge) {
      badge = h('div', { class: 'kfnb-CellBadge' });
      header.prepend(badge);
    }
    badge.className = `kfnb-CellBadge kfnb-CellBadge--${info.kind}`;
    badge.title = info.title;
    badge.dataset.step = info.kind === 'step' ? info.text : '';
    badge.replaceChildren(
      h('span', { class: 'kfnb-CellBadge-name' }, info.text)
    );
  }

  private _view: IPipelineView | null = null;
}
