import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { IEvent, IRun, IStudyView, ITrial } from '../src/api';
import '../src/rundetail'; // registers the views
import { runViewFactory } from '../src/runviews';
import {
  formatNumber,
  paramsText,
  StudyRunView,
  studySummary,
  svgElement
} from '../src/studyrun';
import { configurePage } from './server';

const API = '/lab-base/kfnb/api/';

/** A plot as the server draws it: an SVG document with a scoped style and ids per trial,
 *  plus what a hostile document could carry (a script, an event handler, a foreign link). */
function plot(kind: string, trials: number[]): string {
  const marks = trials
    .map(
      n =>
        `<g id="kfnb-${kind}-trial-${n}"><path d="M ${n} 0 L ${n} 1" style="stroke: #1e88e5"/></g>`
    )
    .join('');
  return (
    `<svg class="kfnb-study-plot kfnb-study-${kind}" data-kind="${kind}" ` +
    'xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" ' +
    'width="432pt" height="230pt" viewBox="0 0 432 230" onload="window.hacked = true">' +
    `<style>.kfnb-study-${kind} *{stroke-linejoin: round}</style>` +
    '<script>window.hacked = true</script>' +
    '<a xlink:href="javascript:alert(1)"><text x="1" y="1">link</text></a>' +
    '<image id="bar" xlink:href="data:image/png;base64,iVBORw0KGgo="/>' +
    '<image id="page" xlink:href="data:text/html;base64,PHNjcmlwdD4="/>' +
    '<defs><path id="dot" d="M 0 0 L 1 1"/></defs><use id="mark" xlink:href="#dot"/>' +
    `${marks}</svg>`
  );
}

function trial(
  number: number,
  status: ITrial['status'],
  x: number,
  value: number | null,
  extra: Partial<ITrial> = {}
): ITrial {
  return {
    id: `t${number}`,
    number,
    name: `trial-${number}`,
    status,
    params: { x, opt: 'adam' },
    value,
    intermediate: [[0, (value ?? 1) + 1]],
    started_at: 100 + number,
    finished_at: status === 'RUNNING' ? null : 103 + number,
    duration: status === 'RUNNING' ? 1 : 3,
    error: null,
    run: `p${number}`,
    remote: null,
    ...extra
  };
}

function studyView(trials: ITrial[], budget = 4): IStudyView {
  const count = (s: string): number =>
    trials.filter(t => t.status === s).length;
  const scored = trials.filter(t => t.status === 'SUCCEEDED');
  const best = scored.length
    ? scored.reduce((a, b) => ((b.value ?? 0) < (a.value ?? 0) ? b : a))
    : null;
  return {
    id: 's1',
    name: 'tiny',
    status: 'RUNNING',
    backend: 'local',
    notebook: '/root/tiny.ipynb',
    notebook_path: 'tiny.ipynb',
    error: null,
    created_at: 99,
    started_at: 100,
    finished_at: null,
    remote: null,
    study: {
      space: { x: { float: [0, 1] }, opt: { choice: ['adam', 'sgd'] } },
      objective: 'loss',
      direction: 'minimize',
      algorithm: 'tpe',
      trials: budget,
      parallel: 2,
      prune: { name: 'median', startup_trials: 1, warmup_steps: 0 },
      seed: null,
      max_failed: null,
      fixed: {},
      target: { notebook: '/root/tiny.ipynb' }
    },
    counts: {
      PENDING: count('PENDING'),
      RUNNING: count('RUNNING'),
      SUCCEEDED: count('SUCCEEDED'),
      PRUNED: count('PRUNED'),
      FAILED: count('FAILED'),
      CANCELED: count('CANCELED')
    },
    best,
    trials,
    plots: {
      history: plot(
        'history',
        trials.map(t => t.number ?? 0)
      ),
      parallel: plot(
        'parallel',
        scored.map(t => t.number ?? 0)
      )
    }
  };
}

const SERVED = studyView([
  trial(0, 'SUCCEEDED', 0.3125, 0.000156),
  trial(1, 'PRUNED', 0.9, null),
  trial(2, 'FAILED', 0.5, null, { error: 'step fit failed: ValueError: nope' }),
  trial(3, 'RUNNING', 0.25, null)
]);

