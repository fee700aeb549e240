import { describe, expect, it, vi } from 'vitest';

import type { IBackend, IParameterSpec, IPipelineView } from '../src/api';
import {
  inputKind,
  IRunChoice,
  ParamInput,
  placeholder,
  RunForm,
  runValues,
  shownValue
} from '../src/params';

const PARAMETERS: Record<string, IParameterSpec> = {
  n: { type: 'int', default: 5 },
  scale: { type: 'float', default: 1 },
  name: { type: 'str', default: 'abc' },
  verbose: { type: 'bool', default: false },
  sizes: { type: 'list', default: [1, 2] },
  opts: { type: 'dict', default: { a: 1 } },
  anything: { type: 'any', default: null }
};

function view(parameters = PARAMETERS, path = 'nb.ipynb'): IPipelineView {
  return {
    path,
    ok: true,
    problems: [],
    cells: [],
    pipeline: {
      name: 'nb',
      description: '',
      experiment: null,
      image: null,
      parameters,
      steps: [],
      edges: [],
      order: [],
      metrics: [],
      layout: {
        width: 0,
        height: 0,
        node_width: 160,
        node_height: 44,
        max_row: 4,
        nodes: [],
        edges: []
      }
    }
  };
}

const LOCAL: IBackend = {
  name: 'local',
  available: true,
  detached: false,
  detail: 'this machine',
  fix: null,
  options: [
    {
      name: 'cache',
      type: 'bool',
      default: true,
      help: 'reuse results',
      env: [],
      nullable: false
    }
  ]
};

describe('shownValue', () => {
  it("shows defaults as the inputs' texts", () => {
    expect(shownValue('int', 5)).toBe('5');
    expect(shownValue('float', 1)).toBe('1.0');
    expect(shownValue('float', 0.5)).toBe('0.5');
    expect(shownValue('str', 'abc')).toBe('abc');
    expect(shownValue('list', [1, 2])).toBe('[1,2]');
    expect(shownValue('dict', { a: 1 })).toBe('{"a":1}');
    expect(shownValue('list', 'x')).toBe('"x"');
    expect(shownValue('any', null)).toBe('');
    expect(shownValue('any', undefined)).toBe('');
  });
});

describe('inputKind and placeholder', () => {
  it('gives each type its input', () => {
    expect(inputKind('bool')).toBe('checkbox');
    expect(inputKind('int')).toBe('number');
    expect(inputKind('float')).toBe('number');
    for (const type of ['str', 'list', 'dict', 'any']) {
      expect(inputKind(type)).toBe('text');
    }
    expect(placeholder('list')).toBe('[1, 2]');
    expect(placeholder('dict')).toBe('{"key": 1}');
    expect(placeholder('str')).toBe('');
  });
});

describe('runValues', () => {
  const untouched = (): Map<string, ParamInput> =>
    new Map<string, ParamInput>([
      ['n', '5'],
      ['scale', '1.0'],
      ['name', 'abc'],
      ['verbose', false],
      ['sizes', '[1,2]'],
      ['opts', '{"a":1}'],
      ['anything', '']
    ]);

  it('sends nothing for untouched inputs', () => {
    expect(runValues(PARAMETERS, untouched())).toEqual({
      params: {},
      param_strings: {}
    });
  });

  it('sends texts as typed, without reading them', () => {
    const inputs = untouched();
    inputs.set('n', '6');
    inputs.set('sizes', '[1, 2, 3]');
    inputs.set('opts', 'not json {');
    inputs.set('anything', 'x: 1');
    expect(runValues(PARAMETERS, inputs)).toEqual({
      params: {},
      param_strings: {
        n: '6',
        sizes: '[1, 2, 3]',
        opts: 'not json {',
        anything: 'x: 1'
      }
    });
  });

  it('sends bools as values', () => {
    const inputs = untouched();
    inputs.set('verbose', true);
    expect(runValues(PARAMETERS, inputs).params).toEqual({ verbose: true });
  });

  it('keeps the default for a blank input, except an empty str', () => {
    const inputs = untouched();
    inputs.set('n', '  ');
    inputs.set('sizes', '');
    inputs.set('name', '');
    expect(runValues(PARAMETERS, inputs)).toEqual({
      params: {},
      param_strings: { name: '' }
    });
  });

  it('ignores inputs of parameters the pipeline no longer has', () => {
    const inputs = new Map<string, ParamInput>([['gone', '1']]);
    expect(runValues(PARAMETERS, inputs).param_strings).toEqual({});
  });
});

describe('RunForm', () => {
  function form() {
    const onRun = vi.fn<(choice: IRunChoice) => void>();
    const f = new RunForm(onRun);
    document.body.append(f.node);
    const input = (name: string) =>
      f.node.querySelector<HTMLInputElement>(
        `.kfnb-Param[data-param="${name}"] input`
      )!;
    const run = f.node.querySelector<HTMLButtonElement>('.kfnb-RunForm-run')!;
    return { f, onRun, input, run };
  }

  it('cannot run without a notebook, a pipeline and a backend', () => {
    const { f, run } = form();
    expect(run.disabled).toBe(true);
    f.setPipeline(view());
    expect(run.disabled).toBe(true);
    f.setBackends([LOCAL]);
    expect(run.disabled).toBe(false);
    f.setBusy(true);
    expect(run.disabled).toBe(true);
  });

  it('runs with the texts typed and the checkboxes', () => {
    const { f, onRun, input, run } = form();
    f.setPipeline(view());
    f.setBackends([LOCAL]);
    expect(input('n').type).toBe('number');
    expect(input('n').value).toBe('5');
    expect(input('sizes').value).toBe('[1,2]');
    expect(input('verbose').type).toBe('checkbox');
    input('sizes').value = '[3, 4]';
    input('sizes').dispatchEvent(new Event('input'));
    input('verbose').checked = true;
    input('verbose').dispatchEvent(new Event('change'));
    run.click();
    expect(onRun).toHaveBeenCalledWith({
      params: { verbose: true },
      param_strings: { sizes: '[3, 4]' },
      backend: 'local',
      options: { cache: true }
    });
  });

  it('keeps edits over a redraw of the same notebook, not of another', () => {
    const { f, input } = form();
    f.setPipeline(view());
    input('opts').value = '{"b": 2}';
    input('opts').dispatchEvent(new Event('input'));
    f.setPipeline(view());
    expect(input('opts').value).toBe('{"b": 2}');
    f.setPipeline(view(PARAMETERS, 'other.ipynb'));
    expect(input('opts').value).toBe('{"a":1}');
  });

  it("shows the server's error", () => {
    const { f } = form();
    f.showError("parameter 'n' is an int");
    expect(f.node.querySelector('.kfnb-RunForm-error')?.textContent).toBe(
      "parameter 'n' is an int"
    );
  });
});
