"""Running one loop on several worker threads, as the search and the final evaluation both do.

With one worker the loop runs in the calling (main) thread, so that Ctrl-C reaches a job that Hydra's
basic launcher runs in this process. With several, the main thread only waits: Ctrl-C interrupts that
wait, the caller is told (`on_interrupt`: stop starting jobs), and the threads are waited for again
until the jobs in flight have ended.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


def run_on_workers(
    work: Callable[[], None], n_workers: int, name: str, on_interrupt: Callable[[], None]
) -> None:
    if n_workers == 1:
        work()
        return
    threads = [threading.Thread(target=work, name=f"{name}-{i}") for i in range(n_workers)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except KeyboardInterrupt:
        on_interrupt()
        for thread in threads:
            thread.join()
