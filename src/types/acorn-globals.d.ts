declare module 'acorn-globals' {
  interface FreeName {
    name: string;
  }
  function detect(source: string, options?: { ecmaVersion?: number | 'latest'; sourceType?: 'script' | 'module' }): FreeName[];
  export = detect;
}
