/**
 * kfnb's JupyterLab extension: a left side panel, "Kubeflow Notebook (kfnb)", that talks to
 * the kfnb server extension through the REST contract in `api.ts`.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';

import { KfnbPanel, PANEL_ID } from './panel';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'kfnb:plugin',
  description: 'Kubeflow Notebook (kfnb): run tagged notebooks as pipelines.',
  autoStart: true,
  optional: [ILayoutRestorer],
  activate: (app: JupyterFrontEnd, restorer: ILayoutRestorer | null): void => {
    const panel = new KfnbPanel();
    app.shell.add(panel, 'left', { rank: 900 });
    restorer?.add(panel, PANEL_ID);
    void panel.refresh();
  }
};

export default plugin;
