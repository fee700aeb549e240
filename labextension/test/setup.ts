// happy-dom under vitest: the global `Document` is not the class of `document`, so
// `document instanceof Document` is false and FAST (JupyterLab's web components) then styles
// `document` like an element and throws. Make the global the document's own class.
const documentClass = Object.getPrototypeOf(
  Object.getPrototypeOf(globalThis.document ?? {})
)?.constructor;
if (
  globalThis.document &&
  typeof documentClass === 'function' &&
  !(globalThis.document instanceof Document)
) {
  Object.defineProperty(globalThis, 'Document', {
    value: documentClass,
    configurable: true,
    writable: true
  });
}
