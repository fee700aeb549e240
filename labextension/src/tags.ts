/**
 * The part of kfnb's cell tag language the panel edits (see `kfnb/notebook/tags.py`).
 *
 * `readStepTags` reads what a cell's tags say about the step it starts; `writeStepTags` gives
 * the cell's new tag list: the step tags (`step:`/`block:`, `prev:`, the GPU limit, `image:`)
 * replaced, every other tag kept in place.
 */

export const GPU_RESOURCE = 'nvidia.com/gpu';

/** The same rule as `kfnb.dag.STEP_NAME` and its reserved names. */
const STEP_NAME = /^[A-Za-z_][A-Za-z0-9_-]{0,62}$/;
const RESERVED = new Set([
  'imports',
  'functions',
  'parameters',
  'pipeline-parameters',
  'pipeline-metrics',
  'metrics',
  'skip',
  'kfnb'
]);

/** Word tags that give a cell a role other than "step". */
export const ROLE_TAGS: Record<string, string> = {
  imports: 'imports',
  functions: 'functions',
  'pipeline-parameters': 'parameters',
  parameters: 'parameters',
  'injected-parameters': 'parameters',
  'pipeline-metrics': 'metrics',
  skip: 'skip'
};

/** What a cell's tags say about the step it starts. */
export interface IStepTags {
  /** The step this cell starts, or null (the cell continues the section above). */
  name: string | null;
  prev: string[];
  gpus: number;
  image: string;
  /** A non-step role (`imports`, `parameters`...) when the cell has one. */
  role: string | null;
}

const GPU_KEYS = new Set([GPU_RESOURCE, 'gpu', 'gpus']);

/** Whether `tag` is one of the step tags the cell tools own (and `writeStepTags` replaces). */
export function isStepTag(tag: string): boolean {
  const [prefix, rest] = splitTag(tag);
  if (rest === null) {
    return false;
  }
  if (
    prefix === 'step' ||
    prefix === 'block' ||
    prefix === 'prev' ||
    prefix === 'image'
  ) {
    return true;
  }
  if (prefix === 'limit') {
    const key = rest.slice(0, rest.lastIndexOf(':'));
    return GPU_KEYS.has(key);
  }
  return false;
}

export function readStepTags(tags: readonly unknown[]): IStepTags {
  const result: IStepTags = {
    name: null,
    prev: [],
    gpus: 0,
    image: '',
    role: null
  };
  for (const raw of tags) {
    if (typeof raw !== 'string') {
      continue;
    }
    const tag = raw.trim();
    if (tag in ROLE_TAGS) {
      result.role = ROLE_TAGS[tag];
      continue;
    }
    const [prefix, rest] = splitTag(tag);
    if (rest === null) {
      continue;
    }
    if ((prefix === 'step' || prefix === 'block') && rest) {
      result.name = rest;
    } else if (prefix === 'prev' && rest) {
      result.prev.push(rest);
    } else if (prefix === 'image') {
      result.image = rest;
    } else if (prefix === 'limit') {
      const at = rest.lastIndexOf(':');
      if (GPU_KEYS.has(rest.slice(0, at))) {
        const n = Number(rest.slice(at + 1));
        result.gpus = Number.isFinite(n) ? n : 0;
      }
    }
  }
  return result;
}

/** The cell's tags with its step tags replaced by what `edit` says. */
export function writeStepTags(
  tags: readonly unknown[],
  edit: Omit<IStepTags, 'role'>
): string[] {
  const kept = tags.filter(
    (t): t is string => typeof t === 'string' && !isStepTag(t.trim())
  );
  const added: string[] = [];
  if (edit.name) {
    added.push(`step:${edit.name}`);
    added.push(...[...new Set(edit.prev)].map(p => `prev:${p}`));
    if (edit.gpus > 0) {
      added.push(`limit:${GPU_RESOURCE}:${edit.gpus}`);
    }
    if (edit.image.trim()) {
      added.push(`image:${edit.image.trim()}`);
    }
  }
  return [...added, ...kept];
}

/** Why `edit` cannot be written, or null when it can. */
export function checkStepEdit(
  edit: Omit<IStepTags, 'role'>,
  taken: string[]
): string | null {
  const name = edit.name ?? '';
  if (!name) {
    if (edit.prev.length || edit.gpus > 0 || edit.image.trim()) {
      return 'Name the step: dependencies, GPUs and image belong to a step.';
    }
    return null;
  }
  if (!STEP_NAME.test(name)) {
    return (
      `"${name}" is not a step name: start with a letter or _, then letters, digits, _ or -` +
      ' (63 characters at most).'
    );
  }
  if (RESERVED.has(name) || name.startsWith('kfnb_')) {
    return `"${name}" is reserved: choose another step name.`;
  }
  if (taken.includes(name)) {
    return `Another cell already starts step "${name}".`;
  }
  if (!Number.isInteger(edit.gpus) || edit.gpus < 0) {
    return 'GPUs must be a whole number, 0 or more.';
  }
  if (/\s/.test(edit.image.trim())) {
    return 'The image reference cannot contain spaces.';
  }
  return null;
}

function splitTag(tag: string): [string, string | null] {
  const at = tag.indexOf(':');
  return at < 0 ? [tag, null] : [tag.slice(0, at), tag.slice(at + 1)];
}
