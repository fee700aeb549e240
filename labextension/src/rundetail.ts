/**
 * The detail of one run: status, Cancel (while it goes on), the KFP link of a remote run, its
 * parameters, the DAG of the pipeline it ran with its step states, one row per step (status,
 * duration, attempts, cached mark, Log and Notebook buttons), the selected step's streaming log
 * and the metrics table.
 *
 * A run is drawn from its record alone: the DAG is the pipeline stored with the run when it was
 * submitted (`run.pipeline`), never the notebook as it is now (which the panel's pipeline
 * section shows). A run recorded before runs kept their pipeline has no DAG.
 */
import {
  closeIcon,
  launchIcon,
  notebookIcon,
  stopIcon
} from '@jupyterlab/ui-components';

import {
  errorMessage,
  getMetrics,
  IEvent,
  IMetricValue,
  IPipeline,
  IRun,
  IStepRun,
  TERMINAL_RUN
} from './api';
import { renderDag, setSelected, setStatuses } from './dag';
import { h, pythonLiteral } from './dom';
import { LogView } from './logview';
import { durationText } from './runs';
import { statusIcon, statusWord } from './status';

/** What the detail asks of the panel. */
export interface IRunActions {
  cancel(run: IRun): Promise<void>;
  openNotebook(run: IRun, step: string): Promise<void>;
  goToCell(index: number): void;
}

export class RunDetail {
  readonly node = h('div', { class: 'kfnb-RunDetail', hidden: true });

  constructor(private readonly _actions: IRunActions) {}

  get run(): IRun | null {
    return this._run;
  }

  get selectedStep(): string | null {
    return this._step;
  }

  /** Show `run` (null hides the detail); the same run again updates it in place. */
  show(run: IRun | null): void {
    const same = run !== null && this._run?.id === run.id;
    const before = this._run ? signature(this._run) : '';
    this._run = run;
    if (!run) {
      this._closeLog();
      this._step = null;
      this.node.hidden = true;
      this.node.replaceChildren();
      this._metricsKey = '';
      return;
    }
    this.node.hidden = false;
    if (!same) {
      this._stepChosen = false;
      this._closeLog();
      this._step = defaultStep(run);
      this._metrics = [];
      this._metricsKey = '';
    } else if (before === signature(run)) {
      return;
    } else if (!this._stepChosen) {
      // follow the run (the running step, else the failed one) until the user picks a step
      const current = run.steps.find(st => st.name === this._step);
      const next = defaultStep(run);
      if (
        next &&
        next !== this._step &&
        (!current || current.status !== 'RUNNING')
      ) {
        this._step = next;
        this._closeLog();
      }
    }
    this._render();
    this._logView?.poke(
      run.steps.find(st => st.name === this._step)?.status ?? 'PENDING'
    );
    void this._loadMetrics();
  }

  /** Show the log of `step` (null: none). */
  selectStep(step: string | null): void {
    if (step === this._step) {
      return;
    }
    this._step = step;
    this._stepChosen = true;
    this._closeLog();
    if (this._run) {
      this._render();
    }
  }

  /** A store event about this run: wake the log of the step it concerns. */
  onEvent(event: IEvent): void {
    if (
      event.kind === 'step' &&
      event.data.step === this._step &&
      this._logView
    ) {
      this._logView.poke(String(event.data.status ?? ''));
    }
  }

  /** Update the ticking durations. */
  tick(): void {
    const run = this._run;
    if (!run || TERMINAL_RUN.has(run.status)) {
      return;
    }
    const total = this.node.querySelector('.kfnb-RunDetail-duration');
    if (total) {
      total.textContent = durationText(run);
    }
    for (const st of run.steps) {
      if (st.status === 'RUNNING') {
        const cell = this.node.querySelector(
          `.kfnb-StepRow[data-step="${CSS.escape(st.name)}"] .kfnb-StepRow-duration`
        );
        if (cell) {
          cell.textContent = durationText(st);
        }
      }
    }
  }

