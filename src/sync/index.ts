/**
 * `forkwise/sync`: shared memory and process-shared synchronisation primitives. The
 * primitives of the API contract arrive with the shared-memory layer; until then this entry
 * point exists so that imports resolve, and exports nothing.
 */
export {};
