/** The models this build of the site holds, by name (`define` in vite.config.ts). */
declare const __SUMI_MODELS__: readonly string[];
