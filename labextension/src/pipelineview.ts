/**
 * The pipeline section of the panel: what the notebook's pipeline is (name, steps, parameters,
 * metrics), its DAG, and its problems. A problem with a cell index is a link to that cell.
 *
 * When the notebook stops being a valid pipeline while it is edited, the last good DAG stays,
 * dimmed, above the problems. This is the notebook as it is now: no run's step states are drawn
 * here (a run's detail draws the pipeline stored with the run).
 */
import { IPipeline, IPipelineView, IProblem } from './api';
import { renderDag, setSelected } from './dag';
import { DagViewport } from './dagviewport';
import { h, pythonLiteral } from './dom';

export interface IPipelineActions {
  goToCell(index: number): void;
  selectStep(step: string): void;
  /** Show the DAG larger, in a main-area tab that follows the notebook. */
  openTab(): void;
}

export class PipelineView {
  readonly node = h('div', { class: 'kfnb-PipelineView' });

  constructor(private readonly _actions: IPipelineActions) {
    this._viewport = new DagViewport('', undefined, () =>
      this._actions.openTab()
    );
    this.node.append(
      this._summary,
      this._viewport.node,
      this._problems,
      this._lists
    );
    this.clear('');
  }

  dispose(): void {
    this._viewport.dispose();
  }

  get pipeline(): IPipeline | null {
    return this._pipeline;
  }

  clear(message: string): void {
    this._pipeline = null;
    this._svg = null;
    this._key = '';
    this._summary.textContent = message;
    this._viewport.setSvg(null);
    this._viewport.box.classList.remove('kfnb-Dag--stale');
    this._problems.replaceChildren();
    this._lists.replaceChildren();
  }

  setView(view: IPipelineView): void {
    this._renderProblems(view.problems ?? []);
    const pipeline = view.ok ? view.pipeline : null;
    this._viewport.box.classList.toggle(
      'kfnb-Dag--stale',
      !pipeline && this._pipeline !== null
    );
    if (!pipeline) {
      this._summary.textContent = this._pipeline
        ? 'The notebook is not a valid pipeline now (last good graph shown dimmed).'
        : 'The notebook is not a valid pipeline.';
      return;
    }
    const key = JSON.stringify(pipeline);
    if (key !== this._key) {
      this._key = key;
      this._pipeline = pipeline;
      this._svg = renderDag(pipeline, {
        selected: this._selected,
        onSelect: step => this._actions.selectStep(step)
      });
      this._viewport.setSvg(this._svg);
      this._renderLists(pipeline);
    }
    const n = pipeline.steps.length;
    this._summary.replaceChildren(
      h('strong', { class: 'kfnb-PipelineView-name' }, pipeline.name),
      ` · ${n} step${n === 1 ? '' : 's'}`,
      pipeline.description
        ? h('span', { class: 'kfnb-Muted' }, ` · ${pipeline.description}`)
        : ''
    );
  }

  setSelected(step: string | null): void {
    this._selected = step;
    if (this._svg) {
      setSelected(this._svg, step);
    }
  }

  private _renderProblems(problems: IProblem[]): void {
    if (!problems.length) {
      this._problems.replaceChildren();
      return;
    }
    this._problems.replaceChildren(
      h(
        'div',
        { class: 'kfnb-Heading kfnb-Heading--error' },
        `Problems (${problems.length})`
      ),
      h(
        'ul',
        { class: 'kfnb-Problems' },
        ...problems.map(p => this._problem(p))
      )
    );
  }

  private _problem(problem: IProblem): HTMLElement {
    const where = problem.cell_index ?? null;
    const item = h(
      'li',
      {
        class: `kfnb-Problem${where !== null ? ' kfnb-mod-clickable' : ''}`,
        'data-cell-index': where ?? '',
        tabindex: where !== null ? 0 : null,
        role: where !== null ? 'link' : null,
        title: where !== null ? `Go to cell ${where}` : null
      },
      h('span', { class: 'kfnb-Problem-message' }, problem.message),
      problem.cell_line
        ? h(
            'code',
            { class: 'kfnb-Problem-line' },
            `cell ${where ?? '?'}: ${problem.cell_line}`
          )
        : where !== null
          ? h('span', { class: 'kfnb-Problem-line' }, `cell ${where}`)
          : '',
      problem.fix ? h('span', { class: 'kfnb-Problem-fix' }, problem.fix) : ''
    );
    if (where !== null) {
      const go = (): void => this._actions.goToCell(where);
      item.addEventListener('click', go);
      item.addEventListener('keydown', event => {
        if (event.key === 'Enter') {
          go();
        }
      });
    }
    return item;
  }

  private _renderLists(pipeline: IPipeline): void {
    const params = Object.entries(pipeline.parameters ?? {});
    const metrics = pipeline.metrics ?? [];
    this._lists.replaceChildren(
      h(
        'div',
        { class: 'kfnb-ParamList' },
        h('span', { class: 'kfnb-ListLabel' }, 'Parameters'),
        ...(params.length
          ? params.map(([name, spec]) =>
              h(
                'span',
                {
                  class: 'kfnb-Chip',
                  'data-param': name,
                  title: `${name}: ${spec.type ?? 'untyped'}`
                },
                `${name} = ${pythonLiteral(spec.type, spec.default)}`
              )
            )
          : [h('span', { class: 'kfnb-Muted' }, 'none')])
      ),
      h(
        'div',
        { class: 'kfnb-MetricList' },
        h('span', { class: 'kfnb-ListLabel' }, 'Metrics'),
        ...(metrics.length
          ? metrics.map(m =>
              h(
                'span',
                {
                  class: 'kfnb-Chip',
                  'data-metric': m.name,
                  title: `recorded from ${m.step}`
                },
                m.name
              )
            )
          : [h('span', { class: 'kfnb-Muted' }, 'none')])
      )
    );
  }

  private _pipeline: IPipeline | null = null;
  private _svg: SVGSVGElement | null = null;
  private _key = '';
  private _selected: string | null = null;
  private readonly _summary = h('p', { class: 'kfnb-PipelineView-summary' });
  private readonly _viewport: DagViewport;
  private readonly _problems = h('div', {
    class: 'kfnb-PipelineView-problems'
  });
  private readonly _lists = h('div', { class: 'kfnb-PipelineView-lists' });
}
