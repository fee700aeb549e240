import { describe, expect, it, vi } from 'vitest';

import { boxHeight, DagViewport, fitTransform } from '../src/dagviewport';

describe('fitTransform', () => {
  it('shrinks a wide drawing to the width and centres it vertically', () => {
    const t = fitTransform(
      { width: 600, height: 300 },
      { width: 300, height: 400 },
      0
    );
    expect(t.k).toBeCloseTo(0.5);
    expect(t.x).toBeCloseTo(0);
    expect(t.y).toBeCloseTo((400 - 150) / 2);
  });

  it('shrinks a tall drawing to the height and centres it horizontally', () => {
    const t = fitTransform(
      { width: 100, height: 800 },
      { width: 300, height: 400 },
      0
    );
    expect(t.k).toBeCloseTo(0.5);
    expect(t.x).toBeCloseTo((300 - 50) / 2);
    expect(t.y).toBeCloseTo(0);
  });

  it('never enlarges beyond maxScale', () => {
    const t = fitTransform(
      { width: 100, height: 50 },
      { width: 1000, height: 1000 },
      0
    );
    expect(t.k).toBe(1);
    expect(t.x).toBe(450);
    expect(
      fitTransform(
        { width: 100, height: 50 },
        { width: 1000, height: 1000 },
        0,
        2
      ).k
    ).toBe(2);
  });

  it('keeps the padding around the drawing', () => {
    const t = fitTransform(
      { width: 200, height: 100 },
      { width: 220, height: 400 },
      10
    );
    expect(t.k).toBeCloseTo(1);
    expect(t.x).toBeCloseTo(10);
  });

  it('survives empty sizes', () => {
    const t = fitTransform({ width: 0, height: 0 }, { width: 0, height: 0 });
    expect(Number.isFinite(t.k)).toBe(true);
    expect(Number.isFinite(t.x)).toBe(true);
  });
});

describe('boxHeight', () => {
  it('is the drawing height scaled to the width', () => {
    // 612 wide into 318 less 6 px padding each side: scale 0.5, so 250 tall plus padding
    expect(boxHeight({ width: 612, height: 500 }, 318, 1000)).toBe(262);
  });

  it('is capped by maxHeight and floored by minHeight', () => {
    expect(boxHeight({ width: 100, height: 5000 }, 300, 400)).toBe(400);
    expect(boxHeight({ width: 100, height: 5 }, 300, 400, 60)).toBe(60);
  });

  it('never enlarges a small drawing', () => {
    expect(boxHeight({ width: 100, height: 200 }, 1000, 1000)).toBe(212);
  });
});

describe('DagViewport', () => {
  it('offers to open the drawing in a tab only when asked to', () => {
    const open = vi.fn();
    const withTab = new DagViewport('', () => 300, open);
    const button = withTab.node.querySelector<HTMLButtonElement>(
      '.kfnb-DagViewport-open'
    );
    expect(button?.getAttribute('aria-label')).toBe('Open in a tab');
    button?.click();
    expect(open).toHaveBeenCalledTimes(1);
    const plain = new DagViewport();
    expect(plain.node.querySelector('.kfnb-DagViewport-open')).toBeNull();
    expect(
      plain.node.querySelectorAll('.kfnb-DagViewport-tools button')
    ).toHaveLength(3);
    withTab.dispose();
    plain.dispose();
  });
});
