// d3-zoom interrupts transitions on the selection: d3-transition's typings add `interrupt`
/// <reference types="d3-transition" />
/**
 * A DAG drawing that fits its box: fit to view on load (and when the box is resized, until the
 * user zooms or pans), zoom with the buttons or Ctrl/⌘ + wheel (a trackpad pinch), pan by
 * dragging. Zoom and pan are `d3-zoom`'s; they move the drawing's `.kfnb-Dag-content` group.
 *
 * The box is as wide as the panel and as tall as the fitted drawing needs, up to `maxHeight`,
 * so a wide fan-out is scaled down to the panel's width instead of cropped.
 */
import { select, Selection } from 'd3-selection';
import { zoom, ZoomBehavior, zoomIdentity, ZoomTransform } from 'd3-zoom';

import { h } from './dom';

const PAD = 6;
const MIN_SCALE = 0.15;
const MAX_SCALE = 3;
const STEP = 1.25;

export interface ITransform {
  k: number;
  x: number;
  y: number;
}

export interface ISize {
  width: number;
  height: number;
}

/**
 * The transform that shows all of `content` centred in `view` with `pad` around it, never
 * enlarged beyond `maxScale`.
 */
export function fitTransform(
  content: ISize,
  view: ISize,
  pad = PAD,
  maxScale = 1
): ITransform {
  const room = {
    width: Math.max(1, view.width - 2 * pad),
    height: Math.max(1, view.height - 2 * pad)
  };
  const k = Math.min(
    maxScale,
    room.width / Math.max(1, content.width),
    room.height / Math.max(1, content.height)
  );
  return {
    k,
    x: (view.width - content.width * k) / 2,
    y: (view.height - content.height * k) / 2
  };
}

/**
 * How tall the box of a drawing of `content` should be in a box `width` wide: the height of
 * the drawing scaled to the width (never enlarged), within `[minHeight, maxHeight]`.
 */
export function boxHeight(
  content: ISize,
  width: number,
  maxHeight: number,
  minHeight = 60
): number {
  const k = Math.min(
    1,
    Math.max(1, width - 2 * PAD) / Math.max(1, content.width)
  );
  const wanted = Math.ceil(content.height * k + 2 * PAD);
  return Math.max(minHeight, Math.min(maxHeight, wanted));
}

export class DagViewport {
  readonly node = h('div', { class: 'kfnb-DagViewport' });

  /**
   * `maxHeight()`: how tall the box may grow, in px (asked at each fit); `onOpen`: when given,
   * a fourth button opens the drawing larger (in a main-area tab).
   */
  constructor(
    extraClass = '',
    private readonly _maxHeight: () => number = () =>
      Math.max(240, Math.round(window.innerHeight * 0.6)),
    onOpen?: () => void
  ) {
    this._box = h('div', { class: `kfnb-Dag ${extraClass}`.trim() });
    const button = (
      cls: string,
      label: string,
      text: string,
      act: () => void
    ): HTMLButtonElement => {
      const b = h(
        'button',
        {
          class: `kfnb-DagViewport-${cls}`,
          title: label,
          'aria-label': label,
          type: 'button'
        },
        text
      );
      b.addEventListener('click', act);
      return b;
    };
    this._tools = h(
      'div',
      { class: 'kfnb-DagViewport-tools', hidden: true },
      button('zoomIn', 'Zoom in', '+', () => this.zoomBy(STEP)),
      button('zoomOut', 'Zoom out', '−', () => this.zoomBy(1 / STEP)),
      button('fit', 'Fit to view', '⤢', () => this.fit())
    );
    if (onOpen) {
      this._tools.append(button('open', 'Open in a tab', '↗', onOpen));
    }
    this.node.append(this._tools, this._box);
    this._zoom = zoom<SVGSVGElement, unknown>()
      .scaleExtent([MIN_SCALE, MAX_SCALE])
      // wheel zooms only with Ctrl/⌘ (the panel scrolls with the plain wheel); drag pans
      .filter(
        (event: MouseEvent | WheelEvent) =>
          (event.type === 'wheel'
            ? event.ctrlKey || event.metaKey
            : !event.button) && event.type !== 'dblclick'
      )
      .on('zoom', event => this._onZoom(event.transform, !!event.sourceEvent));
    this._resize.observe(this._box);
  }

  /** The drawing's box (its class `kfnb-Dag`). */
  get box(): HTMLElement {
    return this._box;
  }

  get svg(): SVGSVGElement | null {
    return this._svg;
  }

  get transform(): ITransform {
    return { ...this._transform };
  }

  /** Show `svg` (a `renderDag` drawing; null: none) fitted to the box. */
  setSvg(svg: SVGSVGElement | null): void {
    this._selection?.on('.zoom', null);
    this._svg = svg;
    this._selection = null;
    this._moved = false;
    this._tools.hidden = !svg;
    if (!svg) {
      this._box.replaceChildren();
      this._box.style.height = '';
      return;
    }
    const box = svg.viewBox.baseVal;
    this._content = { width: box.width, height: box.height };
    svg.removeAttribute('viewBox'); // the zoom transform maps the drawing into the box
    svg.setAttribute('width', '100%');
    this._box.replaceChildren(svg);
    this._selection = select(svg);
    this._selection.call(this._zoom);
    this.fit();
  }

  /** Fit the whole drawing into the box (and size the box for it). */
  fit(): void {
    const svg = this._svg;
    if (!svg || !this._selection) {
      return;
    }
    const width = this._box.clientWidth;
    if (!width) {
      return; // hidden: fitted when shown (the resize observer)
    }
    const height = boxHeight(this._content, width, this._maxHeight());
    this._box.style.height = `${height}px`;
    svg.setAttribute('height', String(height));
    const t = fitTransform(this._content, { width, height });
    this._selection.call(
      this._zoom.transform,
      zoomIdentity.translate(t.x, t.y).scale(t.k)
    );
    this._moved = false;
  }

  /** Zoom by `factor` about the box's centre. */
  zoomBy(factor: number): void {
    if (this._selection) {
      this._selection.call(this._zoom.scaleBy, factor);
      this._moved = true;
    }
  }

  dispose(): void {
    this._resize.disconnect();
    this._selection?.on('.zoom', null);
  }

  private _onZoom(t: ZoomTransform, byUser: boolean): void {
    this._transform = { k: t.k, x: t.x, y: t.y };
    this._svg
      ?.querySelector('.kfnb-Dag-content')
      ?.setAttribute('transform', t.toString());
    this._box.dataset.scale = t.k.toFixed(3);
    if (byUser) {
      this._moved = true;
    }
  }

  private _onResize(): void {
    const width = this._box.clientWidth;
    if (width && width !== this._width && !this._moved) {
      this._width = width;
      this.fit();
    }
  }

  private readonly _box: HTMLElement;
  private readonly _tools: HTMLElement;
  private readonly _zoom: ZoomBehavior<SVGSVGElement, unknown>;
  private readonly _resize = new ResizeObserver(() => this._onResize());
  private _svg: SVGSVGElement | null = null;
  private _selection: Selection<
    SVGSVGElement,
    unknown,
    null,
    undefined
  > | null = null;
  private _content: ISize = { width: 0, height: 0 };
  private _transform: ITransform = { k: 1, x: 0, y: 0 };
  private _moved = false;
  private _width = 0;
}
