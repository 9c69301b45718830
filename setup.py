"""Build hook only; the project's metadata lives in pyproject.toml.

The recipes live at the top of the checkout (export_configs/), where people edit them; the
wheel carries a copy inside the package (mobq/data/export_configs/), where `recipes_dir()`
finds them after a non-editable install.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

RECIPES = Path(__file__).resolve().parent / "export_configs"


class BuildPyWithRecipes(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "mobq" / "data" / "export_configs"
        self.mkpath(str(target))
        for recipe in sorted(RECIPES.glob("*.yaml")):
            self.copy_file(str(recipe), str(target / recipe.name))


setup(cmdclass={"build_py": BuildPyWithRecipes})
