export {
  loadModel,
  modelFromWeights,
  plan,
  Model,
  type LoadModelOptions,
  type SessionOptions,
  type PlanOptions,
} from './model.js';
export {
  Session,
  type PrefillOptions,
  type PrefillProgress,
  type GenerateOptions as SessionGenerateOptions,
} from './session.js';
export { Generation, type GenerationResult, type FinishReason } from './generation.js';
export type { ChatMessage, ChatTemplate } from './chat.js';
export type { ContextPlan, ContextPlanOptions } from './plan.js';
export type { LoadProgress, ModelSource } from './source.js';
export * from './errors.js';
export { loadSession, type LoadSessionOptions } from './load-session.js';
export type { SessionHeader, LayerCacheState, SessionPositions } from './session-file.js';
