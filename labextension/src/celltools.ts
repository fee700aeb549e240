/**
 * Cell tools: a compact editor of the active cell's step tags, and the step badges on cells.
 *
 * `CellTools` edits the step the active code cell starts: its name, the steps it runs after
 * (`prev:`, chosen among the steps above), GPUs and image. Apply rewrites the cell's
 * `metadata.tags` (the step tags replaced, other tags kept; see `tags.ts`).
 *
 * `CellBadges` puts a `kfnb-CellBadge` in the header of every cell that starts a step (or is
 * the imports, functions, parameters, metrics or a skipped cell) and keeps them in step with the
 * tags.
 */
import { Cell } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';

import { IPipelineView } from './api';
import { h } from './dom';
import { checkStepEdit, IStepTags, readStepTags, writeStepTags } from './tags';

/** The tags of a cell, as a list (never undefined). */
export function cellTags(cell: Cell): unknown[] {
  const tags = cell.model.getMetadata('tags');
  return Array.isArray(tags) ? tags : [];
}

/** The steps started by cells above `index`, in notebook order. */
function stepsAbove(panel: NotebookPanel, index: number): string[] {
  const names: string[] = [];
  panel.content.widgets.slice(0, index).forEach(cell => {
    const name = readStepTags(cellTags(cell)).name;
    if (name && cell.model.type === 'code') {
      names.push(name);
    }
  });
  return names;
}

/** The editor of the active cell's step tags. */
export class CellTools {
  readonly node = h('div', { class: 'kfnb-CellTools' });

  /** Follow `cell` of `panel` (null: no notebook or no active cell). */
  setCell(panel: NotebookPanel | null, cell: Cell | null): void {
    if (this._cell !== cell) {
      this._cell?.model.metadataChanged.disconnect(this._onMetadata, this);
      this._cell = cell && !cell.isDisposed ? cell : null;
      this._cell?.model.metadataChanged.connect(this._onMetadata, this);
      this._panel = panel;
      this._render(true);
    }
  }

  /** The latest pipeline: tells which step a cell without step tags continues. */
  setPipeline(view: IPipelineView | null): void {
    this._view = view;
    const cell = this._cell;
    const editing = this.node.contains(document.activeElement);
    if (cell && this._panel && !editing) {
      if (this._formKey(cell) !== this._renderedKey) {
        this._render(true);
        return;
      }
    }
    this._renderStatus();
  }

  dispose(): void {
    this._cell?.model.metadataChanged.disconnect(this._onMetadata, this);
    this._cell = null;
  }

  private _onMetadata(): void {
    this._render(false);
  }

  /** Redraw the form; `force` also when the tags did not change (another cell). */
  private _render(force: boolean): void {
    const cell = this._cell;
    const key = cell ? JSON.stringify(cellTags(cell)) : '';
    if (!force && key === this._renderedTags) {
      return;
    }
    this._renderedTags = key;
    this._error.textContent = '';
    if (!cell || !this._panel) {
      this.node.replaceChildren(
        h(
          'p',
          { class: 'kfnb-Muted' },
          'Select a cell of the notebook to tag it.'
        )
      );
      return;
    }
    const index = this._panel.content.widgets.indexOf(cell);
    const current = readStepTags(cellTags(cell));
    this.node.replaceChildren(this._status);
    this._renderStatus();
    if (cell.model.type !== 'code') {
      return;
    }
    if (current.role) {
      return;
    }
    this.node.append(this._form(index, current));
  }

  /** One line: what the active cell is in the pipeline now. */
  private _renderStatus(): void {
    const cell = this._cell;
    if (!cell || !this._panel) {
      return;
    }
    const index = this._panel.content.widgets.indexOf(cell);
    const tags = readStepTags(cellTags(cell));
    let text: string;
    if (cell.model.type !== 'code') {
      text = `Cell ${index} is a ${cell.model.type} cell: only code cells run in steps.`;
    } else if (tags.role) {
      text = `Cell ${index} is the ${tags.role} cell${tags.role === 'skip' ? ' (not run)' : ''}.`;
    } else if (tags.name) {
      text = `Cell ${index} starts step “${tags.name}”.`;
    } else {
      const step = this._view?.pipeline?.steps.find(st =>
        st.cells.includes(index)
      );
      text = step
        ? `Cell ${index} continues step “${step.name}”. Name a step to start one here.`
        : `Cell ${index} starts no step. Name a step to start one here.`;
    }
    this._status.textContent = text;
  }

