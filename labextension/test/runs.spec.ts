import { describe, expect, it } from 'vitest';

import { IRun } from '../src/api';
import { RunList, sizeText } from '../src/runs';

function run(id: string, disk_bytes?: number): IRun {
  return {
    id,
    kind: 'pipeline',
    name: 'fanout',
    status: 'SUCCEEDED',
    backend: 'local',
    notebook: '/root/fanout.ipynb',
    params: {},
    metrics: {},
    created_at: 100,
    started_at: 100,
    finished_at: 101,
    error: null,
    parent_id: null,
    child_count: 0,
    remote: null,
    steps: [],
    spec: null,
    pipeline: null,
    notebook_path: 'fanout.ipynb',
    ...(disk_bytes === undefined ? {} : { disk_bytes })
  };
}

describe('run sizes', () => {
  it('writes bytes in human units, as kfnb runs does', () => {
    expect(sizeText(0)).toBe('0 B');
    expect(sizeText(512)).toBe('512 B');
    expect(sizeText(1536)).toBe('1.5 KiB');
    expect(sizeText(27923)).toBe('27 KiB');
    expect(sizeText(25 * 1024 * 1024)).toBe('25 MiB');
    expect(sizeText(3 * 1024 ** 3)).toBe('3.0 GiB');
    expect(sizeText(undefined)).toBe('');
    expect(sizeText(null)).toBe('');
    expect(sizeText(-1)).toBe('');
  });

  it('labels each listed run with its disk use, when the server says it', () => {
    const list = new RunList(() => undefined);
    list.setRuns([run('r2', 27923), run('r1')], 2);
    const label = list.node.querySelector(
      '[data-run-id="r2"] .kfnb-RunItem-size'
    );
    expect(label?.textContent).toBe('27 KiB');
    expect(label?.getAttribute('title')).toBe(
      '27923 bytes in its artifacts folder on the server'
    );
    expect(
      list.node.querySelector('[data-run-id="r1"] .kfnb-RunItem-size')
    ).toBeNull();
  });
});
