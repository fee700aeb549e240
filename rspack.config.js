// Extra bundler settings for `jupyter-builder build` (package.json `jupyterlab.webpackConfig`),
// merged into @jupyter/builder's own. @microsoft/fetch-event-source publishes source maps that
// point at sources it does not ship: the development build would warn about each of them.
module.exports = {
  ignoreWarnings: [
    warning =>
      /Failed to parse source map/.test(String(warning.message)) &&
      /fetch-event-source/.test(String(warning.message))
  ]
};
