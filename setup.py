"""Build hook for the one optional native part: commP hashing (deai_data/storage/filecoin/_native_commp.c).

Everything else is in pyproject.toml. Without a C compiler the extension is skipped and commP runs in
Python on worker processes (about 6x slower per core); results are identical.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("deai_data.storage.filecoin._native_commp",
                             ["deai_data/storage/filecoin/_native_commp.c"],
                             extra_compile_args=["-O3"], optional=True)])
