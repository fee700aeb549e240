/**
 * The kfnb side panel. It follows the active notebook and shows, top to bottom:
 * - the handshake (which kfnb the server runs; a warning when frontend and server differ);
 * - the notebook's pipeline (`pipelineview.ts`): DAG, parameters, metrics, problems; the live
 *   notebook model is described again ~500 ms after each edit;
 * - the cell tools (`celltools.ts`) for the active cell, and step badges on the cells;
 * - the run form (`params.ts`): parameters, backend, Run (saves the notebook first);
 * - the notebook's runs (`runs.ts`) and the selected run (`rundetail.ts`), kept live by the
 *   store's event feed (`events.ts`). A run is drawn from its record: its own DAG is the
 *   pipeline stored with it, coloured with its step states; the pipeline section's DAG is the
 *   notebook as it is now, and no run colours it.
 *
 * Every request's failure ends up as a message in the panel, never as an unhandled rejection.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import {
  cancelRun,
  describeNotebook,
  errorMessage,
  exportStepNotebook,
  getBackends,
  getRun,
  getVersion,
  handshakeProblems,
  IEvent,
  IPipelineView,
  IRun,
  isAbort,
  IVersionInfo,
  listRuns,
  startRun
} from './api';
import { CellBadges, CellTools } from './celltools';
import { h } from './dom';
import { EventFeed } from './events';
import { Busy, ErrorBox } from './feedback';
import { kfnbIcon } from './icons';
import { IRunChoice, RunForm } from './params';
import { PipelineView } from './pipelineview';
import { RunDetail } from './rundetail';
import { RunList } from './runs';

export const PANEL_ID = 'kfnb-panel';

const DESCRIBE_DELAY_MS = 500;
const RUN_REFRESH_DELAY_MS = 150;
const LIST_REFRESH_DELAY_MS = 400;
const RUNS_SHOWN = 20;

export interface IPanelOptions {
  app: JupyterFrontEnd;
  tracker: INotebookTracker;
}

/** A collapsible section of the panel. */
function section(
  name: string,
  title: string,
  ...content: Node[]
): HTMLDetailsElement {
  return h(
    'details',
    { class: `kfnb-Section kfnb-Section--${name}`, open: true },
    h('summary', { class: 'kfnb-Section-title' }, title),
    ...content
  );
}

/** The notebook as JSON for `POST pipeline`: what the pipeline depends on, outputs left out. */
function notebookForDescribe(json: unknown): unknown {
  const nb = json as { cells?: Array<Record<string, unknown>> };
  return {
    ...nb,
    cells: (nb.cells ?? []).map(cell => {
      const { attachments: _attachments, ...rest } = cell;
      return cell.cell_type === 'code'
        ? { ...rest, outputs: [], execution_count: null }
        : rest;
    })
  };
}

export class KfnbPanel extends Widget {
  constructor(options: IPanelOptions) {
    super();
    this._app = options.app;
    this._tracker = options.tracker;
    this.id = PANEL_ID;
    this.addClass('kfnb-Panel');
    this.title.icon = kfnbIcon;
    this.title.caption = 'Kubeflow Notebook (kfnb)';

    this._pipeline = new PipelineView({
      goToCell: index => this._goToCell(index, true),
      selectStep: step => this._selectStep(step)
    });
    this._runForm = new RunForm(choice => void this._startRun(choice));
    this._runList = new RunList(run => this._onRunSelected(run));
    this._runDetail = new RunDetail({
      cancel: run => this._cancel(run),
      openNotebook: (run, step) => this._openNotebook(run, step),
      goToCell: index => this._goToCell(index, true)
    });

    const header = h(
      'header',
      { class: 'kfnb-Panel-header' },
      h(
        'div',
        { class: 'kfnb-Panel-titleRow' },
        h('h2', {}, 'Kubeflow Notebook (kfnb)'),
        this._version
      ),
      this._notebook
    );
    this._version.textContent = 'Connecting to the kfnb server…';
    this._warning.hidden = true;
    this._content.append(
      section('pipeline', 'Pipeline', this._pipeline.node),
      section('cell', 'Cell', this._cellTools.node),
      section('run', 'Run', this._runForm.node),
      section('runs', 'Runs', this._runList.node, this._runDetail.node)
    );
    this.node.append(
      this._busy.node,
      h(
        'div',
        { class: 'kfnb-Panel-scroll' },
        header,
        this._warning,
        this._errors.node,
        this._empty,
        this._content
      )
    );

    this._feed.received.connect((_, event) => this._onEvent(event));
    // (Re)connected: what happened before the feed's first event is read from the list.
    this._feed.modeChanged.connect((_, mode) => {
      if (mode === 'stream' || mode === 'poll') {
        void this._loadRuns();
      }
    });
    this._tracker.currentChanged.connect((_, panel) => this._follow(panel));
    this._tracker.activeCellChanged.connect(() => this._followCell());
    this._follow(this._tracker.currentWidget);
  }

