"""Build hook only (everything else is in pyproject.toml): a wheel carries the top-level
templates/ (the product card's layout) inside the package as ballot_service/templates, which
config.py uses when the project's own templates/ folder is not beside the package."""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithTemplates(build_py):
    def run(self):
        super().run()
        if not getattr(self, "editable_mode", False):  # an editable install reads templates/ in place
            src = Path(__file__).resolve().parent / "templates"
            shutil.copytree(src, Path(self.build_lib) / "ballot_service" / "templates", dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildPyWithTemplates})
