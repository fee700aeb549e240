/**
 * The body of a tuning study's detail (`kind` tune), read from `GET studies/{id}`: what the
 * study searches (objective, algorithm, budget), the trials per state, the best trial so far,
 * the two plots as the server draws them (the notebook widget shows the same), one row per
 * trial (number, state, parameters, objective value, duration; a click opens the trial, its
 * run button the pipeline run it ran) and "Add trials" (`POST studies/{id}/trials`); Stop is
 * the Cancel that the detail gives every running run.
 *
 * It follows the study through the panel's event feed: the runner appends `trial` and `pruned`
 * events (and `spec` when the budget grows) on the study's own run, so those, debounced, read
 * the study again; it polls nothing of its own. Durations of running trials tick locally.
 */
import { Debouncer } from '@lumino/polling';
import { addIcon } from '@jupyterlab/ui-components';

import {
  addTrials,
  errorMessage,
  getRun,
  getStudy,
  IEvent,
  IRun,
  isAbort,
  IStudyView,
  ITrial,
  TERMINAL_RUN
} from './api';
import { h, pythonLiteral } from './dom';
import { durationText } from './runs';
import { IRunActions, IRunView } from './runviews';
import { statusIcon, statusWord } from './status';

/** How long a burst of study events is collected before the study is read again (ms). */
export const STUDY_REFRESH_DELAY_MS = 300;
/** The trial states counted, in the order shown. */
const STATES = [
  'RUNNING',
  'SUCCEEDED',
  'PRUNED',
  'FAILED',
  'CANCELED',
  'PENDING'
] as const;
/** Events on the study's run that change what it shows. */
const STUDY_EVENTS = new Set(['trial', 'pruned', 'spec', 'run']);
const PLOTS = [
  ['history', 'Optimisation history'],
  ['parallel', 'Parameters and objective']
] as const;

const SVG_NS = 'http://www.w3.org/2000/svg';
/** Links a plot may keep: to its own parts (`<use>`), and its inline raster images (the
 *  colour bar). */
const SAFE_LINK = /^\s*(#|data:image\/(png|jpeg|gif|webp);base64,)/i;

/**
 * An SVG document (text) as an element of this page: parsed as XML (never as HTML, never
 * joined with other text), with scripts, foreign content, event handlers and script links
 * left out; null when the text is not an SVG document.
 */
export function svgElement(text: string): SVGSVGElement | null {
  const parsed = new DOMParser().parseFromString(text, 'image/svg+xml');
  const root = parsed.documentElement;
  if (
    !root ||
    root.localName !== 'svg' ||
    root.namespaceURI !== SVG_NS ||
    parsed.getElementsByTagName('parsererror').length
  ) {
    return null;
  }
  for (const bad of Array.from(
    root.querySelectorAll('script, foreignObject')
  )) {
    bad.remove();
  }
  for (const element of [root, ...Array.from(root.querySelectorAll('*'))]) {
    for (const attribute of Array.from(element.attributes)) {
      const name = attribute.name.toLowerCase();
      const link = name === 'href' || name.endsWith(':href');
      if (name.startsWith('on') || (link && !SAFE_LINK.test(attribute.value))) {
        element.removeAttribute(attribute.name);
      }
    }
  }
  return document.importNode(root, true) as unknown as SVGSVGElement;
}

/** A number as the study shows it: 4 significant digits, exponent form when tiny or huge. */
export function formatNumber(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) {
    return '–';
  }
  if (Number.isInteger(value)) {
    return String(value);
  }
  const size = Math.abs(value);
  return size >= 1e-3 && size < 1e6
    ? String(Number(value.toPrecision(4)))
    : value.toExponential(3);
}

/** `lr=0.01, opt='adam'`: a trial's parameters, numbers shortened. */
export function paramsText(params: Record<string, unknown>): string {
  return Object.entries(params)
    .map(
      ([name, value]) =>
        `${name}=${typeof value === 'number' ? formatNumber(value) : pythonLiteral(null, value)}`
    )
    .join(', ');
}

/** `loss (minimize) · tpe · 3 of 20 trials · 2 at a time · median pruning`. */
export function studySummary(view: IStudyView): string {
  const study = view.study;
  const finished =
    view.counts.SUCCEEDED + view.counts.PRUNED + view.counts.FAILED;
  return [
    `${study.objective} (${study.direction})`,
    study.algorithm,
    `${finished} of ${study.trials} trial${study.trials === 1 ? '' : 's'}`,
    study.parallel > 1 ? `${study.parallel} at a time` : '',
    study.prune ? `${study.prune.name} pruning` : '',
    view.backend
  ]
    .filter(Boolean)
    .join(' · ');
}

export class StudyRunView implements IRunView {
  readonly node = h('div', { class: 'kfnb-StudyRun' });

  constructor(private readonly _actions: IRunActions) {}

  /** The study as last read (null before the first answer). */
  get study(): IStudyView | null {
    return this._view;
  }

