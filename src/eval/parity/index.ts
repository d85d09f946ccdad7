/** Parity checks against reference fixtures (diffusers' test vectors), as a registry of kinds. */
import { registerFixtureKind } from './kinds.js';
import { modelFixtureKind } from './models.js';
import { schedulerFixtureKind } from './scheduler-kind.js';

export * from './kinds.js';
export * from './compare.js';
export * from './runner.js';
export {
  fakeModel,
  schedulerFixtureKind,
  F64_TOLERANCE,
  NATIVE_TOLERANCE,
  nativeTolerance,
} from './scheduler-kind.js';
export { modelFixtureKind, MODEL_F32_TOLERANCE, MODEL_F64_TOLERANCE } from './models.js';

registerFixtureKind(schedulerFixtureKind);
registerFixtureKind(modelFixtureKind);
