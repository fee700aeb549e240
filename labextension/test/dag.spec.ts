import { describe, expect, it } from 'vitest';

import { edgePath, labelOf } from '../src/dag';

describe('edgePath', () => {
  it('draws a straight run where x does not change', () => {
    expect(
      edgePath([
        [10, 0],
        [10, 40]
      ])
    ).toBe('M10,0 L10,40');
  });

  it('draws a vertical S-curve with control points at half the height', () => {
    expect(
      edgePath([
        [0, 0],
        [100, 40]
      ])
    ).toBe('M0,0 C0,20 100,20 100,40');
  });

  it('goes through every waypoint of a long edge', () => {
    const d = edgePath([
      [0, 0],
      [50, 40],
      [50, 80],
      [0, 120]
    ]);
    expect(d).toBe('M0,0 C0,20 50,20 50,40 L50,80 C50,100 0,100 0,120');
  });
});

describe('labelOf', () => {
  it('joins the variables', () => {
    expect(labelOf(['a', 'b']).text).toBe('a, b');
  });

  it('cuts a long list short with an ellipsis, and its width follows', () => {
    const long = labelOf(['features', 'labels', 'weights', 'encoder']);
    expect(long.text.length).toBeLessThanOrEqual(22);
    expect(long.text.endsWith('…')).toBe(true);
    expect(long.width).toBeGreaterThan(labelOf(['x']).width);
  });
});