function studyRun(status: IRun['status'] = 'RUNNING'): IRun {
  return {
    id: 's1',
    kind: 'tune',
    name: 'tiny',
    status,
    backend: 'local',
    notebook: '/root/tiny.ipynb',
    params: {},
    metrics: {},
    created_at: 99,
    started_at: 100,
    finished_at: null,
    error: null,
    parent_id: null,
    child_count: 4,
    remote: null,
    steps: [],
    spec: { study: SERVED.study },
    pipeline: null,
    notebook_path: 'tiny.ipynb'
  };
}

function childRun(id: string, kind: IRun['kind']): IRun {
  return {
    ...studyRun('SUCCEEDED'),
    id,
    kind,
    parent_id: 's1',
    child_count: 0
  };
}

interface ISeen {
  method: string;
  path: string;
  body: string;
}

let seen: ISeen[] = [];
let studyAnswers: IStudyView[] = [];

beforeEach(() => {
  configurePage();
  seen = [];
  studyAnswers = [SERVED];
  vi.stubGlobal(
    'fetch',
    vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init);
      const path = new URL(request.url).pathname;
      const body = await request.text();
      seen.push({ method: request.method, path, body });
      const json = (value: unknown, status = 200): Response =>
        new Response(JSON.stringify(value), {
          status,
          headers: { 'Content-Type': 'application/json' }
        });
      if (path === `${API}studies/s1` && request.method === 'GET') {
        return json(
          studyAnswers.length > 1 ? studyAnswers.shift() : studyAnswers[0]
        );
      }
      if (path === `${API}studies/s1/trials` && request.method === 'POST') {
        const add = (JSON.parse(body) as { add: number }).add;
        const more = [...SERVED.trials, trial(4, 'PENDING', 0.1, null)];
        return json(studyView(more, SERVED.study.trials + add));
      }
      const run = /runs\/([^/]+)$/.exec(path);
      if (run && request.method === 'GET') {
        return json(
          childRun(run[1], run[1].startsWith('t') ? 'trial' : 'pipeline')
        );
      }
      return json(
        { code: 404, message: 'no such route', fix: null, where: null },
        404
      );
    })
  );
});
afterEach(() => {
  vi.unstubAllGlobals();
});

function makeView(): {
  view: StudyRunView;
  selected: IRun[];
  canceled: IRun[];
} {
  const selected: IRun[] = [];
  const canceled: IRun[] = [];
  const view = runViewFactory('tune')({
    cancel: async run => {
      canceled.push(run);
    },
    openNotebook: async () => undefined,
    goToCell: () => undefined,
    selectRun: run => selected.push(run)
  }) as StudyRunView;
  return { view, selected, canceled };
}

async function shown(): Promise<ReturnType<typeof makeView>> {
  const made = makeView();
  made.view.show(studyRun());
  await vi.waitFor(() =>
    expect(made.view.node.querySelector('.kfnb-StudyTrials')).not.toBeNull()
  );
  return made;
}

function studyEvent(id: number, kind: string, runId = 's1'): IEvent {
  return {
    id,
    run_id: runId,
    time: id,
    kind,
    data: { trial: 1, status: 'PRUNED' }
  };
}

function studyGets(): number {
  return seen.filter(r => r.method === 'GET' && r.path === `${API}studies/s1`)
    .length;
}

