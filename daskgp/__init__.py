"""daskgp: gunpowder's API for training pipelines on large 3D images, on lazy dask graphs.

Port a pipeline by changing ``import gunpowder as gp`` to ``import daskgp as gp``.
"""

from . import tensorflow, torch
from .batch import Array, Batch
from .errors import (
    ArrayError,
    BatchError,
    BatchRequestError,
    DaskgpError,
    PipelineRequestError,
    PipelineSetupError,
    PipelineTeardownError,
    SourceError,
    TaskError,
    UnsupportedError,
)
from .geometry import Coordinate, Roi
from .graph import Edge, Graph, GraphError, Node
from .gunpowder_alias import register_as_gunpowder
from .keys import ArrayKey, ArrayKeys, GraphKey, GraphKeys
from .nodes import *  # noqa: F403
from .nodes import __all__ as _node_names
from .pipeline import Pipeline, build
from .producer_pool import ProducerPool
from .provider import BatchFilter, BatchProvider
from .request import BatchRequest
from .scheduling import resolve_scheduler
from .specs import ArraySpec, GraphSpec, ProviderSpec

__version__ = "0.1.0"
#: gunpowder's name for the version.
version = __version__

__all__ = [
    "Array",
    "ArrayError",
    "ArrayKey",
    "ArrayKeys",
    "ArraySpec",
    "Batch",
    "BatchError",
    "BatchFilter",
    "BatchProvider",
    "BatchRequest",
    "BatchRequestError",
    "Coordinate",
    "DaskgpError",
    "Edge",
    "Graph",
    "GraphError",
    "GraphKey",
    "GraphKeys",
    "GraphSpec",
    "Node",
    "Pipeline",
    "PipelineRequestError",
    "PipelineSetupError",
    "PipelineTeardownError",
    "ProviderSpec",
    "Roi",
    "SourceError",
    "TaskError",
    "build",
    "tensorflow",
    "torch",
    "resolve_scheduler",
    "ProducerPool",
    "UnsupportedError",
    "register_as_gunpowder",
    *(name for name in _node_names if name not in ("BatchFilter", "BatchProvider")),
]
