"""What a user installs: a version above the unrelated 2016 `django-ddp`, and a README that installs this."""

from __future__ import annotations

import re

from packaging.version import Version

import dddp
from tests.server_process import REPO

#: The last release of the 2016 project of the same name on the package index.
OLD_PROJECT_LAST_RELEASE = Version("0.19.1")


def test_the_version_sorts_above_every_release_of_the_old_project() -> None:
    assert Version(dddp.__version__) > OLD_PROJECT_LAST_RELEASE


def test_the_readme_installs_from_the_repository_not_by_name() -> None:
    readme = (REPO / "README.rst").read_text()
    installs = re.findall(r"^\s*pip install (\S+)", readme, re.MULTILINE)
    assert installs, "README.rst has no pip install line"
    for target in installs:
        # A bare name (django-ddp, django-ddp[embedded]) would fetch the old project.
        assert "/" in target, f"README.rst installs {target!r} by name from the package index"


def test_the_readme_names_the_wheel_of_this_version() -> None:
    readme = (REPO / "README.rst").read_text()
    wheels = set(re.findall(r"django_ddp-([^-]+)-py3-none-any\.whl", readme))
    assert wheels == {dddp.__version__}
