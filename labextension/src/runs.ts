/**
 * The runs of the active notebook as a tree (`GET runs?notebook=P&roots=1`, newest first): a
 * run's kind, status icon, when, how long (ticking while a run goes on), backend, a "cached"
 * mark when steps reused earlier results, its disk use (`disk_bytes`: its artifacts folder on
 * the server, when the answer carries it), and for a run that holds others (a tuning run's
 * trials, a batch's notebooks) an expander that lists them (`GET runs?parent=ID`) beneath it.
 * Clicking a run selects it; its detail lives in `rundetail.ts`.
 */
import { errorMessage, IRun, listRuns, TERMINAL_RUN } from './api';
import { elapsed, formatDuration, formatTime, h } from './dom';
import { statusIcon, statusWord } from './status';

/** Duration of a run (or step) so far, as text; empty before it starts. */
export function durationText(item: {
  started_at: number | null;
  finished_at: number | null;
}): string {
  const seconds = elapsed(item.started_at, item.finished_at);
  return seconds === null ? '' : formatDuration(Math.max(0, seconds));
}

/** Bytes in human units, as `kfnb runs` writes them: `512 B`, `1.5 KiB`, `23 MiB`; empty
 *  when unknown. */
export function sizeText(bytes: number | null | undefined): string {
  if (typeof bytes !== 'number' || !Number.isFinite(bytes) || bytes < 0) {
    return '';
  }
  let value = bytes;
  for (const unit of ['B', 'KiB', 'MiB', 'GiB', 'TiB']) {
    if (value < 1024 || unit === 'TiB') {
      if (unit === 'B') {
        return `${Math.trunc(value)} B`;
      }
      return value < 10
        ? `${value.toFixed(1)} ${unit}`
        : `${value.toFixed(0)} ${unit}`;
    }
    value /= 1024;
  }
  return '';
}

export class RunList {
  readonly node = h('div', { class: 'kfnb-RunList' });

  constructor(private readonly _onSelect: (run: IRun | null) => void) {
    this.node.append(this._list, this._more);
    this._render();
  }

  get runs(): readonly IRun[] {
    return this._runs;
  }

  get selectedId(): string | null {
    return this._selected;
  }

  has(id: string): boolean {
    return this.find(id) !== null;
  }

  /** A listed run (a root, or a child of an expanded one). */
  find(id: string): IRun | null {
    return (
      this._runs.find(r => r.id === id) ??
      [...this._children.values()].flat().find(r => r.id === id) ??
      null
    );
  }

  /** Show these runs (newest first); the selection stays if its run is still listed. */
  setRuns(runs: IRun[], total: number): void {
    this._runs = runs;
    this._total = total;
    for (const id of [...this._expanded]) {
      if (!runs.some(r => r.id === id)) {
        this._expanded.delete(id);
        this._children.delete(id);
      } else {
        void this._loadChildren(id);
      }
    }
    if (this._selected && !this.has(this._selected)) {
      this._selected = null;
      this._onSelect(null);
    }
    this._render();
  }

  /** Add a run at the top, or replace the listed run with the same id. */
  upsert(run: IRun): void {
    const siblings = run.parent_id ? this._children.get(run.parent_id) : null;
    if (siblings) {
      const i = siblings.findIndex(r => r.id === run.id);
      if (i >= 0) {
        siblings[i] = run;
      } else {
        siblings.unshift(run);
      }
      this._render();
      return;
    }
    const at = this._runs.findIndex(r => r.id === run.id);
    if (at >= 0) {
      this._runs[at] = run;
    } else {
      this._runs = [run, ...this._runs];
      this._total += 1;
    }
    this._render();
  }

  select(id: string | null): void {
    this._selected = id;
    this._render();
    this._onSelect(id === null ? null : this.find(id));
  }

  /** Show (or hide) the runs `id` holds beneath it. */
  async toggle(id: string): Promise<void> {
    if (this._expanded.delete(id)) {
      this._children.delete(id);
      this._render();
      return;
    }
    this._expanded.add(id);
    await this._loadChildren(id);
  }

  clear(message: string): void {
    this._runs = [];
    this._total = 0;
    this._selected = null;
    this._expanded.clear();
    this._children.clear();
    this._empty = message;
    this._render();
  }

