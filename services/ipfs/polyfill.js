// js-ipfs 0.66 calls Promise.withResolvers, which Node 20 lacks. Loaded with NODE_OPTIONS=--require.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers() {
    let resolve;
    let reject;
    const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
    return { promise, resolve, reject };
  };
}
