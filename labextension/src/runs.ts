/**
 * The runs of the active notebook (`GET runs?notebook=P`), newest first: status icon, when,
 * how long (ticking while a run goes on), backend, and a "cached" mark when steps reused
 * earlier results. Clicking a run selects it; its detail lives in `rundetail.ts`.
 */
import { IRun, TERMINAL_RUN } from './api';
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
    return this._runs.some(r => r.id === id);
  }

  /** Show these runs (newest first); the selection stays if its run is still listed. */
  setRuns(runs: IRun[], total: number): void {
    this._runs = runs;
    this._total = total;
    if (this._selected && !this.has(this._selected)) {
      this._selected = null;
      this._onSelect(null);
    }
    this._render();
  }

  /** Add a run at the top, or replace the listed run with the same id. */
  upsert(run: IRun): void {
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
    this._onSelect(this._runs.find(r => r.id === id) ?? null);
  }

  clear(message: string): void {
    this._runs = [];
    this._total = 0;
    this._selected = null;
    this._empty = message;
    this._render();
  }

  /** Update the durations of runs that go on. */
  tick(): void {
    for (const run of this._runs) {
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
    this._list.replaceChildren(...this._runs.map(run => this._item(run)));
    const hidden = this._total - this._runs.length;
    this._more.textContent =
      hidden > 0 ? `${hidden} older run${hidden > 1 ? 's' : ''} not shown` : '';
  }

  private _item(run: IRun): HTMLElement {
    const cached = run.steps.filter(st => st.status === 'CACHED').length;
    const selected = run.id === this._selected;
    const item = h(
      'li',
      {
        class: `kfnb-RunItem kfnb-RunItem--${run.status}${selected ? ' kfnb-RunItem--selected' : ''}`,
        'data-run-id': run.id,
        'data-status': run.status,
        tabindex: 0,
        role: 'option',
        'aria-selected': selected ? 'true' : 'false',
        title: `${run.name} ${run.id}: ${statusWord(run.status)}`
      },
      statusIcon(run.status),
      h(
        'span',
        { class: 'kfnb-RunItem-main' },
        h(
          'span',
          { class: 'kfnb-RunItem-time' },
          formatTime(run.created_at, true)
        ),
        h('span', { class: 'kfnb-RunItem-backend' }, run.backend)
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
  private _total = 0;
  private _selected: string | null = null;
  private _empty = 'No runs of this notebook yet.';
  private readonly _list = h('ul', {
    class: 'kfnb-RunList-items',
    role: 'listbox'
  });
  private readonly _more = h('p', { class: 'kfnb-Muted kfnb-RunList-more' });
}
