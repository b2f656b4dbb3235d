/**
 * The undo stack of an ADD: every step that changes something pushes how to
 * take it back; on failure the steps run newest first, and the original
 * error is the one reported.
 */

/** Undo steps of an ADD, run newest first when a later step fails. */
export class UndoStack {
  private readonly steps: Array<{ what: string; fn: () => unknown }> = [];

  /** `plugin` names the plugin in the rollback's log lines. */
  constructor(private readonly plugin: string) {}

  push(what: string, fn: () => unknown): void {
    this.steps.push({ what, fn });
  }

  /** Undo everything, newest first; failures are logged to stderr, never thrown (the original error wins). */
  async unwind(): Promise<void> {
    for (const s of this.steps.reverse()) {
      try {
        await s.fn();
      } catch (e) {
        process.stderr.write(`[tscni] ${this.plugin} rollback: ${s.what} failed: ${(e as Error).message}\n`);
      }
    }
    this.steps.length = 0;
  }
}

/** Run `fn`; on failure unwind `undo` and rethrow the original error. */
export async function withUndo<T>(undo: UndoStack, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    await undo.unwind();
    throw e;
  }
}
