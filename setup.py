"""Packaging for pyomo_relu (``pip install -e .[all]`` for everything)."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = next(
    line.split('"')[1]
    for line in (HERE / "pyomo_relu" / "__init__.py").read_text().splitlines()
    if line.startswith("__version__")
)

EXTRAS = {
    "keras": ["keras>=3.0", "torch==2.13.0", "h5py"],
    "torch": ["torch==2.13.0"],
    "sklearn": ["scikit-learn>=1.3"],
    "idaes": ["idaes-pse==2.13.0", "pandas"],
    "scip": ["pyscipopt>=5.0"],
    "dask": ["dask[distributed]>=2024.1"],
    "plot": ["matplotlib>=3.7"],
    "test": [
        "pytest>=8",
        "pytest-xdist>=3",
        "hypothesis>=6",
        "onnxruntime>=1.17",
        "tqdm>=4.60",
        "psutil>=5.9",
        "ruff>=0.17",
        "mypy>=2.4",
    ],
    "benchmark": ["omlt==1.2.2", "maraboupy==2.0.0"],
    "docs": [
        "mkdocs==1.6.1",
        "mkdocs-material==9.8.1",
        "mkdocstrings==1.0.8",
        "mkdocstrings-python==2.0.11",
        "mkdocs-gen-files==0.6.1",
        "pymdown-extensions==13.1.2",
        "matplotlib>=3.7",
    ],
}
EXTRAS["all"] = sorted(
    {req for name, reqs in EXTRAS.items() if name not in ("benchmark", "docs") for req in reqs} | {"tqdm>=4.60"}
)

setup(
    name="pyomo_relu",
    version=VERSION,
    description="Trained ReLU neural networks as mixed-integer constraints in Pyomo models",
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["pyomo_relu", "pyomo_relu.*"]),
    package_data={"pyomo_relu": ["py.typed"]},
    python_requires=">=3.11",
    install_requires=["pyomo>=6.10.1", "numpy>=1.24", "scipy>=1.11", "onnx>=1.14", "highspy>=1.7"],
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["pyomo-relu=pyomo_relu.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3.11",
        "Topic :: Scientific/Engineering :: Mathematics",
    ],
)
