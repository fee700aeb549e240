/**
 * The pipeline DAG as a picture: a layered layout and its SVG.
 *
 * Layout (Sugiyama-style, enough for notebook-sized graphs): a step's layer is the longest path
 * to it from a root; an edge that spans several layers gets a waypoint in each layer between,
 * so it bends around the nodes there; the order within a layer starts from notebook order and
 * is improved by a few barycentre sweeps (fewer crossings); each layer is centred.
 *
 * The SVG draws steps as nodes (name, cell range, GPU/CPU/memory badges) and edges as arrows
 * labelled with the variables that flow on them (cut short, the full list in a tooltip);
 * explicit `prev:` edges with no data are dashed. A run's step states are classes on the nodes
 * (`kfnb-Node--SUCCEEDED`...), switched in place by `setStatuses` so animations keep running.
 */
import { IPipeline, IStep } from './api';
import { s, truncate } from './dom';

const NODE_W = 150;
const NODE_H = 44;
const NODE_H_TALL = 58;
const WAYPOINT_W = 14;
const GAP_X = 22;
const GAP_Y = 38;
const PAD = 12;
const CHAR_W = 6.3; // average width of an 11px UI font character
const LABEL_CHARS = 22;

/** A placed node: a step, or a waypoint of a long edge (`step` null). */
export interface IPlacedNode {
  id: string;
  step: IStep | null;
  layer: number;
  x: number; // centre
  y: number; // centre
  width: number;
}

export interface IPlacedEdge {
  source: string;
  target: string;
  variables: string[];
  /** From the source's bottom to the target's top, through the waypoints. */
  points: Array<[number, number]>;
  /** Centre of the variables label (edges that carry data). */
  label?: [number, number];
}

export interface ILayout {
  nodes: IPlacedNode[];
  edges: IPlacedEdge[];
  width: number;
  height: number;
  nodeHeight: number;
}

interface IBadge {
  text: string;
  kind: string;
  title: string;
}

/** The badges of a step: GPUs, CPUs, memory, other resources. */
export function stepBadges(step: IStep): IBadge[] {
  const badges: IBadge[] = [];
  for (const [name, value] of Object.entries(step.resources ?? {})) {
    if (name === 'nvidia.com/gpu' || name.endsWith('/gpu')) {
      badges.push({
        text: `GPU ${value}`,
        kind: 'gpu',
        title: `${name}: ${value}`
      });
    } else if (name === 'cpu') {
      badges.push({
        text: `CPU ${value}`,
        kind: 'cpu',
        title: `cpu: ${value}`
      });
    } else if (name === 'memory') {
      badges.push({ text: value, kind: 'memory', title: `memory: ${value}` });
    } else {
      const short = name.split('/').pop() ?? name;
      badges.push({
        text: `${short} ${value}`,
        kind: 'other',
        title: `${name}: ${value}`
      });
    }
  }
  return badges;
}

/** `cells 3-4`, `cell 7` (notebook indices, as `kfnb describe` prints them) */
export function cellRange(cells: number[]): string {
  if (!cells.length) {
    return 'no cells';
  }
  const first = Math.min(...cells);
  const last = Math.max(...cells);
  return first === last ? `cell ${first}` : `cells ${first}-${last}`;
}

const badgeWidth = (b: IBadge): number => b.text.length * CHAR_W + 10;

/** Whether a step's second line (cells and badges) needs a third line to fit. */
function needsTallNode(step: IStep): boolean {
  const badges = stepBadges(step);
  if (!badges.length) {
    return false;
  }
  const used =
    cellRange(step.cells).length * CHAR_W +
    badges.reduce((sum, b) => sum + badgeWidth(b) + 4, 0) +
    6;
  return used > NODE_W - 20;
}

