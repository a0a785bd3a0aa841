"""Entry point of the local model server's process: llama.cpp's server, tied to its parent.

`LocalLLMServer.stop` (and the interpreter's exit) end the server in every orderly case, but a
parent killed outright (SIGKILL, the OOM killer) runs no cleanup, and the server lived on as an
orphan holding its model in memory and its port. Here a watcher thread ends the server once
its parent is gone. Linux's PR_SET_PDEATHSIG would not do: it fires when the *thread* that
started the child exits, and the graph starts the server from whichever worker thread first
needs a model.
"""

from __future__ import annotations

import os
import runpy
import sys
import threading
import time

PARENT_POLL_S = 0.5


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(0)  # the server holds no state worth saving


def main() -> None:
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
    sys.argv = ["llama_cpp.server", *sys.argv[1:]]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
