/** Messages between the playground page (main.ts, lab.ts) and its workers (worker.ts, lab-worker.ts). */
import type { RawImage } from '../src/index.js';

export { DIGITS, MODELS } from './catalog.js';

export type BackendChoice = 'auto' | 'webgpu' | 'cpu';

export interface SampleSettings {
  sampler: string;
  steps: number;
  seed: number;
  n: number;
  /** Classifier-free guidance scale w (1: none). */
  guidance: number;
  /** Class id, -1 for "each class in turn" (class models). */
  classId: number;
  /** The prompt (text models). */
  prompt: string;
}

/** An 8-bit grid of images, `channels` bytes per pixel. */
export interface Frame {
  width: number;
  height: number;
  channels: number;
  data: Uint8Array;
}

/** An 8-bit image as a Frame (its pixels are transferred with the message). */
export function frameOf(img: RawImage): Frame {
  return {
    width: img.width,
    height: img.height,
    channels: img.channels,
    data: img.data as Uint8Array,
  };
}

/** A worker's global scope, typed by the requests it takes and the replies it posts. */
export interface WorkerScope<In, Out> {
  onmessage: ((e: MessageEvent<In>) => void) | null;
  postMessage(message: Out, transfer?: Transferable[]): void;
}

/** RePaint's settings of an inpainting run (`inpaintAsync`). */
export interface InpaintSettings {
  /** r: passes through each resampling point (1: plain mask blending). */
  resample: number;
  /** j: steps between resampling points and the length of a jump back up. */
  jumpLength: number;
  /** The ε that noises the kept region: a fresh draw every step, or x_T's throughout. */
  knownNoise: 'fresh' | 'fixed';
}

/** What the sampling worker was doing when it replied. */
export type Job = 'load' | 'sample' | 'inpaint';

export type Request =
  /**
   * `url`: the model folder's absolute URL; with `files`, the folder's files by path (the model
   * trained in the tab), and `url` only names it.
   */
  | {
      type: 'load';
      model: string;
      url: string;
      backend: BackendChoice;
      files?: Record<string, Uint8Array>;
    }
  | { type: 'sample'; settings: SampleSettings }
  /**
   * Inpaint one image (the model's [C, H, W] planes in [−1, 1]; a latent model's: pixels) where
   * `mask` (H·W, 1: repaint) is set, with the sampler, steps, seed, guidance and condition of
   * `settings` (image 0's condition).
   */
  | {
      type: 'inpaint';
      settings: SampleSettings;
      inpaint: InpaintSettings;
      image: Float32Array;
      mask: Float32Array;
    }
  | { type: 'cancel' };

export interface ModelSummary {
  name: string;
  conditioning: 'none' | 'class' | 'text';
  hasNull: boolean;
  classNames: string[];
  /** The images' side and channels (a latent model's: decoded). */
  imageSize: number;
  channels: number;
  /** A latent model: the denoiser's samples [C, H, W] and the autoencoder that decodes them. */
  latent: { shape: number[]; vaeClass: string } | null;
  /** The scheduler config (scheduler/scheduler_config.json): the forward panel's schedule. */
  scheduler: Record<string, unknown>;
  parameters: number;
  backend: string;
  /** Fetching and building the model, in ms. */
  loadMs: number;
}

export type Reply =
  | { type: 'loaded'; model: ModelSummary }
  | { type: 'progress'; step: number; total: number; t: number; frame: Frame }
  | {
      type: 'done';
      frame: Frame;
      png: Uint8Array;
      /** Sampling time (x_T to x_0), and the mean step after the first, in ms. */
      ms: number;
      msPerStep: number;
      /** The images [n, C, H, W] in [−1, 1] (decoded for a latent model), for the inpainting panel. */
      images: { values: Float32Array; shape: number[] };
    }
  /** After an inpainting step: x̂_0 with the kept pixels pasted (null for a latent model). */
  | { type: 'inpaint-progress'; step: number; total: number; t: number; frame: Frame | null }
  | { type: 'inpaint-done'; frame: Frame; ms: number; msPerStep: number }
  | { type: 'cancelled'; job: Job }
  /** After every load, sample or inpainting, however it ended: the tensors alive in the worker. */
  | { type: 'idle'; liveTensors: number }
  | { type: 'error'; message: string; job: Job };

export interface TrainSettings {
  seed: number;
  batch: number;
  lr: number;
  /** A sample grid every this many steps. */
  sampleEvery: number;
  backend: BackendChoice;
}

/** Messages to the lab worker (lab-worker.ts): the forward process and live training. */
export type LabRequest =
  /**
   * x_t of `image` (channels × side × side planes, values in [−1, 1]) at t, ε from `seed`, on
   * `scheduler`'s schedule.
   */
  | {
      type: 'forward';
      scheduler: Record<string, unknown>;
      image: Float32Array;
      channels: number;
      side: number;
      t: number;
      seed: number;
    }
  | { type: 'train'; settings: TrainSettings; digits: Uint8Array }
  | { type: 'stop' };

export type LabReply =
  /** x_t and the schedule's ᾱ_t for t = 0..T−1. */
  | { type: 'forward'; t: number; frame: Frame; alphasCumprod: Float64Array }
  | {
      type: 'train-started';
      parameters: number;
      backend: string;
      side: number;
    }
  | { type: 'train-step'; step: number; loss: number; msPerStep: number }
  | { type: 'train-sample'; step: number; frame: Frame }
  /** The stopped run's model as a pipeline folder's files by path (unet/config.json, …). */
  | { type: 'train-model'; step: number; files: Record<string, Uint8Array> }
  | { type: 'train-stopped'; step: number }
  | { type: 'lab-error'; message: string };
