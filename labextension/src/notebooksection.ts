/**
 * The part of the panel that follows the active notebook: it describes the live notebook model
 * (`POST pipeline`, debounced after each edit) and hands the server's view to the pipeline
 * section, the cell tools, the cell badges and the run form; it moves the notebook to a cell
 * when a problem or a DAG node is clicked, and asks the server for a cell's step edit.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Debouncer } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import {
  describeNotebook,
  editCellStep,
  errorMessage,
  IPipelineView,
  isAbort
} from './api';
import { CellBadges, CellTools } from './celltools';
import { DagTab } from './dagtab';
import { Busy, ErrorBox } from './feedback';
import { PipelineView } from './pipelineview';

const DESCRIBE_DELAY_MS = 500;

/** The notebook as JSON for the server: what the pipeline depends on, outputs left out. */
export function notebookForServer(json: unknown): Record<string, unknown> {
  const nb = json as { cells?: Array<Record<string, unknown>> };
  return {
    ...nb,
    cells: (nb.cells ?? []).map(cell => {
      const rest = { ...cell };
      delete rest.attachments;
      return cell.cell_type === 'code'
        ? { ...rest, outputs: [], execution_count: null }
        : rest;
    })
  };
}

export class NotebookSection {
  readonly pipeline: PipelineView;
  readonly cellTools: CellTools;

  constructor(
    private readonly _app: JupyterFrontEnd,
    private readonly _tracker: INotebookTracker,
    private readonly _busy: Busy,
    private readonly _errors: ErrorBox
  ) {
    this.pipeline = new PipelineView({
      goToCell: index => this.goToCell(index, true),
      selectStep: step => this._selectStep(step),
      openTab: () => this.openTab()
    });
    this.cellTools = new CellTools((index, step) => {
      const nb = this._nb;
      const path = this.path();
      if (!nb || !path) {
        return Promise.reject(new Error('no notebook is open'));
      }
      return editCellStep({
        path,
        notebook: notebookForServer(nb.context.model.toJSON()),
        index,
        step
      });
    });
    this._tracker.activeCellChanged.connect(() => this._followCell());
  }

  /** The followed notebook changed (null: none). */
  get notebookChanged(): ISignal<this, NotebookPanel | null> {
    return this._notebookChanged;
  }

  /** A new pipeline view of the followed notebook. */
  get viewChanged(): ISignal<this, IPipelineView> {
    return this._viewChanged;
  }

  get notebook(): NotebookPanel | null {
    return this._nb;
  }

  /** The contents path of the followed notebook (without a drive prefix). */
  path(): string | null {
    const context = this._nb?.context;
    return context ? (context.localPath ?? context.path) : null;
  }

  /** Follow `nb` (null: none). */
  follow(nb: NotebookPanel | null): void {
    if (nb === this._nb) {
      return;
    }
    if (this._nb) {
      this._nb.context.model.contentChanged.disconnect(
        this._onContentChanged,
        this
      );
      this._nb.context.pathChanged.disconnect(this._onPathChanged, this);
    }
    this._badges?.dispose();
    this._badges = null;
    this._describeAbort?.abort();
    void this._describer.stop();
    this._describedKey = '';
    this._nb = nb;
    this._errors.clear('describe');
    this._notebookChanged.emit(nb);
    if (!nb) {
      this.pipeline.clear('');
      this.cellTools.setCell(null, null);
      this.cellTools.setPipeline(null);
      return;
    }
    this.pipeline.clear('Reading the pipeline…');
    void nb.context.ready.then(
      () => {
        if (this._nb !== nb || nb.isDisposed) {
          return;
        }
        nb.context.model.contentChanged.connect(this._onContentChanged, this);
        nb.context.pathChanged.connect(this._onPathChanged, this);
        this._badges = new CellBadges(nb);
        this._followCell();
        void this.describe();
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

  /** POST the live notebook model to `pipeline` and spread the answer. */
  async describe(): Promise<void> {
    const nb = this._nb;
    const path = this.path();
    if (!nb || !path || !nb.context.isReady) {
      return;
    }
    const notebook = notebookForServer(nb.context.model.toJSON());
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
    this.pipeline.setView(view);
    if (this._tab && !this._tab.isDisposed) {
      this._tab.setPipeline(view.ok ? view.pipeline : null, path);
    }
    this.cellTools.setPipeline(view);
    this._badges?.setView(view);
    this._showSelection();
    this._viewChanged.emit(view);
  }

  /** Show the followed notebook's DAG in a main-area tab (one tab, kept up to date). */
  openTab(): void {
    if (!this._tab || this._tab.isDisposed) {
      this._tab = new DagTab(step => this._selectStep(step, true));
      this._app.shell.add(this._tab, 'main', { mode: 'split-right' });
    }
    this._tab.setPipeline(this.pipeline.pipeline, this.path() ?? '');
    this._showSelection();
    this._app.shell.activateById(this._tab.id);
  }

  /** Make cell `index` active and visible (`focus`: bring the notebook forward too). */
  goToCell(index: number, focus: boolean): void {
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

  dispose(): void {
    this.follow(null);
    this._tab?.dispose();
    this._describer.dispose();
    this.cellTools.dispose();
    this.pipeline.dispose();
    Signal.clearData(this);
  }

  private _onPathChanged(): void {
    this._describedKey = '';
    void this.describe();
    this._notebookChanged.emit(this._nb);
  }

  private _onContentChanged(): void {
    this._describer.invoke().catch(() => undefined); // stopped: a newer notebook
  }

  private _followCell(): void {
    const nb = this._nb;
    const cell =
      nb && this._tracker.currentWidget === nb ? nb.content.activeCell : null;
    this.cellTools.setCell(nb, cell);
    this._showSelection();
  }

  /** The notebook DAG's selected node: the step of the active cell. */
  private _showSelection(): void {
    const nb = this._nb;
    const index = nb ? nb.content.activeCellIndex : -1;
    const step =
      this.pipeline.pipeline?.steps.find(st => st.cells.includes(index))
        ?.name ?? null;
    this.pipeline.setSelected(step);
    if (this._tab && !this._tab.isDisposed) {
      this._tab.setSelected(step);
    }
  }

  /** A node of the notebook's DAG was clicked: go to the step's first cell (`focus`: bring
   * the notebook forward, as from the DAG's tab). */
  private _selectStep(step: string, focus = false): void {
    const cells =
      this.pipeline.pipeline?.steps.find(st => st.name === step)?.cells ?? [];
    if (cells.length) {
      this.goToCell(Math.min(...cells), focus);
    }
  }

  private _nb: NotebookPanel | null = null;
  private _badges: CellBadges | null = null;
  private _tab: DagTab | null = null;
  private _describeAbort: AbortController | null = null;
  private _describedKey = '';
  private readonly _describer = new Debouncer(
    () => this.describe(),
    DESCRIBE_DELAY_MS
  );
  private readonly _notebookChanged = new Signal<this, NotebookPanel | null>(
    this
  );
  private readonly _viewChanged = new Signal<this, IPipelineView>(this);
}