  dispose(): void {
    this._closeLog();
  }

  private _render(): void {
    const run = this._run!;
    const header = h(
      'div',
      { class: 'kfnb-RunDetail-header' },
      statusIcon(run.status),
      h(
        'span',
        { class: 'kfnb-RunDetail-status', 'data-status': run.status },
        statusWord(run.status)
      ),
      h('code', { class: 'kfnb-RunDetail-id', title: `run ${run.id}` }, run.id),
      h('span', { class: 'kfnb-Muted' }, run.backend),
      h('span', { class: 'kfnb-RunDetail-duration' }, durationText(run))
    );
    const actions = h('div', { class: 'kfnb-Actions' });
    if (!TERMINAL_RUN.has(run.status)) {
      const cancel = h(
        'button',
        {
          class: 'jp-mod-styled jp-mod-warn kfnb-RunDetail-cancel',
          disabled: run.status === 'CANCELING'
        },
        stopIcon.element({ tag: 'span', className: 'kfnb-Icon' }),
        run.status === 'CANCELING' ? 'Canceling…' : 'Cancel'
      );
      cancel.addEventListener('click', () => {
        cancel.disabled = true;
        void this._actions.cancel(run);
      });
      actions.append(cancel);
    }
    const url = run.remote?.url;
    if (typeof url === 'string' && url) {
      actions.append(
        h(
          'a',
          {
            class: 'kfnb-RunDetail-remote',
            href: url,
            target: '_blank',
            rel: 'noopener noreferrer',
            title: 'Open this run in the Kubeflow Pipelines UI'
          },
          launchIcon.element({ tag: 'span', className: 'kfnb-Icon' }),
          'Open in Kubeflow Pipelines'
        )
      );
    }
    const params = Object.entries(run.params ?? {});
    const log = this._logView?.node;
    const logScroll = log
      ? [log.scrollTop, log.scrollHeight - log.clientHeight]
      : null;
    this.node.replaceChildren(
      header,
      actions.childElementCount ? actions : '',
      run.error
        ? h('p', { class: 'kfnb-Error kfnb-RunDetail-error' }, run.error)
        : '',
      params.length
        ? h(
            'p',
            { class: 'kfnb-RunDetail-params' },
            h('span', { class: 'kfnb-Muted' }, 'params '),
            params
              .map(
                ([k, v]) =>
                  `${k}=${pythonLiteral(run.pipeline?.parameters[k]?.type ?? null, v)}`
              )
              .join(', ')
          )
        : '',
      this._dagOf(run),
      h(
        'ul',
        { class: 'kfnb-StepRows' },
        ...run.steps.map(st => this._stepRow(run, st))
      ),
      this._logSection(run),
      this._metricsTable()
    );
    if (log && logScroll && log === this._logView?.node) {
      const [top, bottom] = logScroll;
      log.scrollTop = top >= bottom - 24 ? log.scrollHeight : top;
    }
  }

  /** The DAG of the pipeline the run ran, its step states and the selected step on it. */
  private _dagOf(run: IRun): HTMLElement {
    const pipeline = run.pipeline;
    if (!pipeline) {
      this._svg = null;
      this._dagKey = '';
      return h(
        'p',
        { class: 'kfnb-Muted kfnb-RunDetail-noDag' },
        'This run was recorded before runs kept their pipeline: no graph to show.'
      );
    }
    const statuses = statusesOf(run);
    const key = `${run.id}\n${JSON.stringify(pipeline)}`;
    if (key !== this._dagKey || !this._svg) {
      this._dagKey = key;
      this._svg = renderDag(pipeline, {
        statuses,
        selected: this._step,
        onSelect: step => this.selectStep(step)
      });
      this._dag.replaceChildren(this._svg);
      this._dag.dataset.runId = run.id;
      fitWidth(this._svg, pipeline);
    } else {
      setStatuses(this._svg, statuses);
      setSelected(this._svg, this._step);
    }
    return this._dag;
  }

