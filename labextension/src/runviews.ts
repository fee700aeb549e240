/**
 * Views of a run's body, chosen by the run's kind from a small registry: the run detail
 * (`rundetail.ts`) draws what every run has (status, actions, parameters, error, metrics) and
 * hands the rest to the view registered for `run.kind`. Pipeline runs, training jobs and
 * studies register theirs (`pipelinerun.ts`, `trainrun.ts`, `studyrun.ts`); a kind with no view
 * of its own (a trial, a batch until it brings its own) gets `ChildRunsView`: the runs it
 * holds, each a link to its own detail.
 *
 * A new kind plugs in with `registerRunView(kind, actions => new MyView(actions))`, without
 * touching the panel.
 */
import { errorMessage, IEvent, IRun, listRuns } from './api';
import { h } from './dom';
import { durationText } from './runs';
import { statusIcon, statusWord } from './status';

/** What a run's views ask of the panel. */
export interface IRunActions {
  cancel(run: IRun): Promise<void>;
  openNotebook(run: IRun, step: string): Promise<void>;
  goToCell(index: number): void;
  /** Show another run (a child, a parent) in the detail. */
  selectRun(run: IRun): void;
}

/** The body of a run's detail for one kind of run. */
export interface IRunView {
  readonly node: HTMLElement;
  /** Show `run` (a new run, or the same one moved on). */
  show(run: IRun): void;
  /** A store event about the run shown. */
  onEvent(event: IEvent): void;
  /** Once a second while the panel is visible: update ticking durations. */
  tick(): void;
  dispose(): void;
}

export type RunViewFactory = (actions: IRunActions) => IRunView;

const registry = new Map<string, RunViewFactory>();

/** Use `factory` for the runs of `kind` (a later registration replaces an earlier one). */
export function registerRunView(kind: string, factory: RunViewFactory): void {
  registry.set(kind, factory);
}

/** The view for runs of `kind`: the registered one, else the children list. */
export function runViewFactory(kind: string): RunViewFactory {
  return registry.get(kind) ?? (actions => new ChildRunsView(actions));
}

/** The kinds with a view of their own (for tests and diagnostics). */
export function registeredKinds(): string[] {
  return [...registry.keys()];
}

/** A run's children (`GET runs?parent=ID`): kind, name, status, duration; click to open. */
export class ChildRunsView implements IRunView {
  readonly node = h('div', { class: 'kfnb-ChildRuns' });

  constructor(private readonly _actions: IRunActions) {}

  show(run: IRun): void {
    const key = `${run.id}:${run.child_count}:${run.status}`;
    if (key === this._key) {
      return;
    }
    this._key = key;
    if (!run.child_count) {
      this.node.replaceChildren(
        h('p', { class: 'kfnb-Muted' }, `This ${run.kind} run holds no runs.`)
      );
      return;
    }
    void this._load(run);
  }

  onEvent(): void {
    this._key = ''; // a child moved on: read them again at the next show
  }

  tick(): void {
    for (const child of this._children) {
      const cell = this.node.querySelector(
        `[data-run-id="${CSS.escape(child.id)}"] .kfnb-ChildRun-duration`
      );
      if (cell) {
        cell.textContent = durationText(child);
      }
    }
  }

  dispose(): void {
    this._children = [];
  }

  private async _load(run: IRun): Promise<void> {
    const seq = ++this._seq;
    try {
      const list = await listRuns({ parent: run.id, limit: 100 });
      if (seq !== this._seq) {
        return;
      }
      this._children = list.runs;
      this.node.replaceChildren(
        h('div', { class: 'kfnb-Heading' }, `Runs (${list.total})`),
        h(
          'ul',
          { class: 'kfnb-ChildRuns-items' },
          ...list.runs.map(child => this._item(child))
        )
      );
    } catch (error) {
      if (seq === this._seq) {
        this.node.replaceChildren(
          h(
            'p',
            { class: 'kfnb-Error' },
            `Could not list the runs of ${run.id}: ${errorMessage(error)}`
          )
        );
      }
    }
  }

  private _item(child: IRun): HTMLElement {
    const item = h(
      'li',
      {
        class: 'kfnb-ChildRun',
        'data-run-id': child.id,
        'data-kind': child.kind,
        'data-status': child.status,
        tabindex: 0,
        role: 'link',
        title: `${child.kind} ${child.name} ${child.id}: ${statusWord(child.status)}`
      },
      statusIcon(child.status),
      h('span', { class: 'kfnb-KindBadge' }, child.kind),
      h('span', { class: 'kfnb-ChildRun-name' }, child.name),
      h('span', { class: 'kfnb-ChildRun-duration' }, durationText(child))
    );
    const open = (): void => this._actions.selectRun(child);
    item.addEventListener('click', open);
    item.addEventListener('keydown', event => {
      if (event.key === 'Enter') {
        open();
      }
    });
    return item;
  }

  private _key = '';
  private _seq = 0;
  private _children: IRun[] = [];
}
