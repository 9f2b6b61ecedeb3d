"""Ray integration (the `ray` extra): publish a `ray.data.Dataset` from a cluster, read a dataset back as one."""

from .publish import publish
from .read import read
from .sources import folder_dataset, ray_source

__all__ = ["folder_dataset", "publish", "ray_source", "read"]