  private _form(index: number, current: IStepTags): HTMLElement {
    const panel = this._panel!;
    const above = stepsAbove(panel, index);
    this._renderedKey = this._formKey(this._cell!);
    const name = h('input', {
      class: 'kfnb-Input kfnb-CellTools-name',
      type: 'text',
      placeholder: 'step name',
      value: current.name ?? '',
      'aria-label': 'step name',
      spellcheck: 'false'
    });
    const gpus = h('input', {
      class: 'kfnb-Input kfnb-CellTools-gpus',
      type: 'number',
      min: 0,
      step: 1,
      value: current.gpus,
      'aria-label': 'GPUs'
    });
    const image = h('input', {
      class: 'kfnb-Input kfnb-CellTools-image',
      type: 'text',
      placeholder: 'image (default: the pipeline’s)',
      value: current.image,
      'aria-label': 'container image',
      spellcheck: 'false'
    });
    const prev = h('div', {
      class: 'kfnb-CellTools-prev',
      role: 'group',
      'aria-label': 'after'
    });
    const known = new Set(above);
    for (const step of [...above, ...current.prev.filter(p => !known.has(p))]) {
      const box = h('input', {
        type: 'checkbox',
        value: step,
        checked: current.prev.includes(step)
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
    // what the step receives anyway: data edges need no prev: tag
    const step = this._view?.pipeline?.steps.find(
      st => st.name === current.name
    );
    const inputs = Object.entries(step?.inputs ?? {});
    const received = inputs.length
      ? h(
          'div',
          { class: 'kfnb-Field' },
          h('span', {}),
          h(
            'span',
            { class: 'kfnb-Muted kfnb-CellTools-inputs' },
            'receives ',
            inputs.map(([name, from]) => `${name} ← ${from}`).join(', ')
          )
        )
      : '';
    const apply = h(
      'button',
      { class: 'jp-mod-styled jp-mod-accept kfnb-CellTools-apply' },
      'Apply'
    );
    const clear = h(
      'button',
      {
        class: 'jp-mod-styled kfnb-CellTools-clear',
        title: 'Remove the step tags: the cell continues the step above'
      },
      'Clear'
    );
    const read = (): Omit<IStepTags, 'role'> => ({
      name: name.value.trim() || null,
      prev: Array.from(
        prev.querySelectorAll<HTMLInputElement>('input:checked')
      ).map(b => b.value),
      gpus: gpus.value === '' ? 0 : Number(gpus.value),
      image: image.value
    });
    apply.addEventListener('click', () => this._apply(read()));
    clear.addEventListener('click', () =>
      this._apply({ name: null, prev: [], gpus: 0, image: '' })
    );
    name.addEventListener('keydown', event => {
      if (event.key === 'Enter') {
        this._apply(read());
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

  /** What the form shows besides the cell's tags: the steps above, what the step receives. */
  private _formKey(cell: Cell): string {
    const panel = this._panel!;
    const name = readStepTags(cellTags(cell)).name;
    const step = this._view?.pipeline?.steps.find(st => st.name === name);
    return JSON.stringify([
      stepsAbove(panel, panel.content.widgets.indexOf(cell)),
      step?.inputs
    ]);
  }

  private _apply(edit: Omit<IStepTags, 'role'>): void {
    const cell = this._cell;
    const panel = this._panel;
    if (!cell || !panel) {
      return;
    }
    const index = panel.content.widgets.indexOf(cell);
    const taken = panel.content.widgets
      .filter((other, i) => i !== index && other.model.type === 'code')
      .map(other => readStepTags(cellTags(other)).name)
      .filter((n): n is string => !!n);
    const problem = checkStepEdit(edit, taken);
    if (problem) {
      this._error.textContent = problem;
      return;
    }
    this._error.textContent = '';
    const tags = writeStepTags(cellTags(cell), edit);
    if (tags.length) {
      cell.model.setMetadata('tags', tags);
    } else {
      cell.model.deleteMetadata('tags');
    }
  }

  private _cell: Cell | null = null;
  private _panel: NotebookPanel | null = null;
  private _view: IPipelineView | null = null;
  private _renderedTags = '';
  private _renderedKey = '';
  private readonly _status = h('p', { class: 'kfnb-CellTools-status' });
  private readonly _error = h('p', {
    class: 'kfnb-CellTools-error',
    role: 'alert'
  });
}

/** What a cell's badge says, or null for no badge. */
function badgeText(
  tags: IStepTags
): { text: string; kind: string; title: string } | null {
  if (tags.role) {
    return {
      text: tags.role,
      kind: tags.role,
      title: `kfnb: the ${tags.role} cell`
    };
  }
  if (!tags.name) {
    return null;
  }
  const extras = [
    tags.prev.length ? `after ${tags.prev.join(', ')}` : '',
    tags.gpus > 0 ? `GPU ${tags.gpus}` : '',
    tags.image ? tags.image : ''
  ].filter(Boolean);
  return {
    text: tags.name,
    kind: 'step',
    title: `kfnb step “${tags.name}”${extras.length ? ` (${extras.join('; ')})` : ''}`
  };
}

/** Step badges on the cells of one notebook, kept in step with their tags. */
export class CellBadges {
  constructor(readonly panel: NotebookPanel) {
    const model = panel.content.model;
    model?.contentChanged.connect(this._schedule, this);
    panel.content.modelChanged.connect(this._schedule, this);
    this._schedule();
  }

  dispose(): void {
    this.panel.content.model?.contentChanged.disconnect(this._schedule, this);
    this.panel.content.modelChanged.disconnect(this._schedule, this);
    if (this._timer) {
      clearTimeout(this._timer);
    }
    for (const cell of this.panel.content.widgets) {
      cell.node.querySelector('.kfnb-CellBadge')?.remove();
    }
  }

  /** Re-read every cell's tags and update its badge now. */
  sync(): void {
    if (this.panel.isDisposed) {
      return;
    }
    for (const cell of this.panel.content.widgets) {
      if (cell.isPlaceholder()) {
        void cell.ready.then(
          () => this._syncCell(cell),
          () => undefined // a cell disposed before it rendered needs no badge
        );
      } else {
        this._syncCell(cell);
      }
    }
  }

  private _schedule(): void {
    if (this._timer) {
      clearTimeout(this._timer);
    }
    this._timer = setTimeout(() => {
      this._timer = 0;
      this.sync();
    }, 50);
  }

  private _syncCell(cell: Cell): void {
    if (cell.isDisposed) {
      return;
    }
    const info =
      cell.model.type === 'code'
        ? badgeText(readStepTags(cellTags(cell)))
        : null;
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

  private _timer: ReturnType<typeof setTimeout> | 0 = 0;
}
