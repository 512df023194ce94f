"""``Mercurial``: hg checkouts with Buildbot 4.3's arguments and command sequences.

Branches are either directories of a server (``branchType='dirname'``: the branch is appended
to ``repourl``) or named branches inside one repository (``'inrepo'``).  ``mode='full'``
methods: ``fresh`` (the default: ``hg purge --all``), ``clean`` (``hg purge``: ignored files
stay) and ``clobber``.  ``got_revision`` is the working directory's parent node.
"""

from __future__ import annotations

from buildfarm.master.process.steps.source.base import Patch, SlaveSetupError, Source, StepFailed

HG_NODE_LENGTH = 40
BRANCH_TYPES = ("dirname", "inrepo")
PURGE = ["--config", "extensions.purge=", "purge"]


class Mercurial(Source):
    """``steps.Mercurial(repourl=..., mode='incremental', method=None, defaultBranch=None,
    branchType='dirname', clobberOnBranchChange=True, ...)``."""

    default_name = "hg"
    methods = ("clean", "fresh", "clobber")

    def __init__(self, repourl=None, mode="incremental", method=None, defaultBranch=None,  # noqa: N803
                 branchType="dirname", clobberOnBranchChange=True, **kwargs):  # noqa: N803
        super().__init__(mode=mode, method=method, **kwargs)
        self.repourl = repourl
        self.branch = self.defaultBranch = defaultBranch
        self.branchType = branchType
        self.clobberOnBranchChange = clobberOnBranchChange
        self.revision: str | None = None
        self.update_branch: str | None = None

    def config_problems(self) -> list[str]:
        problems = super().config_problems()
        if self.repourl is None:
            problems.append("Mercurial: you must provide a repourl")
        if self.branchType not in BRANCH_TYPES:
            problems.append(f"Mercurial: branchType must be 'dirname' or 'inrepo', not {self.branchType!r}")
        return problems

    async def run_vc(self, branch: str | None, revision: str | None, patch: Patch | None) -> None:
        self.revision = revision
        self.method = None if self.mode == "incremental" else self.method or "fresh"
        if (await self.hg(["--version"], abandon=False)).rc != 0:
            raise SlaveSetupError("Mercurial is not installed on the slave")
        if self.branchType == "dirname":
            self.repourl = self.repourl + (branch or "")
            self.branch = self.defaultBranch
            self.update_branch = branch
        else:
            self.update_branch = branch or "default"
        if self.mode == "full":
            await self.mode_full()
        else:
            await self.mode_incremental()
        if patch is not None:
            await self.apply_patch_file(patch, ["hg", "--verbose", "import", "--no-commit", "-p",
                                                str(patch.level), "-"])
        await self.parse_got_revision()

    async def mode_full(self) -> None:
        if self.method == "clobber":
            await self.clobber()
        elif not await self.updatable():
            await self.clone()
            await self.update()
        elif self.method == "clean":
            await self.hg(PURGE)
            await self.pull_and_update()
        else:
            await self.hg([*PURGE, "--all"])
            await self.pull_and_update()

    async def mode_incremental(self) -> None:
        if await self.updatable():
            await self.hg(self.pull_command())
        else:
            await self.clone()
        await self.check_branch_change()

    async def updatable(self) -> bool:
        return await self.remote.exists(f"{self.workdir}/.hg")

    async def clobber(self) -> None:
        await self.remote.rmdir(self.workdir, abandon=False)
        await self.clone()
        await self.update()

    async def clone(self) -> None:
        async def attempt(abandon: bool) -> int | None:
            return (await self.hg(["clone", "--noupdate", self.repourl, "."], abandon=abandon)).rc

        async def cleanup() -> None:
            await self.remote.rmdir(self.workdir, abandon=False)

        if await self.retry_attempt(attempt, cleanup) != 0:
            raise StepFailed("hg clone failed")

    def pull_command(self) -> list[str]:
        command = ["pull", self.repourl]
        if self.revision:
            command += ["--rev", self.revision]
        elif self.branchType == "inrepo":
            command += ["--rev", self.update_branch]
        return command

    async def pull_and_update(self) -> None:
        await self.hg(self.pull_command())
        await self.check_branch_change()

    async def check_branch_change(self) -> None:
        """A tree on another in-repo branch is clobbered (``clobberOnBranchChange``) or
        updated; added files are removed before the update, as in Buildbot."""
        if self.branchType == "dirname":
            current = self.branch
        else:
            current = (await self.hg(["identify", "--branch"])).stdout.strip()
        if current != self.update_branch and self.clobberOnBranchChange:
            self.remote.header(f"Working dir is on in-repo branch '{current}' and build needs "
                               f"'{self.update_branch}'. Clobbering.")
            await self.clobber()
            return
        added = await self.hg(["locate", "set:added()"], ok_rcs=(0, 1))
        files = [f"{self.workdir}/{name}" for name in added.stdout.splitlines() if name]
        if files:
            await self.remote.rmdir(files, abandon=False)
        await self.update()

    async def update(self) -> None:
        command = ["update", "--clean"]
        if self.revision:
            command += ["--rev", self.revision]
        elif self.branchType == "inrepo":
            command += ["--rev", self.update_branch]
        await self.hg(command)

    async def parse_got_revision(self) -> None:
        node = (await self.hg(["parents", "--template", "{node}\\n"])).stdout.strip()
        if len(node) != HG_NODE_LENGTH:
            raise StepFailed(f"hg parents gave no node id: {node[:80]!r}")
        self.update_source_property("got_revision", node)

    async def hg(self, command: list[str], abandon: bool = True, ok_rcs: tuple[int, ...] = (0,)):
        return await self.remote.shell(self.workdir, ["hg", "--verbose", *command], abandon=abandon,
                                       ok_rcs=ok_rcs)
