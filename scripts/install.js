// `npm install`'s build step: the prebuilt binary that matches this machine, else the addon
// built from source with node-gyp (node-gyp-build does both). Nothing on Windows: the addon
// is POSIX, and there forkwise/multiprocessing and forkwise/threading take the platform
// fallback (README "Windows: the platform fallback").
if (process.platform !== 'win32') require('node-gyp-build/bin.js');