  show(run: IRun): void {
    const same = this._run?.id === run.id;
    const before = this._run?.status;
    this._run = run;
    if (!same) {
      this._view = null;
      this._plotTexts.clear();
      this._plots.clear();
      this._error = '';
      this._abort?.abort();
      this.node.replaceChildren(
        h('p', { class: 'kfnb-Muted' }, 'Reading the study…')
      );
      void this.refresh();
    } else if (before !== run.status) {
      this._refresher.invoke().catch(() => undefined);
    }
  }

  onEvent(event: IEvent): void {
    if (event.run_id === this._run?.id && STUDY_EVENTS.has(event.kind)) {
      this._refresher.invoke().catch(() => undefined);
    }
  }

  tick(): void {
    for (const trial of this._view?.trials ?? []) {
      if (trial.finished_at === null && trial.started_at !== null) {
        const cell = this.node.querySelector(
          `.kfnb-StudyTrial[data-trial-id="${CSS.escape(trial.id)}"] .kfnb-StudyTrial-duration`
        );
        if (cell) {
          cell.textContent = durationText(trial);
        }
      }
    }
  }

  dispose(): void {
    this._abort?.abort();
    this._refresher.dispose();
  }

  /** Read the study now and show it. */
  async refresh(): Promise<void> {
    const run = this._run;
    if (!run) {
      return;
    }
    this._abort?.abort();
    const abort = (this._abort = new AbortController());
    try {
      const view = await getStudy(run.id, abort.signal);
      if (abort.signal.aborted || this._run?.id !== view.id) {
        return;
      }
      this._error = '';
      this._render(view);
    } catch (error) {
      if (isAbort(error) || abort.signal.aborted) {
        return;
      }
      this._error = `Could not read study ${run.id}: ${errorMessage(error)}`;
      if (this._view) {
        this._render(this._view);
      } else {
        this.node.replaceChildren(h('p', { class: 'kfnb-Error' }, this._error));
      }
    }
  }

  private _render(view: IStudyView): void {
    this._view = view;
    const running = !TERMINAL_RUN.has(view.status);
    this.node.replaceChildren(
      h('p', { class: 'kfnb-StudyRun-summary' }, studySummary(view)),
      this._counts(view),
      this._best(view),
      this._toolbar(view, running),
      h('div', { class: 'kfnb-Error kfnb-StudyRun-error' }, this._error),
      this._plotsSection(view),
      this._trials(view)
    );
  }

  private _counts(view: IStudyView): HTMLElement {
    return h(
      'ul',
      { class: 'kfnb-StudyRun-counts' },
      ...STATES.filter(
        state => view.counts[state] > 0 || state === 'SUCCEEDED'
      ).map(state =>
        h(
          'li',
          {
            class: 'kfnb-StudyRun-count',
            'data-state': state,
            title: `${view.counts[state]} ${statusWord(state)}`
          },
          statusIcon(state),
          h(
            'span',
            { class: 'kfnb-StudyRun-countValue' },
            String(view.counts[state])
          ),
          h('span', { class: 'kfnb-Muted' }, statusWord(state))
        )
      )
    );
  }

  private _best(view: IStudyView): HTMLElement {
    const best = view.best;
    if (!best) {
      return h(
        'p',
        { class: 'kfnb-StudyRun-best kfnb-Muted' },
        'No trial has succeeded yet.'
      );
    }
    const open = h(
      'button',
      {
        class: 'jp-mod-styled jp-mod-minimal kfnb-StudyRun-bestTrial',
        title: `Show trial ${best.number} (${best.id})`
      },
      `trial ${best.number}`
    );
    open.addEventListener('click', () => void this._open(best.id));
    return h(
      'div',
      { class: 'kfnb-StudyRun-best' },
      h('span', { class: 'kfnb-Muted' }, `Best ${view.study.objective} `),
      h(
        'span',
        { class: 'kfnb-StudyRun-bestValue', title: String(best.value) },
        formatNumber(best.value)
      ),
      open,
      h('span', { class: 'kfnb-StudyRun-bestParams' }, paramsText(best.params))
    );
  }

  private _toolbar(view: IStudyView, running: boolean): HTMLElement {
    const count = h('input', {
      class: 'kfnb-Input kfnb-StudyRun-addCount',
      type: 'number',
      min: 1,
      step: 1,
      value: this._addCount,
      'aria-label': 'Trials to add',
      title: 'How many trials to add to the budget'
    });
    const add = h(
      'button',
      {
        class: 'jp-mod-styled kfnb-StudyRun-add',
        title: running
          ? 'Raise the budget of trials'
          : 'Raise the budget of trials; the study goes on'
      },
      addIcon.element({ tag: 'span', className: 'kfnb-Icon' }),
      'Add trials'
    );
    add.addEventListener('click', () => void this._add(view, count, add));
    count.addEventListener('keydown', event => {
      if (event.key === 'Enter') {
        void this._add(view, count, add);
      }
    });
    const bar = h(
      'div',
      { class: 'kfnb-Actions kfnb-StudyRun-actions' },
      count,
      add
    );
    return bar;
  }

