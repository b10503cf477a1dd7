/** Something that holds resources (listeners, timers, processes) and releases them on dispose. */
export interface DisposableLike {
  dispose(): unknown;
}

/** Base class: everything registered is disposed, newest first, when the owner is. */
export class Disposable implements DisposableLike {
  private readonly owned: DisposableLike[] = [];
  private disposed = false;

  protected get isDisposed(): boolean {
    return this.disposed;
  }

  protected register<T extends DisposableLike>(resource: T): T {
    if (this.disposed) resource.dispose();
    else this.owned.push(resource);
    return resource;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const resource of this.owned.splice(0).reverse()) resource.dispose();
  }
}

/** A timer as a disposable. */
export function interval(callback: () => void, ms: number): DisposableLike {
  const timer = setInterval(callback, ms);
  return { dispose: () => clearInterval(timer) };
}