/** Place the steps and edges of `pipeline`. */
export function layoutDag(pipeline: IPipeline): ILayout {
  const steps = pipeline.steps;
  const names = steps.map(st => st.name);
  const index = new Map(names.map((n, i) => [n, i]));
  const edges = collectEdges(pipeline, index);

  // Layers: longest path from a root, in topological order (notebook order breaks ties).
  const layerOf = new Map<string, number>();
  for (const name of topoOrder(names, edges, pipeline.order)) {
    const ins = edges.filter(e => e.target === name);
    layerOf.set(
      name,
      Math.max(0, ...ins.map(e => (layerOf.get(e.source) ?? 0) + 1))
    );
  }

  // Nodes, with waypoints on long edges.
  const nodes = new Map<string, IPlacedNode>();
  const layers: string[][] = [];
  const addNode = (node: IPlacedNode): void => {
    nodes.set(node.id, node);
    (layers[node.layer] ??= []).push(node.id);
  };
  for (const step of steps) {
    addNode({
      id: step.name,
      step,
      layer: layerOf.get(step.name) ?? 0,
      x: 0,
      y: 0,
      width: NODE_W
    });
  }
  const chains = new Map<string, string[]>(); // edge key -> node ids source..target
  edges.forEach((edge, i) => {
    const from = layerOf.get(edge.source) ?? 0;
    const to = layerOf.get(edge.target) ?? 0;
    const chain = [edge.source];
    // a waypoint is as wide as the edge's label, which can then sit on its straight run
    const wpWidth = edge.variables.length
      ? labelWidth(edge.variables) + 4
      : WAYPOINT_W;
    for (let layer = from + 1; layer < to; layer++) {
      const id = `\u0000wp${i}:${layer}`;
      addNode({ id, step: null, layer, x: 0, y: 0, width: wpWidth });
      chain.push(id);
    }
    chain.push(edge.target);
    chains.set(edgeKey(edge), chain);
  });
  for (let i = 0; i < layers.length; i++) {
    layers[i] ??= [];
  }

  orderLayers(layers, chains, index);

  // Coordinates: layers top to bottom, each centred on the widest.
  const nodeHeight = steps.some(needsTallNode) ? NODE_H_TALL : NODE_H;
  const layerWidth = (ids: string[]): number =>
    ids.reduce((sum, id) => sum + nodes.get(id)!.width, 0) +
    GAP_X * Math.max(0, ids.length - 1);
  const width = Math.max(NODE_W, ...layers.map(layerWidth)) + 2 * PAD;
  layers.forEach((ids, layer) => {
    let x = (width - layerWidth(ids)) / 2;
    for (const id of ids) {
      const node = nodes.get(id)!;
      node.x = x + node.width / 2;
      node.y = PAD + layer * (nodeHeight + GAP_Y) + nodeHeight / 2;
      x += node.width + GAP_X;
    }
  });
  const height =
    2 * PAD +
    layers.length * nodeHeight +
    Math.max(0, layers.length - 1) * GAP_Y;

  const placedEdges = edges.map(edge => {
    const chain = chains.get(edgeKey(edge))!.map(id => nodes.get(id)!);
    const points: Array<[number, number]> = [];
    chain.forEach((node, i) => {
      const top = node.y - nodeHeight / 2;
      const bottom = node.y + nodeHeight / 2;
      if (i === 0) {
        points.push([portX(node, edge, edges, nodes, 'out'), bottom]);
      } else if (i === chain.length - 1) {
        points.push([portX(node, edge, edges, nodes, 'in'), top]);
      } else {
        points.push([node.x, top], [node.x, bottom]);
      }
    });
    return {
      source: edge.source,
      target: edge.target,
      variables: edge.variables,
      points
    };
  });

  const stepNodes = [...nodes.values()].filter(n => n.step);
  placeLabels(placedEdges, stepNodes, nodeHeight, width);

  return {
    nodes: [...nodes.values()],
    edges: placedEdges,
    width,
    height: Math.max(height, nodeHeight + 2 * PAD),
    nodeHeight
  };
}

interface IPlainEdge {
  source: string;
  target: string;
  variables: string[];
}

const edgeKey = (e: IPlainEdge): string => `${e.source}\u0000${e.target}`;

