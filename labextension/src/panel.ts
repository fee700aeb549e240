/**
 * The kfnb side panel: a shell that lays out, top to bottom,
 * - the handshake (which kfnb the server runs; a warning when frontend and server differ);
 * - the followed notebook's pipeline: DAG (fit to the panel, zoom and pan), parameters,
 *   metrics, problems; and the cell tools for the active cell (`notebooksection.ts`);
 * - the run form, the notebook's runs as a tree and the selected run (`runsection.ts`).
 *
 * The sections do the work; the panel follows the active notebook and the panel's visibility.
 * Every request's failure ends up as a message in the panel, never as an unhandled rejection.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { getVersion, handshakeProblems, IVersionInfo } from './api';
import { h } from './dom';
import { Busy, ErrorBox } from './feedback';
import { kfnbIcon } from './icons';
import { NotebookSection } from './notebooksection';
import { RunSection } from './runsection';

export const PANEL_ID = 'kfnb-panel';

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

export class KfnbPanel extends Widget {
  constructor(options: IPanelOptions) {
    super();
    this._tracker = options.tracker;
    this.id = PANEL_ID;
    this.addClass('kfnb-Panel');
    this.title.icon = kfnbIcon;
    this.title.caption = 'Kubeflow Notebook (kfnb)';

    this._notebooks = new NotebookSection(
      options.app,
      options.tracker,
      this._busy,
      this._errors
    );
    this._runs = new RunSection(
      options.app,
      {
        path: () => this._notebooks.path(),
        saveIfDirty: async () => {
          const nb = this._notebooks.notebook;
          if (nb?.context.model.dirty) {
            await nb.context.save();
          }
        },
        goToCell: index => this._notebooks.goToCell(index, true)
      },
      this._busy,
      this._errors
    );
    this._notebooks.notebookChanged.connect((_, nb) => this._onNotebook(nb));
    this._notebooks.viewChanged.connect((_, view) =>
      this._runs.setPipeline(view)
    );
    // how runs are followed (stream, poll, offline): for the user's eyes and the tests
    this._runs.feed.modeChanged.connect((_, mode) => {
      this.node.dataset.feed = mode;
    });

    this._build();
    this._tracker.currentChanged.connect((_, nb) => this._follow(nb));
    this._follow(this._tracker.currentWidget);
  }

  /** The panel's DOM: header, warnings, errors, and the four sections. */
  private _build(): void {
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
      section('pipeline', 'Pipeline', this._notebooks.pipeline.node),
      section('cell', 'Cell', this._notebooks.cellTools.node),
      section('run', 'Run', this._runs.form.node),
      section('runs', 'Runs', this._runs.list.node, this._runs.detail.node)
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
    this._notebooks.dispose();
    this._runs.dispose();
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this._runs.start();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (this.isVisible) {
      this._runs.start(); // restored open: no after-show message comes
    }
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this._runs.pause();
  }

  /** Follow the active notebook; a closed one hands over to the next. */
  private _follow(nb: NotebookPanel | null): void {
    if (nb === this._nb) {
      return;
    }
    this._nb?.disposed.disconnect(this._onNotebookDisposed, this);
    this._nb = nb;
    nb?.disposed.connect(this._onNotebookDisposed, this);
    this._notebooks.follow(nb);
  }

  private _onNotebookDisposed(): void {
    const next = this._tracker.currentWidget;
    this._follow(next && next !== this._nb && !next.isDisposed ? next : null);
  }

  private _onNotebook(nb: NotebookPanel | null): void {
    this._notebook.textContent = nb?.context.path ?? '';
    this._empty.hidden = nb !== null;
    this._content.hidden = nb === null;
    this._runs.setNotebook(nb !== null);
  }

  private _showWarnings(problems: string[]): void {
    this._warning.replaceChildren(...problems.map(text => h('p', {}, text)));
    this._warning.hidden = problems.length === 0;
  }

  private readonly _tracker: INotebookTracker;
  private readonly _busy = new Busy();
  private readonly _errors = new ErrorBox();
  private readonly _notebooks: NotebookSection;
  private readonly _runs: RunSection;
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
}
