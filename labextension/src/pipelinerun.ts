/**
 * The body of a pipeline run's detail: the DAG of the pipeline it ran with its step states, one
 * row per step (status, duration, attempts, cached mark, Log and Notebook buttons) and the
 * selected step's streaming log.
 *
 * The DAG is the pipeline stored with the run when it was submitted (`run.pipeline`, laid out
 * by the server), never the notebook as it is now (which the panel's pipeline section shows).
 * A run recorded before runs kept their pipeline has no DAG.
 */
import { closeIcon, notebookIcon } from '@jupyterlab/ui-components';

import { IEvent, IRun, IStepRun } from './api';
import { renderDag, setSelected, setStatuses } from './dag';
import { DagViewport } from './dagviewport';
import { h } from './dom';
import { LogView } from './logview';
import { durationText } from './runs';
import { IRunActions, IRunView } from './runviews';
import { statusIcon } from './status';

export class PipelineRunView implements IRunView {
  readonly node = h('div', { class: 'kfnb-PipelineRun' });
  /** Whether its steps have executed notebooks to open (pipeline steps do). */
  protected readonly showsNotebooks: boolean = true;

  constructor(private readonly _actions: IRunActions) {}

  get selectedStep(): string | null {
    return this._step;
  }

  show(run: IRun): void {
    const same = this._run?.id === run.id;
    const before = this._run ? signature(this._run) : '';
    this._run = run;
    if (!same) {
      this._stepChosen = false;
      this._closeLog();
      this._step = defaultStep(run);
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

  onEvent(event: IEvent): void {
    if (
      event.kind === 'step' &&
      event.data.step === this._step &&
      this._logView
    ) {
      this._logView.poke(String(event.data.status ?? ''));
    }
  }

  tick(): void {
    for (const st of this._run?.steps ?? []) {
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
    this._viewport.dispose();
  }

  private _render(): void {
    const run = this._run!;
    const log = this._logView?.node;
    const logScroll = log
      ? [log.scrollTop, log.scrollHeight - log.clientHeight]
      : null;
    this.node.replaceChildren(
      this.head(run),
      h(
        'ul',
        { class: 'kfnb-StepRows' },
        ...run.steps.map(st => this._stepRow(run, st))
      ),
      this._logSection(run)
    );
    if (this._fresh) {
      this._fresh = false;
      this._viewport.fit(); // attached now: its width is known
    }
    if (log && logScroll && log === this._logView?.node) {
      const [top, bottom] = logScroll;
      log.scrollTop = top >= bottom - 24 ? log.scrollHeight : top;
    }
  }

  /** What goes above the step rows: the DAG of the pipeline the run ran, its step states and
   * the selected step on it. */
  protected head(run: IRun): HTMLElement {
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
    const statuses = Object.fromEntries(
      run.steps.map(st => [st.name, st.status])
    );
    const key = `${run.id}\n${JSON.stringify(pipeline)}`;
    if (key !== this._dagKey || !this._svg) {
      this._dagKey = key;
      this._svg = renderDag(pipeline, {
        statuses,
        selected: this._step,
        onSelect: step => this.selectStep(step)
      });
      this._svg.setAttribute(
        'aria-label',
        `Pipeline ${pipeline.name} as this run ran it`
      );
      this._viewport.box.dataset.runId = run.id;
      this._viewport.setSvg(this._svg);
      this._fresh = true;
    } else {
      setStatuses(this._svg, statuses);
      setSelected(this._svg, this._step);
    }
    return this._viewport.node;
  }

  private _stepRow(run: IRun, st: IStepRun): HTMLElement {
    const selected = st.name === this._step;
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
        ...stepFacts(st),
        h('span', { class: 'kfnb-StepRow-duration' }, durationText(st)),
        this._logButton(st, selected),
        this.showsNotebooks ? this._notebookButton(run, st) : ''
      )
    );
    const error = this._stepError(st);
    if (error) {
      row.append(error);
    }
    return row;
  }

  private _logButton(st: IStepRun, selected: boolean): HTMLElement {
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
    return log;
  }

  private _notebookButton(run: IRun, st: IStepRun): HTMLElement {
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
    return open;
  }

  /** A failed (or skipped) step's error; a link to its cell when it names one. */
  private _stepError(st: IStepRun): HTMLElement | null {
    const error = st.error as {
      message?: string;
      evalue?: string;
      cell?: number;
    } | null;
    if (!error || (st.status !== 'FAILED' && st.status !== 'SKIPPED')) {
      return null;
    }
    const text = error.message ?? error.evalue ?? JSON.stringify(error);
    const line = h('p', { class: 'kfnb-StepRow-error' }, text);
    if (typeof error.cell === 'number') {
      const cell = error.cell;
      line.classList.add('kfnb-mod-clickable');
      line.title = `Go to cell ${cell}`;
      line.addEventListener('click', () => this._actions.goToCell(cell));
    }
    return line;
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

  private _closeLog(): void {
    this._logView?.dispose();
    this._logView = null;
  }

  private _run: IRun | null = null;
  private readonly _viewport = new DagViewport('kfnb-RunDetail-dag');
  private _svg: SVGSVGElement | null = null;
  private _dagKey = '';
  private _fresh = false;
  private _step: string | null = null;
  private _stepChosen = false;
  private _logView: LogView | null = null;
}

/** What changes when a run moves on (to redraw only then). */
export function signature(run: IRun): string {
  return JSON.stringify([
    run.status,
    run.finished_at,
    run.error,
    run.remote?.url,
    run.child_count,
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

/** What a step row says besides its status: cached, its attempt, its GPUs. */
function stepFacts(st: IStepRun): Array<HTMLElement | string> {
  return [
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
      : ''
  ];
}