describe('a tuning study in the panel', () => {
  it('is the view registered for tune runs', () => {
    expect(makeView().view).toBeInstanceOf(StudyRunView);
  });

  it('says what the study searches and how its numbers read', () => {
    expect(studySummary(SERVED)).toBe(
      'loss (minimize) · tpe · 3 of 4 trials · 2 at a time · median pruning · local'
    );
    expect(formatNumber(0.000156)).toBe('1.560e-4');
    expect(formatNumber(0.3125)).toBe('0.3125');
    expect(formatNumber(2 / 3)).toBe('0.6667');
    expect(formatNumber(null)).toBe('–');
    expect(paramsText({ x: 0.123456, opt: 'adam', deep: true })).toBe(
      "x=0.1235, opt='adam', deep=True"
    );
  });

  it('renders the served view: counts, best, trial rows with their states', async () => {
    const { view } = await shown();
    const node = view.node;
    expect(seen[0]).toMatchObject({ method: 'GET', path: `${API}studies/s1` });
    const counts = Object.fromEntries(
      Array.from(node.querySelectorAll('.kfnb-StudyRun-count')).map(li => [
        (li as HTMLElement).dataset.state,
        li.querySelector('.kfnb-StudyRun-countValue')?.textContent
      ])
    );
    expect(counts).toEqual({
      RUNNING: '1',
      SUCCEEDED: '1',
      PRUNED: '1',
      FAILED: '1'
    });
    expect(node.querySelector('.kfnb-StudyRun-best')?.textContent).toBe(
      "Best loss 1.560e-4trial 0x=0.3125, opt='adam'"
    );
    const rows = Array.from(
      node.querySelectorAll('tr.kfnb-StudyTrial')
    ) as HTMLElement[];
    expect(rows.map(r => [r.dataset.trial, r.dataset.status])).toEqual([
      ['0', 'SUCCEEDED'],
      ['1', 'PRUNED'],
      ['2', 'FAILED'],
      ['3', 'RUNNING']
    ]);
    expect(rows[0].classList.contains('kfnb-StudyTrial--best')).toBe(true);
    const pruned = rows[1];
    expect(
      pruned.querySelector('.kfnb-StatusIcon.kfnb-Status--PRUNED svg')
    ).not.toBeNull();
    expect(pruned.querySelector('.kfnb-StudyTrial-state')?.textContent).toBe(
      'pruned'
    );
    expect(pruned.querySelector('.kfnb-StudyTrial-params')?.textContent).toBe(
      "x=0.9, opt='adam'"
    );
    expect(pruned.querySelector('.kfnb-StudyTrial-value')?.textContent).toBe(
      '–'
    );
    expect(rows[0].querySelector('.kfnb-StudyTrial-value')?.textContent).toBe(
      '1.560e-4'
    );
    expect(
      rows[0].querySelector('.kfnb-StudyTrial-duration')?.textContent
    ).toBe('3.0 s');
    expect(node.querySelector('.kfnb-StudyTrial-error')?.textContent).toBe(
      'step fit failed: ValueError: nope'
    );
    expect(rows[3].querySelector('.kfnb-Spinner')).not.toBeNull(); // running
    view.dispose();
  });

  it('inserts the served plots as SVG elements, without scripts or handlers', async () => {
    const { view } = await shown();
    for (const kind of ['history', 'parallel']) {
      const svg = view.node.querySelector(
        `figure.kfnb-StudyRun-plot[data-kind="${kind}"] > svg`
      );
      expect(svg?.namespaceURI).toBe('http://www.w3.org/2000/svg');
      expect(svg?.getAttribute('class')).toBe(
        `kfnb-study-plot kfnb-study-${kind}`
      );
      expect(svg?.querySelector('style')?.textContent).toContain(
        `.kfnb-study-${kind}`
      );
      expect(svg?.hasAttribute('onload')).toBe(false);
      expect(svg?.querySelector('script')).toBeNull();
      expect(svg?.querySelector('a')?.hasAttribute('xlink:href')).toBe(false);
      expect(svg?.querySelector('#bar')?.getAttribute('xlink:href')).toBe(
        'data:image/png;base64,iVBORw0KGgo='
      );
      expect(svg?.querySelector('#page')?.hasAttribute('xlink:href')).toBe(
        false
      );
      expect(svg?.querySelector('#mark')?.getAttribute('xlink:href')).toBe(
        '#dot'
      );
    }
    expect(view.node.querySelector('#kfnb-history-trial-1')).not.toBeNull(); // the pruned trial
    expect(view.node.querySelector('#kfnb-parallel-trial-0')).not.toBeNull();
    expect((window as unknown as { hacked?: boolean }).hacked).toBeUndefined();
    view.dispose();
  });

  it('never reads a plot as HTML', () => {
    expect(
      svgElement('<img src="x" onerror="window.hacked = true">')
    ).toBeNull();
    expect(svgElement('not a plot')).toBeNull();
    expect(
      svgElement('<html xmlns="http://www.w3.org/1999/xhtml"/>')
    ).toBeNull();
    const svg = svgElement(plot('history', [7]));
    expect(svg?.querySelector('#kfnb-history-trial-7')).not.toBeNull();
  });

  it('"Add trials" posts the number asked for and shows the answer', async () => {
    const { view } = await shown();
    const input = view.node.querySelector(
      '.kfnb-StudyRun-addCount'
    ) as HTMLInputElement;
    input.value = '3';
    (
      view.node.querySelector('.kfnb-StudyRun-add') as HTMLButtonElement
    ).click();
    await vi.waitFor(() =>
      expect(view.node.querySelectorAll('tr.kfnb-StudyTrial')).toHaveLength(5)
    );
    const posts = seen.filter(r => r.method === 'POST');
    expect(posts).toEqual([
      { method: 'POST', path: `${API}studies/s1/trials`, body: '{"add":3}' }
    ]);
    expect(
      view.node.querySelector('.kfnb-StudyRun-summary')?.textContent
    ).toContain('3 of 7 trials');
    expect(view.study?.study.trials).toBe(7);
    view.dispose();
  });

  it('asks for a whole number of trials before posting', async () => {
    const { view } = await shown();
    const input = view.node.querySelector(
      '.kfnb-StudyRun-addCount'
    ) as HTMLInputElement;
    input.value = '0';
    (
      view.node.querySelector('.kfnb-StudyRun-add') as HTMLButtonElement
    ).click();
    expect(view.node.querySelector('.kfnb-StudyRun-error')?.textContent).toBe(
      'Give a whole number of trials to add, 1 or more.'
    );
    expect(seen.filter(r => r.method === 'POST')).toHaveLength(0);
    view.dispose();
  });

  it('opens a trial, or the run it ran, in the runs detail', async () => {
    const { view, selected } = await shown();
    const row = view.node.querySelector(
      'tr.kfnb-StudyTrial[data-trial="1"]'
    ) as HTMLElement;
    row.click();
    await vi.waitFor(() =>
      expect(selected.map(r => [r.id, r.kind])).toEqual([['t1', 'trial']])
    );
    (row.querySelector('.kfnb-StudyTrial-run') as HTMLButtonElement).click();
    await vi.waitFor(() => expect(selected).toHaveLength(2));
    expect([selected[1].id, selected[1].kind]).toEqual(['p1', 'pipeline']);
    view.dispose();
  });

  it("reads the study again once per burst of the study's events, not for others", async () => {
    const { view } = await shown();
    const plotBefore = view.node.querySelector('figure[data-kind="history"]');
    const parallelBefore = view.node.querySelector(
      'figure[data-kind="parallel"]'
    );
    expect(studyGets()).toBe(1);
    const moved = studyView([
      trial(0, 'SUCCEEDED', 0.3125, 0.000156),
      trial(1, 'PRUNED', 0.9, null),
      trial(2, 'FAILED', 0.5, null, {
        error: 'step fit failed: ValueError: nope'
      }),
      trial(3, 'SUCCEEDED', 0.25, 0.0025),
      trial(4, 'RUNNING', 0.7, null)
    ]);
    view.onEvent(studyEvent(8, 'trial', 'other-run'));
    view.onEvent(studyEvent(9, 'warning'));
    await new Promise(resolve => setTimeout(resolve, 400));
    expect(studyGets()).toBe(1); // neither is news of this study
    studyAnswers = [moved];
    view.onEvent(studyEvent(10, 'trial'));
    view.onEvent(studyEvent(11, 'pruned'));
    view.onEvent(studyEvent(12, 'trial'));
    await vi.waitFor(() =>
      expect(view.node.querySelectorAll('tr.kfnb-StudyTrial')).toHaveLength(5)
    );
    await new Promise(resolve => setTimeout(resolve, 400));
    expect(studyGets()).toBe(2);
    // a plot whose text changed is inserted anew, the other kept as it was
    expect(view.node.querySelector('figure[data-kind="history"]')).not.toBe(
      plotBefore
    );
    expect(view.node.querySelector('#kfnb-history-trial-4')).not.toBeNull();
    const parallelAfter = view.node.querySelector(
      'figure[data-kind="parallel"]'
    );
    expect(parallelAfter).not.toBe(parallelBefore);
    studyAnswers = [moved];
    view.onEvent(studyEvent(15, 'trial'));
    await vi.waitFor(() => expect(studyGets()).toBe(3));
    expect(view.node.querySelector('figure[data-kind="parallel"]')).toBe(
      parallelAfter
    );
    view.dispose();
  });

  it('shows why the study could not be read', async () => {
    const { view } = makeView();
    view.show({ ...studyRun(), id: 'gone' });
    await vi.waitFor(() =>
      expect(view.node.querySelector('.kfnb-Error')?.textContent).toBe(
        'Could not read study gone: no such route'
      )
    );
    view.dispose();
  });
});