  private async _add(
    view: IStudyView,
    input: HTMLInputElement,
    button: HTMLButtonElement
  ): Promise<void> {
    const n = Number(input.value);
    if (!Number.isInteger(n) || n < 1) {
      this._showError('Give a whole number of trials to add, 1 or more.');
      return;
    }
    this._addCount = n;
    button.disabled = true;
    try {
      const updated = await addTrials(view.id, n);
      if (this._run?.id === updated.id) {
        this._error = '';
        this._render(updated);
      }
    } catch (error) {
      this._showError(`Could not add trials: ${errorMessage(error)}`);
      button.disabled = false;
    }
  }

  private _showError(text: string): void {
    this._error = text;
    const box = this.node.querySelector('.kfnb-StudyRun-error');
    if (box) {
      box.textContent = text;
    }
  }

  /** The plots, each SVG parsed again only when the server's text changed. */
  private _plotsSection(view: IStudyView): HTMLElement {
    return h(
      'div',
      { class: 'kfnb-StudyRun-plots' },
      ...PLOTS.map(([kind, title]) => {
        const text = view.plots[kind];
        let figure = this._plots.get(kind);
        if (!figure || this._plotTexts.get(kind) !== text) {
          const svg = svgElement(text);
          figure = h(
            'figure',
            { class: 'kfnb-StudyRun-plot', 'data-kind': kind, title },
            svg ??
              h('p', { class: 'kfnb-Error' }, `The ${kind} plot is not an SVG.`)
          );
          this._plots.set(kind, figure);
          this._plotTexts.set(kind, text);
        }
        return figure;
      })
    );
  }

  private _trials(view: IStudyView): HTMLElement {
    if (!view.trials.length) {
      return h('p', { class: 'kfnb-Muted' }, 'No trials yet.');
    }
    const bestId = view.best?.id;
    return h(
      'div',
      { class: 'kfnb-StudyRun-trials' },
      h('div', { class: 'kfnb-Heading' }, `Trials (${view.trials.length})`),
      h(
        'table',
        { class: 'kfnb-StudyTrials' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            h('th', {}, '#'),
            h('th', {}, 'state'),
            h('th', {}, 'parameters'),
            h('th', {}, view.study.objective),
            h('th', {}, 'time'),
            h('th', {}, '')
          )
        ),
        h(
          'tbody',
          {},
          ...view.trials.flatMap(trial =>
            this._trialRows(trial, trial.id === bestId)
          )
        )
      )
    );
  }

  private _trialRows(trial: ITrial, best: boolean): HTMLElement[] {
    const row = h(
      'tr',
      {
        class: `kfnb-StudyTrial${best ? ' kfnb-StudyTrial--best' : ''}`,
        'data-trial-id': trial.id,
        'data-trial': trial.number ?? '',
        'data-status': trial.status,
        tabindex: 0,
        role: 'link',
        title: `${trial.name} ${trial.id}: ${statusWord(trial.status)}${best ? ' (best)' : ''}`
      },
      h('td', { class: 'kfnb-StudyTrial-number' }, String(trial.number ?? '')),
      h(
        'td',
        { class: 'kfnb-StudyTrial-state' },
        statusIcon(trial.status),
        h('span', {}, statusWord(trial.status))
      ),
      h('td', { class: 'kfnb-StudyTrial-params' }, paramsText(trial.params)),
      h(
        'td',
        {
          class: 'kfnb-StudyTrial-value',
          title: trial.value === null ? '' : String(trial.value)
        },
        formatNumber(trial.value)
      ),
      h('td', { class: 'kfnb-StudyTrial-duration' }, durationText(trial)),
      h('td', {}, trial.run ? this._runButton(trial, trial.run) : '')
    );
    const open = (): void => void this._open(trial.id);
    row.addEventListener('click', open);
    row.addEventListener('keydown', event => {
      if (event.key === 'Enter' && event.target === row) {
        open();
      }
    });
    if (!trial.error) {
      return [row];
    }
    return [
      row,
      h(
        'tr',
        { class: 'kfnb-StudyTrial-errorRow', 'data-trial-id': trial.id },
        h('td', {}),
        h('td', { class: 'kfnb-StudyTrial-error', colspan: 5 }, trial.error)
      )
    ];
  }

  private _runButton(trial: ITrial, runId: string): HTMLElement {
    const button = h(
      'button',
      {
        class: 'jp-mod-styled jp-mod-minimal kfnb-StudyTrial-run',
        title: `Show the run trial ${trial.number} ran (${runId})`
      },
      'run'
    );
    button.addEventListener('click', event => {
      event.stopPropagation();
      void this._open(runId);
    });
    return button;
  }

  /** Show run `id` (a trial, or the run a trial ran) in the detail. */
  private async _open(id: string): Promise<void> {
    try {
      this._actions.selectRun(await getRun(id));
    } catch (error) {
      this._showError(`Could not open run ${id}: ${errorMessage(error)}`);
    }
  }

  private _run: IRun | null = null;
  private _view: IStudyView | null = null;
  private _error = '';
  private _addCount = 5;
  private _abort: AbortController | null = null;
  private readonly _plots = new Map<string, HTMLElement>();
  private readonly _plotTexts = new Map<string, string>();
  private readonly _refresher = new Debouncer(
    () => this.refresh(),
    STUDY_REFRESH_DELAY_MS
  );
}