  private _stepRow(run: IRun, st: IStepRun): HTMLElement {
    const selected = st.name === this._step;
    const log = h(
      'button',
      {
        class: `jp-mod-styled kfnb-StepRow-log${selected ? ' kfnb-mod-active' : ''}`,
        title: `Show the log of ${st.name}`,
        'aria-pressed': selected ? 'true' : 'false'
      },
      'Log'
    );
    log.addEventListener('click', () => this.selectStep(st.name));
    const ran = !['PENDING', 'SKIPPED'].includes(st.status);
    const open = h(
      'button',
      {
        class: 'jp-mod-styled kfnb-StepRow-notebook',
        title: ran
          ? `Open the executed notebook of ${st.name}`
          : 'The step has not run',
        disabled: !ran
      },
      notebookIcon.element({ tag: 'span', className: 'kfnb-Icon' })
    );
    open.addEventListener('click', () => {
      open.disabled = true;
      void this._actions
        .openNotebook(run, st.name)
        .finally(() => (open.disabled = false));
    });
    const error = st.error as {
      message?: string;
      evalue?: string;
      cell?: number;
    } | null;
    const row = h(
      'li',
      {
        class: `kfnb-StepRow kfnb-StepRow--${st.status}${selected ? ' kfnb-StepRow--selected' : ''}`,
        'data-step': st.name,
        'data-status': st.status
      },
      h(
        'div',
        { class: 'kfnb-StepRow-main' },
        statusIcon(st.status),
        h('span', { class: 'kfnb-StepRow-name' }, st.name),
        st.status === 'CACHED'
          ? h(
              'span',
              {
                class: 'kfnb-StepRow-cached',
                title: `results reused from ${st.cached_from ?? 'an earlier run'}`
              },
              'cached'
            )
          : '',
        st.attempt > 1
          ? h('span', { class: 'kfnb-Muted' }, `attempt ${st.attempt}`)
          : '',
        st.gpus?.length
          ? h(
              'span',
              { class: 'kfnb-Muted', title: 'GPU ids' },
              `GPU ${st.gpus.join(',')}`
            )
          : '',
        h('span', { class: 'kfnb-StepRow-duration' }, durationText(st)),
        log,
        open
      )
    );
    if (error && (st.status === 'FAILED' || st.status === 'SKIPPED')) {
      const text = error.message ?? error.evalue ?? JSON.stringify(error);
      const line = h('p', { class: 'kfnb-StepRow-error' }, text);
      if (typeof error.cell === 'number') {
        const cell = error.cell;
        line.classList.add('kfnb-mod-clickable');
        line.title = `Go to cell ${cell}`;
        line.addEventListener('click', () => this._actions.goToCell(cell));
      }
      row.append(line);
    }
    return row;
  }

  private _logSection(run: IRun): HTMLElement | string {
    const step = this._step;
    const st = run.steps.find(s => s.name === step);
    if (!step || !st) {
      this._closeLog();
      return '';
    }
    if (
      !this._logView ||
      this._logView.runId !== run.id ||
      this._logView.step !== step
    ) {
      this._closeLog();
      this._logView = new LogView(run.id, step, st.status);
    }
    const close = h('button', {
      class: 'kfnb-LogSection-close',
      title: 'Close the log',
      'aria-label': 'Close the log'
    });
    closeIcon.element({ container: close, height: '14px', width: '14px' });
    close.addEventListener('click', () => this.selectStep(null));
    return h(
      'div',
      { class: 'kfnb-LogSection' },
      h(
        'div',
        { class: 'kfnb-Heading kfnb-LogSection-heading' },
        `Log of ${step}`,
        close
      ),
      this._logView.node
    );
  }

