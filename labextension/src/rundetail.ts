/**
 * The detail of one run: what every run has (status, kind, Cancel while it goes on, the
 * cluster link of a remote run, its parameters, its error, its metrics table), and a body
 * chosen by the run's kind from the registry in `runviews.ts` (a pipeline run's DAG, steps
 * and logs; a parent run's children...). The detail is drawn from the run's record alone.
 */
import { launchIcon, stopIcon } from '@jupyterlab/ui-components';

import {
  errorMessage,
  getMetrics,
  getRun,
  IEvent,
  IMetricValue,
  IRun,
  TERMINAL_RUN
} from './api';
import { h, pythonLiteral } from './dom';
import { PipelineRunView, signature } from './pipelinerun';
import { StudyRunView } from './studyrun';
import { TrainRunView } from './trainrun';
import { durationText } from './runs';
import {
  IRunActions,
  IRunView,
  registerRunView,
  runViewFactory
} from './runviews';
import { statusIcon, statusWord } from './status';

registerRunView('pipeline', actions => new PipelineRunView(actions));
registerRunView('train', actions => new TrainRunView(actions));
registerRunView('tune', actions => new StudyRunView(actions));

export type { IRunActions } from './runviews';

export class RunDetail {
  readonly node = h('div', { class: 'kfnb-RunDetail', hidden: true });

  constructor(private readonly _actions: IRunActions) {}

  get run(): IRun | null {
    return this._run;
  }

  /** The body view of the run shown (its kind's), or null. */
  get view(): IRunView | null {
    return this._view;
  }

  /** Show `run` (null hides the detail); the same run again updates it in place. */
  show(run: IRun | null): void {
    const same = run !== null && this._run?.id === run.id;
    const before = this._run ? signature(this._run) : '';
    this._run = run;
    if (!run) {
      this._setView(null);
      this.node.hidden = true;
      this.node.replaceChildren();
      this._metricsKey = '';
      return;
    }
    this.node.hidden = false;
    if (!same) {
      this._metrics = [];
      this._metricsKey = '';
    } else if (before === signature(run)) {
      return;
    }
    if (!same || this._viewKind !== run.kind) {
      this._setView(run.kind);
    }
    this._render();
    this._view?.show(run);
    void this._loadMetrics();
  }

  /** A store event about this run. */
  onEvent(event: IEvent): void {
    this._view?.onEvent(event);
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
    this._view?.tick();
  }

  dispose(): void {
    this._setView(null);
  }

  private _setView(kind: string | null): void {
    this._view?.dispose();
    this._view = kind === null ? null : runViewFactory(kind)(this._actions);
    this._viewKind = kind;
    this._view?.node.classList.add('kfnb-RunDetail-body');
  }

  private _render(): void {
    const run = this._run!;
    const buttons = this._buttons(run);
    this.node.replaceChildren(
      this._header(run),
      buttons.childElementCount ? buttons : '',
      run.error
        ? h('p', { class: 'kfnb-Error kfnb-RunDetail-error' }, run.error)
        : '',
      paramsLine(run),
      this._view?.node ?? '',
      this._metricsTable()
    );
  }

  private _header(run: IRun): HTMLElement {
    return h(
      'div',
      { class: 'kfnb-RunDetail-header' },
      statusIcon(run.status),
      h(
        'span',
        { class: 'kfnb-RunDetail-status', 'data-status': run.status },
        statusWord(run.status)
      ),
      h('span', { class: 'kfnb-KindBadge', 'data-kind': run.kind }, run.kind),
      h('code', { class: 'kfnb-RunDetail-id', title: `run ${run.id}` }, run.id),
      h('span', { class: 'kfnb-Muted' }, run.backend),
      h('span', { class: 'kfnb-RunDetail-duration' }, durationText(run))
    );
  }

  /** The run's buttons: its parent, Cancel while it runs, its remote UI. */
  private _buttons(run: IRun): HTMLElement {
    const actions = h('div', { class: 'kfnb-Actions' });
    if (run.parent_id) {
      const up = h(
        'button',
        {
          class: 'jp-mod-styled kfnb-RunDetail-parent',
          title: `Show run ${run.parent_id}, which this run belongs to`
        },
        'Parent run'
      );
      up.addEventListener('click', () => void this._showParent(run));
      actions.append(up);
    }
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
      actions.append(remoteLink(url));
    }
    return actions;
  }

  private async _showParent(run: IRun): Promise<void> {
    if (!run.parent_id) {
      return;
    }
    try {
      this._actions.selectRun(await getRun(run.parent_id));
    } catch (error) {
      console.warn(`kfnb: run ${run.parent_id}: ${errorMessage(error)}`);
    }
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

  private _run: IRun | null = null;
  private _view: IRunView | null = null;
  private _viewKind: string | null = null;
  private _metrics: IMetricValue[] = [];
  private _metricsKey = '';
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

/** A link to the run in its backend's own UI (Kubeflow Pipelines). */
function remoteLink(url: string): HTMLElement {
  return h(
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
  );
}

/** `params n=6, scale=2.0`, each value as Python writes it; nothing without parameters. */
function paramsLine(run: IRun): HTMLElement | string {
  const params = Object.entries(run.params ?? {});
  if (!params.length) {
    return '';
  }
  return h(
    'p',
    { class: 'kfnb-RunDetail-params' },
    h('span', { class: 'kfnb-Muted' }, 'params '),
    params
      .map(
        ([k, v]) =>
          `${k}=${pythonLiteral(run.pipeline?.parameters[k]?.type ?? null, v)}`
      )
      .join(', ')
  );
}
