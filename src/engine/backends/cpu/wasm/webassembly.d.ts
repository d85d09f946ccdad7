/**
 * The part of the WebAssembly JS API the CPU backend uses. The project compiles against the ES
 * library without DOM types, where the `WebAssembly` global is not declared.
 */
declare namespace WebAssembly {
  interface MemoryDescriptor {
    initial: number;
    maximum?: number;
    shared?: boolean;
  }
  class Memory {
    constructor(descriptor: MemoryDescriptor);
    readonly buffer: ArrayBuffer | SharedArrayBuffer;
    grow(delta: number): number;
  }
  class Module {
    constructor(bytes: Uint8Array);
  }
  /** Whether the bytes are a module this runtime compiles (feature detection). */
  function validate(bytes: Uint8Array): boolean;
  class Instance {
    constructor(module: Module, imports: Record<string, Record<string, unknown>>);
    readonly exports: Record<string, unknown>;
  }
}