  /** Update the durations of runs that go on. */
  tick(): void {
    for (const run of [...this._runs, ...[...this._children.values()].flat()]) {
      if (!TERMINAL_RUN.has(run.status)) {
        const cell = this._list.querySelector(
          `[data-run-id="${CSS.escape(run.id)}"] .kfnb-RunItem-duration`
        );
        if (cell) {
          cell.textContent = durationText(run);
        }
      }
    }
  }

  private _render(): void {
    if (!this._runs.length) {
      this._list.replaceChildren(
        h('li', { class: 'kfnb-Muted kfnb-RunList-empty' }, this._empty)
      );
      this._more.textContent = '';
      return;
    }
    this._list.replaceChildren(
      ...this._runs.flatMap(run => [
        this._item(run, 0),
        ...(this._children.get(run.id) ?? []).map(child => this._item(child, 1))
      ])
    );
    const hidden = this._total - this._runs.length;
    this._more.textContent =
      hidden > 0 ? `${hidden} older run${hidden > 1 ? 's' : ''} not shown` : '';
  }

  private async _loadChildren(id: string): Promise<void> {
    try {
      const list = await listRuns({ parent: id, limit: 100 });
      if (this._expanded.has(id)) {
        this._children.set(id, list.runs);
        this._render();
      }
    } catch (error) {
      console.warn(`kfnb: the runs of ${id}: ${errorMessage(error)}`);
    }
  }

  private _item(run: IRun, depth: number): HTMLElement {
    const cached = run.steps.filter(st => st.status === 'CACHED').length;
    const selected = run.id === this._selected;
    const open = this._expanded.has(run.id);
    let expander: HTMLElement | null = null;
    if (run.child_count > 0) {
      expander = h(
        'button',
        {
          class: 'kfnb-RunItem-expander',
          title: `${open ? 'Hide' : 'Show'} the ${run.child_count} run${run.child_count > 1 ? 's' : ''} it holds`,
          'aria-expanded': open ? 'true' : 'false',
          type: 'button'
        },
        open ? '▾' : '▸'
      );
      expander.addEventListener('click', event => {
        event.stopPropagation();
        void this.toggle(run.id);
      });
    }
    const item = h(
      'li',
      {
        class: `kfnb-RunItem kfnb-RunItem--${run.status}${selected ? ' kfnb-RunItem--selected' : ''}${depth ? ' kfnb-RunItem--child' : ''}`,
        'data-run-id': run.id,
        'data-status': run.status,
        'data-kind': run.kind,
        'data-parent': run.parent_id ?? '',
        'aria-level': depth + 1,
        tabindex: 0,
        role: 'treeitem',
        'aria-selected': selected ? 'true' : 'false',
        title: `${run.kind} ${run.name} ${run.id}: ${statusWord(run.status)}`
      },
      expander ?? h('span', { class: 'kfnb-RunItem-expander kfnb-mod-none' }),
      statusIcon(run.status),
      h('span', { class: 'kfnb-KindBadge', 'data-kind': run.kind }, run.kind),
      h(
        'span',
        { class: 'kfnb-RunItem-main' },
        h(
          'span',
          { class: 'kfnb-RunItem-time' },
          formatTime(run.created_at, true)
        ),
        h('span', { class: 'kfnb-RunItem-backend' }, run.backend),
        sizeText(run.disk_bytes)
          ? h(
              'span',
              {
                class: 'kfnb-RunItem-size',
                title: `${run.disk_bytes} bytes in its artifacts folder on the server`
              },
              sizeText(run.disk_bytes)
            )
          : null
      ),
      cached
        ? h(
            'span',
            {
              class: 'kfnb-RunItem-cached',
              title: `${cached} step${cached > 1 ? 's' : ''} reused cached results`
            },
            'cached'
          )
        : null,
      h('span', { class: 'kfnb-RunItem-duration' }, durationText(run))
    );
    item.addEventListener('click', () => this.select(run.id));
    item.addEventListener('keydown', event => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        this.select(run.id);
      }
    });
    return item;
  }

  private _runs: IRun[] = [];
  private readonly _children = new Map<string, IRun[]>();
  private readonly _expanded = new Set<string>();
  private _total = 0;
  private _selected: string | null = null;
  private _empty = 'No runs of this notebook yet.';
  private readonly _list = h('ul', {
    class: 'kfnb-RunList-items',
    role: 'tree'
  });
  private readonly _more = h('p', { class: 'kfnb-Muted kfnb-RunList-more' });
}