  /** Ask the server who it is and show the result; resolves once the panel shows it. */
  async refresh(): Promise<void> {
    let info: IVersionInfo;
    try {
      info = await getVersion();
    } catch (error) {
      this._version.textContent = 'kfnb server not reachable';
      this._showWarnings([
        `The kfnb server extension did not answer: ${(error as Error).message}. ` +
          'Check that it is enabled (jupyter server extension list) and restart Jupyter.'
      ]);
      return;
    }
    this._version.textContent = `kfnb ${info.version}`;
    this._showWarnings(handshakeProblems(info));
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._feed.dispose();
    this._badges?.dispose();
    this._cellTools.dispose();
    this._runDetail.dispose();
    this._pipeline.dispose();
    clearTimeout(this._describeTimer);
    clearTimeout(this._listTimer);
    clearTimeout(this._runTimer);
    clearInterval(this._ticker);
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this._shown();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (this.isVisible) {
      this._shown(); // restored open: no after-show message comes
    }
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    clearInterval(this._ticker);
    this._ticker = 0;
  }

  /** The panel became visible: live updates, backends, a pending describe, ticking times. */
  private _shown(): void {
    this._feed.start();
    void this._loadBackends();
    if (this._stale) {
      void this._describe();
    }
    if (!this._ticker) {
      this._ticker = setInterval(() => {
        this._runList.tick();
        this._runDetail.tick();
      }, 1000);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Following the active notebook

  private _follow(nb: NotebookPanel | null): void {
    if (nb === this._nb) {
      return;
    }
    if (this._nb) {
      this._nb.context.model.contentChanged.disconnect(
        this._onContentChanged,
        this
      );
      this._nb.context.pathChanged.disconnect(this._onPathChanged, this);
      this._nb.disposed.disconnect(this._onNotebookDisposed, this);
    }
    this._badges?.dispose();
    this._badges = null;
    this._describeAbort?.abort();
    clearTimeout(this._describeTimer);
    this._describedKey = '';
    this._nb = nb;
    this._runList.clear('No runs of this notebook yet.');
    this._onRunSelected(null);
    this._errors.clear('describe');
    this._errors.clear('runs');
    this._empty.hidden = nb !== null;
    this._content.hidden = nb === null;
    if (!nb) {
      this._notebook.textContent = '';
      this._pipeline.clear('');
      this._runForm.setPipeline(null);
      this._cellTools.setCell(null, null);
      this._cellTools.setPipeline(null);
      return;
    }
    this._notebook.textContent = nb.context.path;
    this._pipeline.clear('Reading the pipeline…');
    nb.disposed.connect(this._onNotebookDisposed, this);
    void nb.context.ready.then(
      () => {
        if (this._nb !== nb || nb.isDisposed) {
          return;
        }
        nb.context.model.contentChanged.connect(this._onContentChanged, this);
        nb.context.pathChanged.connect(this._onPathChanged, this);
        this._badges = new CellBadges(nb);
        this._followCell();
        void this._describe();
        void this._loadRuns();
      },
      error => {
        if (this._nb === nb) {
          this._errors.show(
            'describe',
            `Could not load ${nb.context.path}: ${errorMessage(error)}`
          );
        }
      }
    );
  }

  private _onNotebookDisposed(): void {
    const next = this._tracker.currentWidget;
    this._follow(next && next !== this._nb && !next.isDisposed ? next : null);
  }

  private _onPathChanged(): void {
    this._notebook.textContent = this._nb?.context.path ?? '';
    this._describedKey = '';
    void this._describe();
    void this._loadRuns();
  }

  private _onContentChanged(): void {
    clearTimeout(this._describeTimer);
    this._describeTimer = setTimeout(
      () => void this._describe(),
      DESCRIBE_DELAY_MS
    );
  }

  private _followCell(): void {
    const nb = this._nb;
    const cell =
      nb && this._tracker.currentWidget === nb ? nb.content.activeCell : null;
    this._cellTools.setCell(nb, cell);
    this._showSelection();
  }

  /** The notebook DAG's selected node: the step of the active cell. */
  private _showSelection(): void {
    const nb = this._nb;
    const index = nb ? nb.content.activeCellIndex : -1;
    const step =
      this._pipeline.pipeline?.steps.find(st => st.cells.includes(index))
        ?.name ?? null;
    this._pipeline.setSelected(step);
  }

  /** The contents path of the followed notebook (without a drive prefix). */
  private _path(): string | null {
    const context = this._nb?.context;
    return context ? (context.localPath ?? context.path) : null;
  }

  /** POST the live notebook model to `pipeline` and show the answer. */
  private async _describe(): Promise<void> {
    const nb = this._nb;
    const path = this._path();
    if (!nb || !path || !nb.context.isReady) {
      return;
    }
    if (!this.isVisible) {
      this._stale = true; // described when the panel is shown
      return;
    }
    this._stale = false;
    const notebook = notebookForDescribe(nb.context.model.toJSON());
    const key = `${path}\n${JSON.stringify(notebook)}`;
    if (key === this._describedKey) {
      return;
    }
    this._describeAbort?.abort();
    const abort = new AbortController();
    this._describeAbort = abort;
    let view: IPipelineView;
    try {
      view = await this._busy.during('Reading the pipeline…', () =>
        describeNotebook(path, notebook, abort.signal)
      );
    } catch (error) {
      if (!isAbort(error) && this._nb === nb) {
        this._errors.show(
          'describe',
          `Could not read the pipeline: ${errorMessage(error)}`
        );
      }
      return;
    }
    if (this._nb !== nb || abort.signal.aborted) {
      return;
    }
    this._describedKey = key;
    this._errors.clear('describe');
    this._setView(view);
  }

  private _setView(view: IPipelineView): void {
    this._pipeline.setView(view);
    this._cellTools.setPipeline(view);
    this._runForm.setPipeline(view);
    this._showSelection();
  }

  private _goToCell(index: number, focus: boolean): void {
    const nb = this._nb;
    if (!nb || index < 0 || index >= nb.content.widgets.length) {
      return;
    }
    const notebook = nb.content;
    notebook.deselectAll();
    notebook.activeCellIndex = index;
    const cell = notebook.widgets[index];
    if (focus) {
      this._app.shell.activateById(nb.id);
    }
    void notebook.scrollToCell(cell, 'center').catch(() => undefined);
    cell.addClass('kfnb-Cell--flash');
    setTimeout(
      () => cell.isDisposed || cell.removeClass('kfnb-Cell--flash'),
      1500
    );
  }

  /** A node of the notebook's DAG was clicked: go to the step's first cell. */
  private _selectStep(step: string): void {
    const cells =
      this._pipeline.pipeline?.steps.find(st => st.name === step)?.cells ?? [];
    if (cells.length) {
      this._goToCell(Math.min(...cells), false);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Backends and runs

  private async _loadBackends(): Promise<void> {
    try {
      this._runForm.setBackends(await getBackends());
      this._errors.clear('backends');
    } catch (error) {
      this._errors.show(
        'backends',
        `Could not list the backends: ${errorMessage(error)}`
      );
    }
  }

  private async _startRun(choice: IRunChoice): Promise<void> {
    const nb = this._nb;
    const path = this._path();
    if (!nb || !path) {
      return;
    }
    this._runForm.setBusy(true);
    this._runForm.showError('');
    const end = this._busy.begin('Starting the run…');
    try {
      if (nb.context.model.dirty) {
        await nb.context.save();
      }
      const run = await startRun({
        path,
        params: choice.params,
        backend: choice.backend,
        options: choice.options
      });
      this._feed.start();
      if (this._nb === nb) {
        this._runList.upsert(run);
        this._runList.select(run.id);
      }
    } catch (error) {
      this._runForm.showError(`The run did not start: ${errorMessage(error)}`);
    } finally {
      end();
      this._runForm.setBusy(false);
    }
  }

  private async _loadRuns(): Promise<void> {
    const path = this._path();
    if (!path) {
      return;
    }
    const seq = ++this._runsSeq;
    try {
      const list = await listRuns({ notebook: path, limit: RUNS_SHOWN });
      if (seq !== this._runsSeq || path !== this._path()) {
        return;
      }
      this._runList.setRuns(list.runs, list.total);
      const selected = this._runList.selectedId;
      const run = list.runs.find(r => r.id === selected);
      if (run) {
        this._showRun(run);
      }
      this._errors.clear('runs');
    } catch (error) {
      if (seq === this._runsSeq) {
        this._errors.show(
          'runs',
          `Could not list the runs: ${errorMessage(error)}`
        );
      }
    }
  }

  private _onRunSelected(run: IRun | null): void {
    this._runDetail.show(run);
    if (run) {
      this._refreshRunSoon(run.id); // the list's copy may lag behind
    }
  }

  private _showRun(run: IRun): void {
    this._runList.upsert(run);
    if (this._runList.selectedId === run.id) {
      this._runDetail.show(run);
    }
  }

  private _onEvent(event: IEvent): void {
    if (!this._nb) {
      return;
    }
    if (event.run_id === this._runDetail.run?.id) {
      this._runDetail.onEvent(event);
    }
    if (this._runList.has(event.run_id)) {
      this._refreshRunSoon(event.run_id);
    } else {
      // Maybe a new run of this notebook (started here, from the CLI or another tab).
      clearTimeout(this._listTimer);
      this._listTimer = setTimeout(
        () => void this._loadRuns(),
        LIST_REFRESH_DELAY_MS
      );
    }
  }

  private _refreshRunSoon(id: string): void {
    this._pendingRuns.add(id);
    if (this._runTimer) {
      return;
    }
    this._runTimer = setTimeout(() => {
      this._runTimer = 0;
      const ids = [...this._pendingRuns];
      this._pendingRuns.clear();
      for (const runId of ids) {
        void this._refreshRun(runId);
      }
    }, RUN_REFRESH_DELAY_MS);
  }

  private async _refreshRun(id: string): Promise<void> {
    try {
      const run = await getRun(id);
      if (this._runList.has(run.id)) {
        this._showRun(run);
      }
    } catch (error) {
      this._errors.show(
        'runs',
        `Could not read run ${id}: ${errorMessage(error)}`
      );
    }
  }

  private async _cancel(run: IRun): Promise<void> {
    try {
      this._showRun(await cancelRun(run.id));
    } catch (error) {
      this._errors.show(
        'cancel',
        `Could not cancel run ${run.id}: ${errorMessage(error)}`
      );
      this._refreshRunSoon(run.id);
    }
  }

  private async _openNotebook(run: IRun, step: string): Promise<void> {
    try {
      const { path } = await this._busy.during(
        'Opening the executed notebook…',
        () => exportStepNotebook(run.id, step)
      );
      await this._app.commands.execute('docmanager:open', { path });
      this._errors.clear('open');
    } catch (error) {
      this._errors.show(
        'open',
        `Could not open the executed notebook of ${step}: ${errorMessage(error)}`
      );
    }
  }

  private _showWarnings(problems: string[]): void {
    this._warning.replaceChildren(...problems.map(text => h('p', {}, text)));
    this._warning.hidden = problems.length === 0;
  }

  private readonly _app: JupyterFrontEnd;
  private readonly _tracker: INotebookTracker;
  private readonly _feed = new EventFeed();
  private readonly _busy = new Busy();
  private readonly _errors = new ErrorBox();
  private readonly _pipeline: PipelineView;
  private readonly _cellTools = new CellTools();
  private readonly _runForm: RunForm;
  private readonly _runList: RunList;
  private readonly _runDetail: RunDetail;
  private readonly _version = h('div', { class: 'kfnb-Panel-version' });
  private readonly _notebook = h('div', { class: 'kfnb-Panel-notebook' });
  private readonly _warning = h('div', {
    class: 'kfnb-Panel-warning',
    role: 'alert'
  });
  private readonly _empty = h(
    'p',
    { class: 'kfnb-Panel-empty kfnb-Muted' },
    'Open a notebook to see its pipeline, tag its cells and run it.'
  );
  private readonly _content = h('div', { class: 'kfnb-Panel-content' });
  private _nb: NotebookPanel | null = null;
  private _badges: CellBadges | null = null;
  private _describeAbort: AbortController | null = null;
  private _describeTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  private _describedKey = '';
  private _stale = false;
  private _runsSeq = 0;
  private _listTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  private _runTimer: ReturnType<typeof setTimeout> | 0 = 0;
  private readonly _pendingRuns = new Set<string>();
  private _ticker: ReturnType<typeof setInterval> | 0 = 0;
}
