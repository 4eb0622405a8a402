"""The end of a test worker run under torchrun: every rank's results gathered, written by
rank 0 as JSON, and the process gone without Python's teardown (torch 2.13's gloo may abort
a process there under load, "terminate called without an active exception", after all the
work is done)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch.distributed as dist


def finish(results: Any, out: str, **extra: Any) -> None:
    """Gather ``results`` from every rank; rank 0 writes ``{"ranks": [...], **extra}``."""
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, results)
    if dist.get_rank() == 0:
        Path(out).write_text(json.dumps({"ranks": gathered, **extra}))
    dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush()
    os._exit(0)
