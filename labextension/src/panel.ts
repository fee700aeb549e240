/**
 * The kfnb side panel: shows which kfnb the server runs, warns when the frontend and the
 * server do not belong together, and (in later versions) hosts the run views.
 */
import { Widget } from '@lumino/widgets';

import { getVersion, handshakeProblems, IVersionInfo } from './api';
import { kfnbIcon } from './icons';

export const PANEL_ID = 'kfnb-panel';

export class KfnbPanel extends Widget {
  constructor() {
    super();
    this.id = PANEL_ID;
    this.addClass('kfnb-Panel');
    this.title.icon = kfnbIcon;
    this.title.caption = 'Kubeflow Notebook (kfnb)';

    const header = document.createElement('header');
    header.className = 'kfnb-Panel-header';
    const heading = document.createElement('h2');
    heading.textContent = 'Kubeflow Notebook (kfnb)';
    this._version.className = 'kfnb-Panel-version';
    this._version.textContent = 'Connecting to the kfnb server…';
    header.append(heading, this._version);

    this._warning.className = 'kfnb-Panel-warning';
    this._warning.setAttribute('role', 'alert');
    this._warning.hidden = true;

    this._body.className = 'kfnb-Panel-body';
    this.node.append(header, this._warning, this._body);
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

  private _showWarnings(problems: string[]): void {
    this._warning.replaceChildren(
      ...problems.map(text => {
        const p = document.createElement('p');
        p.textContent = text;
        return p;
      })
    );
    this._warning.hidden = problems.length === 0;
  }

  private readonly _version = document.createElement('div');
  private readonly _warning = document.createElement('div');
  private readonly _body = document.createElement('div');
}