/** The pipeline's edges between known steps, plus `after` links the edge list lacks. */
function collectEdges(
  pipeline: IPipeline,
  index: Map<string, number>
): IPlainEdge[] {
  const seen = new Map<string, IPlainEdge>();
  const add = (source: string, target: string, variables: string[]): void => {
    if (!index.has(source) || !index.has(target) || source === target) {
      return;
    }
    const key = `${source}\u0000${target}`;
    const known = seen.get(key);
    if (known) {
      known.variables = [...new Set([...known.variables, ...variables])];
    } else {
      seen.set(key, { source, target, variables: [...variables] });
    }
  };
  for (const e of pipeline.edges ?? []) {
    add(e.source, e.target, e.variables ?? []);
  }
  for (const step of pipeline.steps) {
    for (const up of step.after ?? []) {
      add(up, step.name, []);
    }
  }
  return [...seen.values()];
}

/** Kahn's order, ties by `order` then notebook order; what a cycle leaves is appended. */
function topoOrder(
  names: string[],
  edges: IPlainEdge[],
  order: string[]
): string[] {
  const rank = new Map<string, number>();
  [...(order ?? []), ...names].forEach(
    n => rank.has(n) || rank.set(n, rank.size)
  );
  const indegree = new Map(names.map(n => [n, 0]));
  for (const e of edges) {
    indegree.set(e.target, (indegree.get(e.target) ?? 0) + 1);
  }
  const ready = names.filter(n => indegree.get(n) === 0);
  const result: string[] = [];
  while (ready.length) {
    ready.sort((a, b) => rank.get(a)! - rank.get(b)!);
    const name = ready.shift()!;
    result.push(name);
    for (const e of edges.filter(e => e.source === name)) {
      indegree.set(e.target, indegree.get(e.target)! - 1);
      if (indegree.get(e.target) === 0) {
        ready.push(e.target);
      }
    }
  }
  return [...result, ...names.filter(n => !result.includes(n))];
}

/** Reorder each layer by the mean position of its neighbours, sweeping down then up. */
function orderLayers(
  layers: string[][],
  chains: Map<string, string[]>,
  index: Map<string, number>
): void {
  const up = new Map<string, string[]>();
  const down = new Map<string, string[]>();
  for (const chain of chains.values()) {
    for (let i = 0; i + 1 < chain.length; i++) {
      (down.get(chain[i]) ?? down.set(chain[i], []).get(chain[i])!).push(
        chain[i + 1]
      );
      (
        up.get(chain[i + 1]) ?? up.set(chain[i + 1], []).get(chain[i + 1])!
      ).push(chain[i]);
    }
  }
  // Start: steps in notebook order, waypoints next to where their edge comes from.
  const position = new Map<string, number>();
  layers.forEach((ids, layer) => {
    const key = (id: string): number =>
      index.has(id)
        ? index.get(id)!
        : layer > 0
          ? (position.get((up.get(id) ?? [])[0]) ?? 0) + 0.5
          : 0;
    ids.sort((a, b) => key(a) - key(b));
    ids.forEach((id, i) => position.set(id, i));
  });
  const sweep = (range: number[], neighbours: Map<string, string[]>): void => {
    for (const layer of range) {
      const ids = layers[layer];
      const centre = new Map<string, number>();
      ids.forEach((id, i) => {
        const ns = neighbours.get(id) ?? [];
        centre.set(
          id,
          ns.length
            ? ns.reduce((sum, n) => sum + position.get(n)!, 0) / ns.length
            : i
        );
      });
      ids.sort(
        (a, b) =>
          centre.get(a)! - centre.get(b)! || position.get(a)! - position.get(b)!
      );
      ids.forEach((id, i) => position.set(id, i));
    }
  };
  const all = layers.map((_, i) => i);
  for (let round = 0; round < 3; round++) {
    sweep(all.slice(1), up);
    sweep(all.slice(0, -1).reverse(), down);
  }
}

