/**
 * kfnb's JupyterLab extension: a left side panel, "Kubeflow Notebook (kfnb)", that follows the
 * active notebook and talks to the kfnb server extension through the REST contract in `api.ts`.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { INotebookTracker } from '@jupyterlab/notebook';

import { KfnbPanel, PANEL_ID } from './panel';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'kfnb:plugin',
  description: 'Kubeflow Notebook (kfnb): run tagged notebooks as pipelines.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    restorer: ILayoutRestorer | null
  ): void => {
    const panel = new KfnbPanel({ app, tracker });
    app.shell.add(panel, 'left', { rank: 900 });
    restorer?.add(panel, PANEL_ID);
    void panel.refresh();
  }
};

export default plugin;
