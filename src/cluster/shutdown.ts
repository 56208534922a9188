// Cleanup that must run however the process ends: normal exit, an uncaught error, SIGINT or SIGTERM.
// Hooks are synchronous (kill a child, remove a file), because 'exit' handlers cannot wait.
type Hook = () => void;

const hooks = new Set<Hook>();
let installed = false;

function runAll(): void {
  for (const h of [...hooks]) {
    hooks.delete(h);
    try {
      h();
    } catch {
      // best effort: the other hooks must still run
    }
  }
}

function onSignal(signal: NodeJS.Signals): void {
  runAll();
  process.exit(signal === 'SIGINT' ? 130 : 143);
}

/** Registers a hook; returns its removal. Signal handlers exist only while some hook does. */
export function onShutdown(hook: Hook): () => void {
  hooks.add(hook);
  if (!installed) {
    installed = true;
    process.on('exit', runAll);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  return () => {
    hooks.delete(hook);
    if (hooks.size === 0 && installed) {
      installed = false;
      process.off('exit', runAll);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  };
}
