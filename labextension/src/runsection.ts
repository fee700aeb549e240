/**
 * The part of the panel about runs: the run form (`params.ts`: parameters, backend, Run), the
 * followed notebook's runs as a tree (`runs.ts`) and the selected run's detail
 * (`rundetail.ts`), kept live by the store's event feed (`events.ts`). Refreshes are rate
 * limited with `@lumino/polling` (a burst of step events reads a run once); durations tick
 * once a second while the panel is visible.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Debouncer, Poll } from '@lumino/polling';

import {
  cancelRun,
  errorMessage,
  exportStepNotebook,
  getBackends,
  getRun,
  IEvent,
  IPipelineView,
  IRun,
  listRuns,
  startRun
} from './api';
import { EventFeed } from './events';
import { Busy, ErrorBox } from './feedback';
import { IRunChoice, RunForm } from './params';
import { RunDetail } from './rundetail';
import { RunList } from './runs';

const RUN_REFRESH_DELAY_MS = 150;
const LIST_REFRESH_DELAY_MS = 400;
const RUNS_SHOWN = 20;

/** What the run section asks of the notebook section. */
export interface INotebookAccess {
  /** The followed notebook's contents path, or null. */
  path(): string | null;
  /** Save the followed notebook if it has unsaved changes. */
  saveIfDirty(): Promise<void>;
  goToCell(index: number): void;
}

export class RunSection {
  readonly form: RunForm;
  readonly list: RunList;
  readonly detail: RunDetail;
  readonly feed = new EventFeed();

  constructor(
    private readonly _app: JupyterFrontEnd,
    private readonly _notebook: INotebookAccess,
    private readonly _busy: Busy,
    private readonly _errors: ErrorBox
  ) {
    this.form = new RunForm(choice => void this._startRun(choice));
    this.list = new RunList(run => this._onRunSelected(run));
    this.detail = new RunDetail({
      cancel: run => this._cancel(run),
      openNotebook: (run, step) => this._openNotebook(run, step),
      goToCell: index => this._notebook.goToCell(index),
      selectRun: run => this._selectRun(run)
    });
    this.feed.received.connect((_, event) => this._onEvent(event));
    // (Re)connected: what happened before the feed's first event is read from the list.
    this.feed.modeChanged.connect((_, mode) => {
      if (mode === 'stream' || mode === 'poll') {
        this.reload();
      }
    });
  }

  /** The panel is visible: live updates, backends, ticking times. */
  start(): void {
    this.feed.start();
    void this._loadBackends();
    void this._ticker.start();
  }

  /** The panel is hidden: times stop ticking (the feed goes on: badges need no runs). */
  pause(): void {
    void this._ticker.stop();
  }

  /** Another notebook is followed (null: none). */
  setNotebook(hasNotebook: boolean): void {
    this.list.clear('No runs of this notebook yet.');
    this._onRunSelected(null);
    this._errors.clear('runs');
    if (!hasNotebook) {
      this.form.setPipeline(null);
    } else {
      this.reload();
    }
  }

  setPipeline(view: IPipelineView): void {
    this.form.setPipeline(view);
  }

  /** Read the notebook's runs again now. */
  reload(): void {
    void this._loadRuns();
  }

  dispose(): void {
    this.feed.dispose();
    this._ticker.dispose();
    this._listReloader.dispose();
    this._runRefresher.dispose();
    this.detail.dispose();
  }

  private async _loadBackends(): Promise<void> {
    try {
      this.form.setBackends(await getBackends());
      this._errors.clear('backends');
    } catch (error) {
      this._errors.show(
        'backends',
        `Could not list the backends: ${errorMessage(error)}`
      );
    }
  }

  private async _startRun(choice: IRunChoice): Promise<void> {
    const path = this._notebook.path();
    if (!path) {
      return;
    }
    this.form.setBusy(true);
    this.form.showError('');
    const end = this._busy.begin('Starting the run…');
    try {
      await this._notebook.saveIfDirty();
      const run = await startRun({ path, ...choice });
      this.feed.start();
      if (this._notebook.path() === path) {
        this.list.upsert(run);
        this.list.select(run.id);
      }
    } catch (error) {
      this.form.showError(`The run did not start: ${errorMessage(error)}`);
    } finally {
      end();
      this.form.setBusy(false);
    }
  }

  private async _loadRuns(): Promise<void> {
    const path = this._notebook.path();
    if (!path) {
      return;
    }
    const seq = ++this._runsSeq;
    try {
      const list = await listRuns({
        notebook: path,
        roots: 1,
        limit: RUNS_SHOWN
      });
      if (seq !== this._runsSeq || path !== this._notebook.path()) {
        return;
      }
      this.list.setRuns(list.runs, list.total);
      const selected = this.list.selectedId;
      const run = selected ? this.list.find(selected) : null;
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
    this.detail.show(run);
    if (run) {
      this._refreshRunSoon(run.id); // the list's copy may lag behind
    }
  }

  /** Show `run` (a child or the parent of the run shown) in the detail. */
  private _selectRun(run: IRun): void {
    if (!this.list.has(run.id)) {
      this.list.upsert(run);
    }
    this.list.select(run.id);
  }

  private _showRun(run: IRun): void {
    this.list.upsert(run);
    if (this.list.selectedId === run.id) {
      this.detail.show(run);
    }
  }

  private _onEvent(event: IEvent): void {
    if (!this._notebook.path()) {
      return;
    }
    if (event.run_id === this.detail.run?.id) {
      this.detail.onEvent(event);
    }
    if (this.list.has(event.run_id)) {
      this._refreshRunSoon(event.run_id);
    } else {
      // Maybe a new run of this notebook (started here, from the CLI or another tab).
      this._listReloader.invoke().catch(() => undefined);
    }
  }

  private _refreshRunSoon(id: string): void {
    this._pendingRuns.add(id);
    this._runRefresher.invoke().catch(() => undefined);
  }

  private async _refreshPending(): Promise<void> {
    const ids = [...this._pendingRuns];
    this._pendingRuns.clear();
    await Promise.all(ids.map(id => this._refreshRun(id)));
  }

  private async _refreshRun(id: string): Promise<void> {
    try {
      const run = await getRun(id);
      if (this.list.has(run.id)) {
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

  private _runsSeq = 0;
  private readonly _pendingRuns = new Set<string>();
  private readonly _runRefresher = new Debouncer(
    () => this._refreshPending(),
    RUN_REFRESH_DELAY_MS
  );
  private readonly _listReloader = new Debouncer(
    () => this._loadRuns(),
    LIST_REFRESH_DELAY_MS
  );
  private readonly _ticker = new Poll({
    auto: false,
    factory: async () => {
      this.list.tick();
      this.detail.tick();
    },
    frequency: { interval: 1000, backoff: false },
    name: 'kfnb:tick',
    standby: 'when-hidden'
  });
}
