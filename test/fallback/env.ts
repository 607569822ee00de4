// Loaded by mocharc.json before any test file: the whole run takes the platform fallback,
// as on Windows, and so do the processes it starts (they inherit the environment).
process.env.FORKWISE_FORCE_FALLBACK = '1';
