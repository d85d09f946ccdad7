/** The base of the diffusers-compatible models: a Module with its resolved diffusers config. */
import { Module } from '../module.js';
import { type ConfigSchema, configToJson, resolveConfig } from './config.js';

export abstract class DiffusersModel<C extends object> extends Module {
  /** The resolved config (every key, diffusers' defaults filled in), as diffusers writes it. */
  readonly config: Readonly<C>;

  constructor(
    readonly schema: ConfigSchema<C>,
    config: unknown,
  ) {
    super();
    this.config = Object.freeze(resolveConfig(schema, config).config);
  }

  /** diffusers' class name (`_class_name`). */
  get className(): string {
    return this.schema.className;
  }

  /** The config.json text diffusers would write for this model. */
  configJson(): string {
    return configToJson(this.className, this.config);
  }
}
