/**
 * The run form: the pipeline's parameters as inputs (number, checkbox for bool, text for
 * str/list/dict/any), the backend to run on (`GET backends`; unavailable ones disabled, with
 * why), the step cache switch (when the backend has a `cache` option) and the Run button. The
 * backend's options go to `POST runs` as `options`.
 *
 * The form does not read parameter values itself: a checkbox sends its bool in `params`, every
 * other input sends its text in `param_strings`, which the server reads with the notebook's
 * types (like the CLI's `-p NAME TEXT`) and answers a readable error for a bad value, shown
 * under the form. Values the user typed survive a redraw (the pipeline is described again on
 * every edit) while the parameter keeps its name and type. Only values that differ from the
 * defaults are sent.
 */
import { runIcon } from '@jupyterlab/ui-components';

import {
  IBackend,
  IBackendOption,
  IParameterSpec,
  IPipelineView,
  IRunRequest
} from './api';
import { h, pythonLiteral } from './dom';

/**
 * What the Run button asks for: `POST runs` without the notebook's path (the contract's
 * `RunRequest` fields, all given): `params` typed values (bools from checkboxes),
 * `param_strings` texts the server reads with each parameter's type, `backend` and the
 * backend's `options` the form set.
 */
export type IRunChoice = {
  [K in 'params' | 'param_strings' | 'options']-?: NonNullable<IRunRequest[K]>;
} & { backend: string };

/** What a parameter's input holds: a checkbox's state or an input's text. */
export type ParamInput = boolean | string;

/** The text an input shows for a value of `type` (its default, before any edit). */
export function shownValue(type: string, value: unknown): string {
  if (value === null || value === undefined) {
    return '';
  }
  if (typeof value === 'string' && type !== 'list' && type !== 'dict') {
    return value;
  }
  if (typeof value === 'number') {
    return pythonLiteral(type, value);
  }
  return JSON.stringify(value);
}

/** The input a parameter of `type` gets. */
export function inputKind(type: string): 'checkbox' | 'number' | 'text' {
  return type === 'bool'
    ? 'checkbox'
    : type === 'int' || type === 'float'
      ? 'number'
      : 'text';
}

/** The example a text input shows while empty. */
export function placeholder(type: string): string {
  return type === 'list' ? '[1, 2]' : type === 'dict' ? '{"key": 1}' : '';
}

/**
 * The `params` and `param_strings` of a run from what the inputs hold: only values that differ
 * from the defaults; a blank input (other than a str's) keeps the default. Texts are sent as
 * typed: the server reads them with the notebook's types and names a bad one.
 */
export function runValues(
  parameters: Record<string, IParameterSpec>,
  inputs: ReadonlyMap<string, ParamInput>
): Pick<IRunChoice, 'params' | 'param_strings'> {
  const params: Record<string, unknown> = {};
  const strings: Record<string, string> = {};
  for (const [name, input] of inputs) {
    const spec = parameters[name];
    if (!spec) {
      continue;
    }
    if (typeof input === 'boolean') {
      if (input !== spec.default) {
        params[name] = input;
      }
      continue;
    }
    if (spec.type !== 'str' && input.trim() === '') {
      continue;
    }
    if (input !== shownValue(spec.type, spec.default)) {
      strings[name] = input;
    }
  }
  return { params, param_strings: strings };
}

export class RunForm {
  readonly node = h('div', { class: 'kfnb-RunForm' });

  constructor(private readonly _onRun: (choice: IRunChoice) => void) {
    this._run.append(
      runIcon.element({ tag: 'span', className: 'kfnb-Icon' }),
      this._runLabel
    );
    this._run.addEventListener('click', () => this._submit());
    this._backend.addEventListener('change', () => this._renderBackendDetail());
    this.node.append(
      this._params,
      h(
        'div',
        { class: 'kfnb-RunForm-row' },
        h(
          'label',
          { class: 'kfnb-Field kfnb-Field--grow' },
          h('span', {}, 'Backend'),
          this._backend
        ),
        h(
          'label',
          { class: 'kfnb-Check', title: 'Reuse results of unchanged steps' },
          this._cache,
          'cache'
        )
      ),
      this._backendDetail,
      h('div', { class: 'kfnb-Actions' }, this._run, this._note),
      this._error
    );
    this._cache.checked = true;
    this._update();
  }

  /** Show the parameters of the pipeline of `path` (null: no notebook). */
  setPipeline(view: IPipelineView | null): void {
    if (view?.path !== this._path) {
      this._edits.clear();
      this._path = view?.path ?? null;
    }
    this._view = view;
    this._renderParams();
    this._update();
  }

  setBackends(backends: IBackend[]): void {
    const previous = this._backend.value;
    this._backend.replaceChildren(
      ...backends.map(b =>
        h(
          'option',
          { value: b.name, disabled: !b.available, title: b.detail },
          b.available ? b.name : `${b.name} (unavailable: ${b.detail})`
        )
      )
    );
    this._backends = backends;
    const keep = backends.find(b => b.name === previous && b.available);
    const first = backends.find(b => b.available);
    this._backend.value = keep?.name ?? first?.name ?? '';
    this._renderBackendDetail();
    this._update();
  }

  /** While a run starts: the button shows it and does not take a second click. */
  setBusy(busy: boolean): void {
    this._busy = busy;
    this._runLabel.textContent = busy ? 'Starting…' : 'Run';
    this._run.classList.toggle('kfnb-mod-busy', busy);
    this._update();
  }

