/**
 * The pipeline DAG as SVG, drawn from the layout the server computed (`pipeline.layout`, see
 * `kfnb/layout.py`): this module places nothing itself, so the side panel and the notebook
 * widget draw one pipeline with the same layers, order, routes and labels.
 *
 * Steps are nodes (name, cell range, resource badges); edges are arrows through the layout's
 * points (two points whose x differ joined by a vertical S-curve), labelled with the variables
 * that flow on them (cut short, the full list in a tooltip); explicit `prev:` edges with no data
 * are dashed. A run's step states are classes on the nodes (`kfnb-Node--SUCCEEDED`...),
 * switched in place by `setStatuses` so animations keep running.
 */
import { ILayoutEdge, ILayoutNode, IPipeline, IStep } from './api';
import { s, truncate } from './dom';

const LABEL_CHARS = 22;
const CHAR_W = 6.3; // average width of an 11px UI font character
const TALL = 50; // nodes taller than this put their badges on a third line

export interface IDagViewOptions {
  /** step -> status (a run's step states) */
  statuses?: Record<string, string>;
  selected?: string | null;
  onSelect?: (step: string) => void;
}

/** A point as the layout gives it. */
type Point = readonly number[];

/** The SVG path of an edge through `points`: straight runs, S-curves where x changes. */
export function edgePath(points: readonly Point[]): string {
  const [first, ...rest] = points;
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
  return d;
}

/** The text of an edge's label, and its width. */
export function labelOf(variables: readonly string[]): {
  text: string;
  width: number;
} {
  const text = truncate(variables.join(', '), LABEL_CHARS);
  return { text, width: text.length * CHAR_W + 8 };
}

let markerCount = 0;

/** The DAG of `pipeline` as an SVG element (its size: the layout's, in user units). */
export function renderDag(
  pipeline: IPipeline,
  options: IDagViewOptions = {}
): SVGSVGElement {
  const layout = pipeline.layout;
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
  const edges = s('g', { class: 'kfnb-Dag-edges' });
  const labels = s('g', { class: 'kfnb-Dag-labels' });
  for (const edge of layout.edges) {
    edges.append(drawEdge(edge, marker));
    if (edge.variables.length) {
      labels.append(drawLabel(edge));
    }
  }
  const steps = new Map(pipeline.steps.map(st => [st.name, st]));
  const nodes = s('g', { class: 'kfnb-Dag-nodes' });
  for (const node of layout.nodes) {
    const step = steps.get(node.step);
    if (step) {
      nodes.append(
        drawNode(node, step, layout.node_width, layout.node_height, options)
      );
    }
  }
  // one group to move when zooming and panning (`dagviewport.ts`)
  svg.append(s('g', { class: 'kfnb-Dag-content' }, edges, nodes, labels));
  setStatuses(svg, options.statuses ?? {});
  setSelected(svg, options.selected ?? null);
  return svg;
}

function drawEdge(edge: ILayoutEdge, marker: string): SVGGElement {
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
    s('path', { d: edgePath(edge.points), 'marker-end': `url(#${marker})` })
  );
}

function drawLabel(edge: ILayoutEdge): SVGGElement {
  const full = edge.variables.join(', ');
  const { text, width } = labelOf(edge.variables);
  const [x, y] = edge.label ?? edge.points[0];
  return s(
    'g',
    {
      class: 'kfnb-EdgeLabel',
      'data-source': edge.source,
      'data-target': edge.target,
      'data-variables': full
    },
    s('title', {}, `${edge.source} → ${edge.target}: ${full}`),
    s('rect', { x: x - width / 2, y: y - 8, width, height: 16, rx: 8 }),
    s('text', { x, y: y + 4, 'text-anchor': 'middle' }, text)
  );
}

/** The tooltip of a step node. */
export function stepTooltip(step: IStep, caption: string): string {
  return [
    step.name,
    caption,
    step.after.length ? `after ${step.after.join(', ')}` : '',
    Object.keys(step.inputs).length
      ? `in: ${Object.keys(step.inputs).join(', ')}`
      : '',
    step.outputs.length ? `out: ${step.outputs.join(', ')}` : '',
    step.image ? `image: ${step.image}` : ''
  ]
    .filter(Boolean)
    .join('\n');
}

function drawNode(
  node: ILayoutNode,
  step: IStep,
  width: number,
  height: number,
  options: IDagViewOptions
): SVGGElement {
  const left = node.x - width / 2;
  const top = node.y - height / 2;
  const g = s(
    'g',
    {
      class: 'kfnb-Node',
      'data-step': step.name,
      'data-layer': node.layer,
      'data-order': node.order,
      tabindex: 0,
      role: 'button',
      'aria-label': `step ${step.name}, ${node.caption}`
    },
    s('title', { class: 'kfnb-Node-title' }, stepTooltip(step, node.caption)),
    s('rect', {
      class: 'kfnb-Node-box',
      x: left,
      y: top,
      width,
      height,
      rx: 6
    }),
    s(
      'text',
      { class: 'kfnb-Node-name', x: left + 10, y: top + 17 },
      truncate(step.name, Math.floor((width - 30) / 7))
    ),
    s(
      'text',
      { class: 'kfnb-Node-status', x: left + width - 10, y: top + 17 },
      ''
    ),
    s(
      'text',
      { class: 'kfnb-Node-cells', x: left + 10, y: top + 34 },
      node.caption
    )
  );
  g.append(...drawBadges(node, left, top, width, height));
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

/** A node's resource badges: right-aligned on its caption's line, or left-aligned on a third
 * line when the layout made the nodes tall for them. */
function drawBadges(
  node: ILayoutNode,
  left: number,
  top: number,
  width: number,
  height: number
): SVGGElement[] {
  const tall = height > TALL;
  const widths = node.badges.map(b => b.text.length * CHAR_W + 10);
  let x = tall
    ? left + 10 + widths.reduce((sum, w) => sum + w + 4, 0) - 4
    : left + width - 10;
  const y = tall ? top + height - 20 : top + 24;
  const drawn: SVGGElement[] = []; // right to left, as they are placed
  for (let i = node.badges.length - 1; i >= 0; i--) {
    const badge = node.badges[i];
    const w = widths[i];
    x -= w;
    drawn.push(
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
  return drawn;
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