/** Where an edge leaves (or enters) a node: ports spread along its bottom (top) side. */
function portX(
  node: IPlacedNode,
  edge: IPlainEdge,
  edges: IPlainEdge[],
  nodes: Map<string, IPlacedNode>,
  side: 'in' | 'out'
): number {
  const siblings = edges.filter(
    e => (side === 'out' ? e.source : e.target) === node.id
  );
  if (siblings.length < 2) {
    return node.x;
  }
  const other = (e: IPlainEdge): number =>
    nodes.get(side === 'out' ? e.target : e.source)!.x;
  siblings.sort((a, b) => other(a) - other(b));
  const i = siblings.indexOf(edge);
  const spacing = Math.min(18, (node.width - 24) / (siblings.length - 1));
  return node.x + (i - (siblings.length - 1) / 2) * spacing;
}

interface IBox {
  x: number; // centre
  y: number;
  w: number;
  h: number;
}

const overlap = (a: IBox, b: IBox): number =>
  Math.max(
    0,
    Math.min(a.x + a.w / 2, b.x + b.w / 2) -
      Math.max(a.x - a.w / 2, b.x - b.w / 2)
  ) *
  Math.max(
    0,
    Math.min(a.y + a.h / 2, b.y + b.h / 2) -
      Math.max(a.y - a.h / 2, b.y - b.h / 2)
  );

/** A point `t` of the way along the segment `a`-`b` as drawn (a line or a vertical S-curve). */
function along(
  a: [number, number],
  b: [number, number],
  t: number
): [number, number] {
  if (a[0] === b[0]) {
    return [a[0], a[1] + (b[1] - a[1]) * t];
  }
  const midY = (a[1] + b[1]) / 2;
  const u = 1 - t;
  const x =
    u * u * u * a[0] +
    3 * u * u * t * a[0] +
    3 * u * t * t * b[0] +
    t * t * t * b[0];
  const y =
    u * u * u * a[1] +
    3 * u * u * t * midY +
    3 * u * t * t * midY +
    t * t * t * b[1];
  return [x, y];
}

/** The width of the label of `variables`. */
const labelWidth = (variables: string[]): number =>
  truncate(variables.join(', '), LABEL_CHARS).length * CHAR_W + 8;

/**
 * Put each label on its edge where it covers no node and no other label: the middle of an
 * edge first (for long edges the straight run through a waypoint layer), then other spots
 * along it; failing that, where it overlaps least.
 */
function placeLabels(
  edges: IPlacedEdge[],
  nodes: IPlacedNode[],
  nodeHeight: number,
  width: number
): void {
  const taken: IBox[] = nodes.map(n => ({
    x: n.x,
    y: n.y,
    w: n.width + 4,
    h: nodeHeight + 4
  }));
  const labelled = edges.filter(e => e.variables.length);
  labelled.sort((a, b) => a.points.length - b.points.length);
  for (const edge of labelled) {
    const w = labelWidth(edge.variables);
    const segments: Array<[[number, number], [number, number]]> = [];
    for (let i = 0; i + 1 < edge.points.length; i++) {
      segments.push([edge.points[i], edge.points[i + 1]]);
    }
    // straight runs through waypoints first, then the first and the last segment
    segments.sort(
      (a, b) => Number(a[0][0] !== a[1][0]) - Number(b[0][0] !== b[1][0])
    );
    let best: IBox | null = null;
    let bestCost = Infinity;
    for (const [a, b] of segments) {
      for (const t of [0.5, 0.38, 0.62, 0.26, 0.74]) {
        const [x, y] = along(a, b, t);
        const box = {
          x: Math.min(Math.max(x, w / 2 + 1), width - w / 2 - 1),
          y,
          w: w + 4,
          h: 18
        };
        const cost = taken.reduce((sum, other) => sum + overlap(box, other), 0);
        if (cost < bestCost) {
          best = box;
          bestCost = cost;
        }
        if (cost === 0) {
          break;
        }
      }
      if (bestCost === 0) {
        break;
      }
    }
    if (best) {
      taken.push(best);
      edge.label = [best.x, best.y];
    }
  }
}