  private _metricsTable(): HTMLElement | string {
    if (!this._metrics.length) {
      return '';
    }
    const latest = new Map<string, { value: IMetricValue; count: number }>();
    for (const m of this._metrics) {
      latest.set(m.name, {
        value: m,
        count: (latest.get(m.name)?.count ?? 0) + 1
      });
    }
    return h(
      'div',
      { class: 'kfnb-MetricsSection' },
      h('div', { class: 'kfnb-Heading' }, 'Metrics'),
      h(
        'table',
        { class: 'kfnb-Metrics' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            h('th', {}, 'metric'),
            h('th', {}, 'value'),
            h('th', {}, 'from')
          )
        ),
        h(
          'tbody',
          {},
          ...[...latest.values()].map(({ value: m, count }) =>
            h(
              'tr',
              { 'data-metric': m.name },
              h('td', {}, m.name),
              h(
                'td',
                {
                  class: 'kfnb-Metrics-value',
                  title:
                    count > 1 ? `${count} values logged; the last shown` : ''
                },
                formatValue(m.value)
              ),
              h('td', { class: 'kfnb-Muted' }, m.source ?? '')
            )
          )
        )
      )
    );
  }

  private async _loadMetrics(): Promise<void> {
    const run = this._run;
    if (!run) {
      return;
    }
    const key = `${run.id}:${signature(run)}`;
    if (key === this._metricsKey) {
      return;
    }
    this._metricsKey = key;
    let metrics: IMetricValue[];
    try {
      metrics = await getMetrics(run.id);
    } catch (error) {
      console.warn(`kfnb: metrics of run ${run.id}: ${errorMessage(error)}`);
      return;
    }
    if (this._run?.id !== run.id) {
      return;
    }
    const changed = JSON.stringify(metrics) !== JSON.stringify(this._metrics);
    this._metrics = metrics;
    if (changed) {
      const old = this.node.querySelector('.kfnb-MetricsSection');
      const table = this._metricsTable();
      if (old && table) {
        old.replaceWith(table);
      } else if (old) {
        old.remove();
      } else if (table) {
        this.node.append(table);
      }
    }
  }

  private _closeLog(): void {
    this._logView?.dispose();
    this._logView = null;
  }

  private _run: IRun | null = null;
  private readonly _dag = h('div', { class: 'kfnb-Dag kfnb-RunDetail-dag' });
  private _svg: SVGSVGElement | null = null;
  private _dagKey = '';
  private _step: string | null = null;
  private _stepChosen = false;
  private _logView: LogView | null = null;
  private _metrics: IMetricValue[] = [];
  private _metricsKey = '';
}

/** step -> status of a run, for its DAG. */
function statusesOf(run: IRun): Record<string, string> {
  return Object.fromEntries(run.steps.map(st => [st.name, st.status]));
}

/** Let a wide graph shrink with the panel (its height follows its aspect ratio). */
function fitWidth(svg: SVGSVGElement, pipeline: IPipeline): void {
  const box = svg.viewBox.baseVal;
  svg.removeAttribute('height');
  svg.style.maxWidth = '100%';
  svg.style.height = 'auto';
  svg.setAttribute('aria-label', `Pipeline ${pipeline.name} as this run ran it`);
  svg.setAttribute('width', String(box?.width ?? ''));
}

/** What changes when a run moves on (to redraw only then). */
function signature(run: IRun): string {
  return JSON.stringify([
    run.status,
    run.finished_at,
    run.error,
    run.remote?.url,
    run.steps.map(st => [
      st.name,
      st.status,
      st.attempt,
      st.finished_at,
      st.started_at
    ])
  ]);
}

/** The step whose log to show first: running, else failed, else none. */
function defaultStep(run: IRun): string | null {
  return (
    run.steps.find(st => st.status === 'RUNNING')?.name ??
    run.steps.find(st => st.status === 'FAILED')?.name ??
    null
  );
}

function formatValue(value: number | null): string {
  if (value === null) {
    return 'NaN';
  }
  if (Number.isInteger(value)) {
    return String(value);
  }
  return Math.abs(value) >= 1e-3 && Math.abs(value) < 1e6
    ? value.toPrecision(4)
    : value.toExponential(3);
}
