/**
 * The notebook's DAG in a main-area tab, for a pipeline too wide to read in the side panel: the
 * same served layout in a viewport that fills the tab (fitted, never enlarged past 100%;
 * zoom and pan as in the panel). The notebook section keeps it up to date as the notebook is
 * edited, and a click on a node goes to the step's first cell, as in the panel.
 */
import { Widget } from '@lumino/widgets';

import { IPipeline } from './api';
import { renderDag, setSelected } from './dag';
import { DagViewport } from './dagviewport';
import { h } from './dom';

export const DAG_TAB_ID = 'kfnb-dag-tab';

/** Room the tab keeps for its heading and the viewport's buttons, in px. */
const CHROME_PX = 48;

export class DagTab extends Widget {
  constructor(private readonly _onSelect: (step: string) => void) {
    super();
    this.id = DAG_TAB_ID;
    this.addClass('kfnb-DagTab');
    this.title.label = 'Pipeline';
    this.title.closable = true;
    this._viewport = new DagViewport('kfnb-DagTab-dag', () =>
      Math.max(200, this.node.clientHeight - CHROME_PX)
    );
    this.node.append(this._heading, this._viewport.node);
  }

  /** Draw `pipeline` of `notebook` (a contents path); null: the notebook is not valid now. */
  setPipeline(pipeline: IPipeline | null, notebook: string): void {
    const name = notebook.split('/').pop() ?? notebook;
    this.title.label = `Pipeline: ${name}`;
    this.title.caption = `The pipeline of ${notebook}`;
    this._viewport.box.classList.toggle(
      'kfnb-Dag--stale',
      !pipeline && this._key !== ''
    );
    if (!pipeline) {
      return;
    }
    const n = pipeline.steps.length;
    this._heading.replaceChildren(
      h('strong', {}, pipeline.name),
      ` · ${n} step${n === 1 ? '' : 's'} · ${notebook}`
    );
    const key = JSON.stringify(pipeline);
    if (key === this._key) {
      return;
    }
    this._key = key;
    this._svg = renderDag(pipeline, {
      selected: this._selected,
      onSelect: step => this._onSelect(step)
    });
    this._viewport.setSvg(this._svg);
  }

  setSelected(step: string | null): void {
    this._selected = step;
    if (this._svg) {
      setSelected(this._svg, step);
    }
  }

  dispose(): void {
    if (!this.isDisposed) {
      this._viewport.dispose();
    }
    super.dispose();
  }

  private readonly _viewport: DagViewport;
  private readonly _heading = h('p', { class: 'kfnb-DagTab-heading' });
  private _svg: SVGSVGElement | null = null;
  private _key = '';
  private _selected: string | null = null;
}
