import { describe, expect, it } from 'vitest';

import type { ICellInfo, IPipelineView } from '../src/api';
import { badgeOf, cellInfo, cellStatus } from '../src/celltools';

function info(over: Partial<ICellInfo>): ICellInfo {
  return {
    index: 0,
    id: null,
    type: 'code',
    role: null,
    step: null,
    starts: false,
    declared_by: null,
    after: [],
    gpus: 0,
    image: null,
    editable: true,
    ...over
  };
}

function view(cells: ICellInfo[]): IPipelineView {
  return { path: 'nb.ipynb', ok: true, problems: [], pipeline: null, cells };
}

// only `model.id` of a cell is read
const cellWithId = (id: string | undefined) =>
  ({ model: { id } }) as unknown as Parameters<typeof cellInfo>[1];

describe('badgeOf', () => {
  it('badges a step a %%step line declares, and says so', () => {
    const badge = badgeOf(
      info({
        role: 'step',
        step: 'train',
        starts: true,
        declared_by: 'magic',
        after: ['load'],
        gpus: 2
      })
    );
    expect(badge?.text).toBe('train');
    expect(badge?.kind).toBe('step');
    expect(badge?.title).toContain('after load');
    expect(badge?.title).toContain('GPU 2');
    expect(badge?.title).toContain('%%step line');
  });

  it('badges a section cell with its role', () => {
    expect(badgeOf(info({ role: 'imports', editable: false }))?.kind).toBe(
      'imports'
    );
  });

  it('gives no badge to a cell that continues a step, nor to markdown', () => {
    expect(badgeOf(info({ step: 'train' }))).toBeNull();
    expect(badgeOf(info({ type: 'markdown', editable: false }))).toBeNull();
    expect(badgeOf(null)).toBeNull();
  });
});

describe('cellStatus', () => {
  it('tells what the cell is, in the server’s words', () => {
    expect(cellStatus(info({ role: 'step', step: 'a', starts: true }), 3)).toBe(
      'Cell 3 starts step “a”.'
    );
    expect(cellStatus(info({ step: 'a' }), 4)).toContain('continues step “a”');
    expect(cellStatus(info({}), 0)).toContain('starts no step');
    expect(cellStatus(info({ role: 'skip', editable: false }), 1)).toBe(
      'Cell 1 is the skip cell (not run).'
    );
    expect(cellStatus(null, 2)).toContain('reading');
  });
});

describe('cellInfo', () => {
  const cells = [
    info({ index: 0, id: 'a' }),
    info({ index: 1, id: 'b', step: 'x' })
  ];

  it('finds a cell by its id, wherever it moved', () => {
    expect(cellInfo(view(cells), cellWithId('b'), 0)?.step).toBe('x');
  });

  it('knows nothing of a cell added since the last reading', () => {
    expect(cellInfo(view(cells), cellWithId('new'), 1)).toBeNull();
  });

  it('falls back to the index for notebooks without cell ids', () => {
    const old = [info({ index: 0 }), info({ index: 1, step: 'y' })];
    expect(cellInfo(view(old), cellWithId(undefined), 1)?.step).toBe('y');
  });
});