// ---------------------------------------------------------------------------------------------
// SVG

export interface IDagViewOptions {
  /** step -> status (a run's step states) */
  statuses?: Record<string, string>;
  selected?: string | null;
  onSelect?: (step: string) => void;
}

let markerCount = 0;

/** The DAG of `pipeline` as an SVG element. */
export function renderDag(
  pipeline: IPipeline,
  options: IDagViewOptions = {}
): SVGSVGElement {
  const layout = layoutDag(pipeline);
  const marker = `kfnb-arrow-${++markerCount}`;
  const svg = s('svg', {
    class: 'kfnb-Dag-svg',
    width: layout.width,
    height: layout.height,
    viewBox: `0 0 ${layout.width} ${layout.height}`,
    role: 'img',
    'aria-label': `Pipeline ${pipeline.name}: ${pipeline.steps.length} steps`
  });
  svg.append(
    s(
      'defs',
      {},
      s(
        'marker',
        {
          id: marker,
          viewBox: '0 0 10 10',
          refX: 9,
          refY: 5,
          markerWidth: 7,
          markerHeight: 7,
          orient: 'auto-start-reverse'
        },
        s('path', { d: 'M0,0 L10,5 L0,10 z', class: 'kfnb-Edge-arrow' })
      )
    )
  );
  const edgeGroup = s('g', { class: 'kfnb-Dag-edges' });
  const labelGroup = s('g', { class: 'kfnb-Dag-labels' });
  for (const edge of layout.edges) {
    edgeGroup.append(drawEdge(edge, marker));
    if (edge.variables.length) {
      labelGroup.append(drawLabel(edge));
    }
  }
  const nodeGroup = s('g', { class: 'kfnb-Dag-nodes' });
  for (const node of layout.nodes) {
    if (node.step) {
      nodeGroup.append(drawNode(node, layout.nodeHeight, options));
    }
  }
  svg.append(edgeGroup, nodeGroup, labelGroup);
  setStatuses(svg, options.statuses ?? {});
  setSelected(svg, options.selected ?? null);
  return svg;
}

function drawEdge(edge: IPlacedEdge, marker: string): SVGGElement {
  const [first, ...rest] = edge.points;
  let d = `M${first[0]},${first[1]}`;
  let prev = first;
  for (const point of rest) {
    if (point[0] === prev[0]) {
      d += ` L${point[0]},${point[1]}`;
    } else {
      const midY = (prev[1] + point[1]) / 2;
      d += ` C${prev[0]},${midY} ${point[0]},${midY} ${point[0]},${point[1]}`;
    }
    prev = point;
  }
  const explicit = edge.variables.length === 0;
  const title = explicit
    ? `${edge.source} → ${edge.target} (prev:, no data)`
    : `${edge.source} → ${edge.target}: ${edge.variables.join(', ')}`;
  return s(
    'g',
    {
      class: `kfnb-Edge${explicit ? ' kfnb-Edge--explicit' : ''}`,
      'data-source': edge.source,
      'data-target': edge.target
    },
    s('title', {}, title),
    s('path', { d, 'marker-end': `url(#${marker})` })
  );
}

function drawLabel(edge: IPlacedEdge): SVGGElement {
  const full = edge.variables.join(', ');
  const text = truncate(full, LABEL_CHARS);
  const [x, y] = edge.label ?? along(edge.points[0], edge.points[1], 0.5);
  const w = labelWidth(edge.variables);
  return s(
    'g',
    {
      class: 'kfnb-EdgeLabel',
      'data-source': edge.source,
      'data-target': edge.target,
      'data-variables': full
    },
    s('title', {}, `${edge.source} → ${edge.target}: ${full}`),
    s('rect', { x: x - w / 2, y: y - 8, width: w, height: 16, rx: 8 }),
    s('text', { x, y: y + 4, 'text-anchor': 'middle' }, text)
  );
}

