import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { IRun, IStepRun } from '../src/api';
import { runViewFactory } from '../src/runviews';
import '../src/rundetail'; // registers the views
import { TrainRunView, trainSummary } from '../src/trainrun';
import { configurePage } from './server';

const actions = {
  cancel: async () => undefined,
  openNotebook: async () => undefined,
  goToCell: () => undefined,
  selectRun: () => undefined
};

function rank(name: string, status: IStepRun['status']): IStepRun {
  return {
    run_id: 'r1',
    name,
    status,
    attempt: 1,
    started_at: 1,
    finished_at: status === 'RUNNING' ? null : 3,
    output_notebook: null,
    log: `/runs/r1/logs/${name}.log`,
    error:
      status === 'FAILED'
        ? { message: 'ValueError: bad shard 1', traceback: 'Traceback...' }
        : null,
    gpus: ['0'],
    hash: null,
    cached_from: null
  } as IStepRun;
}

function trainRun(spec: Record<string, unknown>, steps: IStepRun[]): IRun {
  return {
    id: 'r1',
    kind: 'train',
    name: 'train',
    status: 'FAILED',
    backend: 'local',
    notebook: null,
    params: { lr: 0.1 },
    metrics: {},
    created_at: 0,
    started_at: 1,
    finished_at: 3,
    error: 'rank 1 failed: ValueError: bad shard 1',
    parent_id: null,
    child_count: 0,
    remote: null,
    steps,
    spec: { train: spec },
    pipeline: null,
    notebook_path: null
  } as IRun;
}

// the selected rank's log, as the server pages it
const logRequests: string[] = [];
beforeEach(() => {
  configurePage();
  logRequests.length = 0;
  vi.stubGlobal(
    'fetch',
    vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init);
      logRequests.push(new URL(request.url).pathname);
      return new Response(
        JSON.stringify({
          text: 'ValueError: bad shard 1\n',
          offset: 24,
          done: true
        }),
        { status: 200, headers: { 'Content-Type': 'application/json' } }
      );
    })
  );
});
afterEach(() => {
  vi.unstubAllGlobals();
});

describe('a training job in the panel', () => {
  it('says what the job asked for', () => {
    const run = trainRun(
      {
        procs_per_node: 2,
        gpus_per_node: 2,
        nodes: 1,
        values: ['X', 'config']
      },
      []
    );
    expect(trainSummary(run)).toBe(
      '2 processes × 1 node · 2 GPUs per node · notebook values X, config · local'
    );
    const cluster = trainRun(
      { procs_per_node: 1, gpus_per_node: 0, nodes: 3, image: 'img:1' },
      []
    );
    expect(trainSummary({ ...cluster, backend: 'trainjob' })).toBe(
      '1 process × 3 nodes · no GPUs · image img:1 · trainjob'
    );
  });

  it('is the view registered for train runs: rank rows, no DAG, no notebooks', async () => {
    const view = runViewFactory('train')(actions);
    expect(view).toBeInstanceOf(TrainRunView);
    view.show(
      trainRun({ procs_per_node: 2 }, [
        rank('rank-0', 'FAILED'),
        rank('rank-1', 'FAILED')
      ])
    );
    const node = view.node;
    expect(node.querySelector('.kfnb-TrainRun-summary')?.textContent).toBe(
      '2 processes × 1 node · no GPUs · local'
    );
    expect(node.querySelector('.kfnb-DagViewport, .kfnb-Dag')).toBeNull(); // no DAG
    const rows = Array.from(node.querySelectorAll('.kfnb-StepRow')).map(
      r => (r as HTMLElement).dataset.step
    );
    expect(rows).toEqual(['rank-0', 'rank-1']);
    expect(node.querySelector('.kfnb-StepRow-notebook')).toBeNull();
    expect(node.querySelectorAll('.kfnb-StepRow-log')).toHaveLength(2);
    expect(node.querySelector('.kfnb-StepRow-error')?.textContent).toBe(
      'ValueError: bad shard 1'
    );
    // the failed rank's log is shown, paged from the step log route
    await vi.waitFor(() =>
      expect(logRequests).toContain(
        '/lab-base/kfnb/api/runs/r1/steps/rank-0/log'
      )
    );
    view.dispose();
  });
});
