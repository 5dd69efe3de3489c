"""Batch jobs (``headsplat batch``): a spec of many commands' jobs checked whole (:mod:`.spec`), run as Ray tasks
with atomic outputs, a manifest and resumption (:mod:`.runner`), driver tracking shared between jobs
(:mod:`.shared`). Ray is imported only when a batch runs."""

from headsplat.avatar.batch.runner import RAY_HINT, Resources, import_ray, run
from headsplat.avatar.batch.spec import COMMANDS, Job, Plan, SpecError, plan

__all__ = ["COMMANDS", "RAY_HINT", "Job", "Plan", "Resources", "SpecError", "import_ray", "plan", "run"]