function drawNode(
  node: IPlacedNode,
  height: number,
  options: IDagViewOptions
): SVGGElement {
  const step = node.step!;
  const left = node.x - NODE_W / 2;
  const top = node.y - height / 2;
  const cells = cellRange(step.cells);
  const tooltip = [
    step.name,
    cells,
    step.after.length ? `after ${step.after.join(', ')}` : '',
    Object.keys(step.inputs).length
      ? `in: ${Object.keys(step.inputs).join(', ')}`
      : '',
    step.outputs.length ? `out: ${step.outputs.join(', ')}` : '',
    step.image ? `image: ${step.image}` : ''
  ]
    .filter(Boolean)
    .join('\n');
  const g = s(
    'g',
    {
      class: 'kfnb-Node',
      'data-step': step.name,
      tabindex: 0,
      role: 'button',
      'aria-label': `step ${step.name}, ${cells}`
    },
    s('title', { class: 'kfnb-Node-title' }, tooltip),
    s('rect', {
      class: 'kfnb-Node-box',
      x: left,
      y: top,
      width: NODE_W,
      height,
      rx: 6
    }),
    s(
      'text',
      { class: 'kfnb-Node-name', x: left + 10, y: top + 17 },
      truncate(step.name, 19)
    ),
    s(
      'text',
      { class: 'kfnb-Node-status', x: left + NODE_W - 10, y: top + 17 },
      ''
    ),
    s('text', { class: 'kfnb-Node-cells', x: left + 10, y: top + 34 }, cells)
  );
  const badges = stepBadges(step);
  const tall = height > NODE_H;
  let x = left + NODE_W - 10;
  const y = tall ? top + height - 20 : top + 24;
  if (tall) {
    x = left + 10 + badges.reduce((sum, b) => sum + badgeWidth(b) + 4, 0) - 4;
  }
  for (const badge of [...badges].reverse()) {
    const w = badgeWidth(badge);
    x -= w;
    g.append(
      s(
        'g',
        { class: `kfnb-Badge kfnb-Badge--${badge.kind}` },
        s('title', {}, badge.title),
        s('rect', { x, y, width: w, height: 14, rx: 7 }),
        s(
          'text',
          { x: x + w / 2, y: y + 10.5, 'text-anchor': 'middle' },
          badge.text
        )
      )
    );
    x -= 4;
  }
  if (options.onSelect) {
    const select = options.onSelect;
    g.addEventListener('click', () => select(step.name));
    g.addEventListener('keydown', event => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        select(step.name);
      }
    });
  }
  return g;
}

const STATUS_GLYPH: Record<string, string> = {
  PENDING: '○',
  RUNNING: '●',
  SUCCEEDED: '✓',
  FAILED: '✕',
  CACHED: '↺',
  SKIPPED: '–',
  CANCELED: '⊘'
};

/** Show a run's step states on the nodes (`kfnb-Node--STATUS`); `{}` shows none. */
export function setStatuses(
  svg: SVGSVGElement,
  statuses: Record<string, string>
): void {
  for (const node of Array.from(
    svg.querySelectorAll<SVGGElement>('.kfnb-Node')
  )) {
    const step = node.dataset.step ?? '';
    const status = statuses[step];
    for (const cls of Array.from(node.classList)) {
      if (cls.startsWith('kfnb-Node--') && cls !== 'kfnb-Node--selected') {
        node.classList.remove(cls);
      }
    }
    const glyph = node.querySelector('.kfnb-Node-status');
    if (glyph) {
      glyph.textContent = status ? (STATUS_GLYPH[status] ?? '') : '';
    }
    node.dataset.status = status ?? '';
    if (status) {
      node.classList.add(`kfnb-Node--${status}`);
    }
  }
}

/** Mark one node as selected (or none). */
export function setSelected(svg: SVGSVGElement, step: string | null): void {
  for (const node of Array.from(
    svg.querySelectorAll<SVGGElement>('.kfnb-Node')
  )) {
    node.classList.toggle('kfnb-Node--selected', node.dataset.step === step);
  }
}
