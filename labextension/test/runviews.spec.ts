import { describe, expect, it } from 'vitest';

import {
  IRunView,
  registeredKinds,
  registerRunView,
  runViewFactory
} from '../src/runviews';

const actions = {
  cancel: async () => undefined,
  openNotebook: async () => undefined,
  goToCell: () => undefined,
  selectRun: () => undefined
};

describe('run views by kind', () => {
  it('uses the view registered for a kind', () => {
    const view = { node: {} } as unknown as IRunView;
    registerRunView('train', () => view);
    expect(registeredKinds()).toContain('train');
    expect(runViewFactory('train')(actions)).toBe(view);
  });

  it('a later registration replaces an earlier one', () => {
    const first = { node: {} } as unknown as IRunView;
    const second = { node: {} } as unknown as IRunView;
    registerRunView('tune', () => first);
    registerRunView('tune', () => second);
    expect(runViewFactory('tune')(actions)).toBe(second);
  });
});