  showError(message: string): void {
    this._error.textContent = message;
  }

  private _renderParams(): void {
    const params = this._view?.pipeline?.parameters ?? {};
    const names = Object.keys(params);
    this._readers.clear();
    if (!names.length) {
      this._params.replaceChildren(
        h(
          'p',
          { class: 'kfnb-Muted' },
          this._view?.pipeline ? 'No pipeline parameters.' : ''
        )
      );
      return;
    }
    const focused = document.activeElement as HTMLElement | null;
    const focusName =
      focused?.closest<HTMLElement>('.kfnb-Param')?.dataset.param;
    this._params.replaceChildren(
      h('div', { class: 'kfnb-Heading' }, 'Parameters'),
      ...names.map(name => this._paramField(name, params[name]))
    );
    if (focusName) {
      this._params
        .querySelector<HTMLInputElement>(
          `.kfnb-Param[data-param="${CSS.escape(focusName)}"] input`
        )
        ?.focus();
    }
  }

  private _paramField(name: string, spec: IParameterSpec): HTMLElement {
    const type = spec.type;
    const key = `${name}:${type}`;
    const edit = this._edits.get(key);
    const kind = inputKind(type);
    let input: HTMLInputElement;
    let reader: () => ParamInput;
    if (kind === 'checkbox') {
      input = h('input', {
        type: 'checkbox',
        checked: typeof edit === 'boolean' ? edit : !!spec.default
      });
      input.addEventListener('change', () =>
        this._edits.set(key, input.checked)
      );
      reader = () => input.checked;
    } else {
      input = h('input', {
        class: 'kfnb-Input',
        type: kind,
        ...(kind === 'number' ? { step: type === 'int' ? 1 : 'any' } : {}),
        spellcheck: 'false',
        value: typeof edit === 'string' ? edit : shownValue(type, spec.default),
        placeholder: placeholder(type)
      });
      input.addEventListener('input', () => this._edits.set(key, input.value));
      reader = () => input.value;
    }
    this._readers.set(name, reader);
    return h(
      'label',
      {
        class: 'kfnb-Param kfnb-Field',
        'data-param': name,
        title: `${name}: ${type}, default ${pythonLiteral(type, spec.default)}`
      },
      h(
        'span',
        { class: 'kfnb-Param-name' },
        name,
        h('small', { class: 'kfnb-Param-type' }, type)
      ),
      input
    );
  }

  private _renderBackendDetail(): void {
    const chosen = this._backends.find(b => b.name === this._backend.value);
    this._backendDetail.textContent = chosen
      ? [chosen.detail, chosen.fix ? `Fix: ${chosen.fix}` : '']
          .filter(Boolean)
          .join(' · ')
      : '';
    const cache = this._cacheOption();
    this._cache.disabled = cache === null;
    this._cache.title = cache?.help ?? 'This backend has no step cache';
    this._update();
  }

  /** Enable Run only when it can work; say why not. */
  private _update(): void {
    let why = '';
    if (!this._view) {
      why = 'Open a notebook to run it.';
    } else if (!this._view.ok || !this._view.pipeline) {
      why = 'Fix the problems above to run the pipeline.';
    } else if (
      !this._backends.some(b => b.available && b.name === this._backend.value)
    ) {
      why = this._backends.length
        ? 'No backend is available.'
        : 'Loading backends…';
    }
    this._run.disabled = this._busy || why !== '';
    this._note.textContent = this._busy ? '' : why;
  }

  private _submit(): void {
    const inputs = new Map<string, ParamInput>();
    for (const [name, read] of this._readers) {
      inputs.set(name, read());
    }
    const values = runValues(this._view?.pipeline?.parameters ?? {}, inputs);
    this._error.textContent = '';
    const options: Record<string, unknown> = {};
    if (this._cacheOption()) {
      options.cache = this._cache.checked;
    }
    this._onRun({ ...values, backend: this._backend.value, options });
  }

  /** The chosen backend's `cache` option (a bool), or null when it has none. */
  private _cacheOption(): IBackendOption | null {
    const chosen = this._backends.find(b => b.name === this._backend.value);
    return (
      chosen?.options?.find(o => o.name === 'cache' && o.type === 'bool') ??
      null
    );
  }

  private _path: string | null = null;
  private _view: IPipelineView | null = null;
  private _backends: IBackend[] = [];
  private _busy = false;
  private readonly _edits = new Map<string, ParamInput>();
  private readonly _readers = new Map<string, () => ParamInput>();
  private readonly _params = h('div', { class: 'kfnb-RunForm-params' });
  private readonly _backend = h('select', {
    class: 'kfnb-Select kfnb-RunForm-backend',
    'aria-label': 'backend'
  });
  private readonly _backendDetail = h('p', {
    class: 'kfnb-Muted kfnb-RunForm-backendDetail'
  });
  private readonly _cache = h('input', {
    type: 'checkbox',
    class: 'kfnb-RunForm-cache'
  });
  private readonly _run = h('button', {
    class: 'jp-mod-styled jp-mod-accept kfnb-RunForm-run'
  });
  private readonly _runLabel = h('span', {}, 'Run');
  private readonly _note = h('span', { class: 'kfnb-Muted kfnb-RunForm-note' });
  private readonly _error = h('p', {
    class: 'kfnb-Error kfnb-RunForm-error',
    role: 'alert'
  });
}
